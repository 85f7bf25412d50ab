"""Sibling module imported with ``from .helpers import shout``."""


def shout(text: str) -> str:
    """Upper-case ``text`` with an exclamation mark."""
    return f"{text.upper()}!"
