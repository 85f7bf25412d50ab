"""The runtime's main flow: plugin import → envelope → handler call → exit code.

``main.py`` is imported before stdin is read, so a container can be started ahead of its
event (the executor's warm pool) with the plugin already loaded; an import failure is
still reported only once the envelope came, the same way for a pooled or a fresh container.

The run ends when the handler returns: :func:`main` writes ``handler_finished`` (the
executor then revokes the run's token), drains and closes the output, and ``__main__``
ends the process with ``os._exit`` — threads the plugin left running, daemon or not, and its
``atexit`` hooks get no more time; the container's init then kills every other process.

Exit codes: 0 handler succeeded (or the handler method is missing: WARNING record);
1 the handler (or ``PluginHandler``'s constructor) raised; 2 malformed envelope or the
plugin cannot be loaded; 3 internal error of the runtime itself.
"""

from __future__ import annotations

import inspect
import select
import sys
import traceback

from plugin_runtime import core
from plugin_runtime.api import ApiClient, preload
from plugin_runtime.dispatch import attach, construction, find_method, handler_call
from plugin_runtime.envelope import Envelope, EnvelopeError, read_envelope
from plugin_runtime.failure import report
from plugin_runtime.forwarder import ForwarderError, start_forwarder
from plugin_runtime.kili_client import build_kili
from plugin_runtime.loader import PluginLoadError, load_handler_class, plugin_root
from plugin_runtime.logs import plugin_logger
from plugin_runtime.output import Output

TYPE_CHECKING = False  # typing is not imported at run time: see loader's docstring
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

EXIT_OK = 0
EXIT_HANDLER_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


def _format_exception(exc: BaseException) -> str:
    """Traceback text without the runtime's own calling frame."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip("\n")


def _call(out: Output, method: Any, name: str, args: tuple[Any, ...]) -> bool:
    """Call the handler method (awaited if ``async def``); log a failure as one ERROR record."""
    try:
        result = method(*args)
        if inspect.iscoroutine(result):
            import asyncio  # only async handlers need it (imported ahead: _preload_if_early)

            asyncio.run(result)
    except SystemExit as exc:
        if exc.code in (None, 0):
            return True
        out.log("ERROR", f"PluginHandler.{name}() called sys.exit({exc.code!r})")
        report(out.writer, exc)
        return False
    except Exception as exc:
        out.log("ERROR", f"PluginHandler.{name}() raised:\n{_format_exception(exc)}")
        report(out.writer, exc)
        return False
    return True


def _start_gateway_forwarder(out: Output, envelope: Envelope) -> None:
    """Relay the platform API URL's loopback port to the gateway socket."""
    if envelope.api.socket is None:
        return
    try:
        start_forwarder(envelope.api.url, envelope.api.socket)
    except ForwarderError as exc:
        out.log("WARNING", f"platform API calls will fail: the gateway forwarder: {exc}")


def _load() -> Callable[[Any, str], Any] | PluginLoadError:
    """How to build ``PluginHandler`` (``dispatch.construction``), or the reason it cannot
    be loaded (reported after the envelope)."""
    try:
        return construction(load_handler_class(plugin_root()))
    except PluginLoadError as exc:
        return exc


def _clients(out: Output, envelope: Envelope) -> tuple[Any, Any]:
    """``self.kili`` and ``self.api``: the recorders in record mode, else the real clients."""
    if envelope.record is not None:  # record mode (plugin-executor run): not on a start's path
        from plugin_runtime.record import RECORDED_CALL, recorders

        return recorders(envelope.record, lambda text: out.writer.control(RECORDED_CALL, call=text))
    _start_gateway_forwarder(out, envelope)
    api = ApiClient(envelope.api.url, envelope.api.token)
    kili = build_kili(envelope.api.url, envelope.api.token, lambda m: out.log("WARNING", m))
    return kili, api


def _run(
    out: Output, envelope: Envelope, build: Callable[[Any, str], Any] | PluginLoadError
) -> int:
    if isinstance(build, PluginLoadError):
        out.log("ERROR", str(build))
        return EXIT_BAD_INPUT
    kili, api = _clients(out, envelope)
    core.set_current_api(api)
    call = handler_call(envelope.event)
    try:
        handler = build(kili, envelope.project_id)
    except (Exception, SystemExit) as exc:
        out.log("ERROR", f"PluginHandler() raised:\n{_format_exception(exc)}")
        report(out.writer, exc)
        return EXIT_HANDLER_FAILED
    attach(handler, logger=plugin_logger(), api=api, kili=kili)
    if not hasattr(handler, "project_id"):
        attach(handler, project_id=envelope.project_id)
    method = find_method(handler, call.method)
    if method is None:
        out.log(
            "WARNING",
            f"PluginHandler has no {call.method}(); event {envelope.event.type} ignored",
        )
        return EXIT_OK
    out.writer.control("handler_started", handler=call.method)
    ok = _call(out, method, call.method, call.args)
    out.drain()
    out.writer.control("handler_finished", ok=ok)
    return EXIT_OK if ok else EXIT_HANDLER_FAILED


def _preload_if_early() -> None:
    """Started ahead of its event (the warm pool), the container imports now, while it waits,
    what a cold start leaves until the handler uses it: the API's transport and asyncio."""
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    if not ready:
        preload()
        import asyncio  # noqa: F401


def main() -> int:
    """Run one invocation: import the plugin, read the envelope from stdin, dispatch,
    return the exit code."""
    out = Output.install()
    try:
        build = _load()
        _preload_if_early()
        try:
            envelope = read_envelope(sys.stdin.buffer)
        except EnvelopeError as exc:
            out.log("ERROR", f"invalid envelope: {exc}")
            return EXIT_BAD_INPUT
        out.writer.add_secret(envelope.api.token)
        return _run(out, envelope, build)
    except BaseException:
        out.log("CRITICAL", f"plugin runtime internal error:\n{traceback.format_exc()}")
        return EXIT_INTERNAL
    finally:
        out.close()
