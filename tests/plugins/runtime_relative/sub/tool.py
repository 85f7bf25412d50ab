"""Module of a sub-package; itself uses a relative import going up one level."""

from ..helpers import shout


def describe(label: dict) -> str:
    """Name the label's keys, shouted."""
    return shout("keys=" + ",".join(sorted(label)))
