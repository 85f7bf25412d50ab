"""The ends of this executor's containers, followed on the engine's event stream as they
happen: who asked the engine to stop one (``kill`` events), the kernel's OOM kills
(``oom``) and its end (``die``).

The engine keeps only its last 256 events (of every kind, for every container) to answer a
later query: on a busy engine (runs, builds, pulls) a container's ``die`` is gone from them
within a second of its end, and a query then finds "no record of the end", which
``classify`` must take for an engine restart. A subscription held from before a container
starts sees its whole life, however busy the engine. When the subscription breaks (the
engine restarted or could not be reached), what it saw of containers whose life spans the
break is dropped, and their record is read back from the engine's own events as before.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from executor.engine.base import MANAGED_LABEL, StopRecord
from executor.engine.docker_errors import ENGINE_FAILURES
from executor.errors import SandboxError

if TYPE_CHECKING:
    from executor.engine.client import Engine

__all__ = ["EndWatch", "signal_number"]

log = logging.getLogger(__name__)

# How long the first container waits for the subscription before it starts anyway (its
# record is then read back from the engine's events, as without one).
SUBSCRIBE_WAIT_S = 5.0
# Between attempts to subscribe again after the stream broke.
RESUBSCRIBE_S = 1.0
# How long ``close`` waits for the thread (one still connecting to an engine that does not
# answer is left to end on its own: it is a daemon thread).
CLOSE_WAIT_S = 5.0
# Containers followed at once, at most: the oldest are forgotten past it (a container is
# forgotten anyway when it is removed).
MAX_FOLLOWED = 10_000
EVENTS = ("start", "kill", "oom", "die", "destroy")
# How long a container killed by SIGKILL with no ``kill`` or ``oom`` event yet waits for an
# ``oom`` logged after its ``die``: the engine's runtime reports the OOM kill and the exit
# on separate paths, and on a loaded node the exit can come first (by milliseconds).
OOM_AFTER_DIE_S = 2.0
SIGKILL_EXIT = 137


def signal_number(value: object) -> int:
    """A ``kill`` event's signal attribute as a number (0 when it names none)."""
    try:
        return int(str(value))
    except ValueError:
        return 0


@dataclass
class _Life:
    """What the subscription saw of one container since its ``start``."""

    signals: list[int] = field(default_factory=list)
    oom: bool = False
    died: bool = False
    exit_code: str = ""

    def killed_unexplained(self) -> bool:
        """Ended by SIGKILL with neither a kill asked of the engine nor an OOM seen yet."""
        return self.exit_code == str(SIGKILL_EXIT) and not self.signals and not self.oom


class EndWatch:
    """One engine's event stream of the containers executors label as theirs, followed by a
    daemon thread from the first container this process creates until ``close``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._changed = threading.Condition()
        self._lives: OrderedDict[str, _Life] = OrderedDict()
        self._subscribed = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: Any = None

    def start(self) -> None:
        """Follow the engine's events from now on (once); the first call waits until the
        subscription holds, so the container created next is seen from its start."""
        with self._changed:
            if self._thread is not None or self._closing.is_set():
                return
            self._thread = threading.Thread(target=self._follow, name="engine-ends", daemon=True)
            self._thread.start()
        self._subscribed.wait(SUBSCRIBE_WAIT_S)

    def record(self, container_id: str, wait_s: float) -> StopRecord | None:
        """How a container that exited ended, as followed; waits up to ``wait_s`` for its
        ``die`` to arrive, and after a SIGKILL exit no ``kill`` explains, up to
        ``OOM_AFTER_DIE_S`` for an ``oom`` logged after it. None when the subscription did
        not see its whole life."""
        with self._changed:
            life = self._lives.get(container_id)
            if life is None or not self._waited(lambda: life.died, container_id, wait_s):
                return None
            if life.killed_unexplained():
                self._waited(lambda: life.oom, container_id, OOM_AFTER_DIE_S)
            return StopRecord(True, tuple(life.signals), oom_killed=life.oom)

    def _waited(self, happened: Callable[[], bool], container_id: str, wait_s: float) -> bool:
        """Wait (the lock held) up to ``wait_s`` until ``happened``; True when it did and
        the container is still followed (not removed, the stream not broken)."""

        def followed() -> bool:
            return container_id in self._lives

        self._changed.wait_for(lambda: happened() or not followed(), wait_s)
        return happened() and followed()

    @property
    def following(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop following; waits (a bounded time) for the thread to end."""
        self._closing.set()
        with self._changed:
            stream, thread = self._stream, self._thread
        if stream is not None:
            stream.close()
        if thread is not None:
            thread.join(CLOSE_WAIT_S)

    def _follow(self) -> None:
        while not self._closing.is_set():
            try:
                stream = self._engine.api.events(
                    filters={"type": "container", "event": list(EVENTS), "label": [MANAGED_LABEL]},
                    decode=True,
                )
            except (*ENGINE_FAILURES, SandboxError) as exc:
                log.debug("cannot follow the engine's events: %s", exc)
                self._closing.wait(RESUBSCRIBE_S)
                continue
            with self._changed:
                self._stream = stream
            self._subscribed.set()
            try:
                for event in stream:
                    self._note(event)
            except Exception as exc:
                # The stream ends in as many ways as its layers (urllib3, http.client, the
                # socket ``close`` shut, docker-py): each means the same, followed no more.
                log.debug("the engine's event stream broke: %s", exc)
            finally:
                self._subscribed.clear()
                self._forget_the_living()

    def _note(self, event: dict[str, Any]) -> None:
        action = event.get("Action") or event.get("status")
        actor = event.get("Actor") or {}
        container_id = str(actor.get("ID") or event.get("id") or "")
        with self._changed:
            if action == "start":
                self._lives[container_id] = _Life()
                while len(self._lives) > MAX_FOLLOWED:
                    self._lives.popitem(last=False)
                return
            life = self._lives.get(container_id)
            if action == "destroy":
                self._lives.pop(container_id, None)
            elif life is None:
                return
            elif action == "kill":
                life.signals.append(signal_number((actor.get("Attributes") or {}).get("signal")))
            elif action == "oom":
                life.oom = True
            elif action == "die":
                life.died = True
                life.exit_code = str((actor.get("Attributes") or {}).get("exitCode", ""))
            self._changed.notify_all()

    def _forget_the_living(self) -> None:
        """The stream broke: a container still running may end unseen (its record is read
        from the engine's events instead)."""
        with self._changed:
            for container_id in [c for c, life in self._lives.items() if not life.died]:
                del self._lives[container_id]
            self._stream = None
            self._changed.notify_all()
