"""Following a plugin container to its end: its output frames handed to the caller as they
come, a SIGKILL at the wall-time deadline or when the caller refuses more output, then how
it ended (``executor.run.exit_cause``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from executor.engine import Engine, Frames, StopRecord
from executor.errors import SandboxError
from executor.run.exit_cause import RunOutcome, classify
from executor.settings import SandboxProfile

__all__ = ["ENGINE_WAIT_S", "Follower", "OutputSink"]

ENGINE_WAIT_S = 60
# Called with (stream id, bytes) for every output frame; returning False stops the run.
OutputSink = Callable[[int, bytes], bool]


class Follower:
    """Follows containers on ``engine``; ``profile`` (the operator's) names the limits of
    a container followed without its own."""

    def __init__(self, engine: Engine, profile: SandboxProfile) -> None:
        self.engine = engine
        self.profile = profile

    def follow(
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
        watchdog = threading.Timer(timeout_s or 0.0, self.kill, (container_id, reason, "timeout"))
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
                        target=self.kill, args=(container_id, reason, "log_limit"), daemon=True
                    )
                    stopping.start()
        finally:
            watchdog.cancel()
            frames.close()
        return self.outcome(container_id, reason, started, profile)

    def kill(self, container_id: str, reason: dict[str, str], why: str) -> None:
        reason.setdefault("why", why)
        self.engine.containers.kill(container_id)

    def outcome(
        self,
        container_id: str,
        reason: dict[str, str],
        started: float,
        profile: SandboxProfile | None = None,
    ) -> RunOutcome:
        exit_code = self.engine.containers.wait_exit(container_id, ENGINE_WAIT_S)
        state = self.engine.containers.state(container_id)
        oom_killed = bool(state.get("OOMKilled"))
        why = reason.get("why")
        record = None
        if exit_code != 0 and why is None and not oom_killed:
            record = self._stop_record(container_id, state)
            oom_killed = record.oom_killed  # the flag misses an OOM handled after the exit
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
        return self.engine.records.stop_record(container_id, started_at, finished_at)
