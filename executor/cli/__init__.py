"""The ``plugin-executor`` command line."""

from executor.cli.main import app

__all__ = ["app"]
