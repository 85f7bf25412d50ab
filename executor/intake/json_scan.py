"""Checks on a raw JSON body before it is parsed: nesting depth, and Unicode a plugin can get.

Python's ``json`` accepts ``"\\udcff"`` (a lone surrogate escape: half of a UTF-16 pair, as
a broken emoji from JavaScript gives) and nesting up to the interpreter's recursion limit.
Neither can be delivered: the envelope serializer refuses surrogates and gives up near 256
levels. So the bytes are scanned first; the scan stops at the first level too deep, before
a parser has built anything, and names the path of what it refuses
(``label.jsonResponse.JOB.text``; array elements by index: ``label.boxes.3``).

Both checks start with a pass at C speed (strip the strings, count the brackets; decode the
body, look for a surrogate escape); only a body that fails it is walked token by token to
find the path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from executor.errors import EventTooDeep, InvalidUnicode

__all__ = ["check_json_body", "plainly_fine"]

# One JSON string, quotes included (the unrolled form keeps long strings fast).
_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"'
_STRINGS = re.compile(_STRING, re.DOTALL)
_TOKENS = re.compile(_STRING + rb"|[\[\]{},:]", re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_OPENERS = frozenset(b"[{")
# A \u escape of a surrogate code point; a pair of them is fine and is checked after decoding.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
SEGMENT_CHARS = 64  # a longer key is shortened in the path an error shows
QUOTE = ord('"')


def check_json_body(body: bytes, max_depth: int) -> None:
    """Refuse a body whose objects and arrays nest deeper than ``max_depth`` levels (the
    body itself is level 1): ``EventTooDeep``; or one holding a string or key that is not
    valid Unicode (bytes that are not UTF-8, a lone surrogate escape): ``InvalidUnicode``.

    Anything else, including JSON that does not parse, is left to the parser."""
    if _deeper_than(body, max_depth):
        path = _path_where(body, lambda token, depth, _key: depth > max_depth)
        if path is not None:
            raise EventTooDeep(
                f"{_where(path)}: objects and arrays nest deeper than {max_depth} levels "
                "here (the body is level 1): send a flatter event",
                field=path,
                maximum=max_depth,
            )
    if _may_hold_bad_unicode(body):
        problems: list[str] = []

        def bad(token: bytes, _depth: int, is_key: bool) -> bool:
            problem = _unicode_problem(token) if token[0] == QUOTE else None
            if problem is not None:
                problems.append(f"{'the key' if is_key else 'the string'} {problem}")
            return problem is not None

        path = _path_where(body, bad)
        if path is not None:
            raise InvalidUnicode(
                f"{_where(path)}: {problems[0]}: send text as UTF-8 and pair every "
                "surrogate escape (\\ud800-\\udbff, then \\udc00-\\udfff)",
                field=path,
            )


def plainly_fine(body: bytes, max_depth: int) -> bool:
    """True when cheap whole-body checks (C-speed: a regex, a decode) show there is nothing
    for ``check_json_body`` to find: fewer brackets than ``max_depth``, valid UTF-8, no
    surrogate escape. The usual event passes here, without a walk or a thread."""
    return _openers(_brackets(body)) <= max_depth and not _may_hold_bad_unicode(body)


def _brackets(body: bytes) -> bytes:
    """The body's brackets outside strings, in order."""
    return _STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS)


def _openers(brackets: bytes) -> int:
    return brackets.count(b"[") + brackets.count(b"{")


def _deeper_than(body: bytes, max_depth: int) -> bool:
    brackets = _brackets(body)
    if _openers(brackets) <= max_depth:
        return False
    depth = 0
    for byte in brackets:
        depth += 1 if byte in _OPENERS else -1
        if depth > max_depth:
            return True
    return False


def _may_hold_bad_unicode(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return _SURROGATE_ESCAPE.search(body) is not None


def _unicode_problem(token: bytes) -> str | None:
    """What is wrong with one JSON string token, or None."""
    try:
        text = token.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"holds byte 0x{token[exc.start]:02x}, which is not UTF-8"
    if "\\u" not in text:
        return None
    try:
        json.loads(text).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds \\u{ord(exc.object[exc.start]):04x}, a lone surrogate (not Unicode text)"
    except ValueError:  # a malformed escape: the parser says where
        return None
    return None


@dataclass
class _Frame:
    """An open object or array, and where the walk is in it."""

    is_object: bool
    at: str | int  # the current member's key, or the current element's index


class _Walk:
    """Where a token-by-token walk of a JSON document is: its open objects and arrays."""

    def __init__(self) -> None:
        self.frames: list[_Frame] = []
        self.expect_key = False

    def enter(self, token: bytes) -> tuple[int, bool]:
        """The depth of a string or opening bracket, and whether it is a key (then the
        path goes on with it)."""
        if token[0] != QUOTE:
            return len(self.frames) + 1, False
        is_key = self.expect_key and bool(self.frames) and self.frames[-1].is_object
        if is_key:
            self.frames[-1].at = _key_text(token)
        return len(self.frames), is_key

    def take(self, token: bytes) -> None:
        if token in (b"{", b"["):
            self.frames.append(_Frame(token == b"{", "" if token == b"{" else 0))
            self.expect_key = token == b"{"
        elif token in (b"}", b"]") and self.frames:
            self.frames.pop()
        elif token == b"," and self.frames:
            self.expect_key = self.frames[-1].is_object
            if not self.expect_key:
                self.frames[-1].at = int(self.frames[-1].at) + 1
        elif token == b":":
            self.expect_key = False

    def path(self) -> str:
        return ".".join(str(frame.at) for frame in self.frames)


def _path_where(body: bytes, found: Callable[[bytes, int, bool], bool]) -> str | None:
    """The path of the first string or opening bracket for which ``found(token, depth,
    is_key)`` holds (an opening bracket at the depth it opens), or None."""
    walk = _Walk()
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token[0] == QUOTE or token in (b"{", b"["):
            depth, is_key = walk.enter(token)
            if found(token, depth, is_key):
                return walk.path()
        walk.take(token)
    return None


def _key_text(token: bytes) -> str:
    try:
        key = json.loads(token)
    except ValueError:  # not UTF-8, or a malformed escape
        key = token[1:-1].decode("utf-8", "backslashreplace")
    # Lone surrogates become their \\u escape: the path must be sendable itself.
    shown = str(key).encode("utf-8", "backslashreplace").decode("utf-8")
    return shown if len(shown) <= SEGMENT_CHARS else shown[: SEGMENT_CHARS - 1] + "…"


def _where(path: str) -> str:
    return path or "the body"
