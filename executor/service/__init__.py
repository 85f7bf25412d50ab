"""The use cases API and CLI call; the one place that builds and wires components."""
