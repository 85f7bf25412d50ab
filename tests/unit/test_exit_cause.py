"""Who ended a container: decided from the executor's own kills and the engine's record,
never from the exit code the plugin chose (``executor.run.exit_cause.classify``)."""

from __future__ import annotations

import pytest

from executor.engine import StopRecord
from executor.run.exit_cause import classify
from executor.settings import SandboxProfile
from executor.statuses import InvocationStatus

PROFILE = SandboxProfile()
NO_STOP = StopRecord(found=True)  # the engine saw the end, and sent no signal


@pytest.mark.parametrize(
    ("exit_code", "error"),
    [
        (
            137,
            "plugin exited with code 137 (signal 9 (SIGKILL) or exit(137)) from inside the "
            "container: neither the executor nor the Docker Engine stopped it",
        ),
        (
            143,
            "plugin exited with code 143 (signal 15 (SIGTERM) or exit(143)) from inside the "
            "container: neither the executor nor the Docker Engine stopped it",
        ),
        (3, "plugin exited with code 3"),
        (255, "plugin exited with code 255"),
    ],
)
def test_an_exit_the_engine_did_not_cause_is_the_plugins(exit_code: int, error: str) -> None:
    outcome = classify(exit_code, False, None, PROFILE, 0.0, NO_STOP)

    assert (outcome.status, outcome.exit_code, outcome.error) == (
        InvocationStatus.FAILED,
        exit_code,
        error,
    )
    assert not outcome.infrastructure


@pytest.mark.parametrize(
    ("exit_code", "signals", "sent"),
    [
        (143, (15,), "15 (SIGTERM)"),  # docker stop, the plugin ended on SIGTERM
        (137, (15, 9), "15 (SIGTERM), 9 (SIGKILL)"),  # docker stop, SIGTERM ignored
        (137, (9,), "9 (SIGKILL)"),  # docker kill
        (1, (15,), "15 (SIGTERM)"),  # the plugin's own SIGTERM handler exited 1
    ],
)
def test_a_kill_the_engine_recorded_is_a_stop_from_outside(
    exit_code: int, signals: tuple[int, ...], sent: str
) -> None:
    outcome = classify(exit_code, False, None, PROFILE, 0.0, StopRecord(True, signals))

    assert (outcome.status, outcome.infrastructure) == (InvocationStatus.CRASHED, True)
    assert outcome.error == (
        f"container stopped from outside the executor (exit {exit_code}): the Docker Engine "
        f"was asked to send {sent} (docker stop, docker kill or its shutdown)"
    )


def test_a_signal_exit_the_restarted_engine_has_no_record_of_is_a_stop_from_outside() -> None:
    outcome = classify(143, False, None, PROFILE, 0.0, StopRecord(found=False))

    assert (outcome.status, outcome.infrastructure) == (InvocationStatus.CRASHED, True)
    assert outcome.error == (
        "container stopped from outside the executor (exit 143): the Docker Engine holds no "
        "record of its end: the engine restarted"
    )


def test_a_plain_exit_without_a_record_stays_the_plugins() -> None:
    outcome = classify(1, False, None, PROFILE, 0.0, StopRecord(found=False))

    assert (outcome.status, outcome.infrastructure) == (InvocationStatus.FAILED, False)


def test_the_executors_own_kills_are_not_from_outside() -> None:
    timed_out = classify(137, False, "timeout", PROFILE, 0.0, StopRecord(True, (9,)))
    log_limit = classify(137, False, "log_limit", PROFILE, 0.0, StopRecord(True, (9,)))

    assert (timed_out.status, timed_out.infrastructure) == (InvocationStatus.TIMED_OUT, False)
    assert (log_limit.status, log_limit.infrastructure) == (InvocationStatus.FAILED, False)
