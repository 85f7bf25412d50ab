"""``plugin-executor logs`` and ``runs`` as a user runs them, against a real executor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import OPERATOR_KEY, RunningServer, ServerFactory
from tests.e2e.test_cli import CLI, cli
from tests.platform_standin import platform_standin
from tests.stats_seed import add_version


def test_logs_follow_prints_lines_before_the_run_ends(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The run holds after its first line on the platform stand-in until the CLI printed it:
    the line reached the terminal while the plugin still ran, however slow the CLI's start."""
    with platform_standin() as platform:
        server = server_factory(
            platform_api_url=platform.url + "/api/projects/{project_id}",
            gateway_upstream_timeout_s=600,
        )
        _follow_a_held_run(server, platform.release, tmp_path)


def _follow_a_held_run(server: RunningServer, release: Callable[[], None], tmp_path: Path) -> None:
    server.push("ticker")
    server.activate("ticker", "tail-proj")
    (run_id,) = server.post_event(
        type="onSubmit", project_id="tail-proj", asset_id="a-7", label={"hold": True}
    )["invocations"]
    env = {
        **os.environ,
        "EXECUTOR_URL": server.url,
        "EXECUTOR_API_KEY": OPERATOR_KEY,
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    errors_file = tmp_path / "follow.stderr"
    with errors_file.open("w") as errors_out:
        process = subprocess.Popen(
            [*CLI, "logs", "ticker", "--project", "tail-proj", "--run", run_id, "--follow"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors_out,
            text=True,
        )
    assert process.stdout is not None
    with process:  # closes the pipe and reaps the process whatever happens
        try:
            first = process.stdout.readline()
            status_then = server.api.get(f"/v1/invocations/{run_id}").json()["status"]
            release()
            # Read through the same buffered file as readline: communicate() reads the raw
            # pipe and would lose lines readline had already buffered (pytest-timeout bounds it).
            rest = process.stdout.read()
            process.wait(timeout=30)
        finally:
            process.kill()
    errors = errors_file.read_text()
    assert "INFO     tick 1 of 4 for a-7" in first
    assert status_then == "running"  # the line was printed while the plugin still ran
    assert process.returncode == 0, errors
    assert "WARNING  tick 3 of 4 for a-7" in rest
    assert rest.rstrip().splitlines()[-2].endswith("ticker done")
    assert "SYSTEM   run ended succeeded in " in rest.rstrip().splitlines()[-1]
    assert server.wait_run(run_id)["status"] == "succeeded"

    warnings = cli(server, "logs", "ticker", "--project", "tail-proj", "--level", "WARNING")
    assert [line.split(maxsplit=3)[1:3] for line in warnings.stdout.splitlines()] == [
        ["WARNING", "tick"],
        ["SYSTEM", "run"],  # SYSTEM lines are shown at every level
    ]
    as_json = cli(server, "logs", "ticker", "--project", "tail-proj", "--json", "--since", "1h")
    records = json.loads(as_json.stdout)
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5, 6]
    future = cli(server, "logs", "ticker", "-p", "tail-proj", "--since", "2099-01-01T00:00:00")
    assert future.stdout == ""

    table = cli(server, "runs", "ticker").stdout
    assert run_id in table and "succeeded" in table and "onSubmit" in table and "a-7" in table


def test_logs_refuses_a_bad_since_or_level(server: RunningServer) -> None:
    since = cli(server, "logs", "x", "--project", "p", "--since", "last week", ok=False)
    assert since.returncode == 2
    assert "--since 'last week': give a duration such as 30s" in since.stderr
    level = cli(server, "logs", "x", "--project", "p", "--level", "LOUD", ok=False)
    assert level.returncode == 2 and "LOUD" in level.stderr


# The CLI as a terminal starts it, Ctrl-C's signal at its default. A shell passes SIGINT on
# ignored to what it runs in the background (`cmd &` without job control), so a test runner
# started that way hands its children an ignored Ctrl-C, which Python keeps ignoring.
AT_A_TERMINAL = [
    sys.executable,
    "-c",
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('executor.cli', run_name='__main__', alter_sys=True)",
]


def test_logs_follow_of_a_whole_plugin_runs_until_interrupted(server: RunningServer) -> None:
    # A plugin that logged nothing yet (one that does not exist is an error: test_cli_typos).
    add_version(server.service.db, "default", "nobody", built_at=datetime.now(UTC), build_ms=1,
                failed=False)  # fmt: skip
    env = {**os.environ, "EXECUTOR_URL": server.url, "EXECUTOR_API_KEY": OPERATOR_KEY}
    with subprocess.Popen(
        [*AT_A_TERMINAL, "logs", "nobody", "--project", "p", "--follow"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        try:
            # Interrupted once it says it follows (its Ctrl-C handling is in place by then).
            assert process.stderr.readline().startswith("following the logs of nobody on p")
            assert process.poll() is None  # still following
            process.send_signal(signal.SIGINT)  # Ctrl-C
            _, err = process.communicate(timeout=60)
        finally:
            process.kill()  # one that missed the Ctrl-C must not outlive the test
    assert process.returncode == 0, err
    assert "Traceback" not in err
