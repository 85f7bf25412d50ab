"""Runs one invocation in one fresh, hardened container and removes it.

The container gets the envelope on stdin (then stdin is closed), its output is handed to
the caller frame by frame as it comes, and it is SIGKILLed at the wall-time deadline.
Nothing survives from one run to the next: the root file system is read-only, /tmp is a
tmpfs, and the container is force-removed with its volumes.

The profile itself (limits, mounts, pid 1, the engine's log copy) is
``executor.sandbox.profile``; a container's start and removal ``executor.run.containers``;
following it to its end ``executor.run.follow``; how it ended ``executor.run.exit_cause``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from executor.engine import Engine
from executor.run.containers import Containers, StartedContainer
from executor.run.exit_cause import RunOutcome
from executor.run.follow import Follower, OutputSink
from executor.sandbox.profile import engine_log_file_bytes
from executor.settings import SandboxProfile

__all__ = ["Sandbox"]


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
        self.profile = profile
        self.containers = Containers(engine, gateway_dir, on_phase)
        self.follower = Follower(engine, profile)
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
        """A container waiting for its envelope (``Containers.start``); the caller must
        ``hand_off`` or ``discard`` it."""
        return self.containers.start(
            image, profile, invocation_id=invocation_id, generation=generation, pool=pool
        )

    def discard(self, started: StartedContainer) -> None:
        """Remove a started container that will serve no event."""
        self.containers.discard(started)

    def is_running(self, started: StartedContainer) -> bool:
        """True while a started container is still up (a pooled one may have died)."""
        return self.containers.is_running(started)

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
                return self.follower.follow(
                    started.container_id,
                    started.attachment.frames(),
                    timeout_s or profile.timeout_s,
                    on_output,
                    profile,
                )
        finally:
            started.attachment.close()
            self.containers.remove_quietly(started.container_id)

    def kill_serving(self, invocation_ids: set[str]) -> None:
        """SIGKILL the containers now serving these invocations (shutdown hand-back)."""
        with self._lock:
            targets = [c for i, c in self._serving.items() if i in invocation_ids]
        for container_id in targets:
            self.engine.containers.kill(container_id)

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
                if self.engine.records.output_size_reaches(container_id, rotated):
                    reason: dict[str, str] = {}
                    self.follower.kill(container_id, reason, "log_limit")
                    outcome = self.follower.outcome(container_id, reason, started)
                    return replace(outcome, output_lost=True)
                frames = self.engine.records.output_frames(container_id, follow=running)
                timeout_s = max(remaining_s, 0.0) if running else None
                return self.follower.follow(container_id, frames, timeout_s, on_output)
        finally:
            self.containers.remove_quietly(container_id)

    @contextlib.contextmanager
    def _serving_as(self, invocation_id: str, container_id: str) -> Iterator[None]:
        with self._lock:
            self._serving[invocation_id] = container_id
        try:
            yield
        finally:
            with self._lock:
                self._serving.pop(invocation_id, None)
