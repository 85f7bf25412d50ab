"""Routing of Python logging (and warnings, and uncaught thread exceptions) to the protocol."""

from __future__ import annotations

import logging
import threading

from plugin_runtime.protocol import ProtocolWriter, level_name

PLUGIN_LOGGER_NAME = "plugin"


class ProtocolHandler(logging.Handler):
    """Writes each logging record as one ``stream: logger`` protocol record.

    The message is ``record.getMessage()`` followed by the exception / stack text when
    present, so a traceback stays inside one record.
    """

    def __init__(self, writer: ProtocolWriter) -> None:
        super().__init__(logging.NOTSET)
        self._writer = writer
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record).rstrip("\n")
            self._writer.record(level_name(record.levelno), msg, "logger", record.created)
        except Exception:
            self.handleError(record)


def plugin_logger() -> logging.Logger:
    """The logger handed to plugins as ``self.logger``: named ``plugin``, level DEBUG."""
    logger = logging.getLogger(PLUGIN_LOGGER_NAME)
    logger.setLevel(logging.DEBUG)
    return logger


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    plugin_logger().error(
        "Exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def install_logging(writer: ProtocolWriter) -> None:
    """Send the root logger (level WARNING) and the ``plugin`` logger (DEBUG) to ``writer``.

    Also routes ``warnings.warn`` through logging and logs uncaught exceptions of threads as
    one ERROR record each.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(ProtocolHandler(writer))
    root.setLevel(logging.WARNING)
    plugin_logger()
    logging.captureWarnings(True)
    threading.excepthook = _thread_excepthook
