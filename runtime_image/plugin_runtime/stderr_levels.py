"""The level of a line a plugin writes to stderr: INFO unless it reads as a problem.

Libraries write progress bars, notices and status lines to stderr (the Kili SDK's tqdm
bar, for every batch it sends); stored as WARNING, they buried real warnings. The rule
(docs/logs.md, "Levels of stderr lines"):

- a traceback, from ``Traceback (most recent call last):`` through its exception line
  (``ValueError: ...``), chained tracebacks included, is ERROR;
- a line that starts with an exception name and a colon (``KeyError: 'x'``) or with the
  word ERROR, CRITICAL or FATAL is ERROR;
- a line that starts with WARNING, or carries a warning category as the ``warnings``
  module prints it (``file.py:3: DeprecationWarning: ...``), is WARNING;
- every other line is INFO.
"""

from __future__ import annotations

import re

__all__ = ["StderrLevels"]

TRACEBACK_START = "Traceback (most recent call last):"
# Between the parts of a chained traceback.
CHAIN_LINES = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
ERROR_LINE = re.compile(
    r"^(?:[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)\b.*:|"
    r"(?:ERROR|CRITICAL|FATAL)\b)"
)
WARNING_LINE = re.compile(r"^WARNING\b|:\d+: [A-Za-z_]\w*Warning: ")


class StderrLevels:
    """Gives each stderr line of one thread its level; remembers an open traceback."""

    def __init__(self) -> None:
        self._in_traceback = False

    def __call__(self, line: str) -> str:
        if line.startswith(TRACEBACK_START) or line in CHAIN_LINES:
            self._in_traceback = True
            return "ERROR"
        if self._in_traceback:
            # Frames are indented (a blank line follows a chain line); the first other line
            # is the exception itself, which ends the traceback.
            self._in_traceback = not line or line[0].isspace()
            return "ERROR"
        if ERROR_LINE.match(line):
            return "ERROR"
        if WARNING_LINE.search(line):
            return "WARNING"
        return "INFO"
