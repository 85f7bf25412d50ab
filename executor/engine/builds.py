"""Running a build on the engine (``engine.images.build``): stopping it from another thread
(timeout, shutdown) and telling a failed step's cause."""

from __future__ import annotations

import contextlib
import functools
import io
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import docker
import requests

from executor.engine.docker_errors import ENGINE_FAILURES, engine_errors
from executor.errors import BuildFailed, SandboxError

__all__ = ["BuildInterrupted", "BuildTimedOut", "build_image"]

STOP_POLL_S = 0.5  # how often a running build checks whether the executor is stopping


class BuildTimedOut(BuildFailed):
    """The build ran past its wall time and was stopped."""


class BuildInterrupted(Exception):
    """The build was stopped because the executor is shutting down (it resumes at start)."""


# The classic builder's errors for a step whose starting image was removed meanwhile: at
# the step's start, or as it commits the step's image on top of it.
VANISHED_PARENT = re.compile(
    r'unable to find image "?sha256:[0-9a-f]{64}'
    r"|failed to set parent sha256:[0-9a-f]{64}: unknown parent image ID"
)
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


def build_image(
    api: docker.APIClient,
    context: bytes,
    *,
    tag: str,
    on_output: Callable[[str], None],
    timeout_s: float,
    stop: threading.Event,
    **options: Any,
) -> str:
    """Build ``context`` (a tar with a Dockerfile) as ``tag``; returns the image id.

    Output lines go to ``on_output`` as they come. Past ``timeout_s`` the build is
    stopped and ``BuildTimedOut`` raised; when ``stop`` is set (shutdown) it is stopped
    and ``BuildInterrupted`` raised; an error step raises ``BuildFailed``. ``options``
    are docker-py ``build`` arguments (labels, network_mode, container_limits, ...).
    """
    abort = BuildAbort()
    api.hooks["response"].append(abort.capture)
    watchdog = threading.Timer(timeout_s, abort.abort, ("timeout",))
    stopper = threading.Thread(target=abort.watch, args=(stop,), daemon=True)
    watchdog.daemon = True
    watchdog.start()
    stopper.start()
    started = time.time()
    try:
        once_more_if_a_parent_vanished(
            functools.partial(_stream_build, api, context, tag, on_output, abort, options),
            on_output,
        )
    except StepFailed as failed:
        raise _step_failure(api, failed, started, options) from None
    except BuildFailed:
        raise
    except Exception as exc:
        # After an abort, the broken stream's error is expected; before, it is the engine's.
        if abort.why is None:
            raise SandboxError(
                f"Docker Engine error while building the plugin image: {exc}. "
                "Check that dockerd is running."
            ) from exc
    finally:
        watchdog.cancel()
        abort.finish()
        api.hooks["response"].remove(abort.capture)
        abort.release()
    if abort.why == "timeout":
        raise BuildTimedOut(
            f"the build ran past its wall time of {timeout_s:g} s and was stopped: trim "
            "requirements.txt, or ask the operator to raise EXECUTOR_BUILD_TIMEOUT_S"
        )
    if abort.why == "stop":
        raise BuildInterrupted()
    with engine_errors("reading the built image"):
        return str(api.inspect_image(tag)["Id"])  # type: ignore[no-untyped-call]


def _stream_build(
    api: docker.APIClient,
    context: bytes,
    tag: str,
    on_output: Callable[[str], None],
    abort: BuildAbort,
    options: dict[str, Any],
) -> None:
    stream = api.build(
        fileobj=io.BytesIO(context),
        custom_context=True,
        tag=tag,
        rm=True,
        forcerm=True,
        decode=True,
        timeout=None,  # the watchdog bounds the build, not a read timeout
        use_config_proxy=False,
        **options,
    )
    step: str | None = None  # the container of the step running now
    for chunk in stream:
        if abort.why is not None:
            return
        if "stream" in chunk:
            on_output(str(chunk["stream"]))
            running = RUNNING_IN.search(str(chunk["stream"]))
            step = running[1] if running else step
        if "error" in chunk:
            error = str(chunk["error"]).strip()
            if VANISHED_PARENT.search(error):
                raise ParentVanished(error)
            raise StepFailed(error, step)


def _step_failure(
    api: docker.APIClient, failed: StepFailed, since: float, options: dict[str, Any]
) -> BuildFailed:
    """A failed step's error, naming the build's memory limit when the engine recorded
    an OOM kill in the step's container (or the step was SIGKILLed, as the OOM killer
    does): the engine's own error says only "returned a non-zero code"."""
    step = STEP_FAILED.search(failed.error)
    memory = options.get("container_limits", {}).get("memory")
    if step is None or memory is None:
        return failed
    command, code = step[1], int(step[2])
    oom = _oom_killed(api, failed.container, since)
    if not oom and code != SIGKILL_EXIT:
        return failed
    doing = "pip install" if "pip install" in command else command[:COMMAND_SHOWN_CHARS]
    limit = f"memory limit of {memory // MIB} MiB ({BUILD_MEMORY_SETTING})"
    what = (
        f"the build step ran out of memory: its {limit} was exceeded while running "
        f"{doing} (exit {code})"
        if oom
        else f"the build step was killed (exit {code}) while running {doing}, most likely "
        f"at its {limit}"
    )
    return BuildFailed(
        f"{what}: trim requirements.txt, or ask the operator to raise {BUILD_MEMORY_SETTING}"
    )


def _oom_killed(api: docker.APIClient, container: str | None, since: float) -> bool:
    """Whether the engine recorded an OOM kill in ``container`` (an id or its short
    form) since ``since`` (epoch seconds)."""
    if container is None:
        return False
    try:
        events = api.events(
            since=int(since),
            until=int(time.time()) + 1,
            decode=True,
            filters={"type": "container", "event": "oom"},
        )
    except ENGINE_FAILURES:
        return False  # the engine's own error stands
    try:  # a stream on the engine's socket: closed whether or not it was read to its end
        return any(str(event.get("id", "")).startswith(container) for event in events)
    except ENGINE_FAILURES:
        return False
    finally:
        events.close()
