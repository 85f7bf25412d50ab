"""Plugin runs end to end on the in-memory ``FakeEngine`` and a real SQLite store (no
Docker Engine): each scripted end gets its status, attempts and retry kinds as the real
engine's would (``tests/integration/test_engine_contract`` checks they agree)."""

from __future__ import annotations

from pathlib import Path

from executor.engine.fake import FakeEngine, Script, scripted
from executor.statuses import AttemptKind, InvocationStatus
from tests.fake_world import (
    add_plugin_run,
    dispatching,
    fake_settings,
    polled,
    run_scripts,
    settled,
)

OK = scripted("hello from a script")


def _kinds(attempts: list[dict[str, object]]) -> list[object]:
    return [entry.get("kind") for entry in attempts]


def test_a_plugin_that_exits_0_succeeds_in_one_attempt(tmp_path: Path) -> None:
    run = run_scripts(tmp_path, OK)

    assert (run.status, run.attempt, run.exit_code, run.error) == (
        InvocationStatus.SUCCEEDED,
        1,
        0,
        None,
    )
    assert run.attempts == []


def test_a_plugin_that_exits_1_fails_and_is_not_retried_without_max_retries(
    tmp_path: Path,
) -> None:
    run = run_scripts(tmp_path, scripted("boom", exit_code=1))

    assert (run.status, run.attempt, run.exit_code) == (InvocationStatus.FAILED, 1, 1)
    assert run.error == "plugin exited with code 1"


def test_a_plugin_that_exits_1_is_retried_then_dead_with_max_retries(tmp_path: Path) -> None:
    run = run_scripts(tmp_path, scripted("boom", exit_code=1), max_retries=1)

    assert (run.status, run.attempt) == (InvocationStatus.DEAD, 2)
    assert run.error == "gave up after 2 attempts: failed: plugin exited with code 1"
    assert _kinds(run.attempts) == [AttemptKind.PLUGIN, AttemptKind.PLUGIN]


def test_a_plugin_past_its_deadline_is_killed_and_timed_out(tmp_path: Path) -> None:
    run = run_scripts(tmp_path, Script(hangs=True), timeout_s=0.5)

    assert (run.status, run.attempt, run.exit_code) == (InvocationStatus.TIMED_OUT, 1, 137)
    assert run.error == "wall time of 0.5 s exceeded: killed"


def test_a_docker_kill_the_engine_recorded_is_retried_as_infrastructure(tmp_path: Path) -> None:
    killed = Script(exit_code=137, stopped_with=(9,))

    run = run_scripts(tmp_path, killed, OK)

    assert (run.status, run.attempt) == (InvocationStatus.SUCCEEDED, 2)
    assert _kinds(run.attempts) == [AttemptKind.INFRASTRUCTURE]
    assert run.attempts[0]["reason"] == (
        "infrastructure: container stopped from outside the executor (exit 137): the Docker "
        "Engine was asked to send 9 (SIGKILL) (docker stop, docker kill or its shutdown)"
    )


def test_the_same_exit_137_without_an_engine_record_is_the_plugins(tmp_path: Path) -> None:
    run = run_scripts(tmp_path, Script(exit_code=137), OK)

    assert (run.status, run.attempt, run.exit_code) == (InvocationStatus.FAILED, 1, 137)


def test_an_engine_error_at_create_is_retried_as_infrastructure(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.images.add("scripted:1", OK)
    engine.fail("containers.create")
    with dispatching(tmp_path, engine) as db:
        run = settled(db, add_plugin_run(db, "scripted:1"))

    assert (run.status, run.attempt) == (InvocationStatus.SUCCEEDED, 2)
    assert _kinds(run.attempts) == [AttemptKind.INFRASTRUCTURE]
    assert run.attempts[0]["reason"] == (
        "infrastructure: Docker Engine error while creating the plugin container: the fake "
        "engine was told to fail containers.create. Check that dockerd is running."
    )
    assert (
        len(engine.containers.removed) == 1 and engine.containers.held == {}
    )  # nothing left behind


def test_a_missing_image_ends_the_run_crashed_without_retry(tmp_path: Path) -> None:
    engine = FakeEngine()
    with dispatching(tmp_path, engine) as db:
        run = settled(db, add_plugin_run(db, "gone:1", max_retries=3))

    assert (run.status, run.attempt) == (InvocationStatus.CRASHED, 1)
    assert run.error == "image gone:1 is missing: rebuild the plugin version"


def test_a_run_still_going_at_shutdown_is_handed_back_uncounted(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.images.add("scripted:1", Script(hangs=True))
    with dispatching(tmp_path, engine, fake_settings(tmp_path, timeout_s=600, drain_s=0)) as db:
        run_id = add_plugin_run(db, "scripted:1", max_retries=0)
        # Handed its envelope: the script now runs until it is killed.
        polled(db, run_id, lambda run: run.deadline_at is not None)
    run = polled(db, run_id, lambda run: True)  # the dispatcher stopped: as it was left
    db.dispose()

    assert (run.status, run.attempt) == (InvocationStatus.QUEUED, 1)
    assert [(a["kind"], a["reason"]) for a in run.attempts] == [
        (AttemptKind.HANDED_BACK, "handed back at executor shutdown")
    ]
    assert engine.containers.held == {}  # killed and removed
