"""Running a build on the engine: stopping it from another thread (timeout, shutdown) and
telling a failed step's cause."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable
from typing import Any

import requests

from executor.errors import BuildFailed

__all__ = ["BuildInterrupted", "BuildTimedOut"]

STOP_POLL_S = 0.5  # how often a running build checks whether the executor is stopping


class BuildTimedOut(BuildFailed):
    """The build ran past its wall time and was stopped."""


class BuildInterrupted(Exception):
    """The build was stopped because the executor is shutting down (it resumes at start)."""


# The classic builder's error for a step whose starting image was removed meanwhile.
VANISHED_PARENT = re.compile(r'unable to find image "?sha256:[0-9a-f]{64}')
# The classic builder's line naming a RUN step's container, and its error for a failed step.
RUNNING_IN = re.compile(r"---> Running in ([0-9a-f]{12,64})")
STEP_FAILED = re.compile(r"The command '(.*)' returned a non-zero code: (\d+)", re.DOTALL)
# The engine's build endpoint (``/v1.41/build?...``): the one request of a build.
BUILD_PATH = re.compile(r"/build(?:\?|$)")
SIGKILL_EXIT = 137  # 128 + SIGKILL: what the kernel's OOM killer sends
BUILD_MEMORY_SETTING = "EXECUTOR_BUILD_MEMORY_MIB"
COMMAND_SHOWN_CHARS = 200
MIB = 1024 * 1024


class StepFailed(BuildFailed):
    """A build step failed; ``container`` is its step container's id (short), if seen."""

    def __init__(self, error: str, container: str | None) -> None:
        super().__init__(f"{error}: read the build log above")
        self.error = error
        self.container = container


class ParentVanished(Exception):
    """A build step's starting image was removed while the build ran."""


def once_more_if_a_parent_vanished(
    build: Callable[[], None], on_output: Callable[[str], None]
) -> None:
    """``build()``, again once if an image a step starts from was removed while it ran:
    removing an image also removes its untagged parents, and another build may just have
    taken one of them from its cache (image GC, ``docker rmi``). Building again makes what
    is gone."""
    try:
        build()
        return
    except ParentVanished:
        on_output("\n(an image the build's cache used was removed meanwhile: building again)\n")
    try:
        build()
    except ParentVanished as vanished:
        raise BuildFailed(f"{vanished}: read the build log above") from None


class BuildAbort:
    """Stops one running build from another thread: the engine cancels a build (and kills
    and removes its step container) when the client connection goes away, so shutting the
    socket down stops a silent build as well as a chatty one."""

    def __init__(self) -> None:
        self.why: str | None = None
        self._response: requests.Response | None = None  # the build request running now
        self._earlier: list[requests.Response] = []  # a build tried again ran one before
        self._lock = threading.Lock()
        # The engine's one client serves every thread: only the build's own thread's
        # response is this build's.
        self._thread = threading.get_ident()

    def capture(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        # Only the build's own request: other calls from this thread (the OOM lookup after
        # a failed step) are not the build, and must not hide its response from release.
        if threading.get_ident() != self._thread or not BUILD_PATH.search(response.url):
            return
        with self._lock:
            if self._response is not None:
                self._earlier.append(self._response)
            self._response = response
            if self.why is not None:
                self._shutdown()

    def abort(self, why: str) -> None:
        with self._lock:
            if self.why is not None:  # already aborted, or finished
                return
            self.why = why
            self._shutdown()

    def finish(self) -> None:
        with self._lock:
            if self.why is None:
                self.why = "done"

    def watch(self, stop: threading.Event) -> None:
        """Abort with "stop" when ``stop`` is set; returns once the build ended."""
        while self.why is None:
            if stop.wait(STOP_POLL_S):
                self.abort("stop")

    def _socket(self) -> socket.socket | None:
        connection = getattr(getattr(self._response, "raw", None), "connection", None)
        sock = getattr(connection, "sock", None)
        return sock if isinstance(sock, socket.socket) else None

    def _shutdown(self) -> None:
        if self._response is None:
            return
        sock = self._socket()
        with contextlib.suppress(OSError):
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        self._response.close()

    def release(self) -> None:
        """After the build's thread stopped reading: close the build's response (a stream
        left unread, after an error step, would keep its connection) and an aborted build's
        socket (shut down, it is of no further use; the shared client's pool would not
        close it)."""
        with self._lock:
            response, aborted = self._response, self.why not in (None, "done")
            sock = self._socket() if aborted else None
            responses = [*self._earlier, *([response] if response is not None else [])]
        for each in responses:
            with contextlib.suppress(Exception):
                each.close()
        if sock is not None:
            sock.close()
