"""Numeric bounds shared by the wire formats and the store."""

from __future__ import annotations

__all__ = ["MAX_INT64"]

# Offsets, ids and version numbers in queries fit a signed 64-bit column (SQLite's INTEGER).
MAX_INT64 = 2**63 - 1
