"""How a plugin container ended, told from what the executor observes itself: its own
reason for a kill, the kernel's OOM flag, and the Docker Engine's record of who stopped it,
never the exit code the plugin chose.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from executor.engine import StopRecord
from executor.settings import SandboxProfile
from executor.statuses import InvocationStatus, RunErrorType

__all__ = ["RunOutcome", "classify", "plugin_exit_error"]


@dataclass(frozen=True)
class RunOutcome:
    """How a container ended. ``status`` is one of the invocation's terminal statuses."""

    status: InvocationStatus
    exit_code: int | None
    error: str | None
    started_monotonic: float
    # True when the container was stopped from outside (engine restart, docker stop/kill),
    # as the engine's own record shows (``classify``): not the plugin's fault, so the
    # dispatcher retries it.
    infrastructure: bool = False
    # True when output written while no executor read it is gone (see Sandbox.watch).
    output_lost: bool = False
    # How the executor classifies a failure (None: it succeeded); EXIT_ERROR is the
    # plugin's own exit, where the runtime's report of an exception says more.
    error_type: RunErrorType | None = None


# Exit codes above this are the shell's way of saying "died of signal (code - 128)".
SIGNAL_EXIT_BASE = 128


def classify(
    exit_code: int,
    oom_killed: bool,
    why: str | None,
    profile: SandboxProfile,
    started: float,
    record: StopRecord | None = None,
) -> RunOutcome:
    """The terminal status and a one-line reason for how a container ended.

    ``why`` is the executor's own reason for killing it; ``record`` the engine's record of
    its end (read for a failure the executor did not cause). An exit code says nothing of
    who caused it: a plugin can exit with 137 or 143, SIGKILL itself or have the init pass
    on a SIGTERM it sent pid 1. Only the engine's record tells a stop from outside: a
    ``kill`` it was asked for (``docker stop``, ``docker kill``, its own shutdown), or no
    record of the end at all (the engine restarted). Everything else is the plugin's.
    """
    if why == "timeout":
        return RunOutcome(
            InvocationStatus.TIMED_OUT,
            exit_code,
            f"wall time of {profile.timeout_s:g} s exceeded: killed",
            started,
            error_type=RunErrorType.TIMED_OUT,
        )
    if oom_killed:
        return RunOutcome(
            InvocationStatus.OOM_KILLED,
            exit_code,
            f"memory limit of {profile.memory_mib} MiB exceeded",
            started,
            error_type=RunErrorType.OUT_OF_MEMORY,
        )
    if why == "log_limit":
        return RunOutcome(
            InvocationStatus.FAILED,
            exit_code,
            f"log_limit: more than {profile.log_cap_bytes} bytes of output; run stopped",
            started,
            error_type=RunErrorType.LOG_LIMIT,
        )
    if exit_code == 0:
        return RunOutcome(InvocationStatus.SUCCEEDED, 0, None, started)
    outside = _stopped_from_outside(exit_code, record) if why is None else None
    if outside is not None:
        return RunOutcome(
            InvocationStatus.CRASHED,
            exit_code,
            f"container stopped from outside the executor (exit {exit_code}): {outside}",
            started,
            infrastructure=True,
            error_type=RunErrorType.INFRASTRUCTURE,
        )
    error = plugin_exit_error(exit_code)
    return RunOutcome(
        InvocationStatus.FAILED, exit_code, error, started, error_type=RunErrorType.EXIT_ERROR
    )


def _stopped_from_outside(exit_code: int, record: StopRecord | None) -> str | None:
    """Why the engine's record shows a stop from outside, or None when it does not."""
    if record is None:
        return None
    if record.signals:
        sent = ", ".join(_signal_name(number) for number in record.signals)
        return (
            f"the Docker Engine was asked to send {sent} (docker stop, docker kill or its shutdown)"
        )
    if not record.found and exit_code > SIGNAL_EXIT_BASE:
        return "the Docker Engine holds no record of its end: the engine restarted"
    return None


def plugin_exit_error(exit_code: int) -> str:
    """The error of a run that ended with ``exit_code`` by the plugin's own doing."""
    error = f"plugin exited with code {exit_code}"
    number = exit_code - SIGNAL_EXIT_BASE
    if number in {s.value for s in signal.Signals}:
        error += (
            f" (signal {_signal_name(number)} or exit({exit_code})) from inside the "
            "container: neither the executor nor the Docker Engine stopped it"
        )
    return error


def _signal_name(number: int) -> str:
    """``9 (SIGKILL)``, or just the number for one this system does not name."""
    try:
        return f"{number} ({signal.Signals(number).name})"
    except ValueError:
        return str(number)
