"""Sub-package of the relative-import fixture."""
