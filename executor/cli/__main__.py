"""``python -m executor.cli`` runs the CLI."""

from executor.cli.main import app

app()
