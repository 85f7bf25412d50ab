"""The build log's lines and what each one is.

The build log is text (stored, streamed by offset, shown by the console). Each line is one
of three kinds, told apart by its own form:

- a step: the executor's line for a step of the build and its time, ``==> ...``;
- a detail: the engine's layer bookkeeping (``Step 3/7 : ...``, `` ---> 1a2b3c``,
  ``Removing intermediate container ...``, ``Successfully built ...``), which the CLI
  shows only with ``--verbose``;
- output: everything else, what the build's commands printed (pip's lines and errors, the
  import check's traceback, warnings), always shown.
"""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["STEP_MARK", "LineKind", "engine_step", "line_kind", "seconds", "step_line"]

STEP_MARK = "==> "
# The classic builder's own lines, each written by the engine as a message of its own.
ENGINE_STEP = re.compile(r"Step (\d+)/(\d+) : (.*)")
# Matched whole: pip's own "Successfully built <packages>" is output.
_ENGINE_DETAIL = re.compile(
    r"(Step \d+/\d+ : .*| ---> .*|Removing intermediate container [0-9a-f]{12,64}"
    r"|Successfully built [0-9a-f]{12,64}|Successfully tagged \S+)\n?"
)


class LineKind(StrEnum):
    STEP = "step"
    DETAIL = "detail"
    OUTPUT = "output"


def line_kind(line: str) -> LineKind:
    """The kind of one line of a build log (without or with its newline)."""
    if line.startswith(STEP_MARK):
        return LineKind.STEP
    if _ENGINE_DETAIL.fullmatch(line):
        return LineKind.DETAIL
    return LineKind.OUTPUT


def engine_step(line: str) -> str | None:
    """The Dockerfile instruction of the engine's ``Step N/M : <instruction>`` line."""
    found = ENGINE_STEP.fullmatch(line.rstrip("\n"))
    return found[3] if found else None


def seconds(elapsed: float) -> str:
    """A step's time as the log shows it: ``0.4 s``, ``12.3 s``, ``95 s``."""
    return f"{elapsed:.1f} s" if elapsed < 60 else f"{elapsed:.0f} s"


def step_line(text: str) -> str:
    """One step line of the build log, with its newline."""
    return f"{STEP_MARK}{text}\n"
