"""Runs one invocation in one fresh, hardened container and removes it.

The container gets the envelope on stdin (then stdin is closed), its output is handed to
the caller frame by frame as it comes, and it is SIGKILLed at the wall-time deadline.
Nothing survives from one run to the next: the root file system is read-only, /tmp is a
tmpfs, and the container is force-removed with its volumes.

The profile itself (limits, mounts, pid 1, the engine's log copy) is
``executor.sandbox.profile``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from executor.engine import (
    INVOCATION_LABEL,
    LEASE_LABEL,
    POOL_LABEL,
    Attachment,
    Engine,
    Frames,
    ImageMissing,
    StopRecord,
    close_attached,
)
from executor.errors import SandboxError
from executor.sandbox.profile import INIT_COMMAND, container_config, engine_log_file_bytes
from executor.settings import SandboxProfile
from executor.statuses import InvocationStatus, RunErrorType

__all__ = [
    "ImageMissing",
    "OutputSink",
    "RunOutcome",
    "Sandbox",
    "StartedContainer",
    "close_attached",
]

log = logging.getLogger(__name__)

# Called with (stream id, bytes) for every output frame; returning False stops the run.
OutputSink = Callable[[int, bytes], bool]


@dataclass(frozen=True)
class StartedContainer:
    """A running container blocked reading its envelope, with its streams attached."""

    container_id: str
    attachment: Attachment
    profile: SandboxProfile
    image: str
    started_monotonic: float = field(default_factory=time.monotonic)


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


class Sandbox:
    """Creates, feeds, watches and removes plugin containers."""

    def __init__(
        self,
        engine: Engine,
        profile: SandboxProfile,
        gateway_dir: Path | None = None,
        on_phase: Callable[[str, float], None] = lambda phase, seconds: None,
    ) -> None:
        """``on_phase(name, seconds)`` is told how long each engine call of a start took."""
        self.engine = engine
        self.on_phase = on_phase
        self.profile = profile
        self.gateway_dir = gateway_dir
        # invocation id -> the container serving it (fresh or pooled), for the hand-back.
        self._serving: dict[str, str] = {}
        self._lock = threading.Lock()

    def run(
        self,
        image: str,
        envelope: bytes,
        invocation_id: str,
        on_output: OutputSink,
        timeout_s: float | None = None,
        profile: SandboxProfile | None = None,
    ) -> RunOutcome:
        """Run ``image`` once with ``envelope`` on stdin; blocks until the container ended.

        ``profile`` (default: the operator's) is the run's limits, e.g. a plugin's tightened
        profile from ``executor.run.limits.effective_profile``; ``timeout_s`` (default: the
        profile's) is the wall time before SIGKILL.
        """
        started = self.start(image, profile or self.profile, invocation_id=invocation_id)
        return self.hand_off(started, envelope, invocation_id, on_output, timeout_s)

    def start(
        self,
        image: str,
        profile: SandboxProfile,
        *,
        invocation_id: str = "",
        generation: int = 0,
        pool: str = "",
    ) -> StartedContainer:
        """Create, attach to and start a container that waits for its envelope on stdin.

        The runtime imports the plugin meanwhile. ``invocation_id`` and the lease
        ``generation`` it runs under, or ``pool`` (the warm pool's key), are put in the
        container's labels, for crash recovery. The caller must ``hand_off`` or ``discard``
        what it gets.
        """
        labels = (
            {INVOCATION_LABEL: invocation_id, LEASE_LABEL: str(generation)}
            if invocation_id
            else {POOL_LABEL: pool}
        )
        since = time.monotonic()
        container_id = self._create(image, labels, profile)
        attachment = None
        try:
            since = self._phase("create", since)
            # Attached before start: nothing the container writes is lost, even while pooled.
            attachment = self.engine.attach(container_id)
            since = self._phase("attach", since)
            self.engine.start_container(container_id)
            self._phase("start", since)
        except BaseException:
            if attachment is not None:  # else its connection lives on until GC
                attachment.close()
            self._remove_quietly(container_id)
            raise
        return StartedContainer(container_id, attachment, profile, image)

    def hand_off(
        self,
        started: StartedContainer,
        envelope: bytes,
        invocation_id: str,
        on_output: OutputSink,
        timeout_s: float | None = None,
    ) -> RunOutcome:
        """Write ``envelope`` to a started container, follow it to its end, remove it.

        The wall-time watchdog starts now, not when the container started.
        """
        profile = started.profile
        try:
            if len(envelope) > profile.envelope_cap_bytes:
                raise ValueError(
                    f"envelope of {len(envelope)} bytes is over the cap of "
                    f"{profile.envelope_cap_bytes} bytes"
                )
            with self._serving_as(invocation_id, started.container_id):
                started.attachment.send(envelope)
                return self._follow(
                    started.container_id,
                    started.attachment.frames(),
                    timeout_s or profile.timeout_s,
                    on_output,
                    profile,
                )
        finally:
            started.attachment.close()
            self._remove_quietly(started.container_id)

    def discard(self, started: StartedContainer) -> None:
        """Remove a started container that will serve no event."""
        started.attachment.close()
        self._remove_quietly(started.container_id)

    def is_running(self, started: StartedContainer) -> bool:
        """True while a started container is still up (a pooled one may have died)."""
        if not started.attachment.ended():  # no round trip to the engine while it streams
            return True
        try:
            state = self.engine.container_state(started.container_id)
        except SandboxError:
            return False
        return bool(state.get("Running"))

    def kill_serving(self, invocation_ids: set[str]) -> None:
        """SIGKILL the containers now serving these invocations (shutdown hand-back)."""
        with self._lock:
            targets = [c for i, c in self._serving.items() if i in invocation_ids]
        for container_id in targets:
            self.engine.kill_container(container_id)

    def watch(
        self,
        container_id: str,
        invocation_id: str,
        remaining_s: float,
        on_output: OutputSink,
        *,
        running: bool,
    ) -> RunOutcome:
        """Follow a container an earlier executor process started to its end (or, if it
        already exited, read how it ended), then remove it.

        Its output is replayed from the engine's copy, from the container's start:
        ``on_output`` skips what is stored already. If that copy has started a new file,
        the plugin wrote more than its log cap while no executor read it, and the start of
        the copy may be gone: nothing is replayed, a running container is killed, and the
        outcome is ``log_limit`` with ``output_lost``.
        """
        started = time.monotonic()
        try:
            with self._serving_as(invocation_id, container_id):
                rotated = engine_log_file_bytes(self.profile)
                # (A flood between this check and the replay opening the copy could still
                # rotate it twice; that run is past its cap either way.)
                if self.engine.output_size_reaches(container_id, rotated):
                    reason: dict[str, str] = {}
                    self._kill(container_id, reason, "log_limit")
                    return replace(self._outcome(container_id, reason, started), output_lost=True)
                frames = self.engine.output_frames(container_id, follow=running)
                timeout_s = max(remaining_s, 0.0) if running else None
                return self._follow(container_id, frames, timeout_s, on_output)
        finally:
            self._remove_quietly(container_id)

    def _phase(self, name: str, since: float) -> float:
        now = time.monotonic()
        self.on_phase(name, now - since)
        return now

    @contextlib.contextmanager
    def _serving_as(self, invocation_id: str, container_id: str) -> Iterator[None]:
        with self._lock:
            self._serving[invocation_id] = container_id
        try:
            yield
        finally:
            with self._lock:
                self._serving.pop(invocation_id, None)

    def _remove_quietly(self, container_id: str) -> None:
        # Removal failing must not hide how the run ended; recovery removes leftovers.
        try:
            self.engine.remove_container(container_id)
        except SandboxError:
            log.warning("could not remove container %s; recovery will", container_id)

    def _create(self, image: str, labels: dict[str, str], profile: SandboxProfile) -> str:
        return self.engine.create_container(
            image,
            command=INIT_COMMAND,
            user=profile.user,
            labels=labels,
            host_config=container_config(profile, self.gateway_dir),
        )

    def _follow(
        self,
        container_id: str,
        frames: Frames,
        timeout_s: float | None,
        on_output: OutputSink,
        profile: SandboxProfile | None = None,
    ) -> RunOutcome:
        """Feed ``frames`` to ``on_output`` until they end; SIGKILL the container past
        ``timeout_s`` (None: it has exited already)."""
        started = time.monotonic()
        reason: dict[str, str] = {}
        watchdog = threading.Timer(timeout_s or 0.0, self._kill, (container_id, reason, "timeout"))
        watchdog.daemon = True
        if timeout_s is not None:
            watchdog.start()
        stopping: threading.Thread | None = None
        try:
            for stream_id, data in frames:
                if not on_output(stream_id, data) and stopping is None:
                    # Kill from another thread and keep draining (the sink counts and drops
                    # the rest): a container blocked writing into a full pipe may not die
                    # until its output is read (gVisor's Sentry sits in the host write).
                    stopping = threading.Thread(
                        target=self._kill, args=(container_id, reason, "log_limit"), daemon=True
                    )
                    stopping.start()
        finally:
            watchdog.cancel()
            frames.close()
        return self._outcome(container_id, reason, started, profile)

    def _kill(self, container_id: str, reason: dict[str, str], why: str) -> None:
        reason.setdefault("why", why)
        self.engine.kill_container(container_id)

    def _outcome(
        self,
        container_id: str,
        reason: dict[str, str],
        started: float,
        profile: SandboxProfile | None = None,
    ) -> RunOutcome:
        exit_code = self.engine.wait_exit(container_id, ENGINE_WAIT_S)
        state = self.engine.container_state(container_id)
        oom_killed = bool(state.get("OOMKilled"))
        why = reason.get("why")
        record = None
        if exit_code != 0 and why is None and not oom_killed:
            record = self._stop_record(container_id, state)
        return classify(exit_code, oom_killed, why, profile or self.profile, started, record)

    def _stop_record(self, container_id: str, state: dict[str, Any]) -> StopRecord:
        """The engine's record of who ended a container (see ``classify``)."""
        try:
            started_at = datetime.fromisoformat(str(state["StartedAt"]))
            finished_at = datetime.fromisoformat(str(state["FinishedAt"]))
        except (KeyError, ValueError) as exc:
            raise SandboxError(
                f"Docker Engine error while reading how the plugin container ended: "
                f"no valid start and end time in its state ({exc})"
            ) from exc
        return self.engine.stop_record(container_id, started_at, finished_at)


ENGINE_WAIT_S = 60
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
