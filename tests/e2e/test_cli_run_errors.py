"""``plugin-executor event --wait`` exits 1 when a run did not succeed and prints why, and
``status``, ``runs`` and the REST record show the run's error summary: the CLI as a
subprocess against a real executor on loopback whose engine is the ``FakeEngine``
(replaying the real runtime's output), and once on the real Docker Engine."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import EXAMPLES, RunningServer
from tests.e2e.test_cli import cli
from tests.fake_server import fake_server
from tests.unit.test_run_errors import RAISED_AT, RAISING, runtime_script

SUCCEEDING = """
    class PluginHandler:
        def on_submit(self, label, asset_id):
            print("fine")
"""


def flat(text: str) -> str:
    return " ".join(text.split())


def test_event_wait_exits_1_and_prints_the_exception_of_a_failed_run(tmp_path: Path) -> None:
    raising = runtime_script(tmp_path / "raising", RAISING)
    with fake_server(tmp_path) as server:
        server.add_plugin("iban_check", raising)
        server.activate("iban_check", "errs")

        done = server.cli("event", "-p", "errs", "--asset", "a-1", "--label", "{}", "--wait")

        assert done.returncode == 1, done.stdout + done.stderr
        (run_line,) = [line for line in done.stdout.splitlines() if "iban_check:" in line]
        run_id = run_line.split()[0]
        assert run_line.strip() == (
            f"{run_id} iban_check: failed: ValueError: IBAN must start with FR ({RAISED_AT})"
        )
        assert flat(done.stderr) == (
            "error: 1 of 1 run(s) did not succeed; logs: plugin-executor logs iban_check "
            f"-p errs --run {run_id}"
        )

        record = server.api.get(f"/v1/invocations/{run_id}").json()
        assert {
            k: record[k] for k in ("status", "error_type", "error_message", "error_location")
        } == {
            "status": "failed",
            "error_type": "ValueError",
            "error_message": "IBAN must start with FR",
            "error_location": RAISED_AT,
        }
        listed = server.api.get("/v1/invocations", params={"plugin_name": "iban_check"}).json()
        assert [(r["id"], r["error_type"]) for r in listed] == [(run_id, "ValueError")]
        assert server.logs(run_id)[-1]["content"] == (
            f"run ended failed: ValueError: IBAN must start with FR ({RAISED_AT})"
        )

        status = server.cli("status", run_id)
        assert status.returncode == 0, status.stderr
        assert "│ error_type       │ ValueError" in status.stdout
        assert "│ error_message    │ IBAN must start with FR" in status.stdout
        assert f"│ error_location   │ {RAISED_AT}" in status.stdout
        runs = server.cli("runs", "iban_check")
        assert runs.returncode == 0, runs.stderr
        (row,) = [line for line in runs.stdout.splitlines() if run_id in line]
        assert row.rstrip(" │").endswith(f"ValueError ({RAISED_AT})")

        as_json = server.cli("event", "-p", "errs", "--asset", "a-2", "--label", "{}", "--wait",
                             "--json")  # fmt: skip
        assert as_json.returncode == 1
        (failed,) = json.loads(as_json.stdout)["runs"]
        assert (failed["error_type"], failed["error_location"]) == ("ValueError", RAISED_AT)
        assert "1 of 1 run(s) did not succeed" in flat(as_json.stderr)


def test_event_wait_exits_0_when_every_run_succeeded(tmp_path: Path) -> None:
    succeeding = runtime_script(tmp_path / "fine", SUCCEEDING)
    with fake_server(tmp_path) as server:
        server.add_plugin("fine_one", succeeding)
        server.add_plugin("fine_two", succeeding)
        server.activate("fine_one", "oks")
        server.activate("fine_two", "oks")

        done = server.cli("event", "-p", "oks", "--asset", "a-1", "--label", "{}", "--wait")

        assert done.returncode == 0, done.stdout + done.stderr
        ended = sorted(
            line.split()[1:] for line in done.stdout.splitlines() if line.count(" ") == 4
        )
        assert ended == [["fine_one:", "succeeded"], ["fine_two:", "succeeded"]]
        assert done.stderr == ""
        run_id = done.stdout.splitlines()[-1].split()[0]
        record = server.api.get(f"/v1/invocations/{run_id}").json()
        assert (record["error_type"], record["error_message"], record["error_location"]) == (
            None,
            None,
            None,
        )
        assert server.logs(run_id)[-1]["content"] == (
            f"run ended succeeded in {record['duration_ms']} ms"
        )


def test_event_wait_on_the_real_engine_names_the_plugins_failing_line(
    server: RunningServer,
) -> None:
    server.push("raising")  # divide(1, 0) on line 11 fails in divide(), on line 5
    server.activate("raising", "errs-real")

    done = cli(server, "event", "-p", "errs-real", "--asset", "a", "--label", "{}", "--wait",
               ok=False)  # fmt: skip

    assert done.returncode == 1, done.stdout + done.stderr
    (run_line,) = [line for line in done.stdout.splitlines() if "raising:" in line]
    run_id = run_line.split()[0]
    assert (
        run_line.strip()
        == f"{run_id} raising: failed: ZeroDivisionError: division by zero (main.py:5)"
    )
    assert "1 of 1 run(s) did not succeed" in flat(done.stderr)
    record = server.api.get(f"/v1/invocations/{run_id}").json()
    assert (record["error_type"], record["error_message"], record["error_location"]) == (
        "ZeroDivisionError",
        "division by zero",
        "main.py:5",
    )
    contents = [r["content"] for r in server.logs(run_id=run_id)]
    assert contents[-1] == "run ended failed: ZeroDivisionError: division by zero (main.py:5)"

    server.push(EXAMPLES / "invoice_qa", name="qa_ok")
    server.activate("qa_ok", "oks-real")
    fine = cli(server, "event", "-p", "oks-real", "--asset", "a", "--label", "{}", "--wait")
    assert fine.stdout.rstrip().endswith("qa_ok: succeeded") and fine.stderr == ""
    ok_id = fine.stdout.splitlines()[-1].split()[0]
    ok_record = server.api.get(f"/v1/invocations/{ok_id}").json()
    assert server.logs(run_id=ok_id)[-1] == {
        **server.logs(run_id=ok_id)[-1],
        "log_type": "SYSTEM",
        "content": f"run ended succeeded in {ok_record['duration_ms']} ms",
    }
