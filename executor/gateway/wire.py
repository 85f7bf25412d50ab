"""HTTP/1.1 as the gateway speaks it to the platform: a request's bytes, a response's head
and how its body is framed (RFC 9112). Hand-written for the one thing it does: in place of
h11 it cut the gateway's CPU per call by a tenth (docs/gateway.md, "Figures"). Every part is
bounded by its caller (``executor.gateway.upstream``); what it cannot read is a
``BadAnswer``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

__all__ = ["BadAnswer", "Body", "Head", "body_of", "chunk_size", "parse_head", "request_bytes"]

_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: [^\r\n]*)?")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but tab
_NOT_SENDABLE = re.compile(r"[\x00\r\n]")
_LENGTH = re.compile(r"[0-9]{1,18}")  # a Content-Length past 18 digits is not a size
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]{1,15}")


class BadAnswer(ConnectionError):
    """The platform's answer is not HTTP/1.1 the gateway can read."""


class Body(Enum):
    """How the body of a response is framed."""

    NONE = "none"  # HEAD, 1xx, 204, 304
    LENGTH = "length"  # Content-Length bytes
    CHUNKED = "chunked"
    TO_CLOSE = "to-close"  # until the platform closes the connection


@dataclass(frozen=True)
class Head:
    """A response's status line and headers (names in lower case, in their order)."""

    status: int
    minor: int  # HTTP/1.<minor>
    headers: list[tuple[str, str]]

    def values(self, name: str) -> list[str]:
        """The comma-separated values of every ``name`` header, stripped, in order."""
        return [
            item.strip() for key, value in self.headers if key == name for item in value.split(",")
        ]

    def keeps_alive(self) -> bool:
        """The connection may carry another call after this response."""
        return self.minor == 1 and "close" not in (v.lower() for v in self.values("connection"))


def request_bytes(
    method: str, target: str, host: str, headers: list[tuple[str, str]], body: bytes | None
) -> bytes:
    """A request's head and body. Header names and values come from a request h11 already
    read, the operator's settings and the gateway; none may carry a line break."""
    fields = [("Host", host), *headers]
    if body is not None:
        fields.append(("Content-Length", str(len(body))))
    for name, value in fields:
        if _NOT_SENDABLE.search(name) or _NOT_SENDABLE.search(value):
            raise ValueError(f"header {name!r} carries a line break or NUL: not sent")
    lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in fields)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + (body or b"")


def parse_head(data: bytes) -> Head:
    """A response's head, without its final empty line."""
    status_line, *lines = data.split(b"\r\n")
    matched = _STATUS_LINE.fullmatch(status_line)
    if matched is None:
        raise BadAnswer(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    headers = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):  # a folded line starts with a space
            raise BadAnswer(f"not a header line: {line[:80]!r}")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            raise BadAnswer(f"header {name.decode()!r} holds a control character")
        headers.append((name.decode("ascii").lower(), value.decode("latin-1")))
    return Head(int(matched[2]), int(matched[1]), headers)


def body_of(head: Head, method: str) -> tuple[Body, int]:
    """How the response to a ``method`` request frames its body, and its length when it
    says (RFC 9112 6.3)."""
    if method == "HEAD" or head.status in (204, 304) or head.status < 200:
        return Body.NONE, 0
    codings = head.values("transfer-encoding")
    if codings:
        return (Body.CHUNKED if codings[-1].lower() == "chunked" else Body.TO_CLOSE), 0
    lengths = set(head.values("content-length"))
    if not lengths:
        return Body.TO_CLOSE, 0
    (length,) = lengths if len(lengths) == 1 else ("",)
    if not _LENGTH.fullmatch(length):
        raise BadAnswer(f"Content-Length {', '.join(sorted(lengths))!r} is not one size")
    return Body.LENGTH, int(length)


def chunk_size(line: bytes) -> int:
    """The size on a chunk's first line (extensions after ';' ignored)."""
    digits = line.split(b";", 1)[0].strip(b" \t")
    if not _CHUNK_SIZE.fullmatch(digits):
        raise BadAnswer(f"not a chunk size: {line[:80]!r}")
    return int(digits, 16)
