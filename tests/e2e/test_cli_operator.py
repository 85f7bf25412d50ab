"""The operator's CLI (issue 26): rollback and roll forward with a warning, identical
pushes reused, the serving version in ``list``, tenants updated and deleted, ``--tenant``,
``stats``, keys' last use, and tables that keep ids whole at 80 columns."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import run_cli
from tests.conftest import OPERATOR_KEY, RunningServer
from tests.e2e.test_cli import cli
from tests.integration.tenancy import create_key, create_tenant

pytestmark = pytest.mark.docker

MAIN = "class PluginHandler:\n    def on_submit(self, label, asset_id):\n        {body}\n"
WIDE_HINT = "--wide shows every column)"


def write(folder: Path, body: str, tail: str = "") -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "main.py").write_text(MAIN.format(body=body) + tail)
    return folder


def cells(table: str, first: str) -> list[str]:
    """The cells of the row whose first cell is ``first`` in a rich table."""
    for line in table.splitlines():
        found = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if found and found[0] == first:
            return found
    raise AssertionError(f"no row {first!r} in:\n{table}")


def cli_at(
    server: RunningServer, columns: int, *args: str, key: str = OPERATOR_KEY
) -> subprocess.CompletedProcess[str]:
    """The CLI in a terminal ``columns`` wide."""
    env = {
        "EXECUTOR_URL": server.url,
        "EXECUTOR_API_KEY": key,
        "COLUMNS": str(columns),
        "NO_COLOR": "1",
    }
    done = run_cli(args, env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def audit(entries: list[Any], action: str, target: str) -> list[Any]:
    """The details of the ``action`` entries on ``target`` in ``plugin-executor audit``'s
    entries (newest first), oldest first."""
    return [
        e["detail"] for e in reversed(entries) if (e["action"], e["target"]) == (action, target)
    ]


def test_rollback_warns_of_a_failing_version_and_rolls_forward(
    server: RunningServer, tmp_path: Path
) -> None:
    folder = write(tmp_path / "flip", "raise RuntimeError('v1 fails')")
    assert "flip v1 is ACTIVE" in cli(server, "push", str(folder)).stdout
    cli(server, "activate", "flip", "--project", "flip-p")
    sent = cli(server, "event", "-p", "flip-p", "--asset", "a", "--label", "{}", "--wait", "--json",
               ok=False)  # fmt: skip
    assert sent.returncode == 1  # a run failed
    assert [r["status"] for r in json.loads(sent.stdout)["runs"]] == ["failed"]
    write(folder, "print('v2 ok')")
    assert "flip v2 is ACTIVE" in cli(server, "push", str(folder)).stdout

    # The same files again: v2 answers, nothing is built.
    again = cli(server, "push", str(folder))
    assert again.stdout.splitlines() == [
        "flip: same source and runtime as v2, reused (no new version, no build)",
        "flip v2 is ACTIVE",
    ]
    write(folder, "print('v3')", tail="raise RuntimeError('v3 cannot load')\n")
    assert cli(server, "push", str(folder), ok=False).returncode == 1
    versions = json.loads(cli(server, "versions", "flip", "--json").stdout)
    assert [(v["version"], v["status"]) for v in versions] == [
        (1, "ACTIVE"),
        (2, "ACTIVE"),
        (3, "FAILED"),
    ]
    table = cli(server, "versions", "flip").stdout
    row = cells(table, "3")
    assert row[:2] + row[3:5] == ["3", "FAILED", "", "none"]
    assert cells(table, "2")[3:5] == ["*", "kept"]
    # list names the version serving, and the newer one that failed apart.
    assert cells(cli(server, "list").stdout, "flip")[:6] == [
        "flip",
        "code",
        "2",
        "ACTIVE",
        "v3 FAILED",
        "flip-p",
    ]

    back = cli(server, "rollback", "flip")
    assert back.stdout == "flip: rolled back from v2 to v1\n"
    assert back.stderr == (
        "warning: v1 failed 1 of its last 1 ended runs: check its logs (plugin-executor runs)"
        " before relying on it\n"
    )
    assert cells(cli(server, "list").stdout, "flip")[:5] == [
        "flip",
        "code",
        "1",
        "ACTIVE",
        "v3 FAILED",
    ]
    forward = cli(server, "roll-forward", "flip")
    assert (forward.stdout, forward.stderr) == ("flip: rolled forward from v1 to v2\n", "")
    newest = cli(server, "roll-forward", "flip", ok=False)
    assert newest.returncode == 1
    assert newest.stderr == (
        "error: flip already serves its newest ACTIVE version (v2): nothing to roll forward to\n"
    )
    refusals = {
        "3": "error: plugin 'flip' v3 is FAILED: only an ACTIVE version can serve; see "
        "plugin-executor versions [conflict, HTTP 409]\n",
        "2": "error: plugin 'flip' already serves v2: nothing to change [conflict, HTTP 409]\n",
        "9": "error: plugin 'flip' has no version 9: see GET /v1/plugins/flip [not_found, HTTP "
        "404]\n",
    }
    for to, message in refusals.items():
        refused = cli(server, "rollback", "flip", "--to", to, ok=False)
        assert (refused.returncode, refused.stderr) == (1, message)
    to_one = json.loads(cli(server, "rollback", "flip", "--to", "1", "--json").stdout)
    assert to_one["current_version"] == 1 and to_one["previous_version"] == 2
    assert (to_one["recent_runs"], to_one["recent_failures"]) == (1, 1)
    assert json.loads(cli(server, "versions", "flip", "--json").stdout)[0]["current"] is True
    entries = json.loads(cli(server, "audit", "-t", "default", "--json").stdout)
    assert audit(entries, "plugin.rollback", "flip") == [
        {"from": 2, "to": 1},
        {"from": 1, "to": 2},
        {"from": 2, "to": 1},
    ]
    assert audit(entries, "plugin.upload", "flip") == [
        {"version": 1},
        {"version": 2},
        {"version": 2, "reused": True},
        {"version": 3},
    ]


def test_tenants_update_and_delete_and_the_operator_acts_on_one(server: RunningServer) -> None:
    cli(server, "tenants", "create", "ops-team")
    updated = cli(server, "tenants", "update", "ops-team", "--max-plugins", "3")
    defaults = server.settings.tenancy
    assert defaults.tenant_max_concurrent_runs is None
    assert updated.stdout == (
        f"Tenant ops-team updated: max_plugins 3, max_versions {defaults.tenant_max_versions}, "
        "max_concurrent_runs unlimited.\n"
    )
    back = json.loads(
        cli(server, "tenants", "update", "ops-team", "--default", "max_plugins", "--json").stdout
    )
    assert back["max_plugins"] == defaults.tenant_max_plugins
    nothing = cli(server, "tenants", "update", "ops-team", ok=False)
    assert nothing.returncode == 2 and "name a quota to change" in nothing.stderr

    uploaded = server.api.post(
        "/v1/plugins",
        headers={"X-Tenant": "ops-team"},
        data={"name": "ops-plugin"},
        files={"file": ("main.py", MAIN.format(body="pass").encode())},
    )
    assert uploaded.status_code == 202, uploaded.text
    refused = cli(server, "tenants", "delete", "ops-team", ok=False)
    assert (refused.returncode, refused.stderr) == (
        1,
        "error: tenant 'ops-team' has 1 plugin: delete them first (see plugin-executor list "
        "--tenant ops-team) [conflict, HTTP 409]\n",
    )
    # --tenant: the operator sees that tenant's plugins, runs, logs and stats.
    listed = json.loads(cli(server, "list", "--tenant", "ops-team", "--json").stdout)
    assert [p["name"] for p in listed] == ["ops-plugin"]
    assert "ops-plugin" not in {p["name"] for p in json.loads(cli(server, "list", "--json").stdout)}
    assert (
        json.loads(cli(server, "runs", "ops-plugin", "--tenant", "ops-team", "--json").stdout) == []
    )
    logs = cli(server, "logs", "ops-plugin", "-p", "none", "--tenant", "ops-team", "--json")
    assert json.loads(logs.stdout) == []
    stats = json.loads(cli(server, "stats", "--tenant", "ops-team", "--json").stdout)
    assert stats["queue"]["depth"] == 0 and len(stats["buckets"]) >= 24
    table = cli(server, "stats", "--tenant", "ops-team", "--bucket", "day").stdout
    assert "Runs per day (UTC)" in table and "Duration per version" in table
    assert table.rstrip().endswith("Queue: 0 waiting")

    # A tenant key may not name another tenant.
    key = create_key(server, "ops-team", ["plugins:read", "logs:read"])["key"]
    for args in (
        ["list"],
        ["runs", "x"],
        ["logs", "x", "-p", "none"],
        ["stats"],
    ):
        done = cli(server, *args, "--tenant", "default", key=key, ok=False)
        assert (done.returncode, done.stderr) == (
            1,
            "error: only the operator key acts on another tenant (X-Tenant, --tenant): this key "
            "acts on its own tenant 'ops-team'; leave the tenant out [missing_scope, HTTP 403]\n",
        ), args
    assert json.loads(cli(server, "list", "--json", key=key).stdout)[0]["name"] == "ops-plugin"

    deadline = time.monotonic() + 600  # its build ends before the plugin goes
    while (
        server.api.get("/v1/plugins/ops-plugin", headers={"X-Tenant": "ops-team"}).json()["status"]
        == "DEPLOYING"
    ):
        assert time.monotonic() < deadline, "ops-plugin's build did not end"
        time.sleep(0.5)
    deleted = server.api.delete("/v1/plugins/ops-plugin", headers={"X-Tenant": "ops-team"})
    assert deleted.status_code == 204, deleted.text
    assert cli(server, "tenants", "delete", "ops-team").stdout == "Tenant ops-team deleted.\n"
    assert "ops-team" not in {
        t["name"] for t in json.loads(cli(server, "tenants", "list", "--json").stdout)
    }
    gone = cli(server, "list", key=key, ok=False)
    assert gone.returncode == 1 and "unknown API key" in gone.stderr
    entries = json.loads(cli(server, "audit", "-t", "ops-team", "--json").stdout)
    assert [e["action"] for e in entries][:3] == ["tenant.delete", "plugin.delete", "key.create"]
    assert [e["detail"] for e in entries if e["action"] == "tenant.update"] == [
        {"max_plugins": None},
        {"max_plugins": 3},
    ]
    default = cli(server, "tenants", "delete", "default", ok=False)
    assert default.stderr == (
        "error: tenant 'default' cannot be deleted: the operator key acts on it by default "
        "[conflict, HTTP 409]\n"
    )


def test_keys_show_when_they_were_last_used(server: RunningServer) -> None:
    create_tenant(server, "used-team")
    key = create_key(server, "used-team", ["plugins:read"], name="reader")
    listed = cli(server, "keys", "list", "-t", "used-team")
    assert cells(listed.stdout, key["id"])[:4] == [key["id"], "reader", "plugins:read", "never"]
    assert cli(server, "list", "--json", key=key["key"]).stdout.strip() == "[]"
    deadline = time.monotonic() + 60  # written in the background: wait for the record
    while True:
        (shown,) = json.loads(cli(server, "keys", "list", "-t", "used-team", "--json").stdout)
        if shown["last_used_at"] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert shown["last_used_at"] is not None
    assert shown["last_used_at"] >= shown["created_at"]
    row = cells(cli(server, "keys", "list", "-t", "used-team").stdout, key["id"])
    assert row[3] == shown["last_used_at"][:16].replace("T", " ")


def test_tables_keep_ids_whole_at_80_columns(server: RunningServer, tmp_path: Path) -> None:
    folder = write(tmp_path / "a-plugin-with-a-rather-long-name", "print('x')")
    cli(server, "push", str(folder))
    name = folder.name
    cli(server, "activate", name, "--project", "a-project-with-a-rather-long-name-too")
    sent = cli(
        server,
        "event",
        "-p",
        "a-project-with-a-rather-long-name-too",
        "--asset",
        "an-asset-with-a-long-id",
        "--label",
        "{}",
        "--wait",
        "--json",
    )
    (run,) = json.loads(sent.stdout)["runs"]
    create_tenant(server, "narrow-team")
    key = create_key(server, "narrow-team", ["plugins:read", "logs:read", "admin"], name="k")
    tables = {
        "runs": (["runs", name], run["id"]),
        "list": (["list"], name),
        "versions": (["versions", name], "1"),
        "keys": (["keys", "list", "-t", "narrow-team"], key["id"]),
    }
    shown = {}  # each table, narrow and --wide
    for what, (args, ident) in tables.items():
        narrow = cli_at(server, 80, *args)
        assert all(len(line) <= 80 for line in narrow.stdout.splitlines()), (what, narrow.stdout)
        assert cells(narrow.stdout, ident)[0] == ident, what
        wide = cli_at(server, 80, *args, "--wide")
        shown[what] = (narrow, wide)
        assert wide.stderr == "", what
        if narrow.stderr:  # some columns were hidden: --wide shows them
            assert narrow.stderr.startswith("(hidden at 80 columns: ") and narrow.stderr.endswith(
                WIDE_HINT + "\n"
            ), (what, narrow.stderr)
            hidden = narrow.stderr.split(": ", 1)[1].split(";")[0].split(", ")
            header = wide.stdout.splitlines()[2]
            assert all(column in header for column in hidden), (what, hidden, header)
    narrow_runs, wide = shown["runs"]
    assert narrow_runs.stderr == (
        "(hidden at 80 columns: asset, project, attempt, latency, duration, queued, error; "
        + WIDE_HINT
        + "\n"
    )
    wide_runs = cells(wide.stdout, run["id"])
    assert wide_runs[:5] == [
        run["id"],
        "succeeded",
        "onSubmit",
        "an-asset-with-a-long-id",
        "a-project-with-a-rather-long-name-too",
    ]
