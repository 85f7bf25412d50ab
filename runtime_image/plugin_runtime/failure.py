"""The report of an exception the plugin raised: its type, its message, and where in the
plugin's own files it was raised.

It is one control line, ``{"control": "error", "error_type", "error_message",
"error_location", "time"}``, written after the ERROR record that holds the traceback; the
executor keeps it on the run's record, as Lambda keeps ``errorType`` and ``errorMessage``.
Each field is cut here so that the line stays well under the protocol's line limit (the
executor bounds them again), and registered secrets are redacted from it as from a record.
"""

from __future__ import annotations

import os
import traceback

from plugin_runtime.loader import PACKAGE, plugin_root
from plugin_runtime.protocol import ProtocolWriter, valid_text

ERROR_CONTROL = "error"
# Characters kept of each field: the executor's columns hold no more.
MAX_TYPE_CHARS = 200
MAX_MESSAGE_CHARS = 1000
MAX_LOCATION_CHARS = 300
SECRET_ROOM_CHARS = 1024  # longer than any secret the writer redacts (the run's token)


def exception_type(exc: BaseException) -> str:
    """The name a traceback gives the exception: ``ValueError``, ``requests.HTTPError``;
    a class of the plugin's own is named by its module in the plugin (``main.BadLabel``)."""
    cls = type(exc)
    module = cls.__module__.removeprefix(f"{PACKAGE}.")
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def exception_message(exc: BaseException) -> str:
    """``str(exc)``, or a note when the plugin's ``__str__`` itself raises."""
    try:
        return str(exc)
    except Exception:  # the plugin's __str__: its failure must not hide the first one
        return f"<{type(exc).__name__}.__str__ raised>"


def plugin_location(exc: BaseException, root: str) -> str | None:
    """``main.py:12``: the innermost frame of ``exc``'s traceback in a file of the plugin's
    code under ``root`` (a library's frames are skipped: the plugin's call is what it can
    change); None when no frame is the plugin's."""
    code = os.path.abspath(os.path.join(root, PACKAGE)) + os.sep
    found = None
    for frame, line in traceback.walk_tb(exc.__traceback__):
        path = os.path.abspath(frame.f_code.co_filename)
        if path.startswith(code):
            found = f"{path[len(code) :].replace(os.sep, '/')}:{line}"
    return found


def report(writer: ProtocolWriter, exc: BaseException) -> None:
    """Write the control line that reports ``exc``, raised by the plugin's code."""

    def field(text: str, limit: int) -> str:
        # Cut before redacting (a message may be huge), but past the end of any secret
        # that begins within the limit, so no part of one is left.
        return writer.redact(valid_text(text[: limit + SECRET_ROOM_CHARS]))[:limit]

    location = plugin_location(exc, plugin_root())
    writer.control(
        ERROR_CONTROL,
        error_type=field(exception_type(exc), MAX_TYPE_CHARS),
        error_message=field(exception_message(exc), MAX_MESSAGE_CHARS),
        error_location=None if location is None else field(location, MAX_LOCATION_CHARS),
    )
