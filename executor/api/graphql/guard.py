"""Checks a GraphQL document passes before it is parsed.

graphql-core parses and validates recursively: a document nested a thousand levels deep
would exhaust the interpreter's stack. The nesting of ``{``, ``[`` and ``(`` is counted
here, outside strings and comments, in one pass over the text; the body size is capped
by ``executor.api.limits`` before the route runs.
"""

from __future__ import annotations

__all__ = ["MAX_QUERY_DEPTH", "nesting_depth"]

# The Kili SDK's plugin operations nest 4 levels; room to spare for hand-written queries.
MAX_QUERY_DEPTH = 32
_OPEN = frozenset("{[(")
_CLOSE = frozenset("}])")


def _skip_string(text: str, start: int) -> int:
    """The index after the string literal opening at ``start`` (block strings too)."""
    if text.startswith('"""', start):
        end = text.find('"""', start + 3)
        while end != -1 and text[end - 1] == "\\":
            end = text.find('"""', end + 1)
        return len(text) if end == -1 else end + 3
    index = start + 1
    while index < len(text) and text[index] not in '"\n':
        index += 2 if text[index] == "\\" else 1
    return index + 1


def nesting_depth(text: str) -> int:
    """The deepest nesting of braces, brackets and parentheses in a GraphQL document."""
    depth = deepest = index = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            index = _skip_string(text, index)
            continue
        if char == "#":
            newline = text.find("\n", index)
            index = len(text) if newline == -1 else newline
            continue
        if char in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        elif char in _CLOSE:
            depth -= 1
        index += 1
    return deepest
