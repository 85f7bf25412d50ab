"""Run tokens: minted per invocation, stored hashed, read from a request's headers."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping

__all__ = [
    "TOKEN_ALPHABET",
    "TOKEN_BODY_CHARS",
    "TOKEN_BYTES",
    "TOKEN_PATTERN",
    "TOKEN_PREFIX",
    "hash_token",
    "mint_token",
    "token_from_headers",
]

TOKEN_BYTES = 32
TOKEN_PREFIX = "pe_run_"
# What follows the prefix: TOKEN_BODY_CHARS characters of URL-safe base64 (no padding).
TOKEN_ALPHABET = "[A-Za-z0-9_-]"
TOKEN_BODY_CHARS = 43
# Any run token, known or not: what output redaction looks for.
TOKEN_PATTERN = re.compile(f"{re.escape(TOKEN_PREFIX)}{TOKEN_ALPHABET}{{{TOKEN_BODY_CHARS}}}")
# The forms the gateway accepts in ``Authorization`` (case-insensitive scheme).
_AUTH_SCHEMES = ("bearer ", "x-api-key:")


def mint_token() -> str:
    """A new random run token (32 random bytes, URL-safe text)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The SHA-256 (hex) the store keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_from_headers(headers: Mapping[str, str]) -> str | None:
    """The token of a request, or None when it carries none.

    Accepted: ``Authorization: Bearer <t>``, ``Authorization: X-API-Key: <t>`` (what the Kili
    SDK sends) and ``X-API-Key: <t>``. ``headers`` must be case-insensitive (e.g.
    ``email.message.Message`` or ``httpx.Headers``).
    """
    authorization = (headers.get("Authorization") or "").strip()
    lowered = authorization.lower()
    for scheme in _AUTH_SCHEMES:
        if lowered.startswith(scheme):
            token = authorization[len(scheme) :].strip()
            if token:
                return token
    api_key = (headers.get("X-API-Key") or "").strip()
    return api_key or None
