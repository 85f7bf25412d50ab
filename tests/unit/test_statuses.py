"""Statuses are defined once (executor/statuses.py): the enums hold exactly the documented
strings, and the console's copy of the terminal set agrees."""

from __future__ import annotations

import re
from pathlib import Path

from executor.statuses import (
    PLUGIN_FAILURES,
    TERMINAL_STATUSES,
    BuildStatus,
    InvocationStatus,
    Scope,
)

REPO = Path(__file__).resolve().parents[2]
DOCUMENTED_INVOCATION_STATUSES = [
    "queued",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "oom_killed",
    "crashed",
    "canceled",
    "dead",
]


def table_first_column(markdown: str, header: str) -> list[str]:
    """The backquoted first cells of the table whose header row starts with ``header``."""
    rows = markdown.split(f"| {header} |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    return [row.split("`")[1] for row in rows]


def test_invocation_statuses_are_exactly_the_documented_ones() -> None:
    operating = (REPO / "docs" / "operating.md").read_text()
    documented = table_first_column(operating, "Invocation status")
    assert documented == DOCUMENTED_INVOCATION_STATUSES
    assert [status.value for status in InvocationStatus] == DOCUMENTED_INVOCATION_STATUSES


def test_terminal_and_plugin_failure_sets() -> None:
    assert {
        "succeeded",
        "failed",
        "timed_out",
        "oom_killed",
        "crashed",
        "canceled",
        "dead",
    } == TERMINAL_STATUSES
    assert {"failed", "timed_out", "oom_killed"} == PLUGIN_FAILURES
    assert PLUGIN_FAILURES <= TERMINAL_STATUSES


def test_build_statuses_and_scopes_are_the_documented_strings() -> None:
    assert [status.value for status in BuildStatus] == ["DEPLOYING", "ACTIVE", "FAILED"]
    tenants = (REPO / "docs" / "tenants.md").read_text()
    paragraph = tenants.split("Scopes: ", 1)[1].split("\n\n", 1)[0]
    documented = re.findall(r"`([^`]+)`", paragraph)
    assert documented == ["plugins:write", "plugins:read", "logs:read", "events:write", "admin"]
    assert [scope.value for scope in Scope] == documented


def test_members_are_their_strings() -> None:
    # What keeps the wire format, the SQL columns and the metric labels unchanged.
    as_text: str = InvocationStatus.TIMED_OUT
    assert as_text == "timed_out"
    assert str(InvocationStatus.TIMED_OUT) == "timed_out"
    assert f"{BuildStatus.ACTIVE}" == "ACTIVE"
    assert InvocationStatus("dead") is InvocationStatus.DEAD


def test_the_console_knows_every_terminal_status() -> None:
    app_js = (REPO / "executor" / "ui" / "app.js").read_text()
    listed = re.search(r"const TERMINAL = new Set\(\[([^\]]*)\]\)", app_js)
    assert listed is not None, "executor/ui/app.js no longer defines TERMINAL"
    assert set(re.findall(r'"([a-z_]+)"', listed.group(1))) == TERMINAL_STATUSES
