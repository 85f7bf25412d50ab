"""Picking the labels that count for a multi-labeler asset (pure functions)."""

from __future__ import annotations

from typing import Any


def latest_by_assignee(labels: list[dict[str, Any]], assignees: list[str]) -> dict[str, Any]:
    """The newest submitted label of each assignee (labels come oldest first)."""
    latest: dict[str, Any] = {}
    for label in labels:
        author = label["author"]["email"]
        if author in assignees and label.get("labelType", "DEFAULT") == "DEFAULT":
            latest[author] = label
    return latest


def missing(latest: dict[str, Any], assignees: list[str]) -> list[str]:
    """The assignees who have not submitted yet, in assignment order."""
    return [a for a in assignees if a not in latest]
