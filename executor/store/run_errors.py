"""A failed run's summary as its row keeps it: ``error_type``, ``error_message`` and
``error_location``, like Lambda's ``errorType`` and ``errorMessage``.

The type, message and location of an exception the handler raised come from the plugin's
own process, so each is bounded here, whoever built it: one line of printable text (control
and bidirectional-text characters become spaces, as do newlines), cut to a fixed length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from executor.statuses import InvocationStatus, RunErrorType

__all__ = [
    "MAX_LOCATION_CHARS",
    "MAX_MESSAGE_CHARS",
    "MAX_TYPE_CHARS",
    "RunError",
    "one_line",
]

# Each field is cut to this many characters (the columns' sizes; a message is for a person
# to read at a glance: the whole traceback is in the run's log).
MAX_TYPE_CHARS = 200
MAX_MESSAGE_CHARS = 1000
MAX_LOCATION_CHARS = 300
CUT_MARK = "…"

# C0 and C1 controls (NUL, which PostgreSQL refuses, newline, tab, ESC, ...), DEL, the line
# and paragraph separators, and the bidirectional-text controls that reorder what is shown;
# with the white space around them, each run of them becomes one space.
_UNSAFE = re.compile("[\\s\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]+")
# Lone surrogates (a JSON "\udcff" escape gives one): the store's encodings refuse them.
_SURROGATES = re.compile("[\ud800-\udfff]")

# The type of a failure the executor classified itself, by the run's terminal status.
_BY_STATUS = {
    InvocationStatus.FAILED: RunErrorType.EXIT_ERROR,
    InvocationStatus.TIMED_OUT: RunErrorType.TIMED_OUT,
    InvocationStatus.OOM_KILLED: RunErrorType.OUT_OF_MEMORY,
    InvocationStatus.CRASHED: RunErrorType.CRASHED,
    InvocationStatus.CANCELED: RunErrorType.CANCELED,
    InvocationStatus.DEAD: RunErrorType.CRASHED,
}


def one_line(text: str, limit: int) -> str:
    """``text`` as one line of printable text of at most ``limit`` characters (a cut one
    ends with ``…``)."""
    text = _UNSAFE.sub(" ", _SURROGATES.sub("\ufffd", text)).strip()
    return text if len(text) <= limit else text[: limit - len(CUT_MARK)] + CUT_MARK


@dataclass(frozen=True)
class RunError:
    """Why a run did not succeed: a type, a message, and the plugin's ``file:line`` where
    the exception was raised (None when the executor classified the failure itself)."""

    type: str
    message: str
    location: str | None = None

    @classmethod
    def bounded(cls, type: str, message: str, location: str | None = None) -> RunError:
        """A summary of at most the columns' sizes, each field one line of printable text;
        an empty type or location is none."""
        kept_type = one_line(type, MAX_TYPE_CHARS) or RunErrorType.EXIT_ERROR
        kept_location = one_line(location, MAX_LOCATION_CHARS) if location else None
        return cls(kept_type, one_line(message, MAX_MESSAGE_CHARS), kept_location or None)

    @classmethod
    def classified(cls, status: InvocationStatus, error: str | None) -> RunError:
        """The summary of a run the executor ended with ``status`` and ``error`` itself."""
        return cls.bounded(_BY_STATUS.get(status, RunErrorType.CRASHED), error or str(status))

    def summary(self) -> str:
        """``ValueError: bad label (main.py:12)``, or ``type: message`` without a location."""
        where = f" ({self.location})" if self.location else ""
        return f"{self.type}: {self.message}{where}"
