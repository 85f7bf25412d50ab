"""The build's steps in its log: a step line when each starts and one with its time when it
ends (``executor.buildlog`` says what a step line is).

The image build is one engine call: ``EnginePhases`` reads the engine's ``Step N/M``
lines as they pass and groups the Dockerfile's instructions into the plugin's steps
(preparing the flavor image, installing the requirements, adding the code). The builder's
own steps (import check, push) are timed by ``timed_step``. Times are measured here, by
the executor's clock, never read from the engine's output.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum

from executor.build.context import build_phase
from executor.buildlog import engine_step, seconds, step_line

__all__ = ["EnginePhases", "StepEnd", "timed_step"]

# A line longer than this is passed on in parts (pip's progress bars have no newline).
MAX_LINE_CHARS = 64 * 1024
_CACHED = " ---> Using cache"


class StepEnd(StrEnum):
    """How a step ended, as its last line says it (with its time)."""

    DONE = "done in"
    FAILED = "FAILED after"
    STOPPED = "stopped after"  # the executor is shutting down; the build resumes at start


@contextmanager
def timed_step(
    note: Callable[[str], None], title: str, clock: Callable[[], float] = time.monotonic
) -> Iterator[None]:
    """``==> title`` now, then ``==> title: done in N s`` or, if the block raises,
    ``==> title: FAILED after N s``."""
    note(step_line(title))
    started = clock()
    try:
        yield
    except BaseException:
        note(step_line(f"{title}: {StepEnd.FAILED} {seconds(clock() - started)}"))
        raise
    note(step_line(f"{title}: {StepEnd.DONE} {seconds(clock() - started)}"))


class EnginePhases:
    """Passes the engine's build output on, whole lines at a time, and writes a step line
    (through ``note``) when the engine starts the first instruction of a step and when the
    step ends: at the next step's start or at ``finish``."""

    def __init__(
        self,
        on_output: Callable[[str], None],
        note: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_output = on_output
        self._note = note
        self._clock = clock
        self._pending = ""
        self._title: str | None = None
        self._started = 0.0
        self._instructions = 0  # of the running step, FROM aside
        self._cached = 0  # of those, how many the engine took from its cache

    def __call__(self, text: str) -> None:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._line(line + "\n")
        if len(self._pending) > MAX_LINE_CHARS:
            self._on_output(self._pending)
            self._pending = ""

    def finish(self, end: StepEnd) -> None:
        """The engine ended the build: pass on what is left and end the running step."""
        if self._pending:
            self._on_output(self._pending if self._pending.endswith("\n") else self._pending + "\n")
            self._pending = ""
        self._end(end)

    def _line(self, line: str) -> None:
        instruction = engine_step(line)
        title = build_phase(instruction) if instruction is not None else None
        if title is not None and title != self._title:
            self._end(StepEnd.DONE)
            self._title, self._started = title, self._clock()
            self._instructions = self._cached = 0
            self._note(step_line(title))
        if instruction is not None and not instruction.startswith("FROM "):
            self._instructions += 1
        self._cached += line.startswith(_CACHED)
        self._on_output(line)

    def _end(self, end: StepEnd) -> None:
        if self._title is None:
            return
        took = seconds(self._clock() - self._started)
        every = self._instructions and self._cached == self._instructions
        cached = " (from the engine's cache)" if end == StepEnd.DONE and every else ""
        self._note(step_line(f"{self._title}: {end} {took}{cached}"))
        self._title = None
