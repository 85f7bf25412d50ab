"""A run that did not succeed keeps why on its record (``error_type``, ``error_message``,
``error_location``) and says it in its last SYSTEM line; a success says how long it took.

The plugins here are the real runtime's output (``plugin_runtime`` run as a subprocess on
the host Python) replayed by the ``FakeEngine``, with a real dispatcher and SQLite store:
no Docker Engine. ``tests/e2e/test_cli_run_errors.py`` runs the same on the real engine.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from executor.engine.fake import Script, scripted
from executor.run.output import OutputCollector
from executor.statuses import InvocationStatus
from executor.store.db import Database
from executor.store.run_errors import MAX_MESSAGE_CHARS, MAX_TYPE_CHARS
from executor.store.tables import Invocation, LogRecord
from executor.tokens import mint_token
from tests.fake_world import TIMEOUT_S, scripted_run
from tests.run_error_migration import check_old_runs_have_no_error_summary
from tests.unit.test_runtime import make_envelope, run_runtime, write_plugin

RAISING = """
    def check(label):
        raise ValueError("IBAN must start with FR")

    class PluginHandler:
        def on_submit(self, label, asset_id):
            print("checking")
            check(label)
"""
# The source starts with a blank line: the raise is on line 3.
RAISED_AT = "main.py:3"


def runtime_script(tmp_path: Path, source: str, **more: object) -> Script:
    """A container that writes what the real runtime writes for plugin ``source`` and exits
    with the runtime's exit code (``more`` overrides the script's other fields)."""
    ran = run_runtime(write_plugin(tmp_path / "plugin", source), make_envelope())
    fields: dict[str, object] = {"exit_code": ran.returncode, **more}
    return Script(((1, ran.stdout),), **fields)  # type: ignore[arg-type]


def run_and_logs(
    tmp_path: Path, *scripts: Script, max_retries: int = 0, timeout_s: float = TIMEOUT_S
) -> tuple[Invocation, list[LogRecord]]:
    """One run of a plugin whose containers run ``scripts`` in turn: its record and log."""
    store = tmp_path / "store"
    store.mkdir()
    with scripted_run(store, *scripts, max_retries=max_retries, timeout_s=timeout_s) as (db, run):
        return run, _logs(db, run.id)


def _logs(db: Database, run_id: str) -> list[LogRecord]:
    with db.session() as session:
        query = select(LogRecord).where(LogRecord.run_id == run_id).order_by(LogRecord.seq)
        records = list(session.scalars(query))
        session.expunge_all()
        return records


def _summary(run: Invocation) -> tuple[str | None, str | None, str | None]:
    return run.error_type, run.error_message, run.error_location


def test_an_exception_in_the_handler_is_kept_with_its_type_message_and_line(
    tmp_path: Path,
) -> None:
    run, logs = run_and_logs(tmp_path, runtime_script(tmp_path, RAISING))

    assert (run.status, run.exit_code) == (InvocationStatus.FAILED, 1)
    assert run.error == "plugin exited with code 1"  # the executor's own reading stays
    assert _summary(run) == ("ValueError", "IBAN must start with FR", RAISED_AT)
    assert [(r.log_type, r.content) for r in logs][-1] == (
        "SYSTEM",
        f"run ended failed: ValueError: IBAN must start with FR ({RAISED_AT})",
    )
    assert not any('"control"' in r.content for r in logs)  # the report is no log line


def test_a_success_says_how_long_it_took_and_keeps_no_error(tmp_path: Path) -> None:
    source = """
        class PluginHandler:
            def on_submit(self, label, asset_id):
                print("fine")
    """
    run, logs = run_and_logs(tmp_path, runtime_script(tmp_path, source))

    assert run.status == InvocationStatus.SUCCEEDED and run.duration_ms is not None
    assert _summary(run) == (None, None, None)
    assert [(r.log_type, r.content) for r in logs] == [
        ("INFO", "fine"),
        ("SYSTEM", f"run ended succeeded in {run.duration_ms} ms"),
    ]


def test_the_location_is_the_plugins_line_that_called_the_failing_library(
    tmp_path: Path,
) -> None:
    source = """
        import json

        class BadLabel(Exception):
            pass

        class PluginHandler:
            def on_submit(self, label, asset_id):
                json.loads("{not json")
    """
    run, _ = run_and_logs(tmp_path, runtime_script(tmp_path, source))

    assert (run.error_type, run.error_location) == ("json.decoder.JSONDecodeError", "main.py:9")
    assert (
        run.error_message
        == "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    )


def test_an_exception_class_of_the_plugin_is_named_by_its_module(tmp_path: Path) -> None:
    source = """
        class BadLabel(Exception):
            pass

        class PluginHandler:
            def on_submit(self, label, asset_id):
                raise BadLabel("no IBAN")
    """
    run, _ = run_and_logs(tmp_path, runtime_script(tmp_path, source))

    assert _summary(run) == ("main.BadLabel", "no IBAN", "main.py:7")


def test_the_executors_kill_wins_over_a_report_of_the_plugin(tmp_path: Path) -> None:
    # The runtime reported an exception, then the container ran past its deadline.
    hung = runtime_script(tmp_path, RAISING, hangs=True)

    run, logs = run_and_logs(tmp_path, hung, timeout_s=0.5)

    assert run.status == InvocationStatus.TIMED_OUT
    assert _summary(run) == ("Sandbox.Timeout", "wall time of 0.5 s exceeded: killed", None)
    assert logs[-1].content == "run ended timed_out: wall time of 0.5 s exceeded: killed"


def test_an_exit_without_a_report_is_classified_by_the_executor(tmp_path: Path) -> None:
    run, logs = run_and_logs(tmp_path, scripted("bye", exit_code=2))

    assert _summary(run) == ("Runtime.ExitError", "plugin exited with code 2", None)
    assert logs[-1].content == "run ended failed: plugin exited with code 2"


def test_an_oom_kill_is_classified_by_the_executor(tmp_path: Path) -> None:
    run, _ = run_and_logs(tmp_path, Script(exit_code=137, oom_killed=True))

    assert run.status == InvocationStatus.OOM_KILLED
    assert (run.error_type, run.error_location) == ("Sandbox.OutOfMemory", None)


def test_an_oom_kill_the_engines_flag_missed_is_classified_by_its_event(tmp_path: Path) -> None:
    run, _ = run_and_logs(tmp_path, Script(exit_code=137, oom_event_only=True))

    assert (run.status, run.error) == (
        InvocationStatus.OOM_KILLED,
        "memory limit of 512 MiB exceeded",
    )
    assert (run.error_type, run.error_location) == ("Sandbox.OutOfMemory", None)


def test_a_run_out_of_retries_keeps_its_last_attempts_exception(tmp_path: Path) -> None:
    raising = runtime_script(tmp_path, RAISING)

    run, logs = run_and_logs(tmp_path, raising, raising, max_retries=1)

    assert (run.status, run.attempt) == (InvocationStatus.DEAD, 2)
    assert _summary(run) == ("ValueError", "IBAN must start with FR", RAISED_AT)
    assert logs[-1].content == (
        f"run ended failed: ValueError: IBAN must start with FR ({RAISED_AT}); no retries left"
    )


def _report(**fields: object) -> bytes:
    return (json.dumps({"control": "error", **fields}) + "\n").encode()


def test_a_report_is_one_bounded_line_without_control_characters_or_tokens() -> None:
    token = mint_token()
    collector = OutputCollector(1 << 20)
    message = f"bad\x1b[2J\r\nlabel\u202e {token} \x00" + "x" * 5000

    lines = collector.feed(
        1, _report(error_type="E" * 500, error_message=message, error_location="main.py:3\n")
    )

    assert lines == []
    error = collector.reported_error
    assert error is not None
    assert error.type == "E" * (MAX_TYPE_CHARS - 1) + "…"
    assert error.message.startswith("bad [2J label *** x")
    assert len(error.message) == MAX_MESSAGE_CHARS and error.message.endswith("x…")
    assert token not in error.message
    assert error.location == "main.py:3"


def test_a_report_after_the_handler_finished_or_without_a_type_is_ignored() -> None:
    collector = OutputCollector(1 << 20)
    collector.feed(1, _report(error_type=7, error_message="not a type"))
    assert collector.reported_error is None

    collector.feed(1, b'{"control": "handler_finished", "ok": true}\n')
    collector.feed(1, _report(error_type="ValueError", error_message="late", error_location=None))

    assert collector.reported_error is None


def test_runs_ended_before_0024_have_no_summary_and_new_ones_keep_theirs(
    tmp_path: Path,
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        check_old_runs_have_no_error_summary(database)
    finally:
        database.dispose()
