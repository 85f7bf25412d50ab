"""What the Docker Engine recorded of a container, apart from the container itself: its copy
of the output (the log driver's) and its events (who asked it to stop the container)."""

from __future__ import annotations

import math
import struct
from datetime import datetime
from typing import TYPE_CHECKING, Any

import requests

from executor.engine.base import Frames, StopRecord
from executor.engine.docker_errors import engine_errors
from executor.engine.ends import EndWatch, signal_number

if TYPE_CHECKING:
    from collections.abc import Iterable

    from executor.engine.client import Engine

__all__ = ["Records"]

# A frame of the engine's multiplexed output stream: stream id, 3 zero bytes, payload length.
FRAME_HEADER = struct.Struct(">BxxxL")

# How long past a container's end the engine may take to record it (its ``die`` event).
DIE_RECORD_GRACE_S = 10


def _stop_record(events: Iterable[dict[str, Any]]) -> StopRecord:
    """The signals of the ``kill`` events before the ``die``; not found without a ``die``."""
    signals: list[int] = []
    oom = False
    for event in events:
        action = event.get("Action") or event.get("status")
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        if action == "kill":
            signals.append(signal_number(attributes.get("signal")))
        elif action == "oom":
            oom = True
        elif action == "die":
            return StopRecord(True, tuple(signals), oom_killed=oom)
    return StopRecord(False)


class Records:
    """The records one ``Engine`` keeps of its containers (``engine.records``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ends = EndWatch(engine)

    def follow_ends(self) -> None:
        """Follow the ends of containers from now on (``EndWatch``): called before the
        first container starts, so its record does not depend on the engine's last 256
        events."""
        self._ends.start()

    def close(self) -> None:
        self._ends.close()

    def output_frames(self, container_id: str, *, follow: bool) -> Frames:
        """The engine's copy of a container's output (its log driver) from the start, as
        ``(stream id, bytes)`` frames; with ``follow``, until the container stops. Close
        the generator to stop early."""
        api = self._engine.api
        url = f"{api.base_url}/v{api.api_version}/containers/{container_id}/logs"
        params = {"stdout": 1, "stderr": 1, "follow": int(follow)}
        with engine_errors("reading the container's output back from the engine"):
            # No read timeout: a quiet plugin may print nothing for its whole wall time.
            response = api.get(url, params=params, stream=True, timeout=None)
            response.raise_for_status()
        return self._frames(response)

    @staticmethod
    def _frames(response: requests.Response) -> Frames:
        try:
            with engine_errors("reading the container's output back from the engine"):
                while header := response.raw.read(FRAME_HEADER.size):
                    stream_id, length = FRAME_HEADER.unpack(header)
                    yield stream_id, response.raw.read(length)
        finally:
            response.close()

    def output_size_reaches(self, container_id: str, size: int) -> bool:
        """True when the engine holds at least ``size`` bytes of a container's output."""
        held = 0
        frames = self.output_frames(container_id, follow=False)
        try:
            for _, data in frames:
                held += len(data)
                if held >= size:
                    return True
        finally:
            frames.close()
        return False

    def stop_record(
        self, container_id: str, started_at: datetime, finished_at: datetime
    ) -> StopRecord:
        """The engine's own record of who ended a container that has exited: its events
        from the container's start to its ``die``.

        A ``kill`` event is logged while the engine holds the container, before it can log
        the ``die``: every signal the engine sent comes before the end. What the event
        stream followed since the container's start is the record; without it (the stream
        broke meanwhile) the engine's own last 256 events are read, where after a restart
        of the engine (or on a busy one) the ``die`` is not found.
        Nothing inside the container can add to or remove from this record.
        """
        followed = self._ends.record(container_id, DIE_RECORD_GRACE_S)
        if followed is not None:
            return followed
        since = math.floor(started_at.timestamp()) - 1
        until = math.ceil(finished_at.timestamp()) + DIE_RECORD_GRACE_S
        with engine_errors("reading the engine's events of a container"):
            events = self._engine.api.events(
                since=since,
                until=until,
                filters={"type": "container", "container": container_id},
                decode=True,
            )
            try:
                return _stop_record(events)
            finally:
                events.close()
