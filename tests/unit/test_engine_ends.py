"""EndWatch, the executor's own record of its containers' ends, over a scripted event stream:
what it saw of a container's whole life is the record; a container whose life spans a
break of the stream, or that was removed, is left to the engine's own events."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest

from executor.engine import Engine, StopRecord, ends
from executor.engine.ends import EndWatch

WAIT_S = 60.0  # bounds a wait that an event ends: never reached when the code is right


class Stream:
    """The engine's event stream: what the test puts in, in order; an exception breaks it,
    a ``threading.Event`` is set once everything before it was read."""

    def __init__(self) -> None:
        self.items: queue.Queue[Any] = queue.Queue()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while (item := self.items.get()) is not None:
            if isinstance(item, Exception):
                raise item
            if isinstance(item, threading.Event):
                item.set()
                continue
            yield item

    def close(self) -> None:
        self.items.put(None)

    def put(self, *items: Any) -> None:
        """Put ``items`` and wait until the watch has read them."""
        read = threading.Event()
        for item in (*items, read):
            self.items.put(item)
        assert read.wait(WAIT_S)


class Api:
    def __init__(self) -> None:
        self.opened: queue.Queue[Stream] = queue.Queue()
        self.filters: list[dict[str, Any]] = []

    def events(self, *, filters: dict[str, Any], decode: bool) -> Stream:
        self.filters.append(filters)
        stream = Stream()
        self.opened.put(stream)
        return stream


def event(action: str, container_id: str, **attributes: str) -> dict[str, Any]:
    return {"Action": action, "Actor": {"ID": container_id, "Attributes": attributes}}


@pytest.fixture
def watched() -> Iterator[tuple[EndWatch, Api, Stream]]:
    api = Api()
    watch = EndWatch(cast(Engine, type("StubEngine", (), {"api": api})()))
    watch.start()
    yield watch, api, api.opened.get(timeout=WAIT_S)
    watch.close()


def test_signals_and_end_of_a_container_followed_from_its_start(
    watched: tuple[EndWatch, Api, Stream],
) -> None:
    watch, api, stream = watched
    stream.put(
        event("start", "c1"),
        event("kill", "c1", signal="15"),
        event("kill", "c1", signal="9"),
        event("die", "c1", exitCode="137"),
        event("die", "other"),  # never seen starting: no record made of it
    )

    assert watch.record("c1", 0) == StopRecord(True, (15, 9))
    assert watch.record("other", 0) is None
    assert api.filters == [
        {
            "type": "container",
            "event": ["start", "kill", "oom", "die", "destroy"],
            "label": ["io.plugin-executor.managed"],
        }
    ]


def test_the_record_waits_for_a_die_that_comes_after_the_exit(
    watched: tuple[EndWatch, Api, Stream],
) -> None:
    watch, _, stream = watched
    stream.put(event("start", "c1"))
    found: list[StopRecord | None] = []
    reader = threading.Thread(target=lambda: found.append(watch.record("c1", WAIT_S)))
    reader.start()

    stream.put(event("die", "c1"))
    reader.join()

    assert found == [StopRecord(True, ())]


def test_a_break_of_the_stream_leaves_the_living_to_the_engines_events(
    watched: tuple[EndWatch, Api, Stream],
) -> None:
    watch, api, stream = watched
    stream.put(event("start", "ended"), event("die", "ended"), event("start", "living"))

    stream.items.put(ConnectionError("the engine restarted"))
    again = api.opened.get(timeout=WAIT_S)  # subscribed again
    again.put(event("kill", "living", signal="15"), event("die", "living"))

    assert watch.record("ended", 0) == StopRecord(True, ())
    assert watch.record("living", 0) is None  # its kill may have come during the break
    assert len(api.filters) == 2


def test_an_oom_logged_after_the_die_is_waited_for(
    watched: tuple[EndWatch, Api, Stream],
) -> None:
    watch, _, stream = watched
    stream.put(event("start", "c1"), event("die", "c1", exitCode="137"))
    found: list[StopRecord | None] = []
    reader = threading.Thread(target=lambda: found.append(watch.record("c1", WAIT_S)))
    reader.start()

    stream.put(event("oom", "c1"))
    reader.join()

    assert found == [StopRecord(True, (), oom_killed=True)]


def test_a_sigkill_exit_without_an_oom_waits_a_bounded_time_only(
    watched: tuple[EndWatch, Api, Stream], monkeypatch: pytest.MonkeyPatch
) -> None:
    watch, _, stream = watched
    monkeypatch.setattr(ends, "OOM_AFTER_DIE_S", 0.01)
    stream.put(
        event("start", "self"),
        event("die", "self", exitCode="137"),  # the plugin SIGKILLed itself
        event("start", "oom"),
        event("oom", "oom"),
        event("die", "oom", exitCode="137"),
    )

    assert watch.record("self", WAIT_S) == StopRecord(True, ())
    assert watch.record("oom", 0) == StopRecord(True, (), oom_killed=True)


def test_a_removed_container_is_forgotten(watched: tuple[EndWatch, Api, Stream]) -> None:
    watch, _, stream = watched
    stream.put(event("start", "c1"), event("die", "c1"), event("destroy", "c1"))

    assert watch.record("c1", 0) is None


def test_close_ends_the_following_thread(watched: tuple[EndWatch, Api, Stream]) -> None:
    watch, _, _ = watched
    assert watch.following

    watch.close()

    assert not watch.following
