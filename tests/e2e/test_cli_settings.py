"""The CLI's settings as a user meets them: a wrong server setting is one line naming the
variable, and it does not stop the commands that only talk to a server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "executor.cli"]


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EXECUTOR_")}
    return subprocess.run(
        [*CLI, *args],
        env={**clean, "EXECUTOR_DATA_DIR": str(tmp_path), "COLUMNS": "80", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_wrong_server_setting_is_one_line_per_variable_and_exit_2(tmp_path: Path) -> None:
    done = run(tmp_path, "serve", EXECUTOR_PORT="eighty", EXECUTOR_REGISTRY="https://registry.lan")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: EXECUTOR_PORT='eighty': Input should be a valid integer, unable to parse "
        "string as an integer (Port the API listens on.)",
        "error: EXECUTOR_REGISTRY='https://registry.lan': 'https://registry.lan' is not "
        "host:port[/prefix] (no scheme, e.g. 'registry.lan:5443' or '10.0.0.5:5443/team') "
        "(OCI registry (host:port[/prefix]) builds push to; runs pull by digest.)",
    ]
    assert list(tmp_path.iterdir()) == []  # nothing was started or written


def test_a_sandbox_setting_and_a_pair_that_goes_together_name_their_variables(
    tmp_path: Path,
) -> None:
    sandbox = run(tmp_path, "worker", EXECUTOR_SANDBOX_MEMORY_MIB="lots")
    assert sandbox.returncode == 2
    assert sandbox.stderr.splitlines() == [
        "error: EXECUTOR_SANDBOX_MEMORY_MIB='lots': Input should be a valid integer, unable "
        "to parse string as an integer (Memory limit, no swap on top of it.)"
    ]
    pair = run(tmp_path, "serve", EXECUTOR_REGISTRY_USER="robot")
    assert pair.returncode == 2
    assert pair.stderr.splitlines() == [
        "error: settings: EXECUTOR_REGISTRY_USER and EXECUTOR_REGISTRY_PASSWORD go together: "
        "set both or neither"
    ]


def test_client_commands_ignore_server_settings_and_say_where_they_looked(
    tmp_path: Path,
) -> None:
    # A wrong sandbox setting in the same shell: the client reads only its URL and key, so it
    # goes on to the server (none listens here) and says so.
    done = run(
        tmp_path,
        "list",
        EXECUTOR_SANDBOX_MEMORY_MIB="lots",
        EXECUTOR_API_KEY="pe_op_any",
        EXECUTOR_URL="http://127.0.0.1:9",
    )
    assert done.returncode == 1
    assert "cannot reach the executor at http://127.0.0.1:9" in done.stderr
    assert "EXECUTOR_SANDBOX" not in done.stderr
    keyless = run(tmp_path, "list")
    assert keyless.returncode == 2
    assert keyless.stderr.startswith("No API key: set EXECUTOR_API_KEY")
