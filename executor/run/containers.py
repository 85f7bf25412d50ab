"""A plugin container's life on the Docker Engine: created under the sandbox profile
(``executor.sandbox.profile``), attached before it starts (nothing it writes is lost, even
while it waits in a warm pool), started, and force-removed with its volumes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from executor.engine import INVOCATION_LABEL, LEASE_LABEL, POOL_LABEL, Attachment, Engine
from executor.errors import SandboxError
from executor.sandbox.profile import INIT_COMMAND, container_config
from executor.settings import SandboxProfile

__all__ = ["Containers", "StartedContainer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartedContainer:
    """A running container blocked reading its envelope, with its streams attached."""

    container_id: str
    attachment: Attachment
    profile: SandboxProfile
    image: str
    started_monotonic: float = field(default_factory=time.monotonic)


class Containers:
    """Starts and removes plugin containers on ``engine``; ``on_phase(name, seconds)`` is
    told how long each engine call of a start took."""

    def __init__(
        self,
        engine: Engine,
        gateway_dir: Path | None = None,
        on_phase: Callable[[str, float], None] = lambda phase, seconds: None,
    ) -> None:
        self.engine = engine
        self.gateway_dir = gateway_dir
        self.on_phase = on_phase

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
            attachment = self.engine.containers.attach(container_id)
            since = self._phase("attach", since)
            self.engine.containers.start(container_id)
            self._phase("start", since)
        except BaseException:
            if attachment is not None:  # else its connection lives on until GC
                attachment.close()
            self.remove_quietly(container_id)
            raise
        return StartedContainer(container_id, attachment, profile, image)

    def discard(self, started: StartedContainer) -> None:
        """Remove a started container that will serve no event."""
        started.attachment.close()
        self.remove_quietly(started.container_id)

    def is_running(self, started: StartedContainer) -> bool:
        """True while a started container is still up (a pooled one may have died)."""
        if not started.attachment.ended():  # no round trip to the engine while it streams
            return True
        try:
            state = self.engine.containers.state(started.container_id)
        except SandboxError:
            return False
        return bool(state.get("Running"))

    def remove_quietly(self, container_id: str) -> None:
        # Removal failing must not hide how the run ended; recovery removes leftovers.
        try:
            self.engine.containers.remove(container_id)
        except SandboxError:
            log.warning("could not remove container %s; recovery will", container_id)

    def _phase(self, name: str, since: float) -> float:
        now = time.monotonic()
        self.on_phase(name, now - since)
        return now

    def _create(self, image: str, labels: dict[str, str], profile: SandboxProfile) -> str:
        return self.engine.containers.create(
            image,
            command=INIT_COMMAND,
            user=profile.user,
            labels=labels,
            host_config=container_config(profile, self.gateway_dir),
        )
