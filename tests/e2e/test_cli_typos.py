"""A mistyped name in the CLI is an error, never an empty answer: ``logs``, ``runs`` and
``event`` say what was not found (as ``versions`` does) and exit 1."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tests.conftest import RunningServer
from tests.e2e.test_cli import cli
from tests.integration.tenancy import create_key, create_tenant
from tests.stats_seed import add_version

NOT_FOUND = "no plugin named 'nosuch': upload it first (plugin-executor push)"


def flat(text: str) -> str:
    """Output with the terminal's line wrapping undone."""
    return " ".join(text.split())


def seed(server: RunningServer, name: str) -> None:
    """An ACTIVE plugin of the default tenant, without a build (nothing here runs it)."""
    add_version(server.service.db, "default", name, built_at=datetime.now(UTC), build_ms=1,
                failed=False)  # fmt: skip


def test_logs_and_runs_of_an_unknown_plugin_say_not_found_like_versions(
    server: RunningServer,
) -> None:
    versions = cli(server, "versions", "nosuch", ok=False)
    assert versions.returncode == 1 and NOT_FOUND in flat(versions.stderr)
    for args in (
        ["logs", "nosuch", "-p", "typo-proj"],
        ["logs", "nosuch", "-p", "typo-proj", "--follow"],
        ["runs", "nosuch"],
        ["runs", "nosuch", "-p", "typo-proj"],
    ):
        done = cli(server, *args, ok=False)
        assert done.returncode == 1, args
        assert NOT_FOUND in flat(done.stderr) and "not_found, HTTP 404" in flat(done.stderr), args
        assert done.stdout == "", args


def test_runs_and_logs_of_another_tenants_plugin_are_not_found(server: RunningServer) -> None:
    seed(server, "typo-theirs")
    create_tenant(server, "typo-team")
    key = create_key(server, "typo-team", ["plugins:read", "logs:read"])["key"]
    for args in (["runs", "typo-theirs"], ["logs", "typo-theirs", "-p", "typo-proj"]):
        done = cli(server, *args, key=key, ok=False)
        assert done.returncode == 1, args
        assert "no plugin named 'typo-theirs'" in flat(done.stderr), args
    # The owner sees an empty list of its own plugin's runs: that is not an error.
    assert cli(server, "runs", "typo-theirs", "--json").stdout.strip() == "[]"


def test_an_event_that_starts_no_run_says_why_and_exits_1(server: RunningServer) -> None:
    bare = cli(server, "event", "-p", "typo-bare", "--asset", "a-1", "--label", "{}", ok=False)
    assert bare.returncode == 1
    assert "started no run: no plugin is active on project 'typo-bare'" in flat(bare.stderr)
    assert "plugin-executor activate NAME -p typo-bare" in flat(bare.stderr)
    assert "0 invocation(s)" not in bare.stdout
    as_json = cli(server, "event", "-p", "typo-bare", "--asset", "a-2", "--label", "{}", "--json",
                  ok=False)  # fmt: skip
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["invocations"] == []
    assert "no plugin is active on project 'typo-bare'" in flat(as_json.stderr)

    seed(server, "typo-submit")
    server.activate("typo-submit", "typo-active")
    other = cli(server, "event", "-p", "typo-active", "-t", "onReview", "--asset", "a-1",
                "--label", "{}", ok=False)  # fmt: skip
    assert other.returncode == 1
    assert "no plugin active on project 'typo-active' handles 'onReview' events" in flat(
        other.stderr
    )
    assert "(active: typo-submit for onSubmit)" in flat(other.stderr)


def test_a_missing_scope_is_named_by_its_value(server: RunningServer) -> None:
    create_tenant(server, "typo-scope")
    key = create_key(server, "typo-scope", ["plugins:read"])["key"]
    refused = cli(server, "audit", key=key, ok=False)
    assert refused.returncode == 1
    assert "this API key lacks the scope 'admin': ask for a key with it" in flat(refused.stderr)
    assert "Scope." not in flat(refused.stderr)
