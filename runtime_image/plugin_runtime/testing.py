"""Unit-test a plugin's handlers in-process, in milliseconds: no Docker, no platform.

``PluginHarness(folder)`` imports the folder's ``main.py`` the way the sandbox does (as the
package ``plugin_code``, so relative and plain-name imports of its own modules work) and
builds ``PluginHandler`` with the runtime's own code, with a recording ``self.kili`` and
``self.api`` in place of the real clients::

    from pathlib import Path
    from plugin_runtime.testing import PluginHarness, RecordingKili

    harness = PluginHarness(Path(__file__).parent)

    def test_a_wrong_currency_makes_an_issue() -> None:
        kili = RecordingKili()
        run = harness.run_event("events/onSubmit_invalid.json", kili=kili)
        assert kili.calls_to("create_issues")[0].kwargs["text_array"] == ["..."]
        assert run.messages("WARNING") == ["..."]

A recorder returns what ``returns`` says for a method (``RecordingKili(returns={"labels":
[...]})``, ``RecordingApi(returns={("GET", "assets/a1"): {...}})``): a value, a callable
(called with the call's arguments) or an exception instance (raised). Anything else returns
``None``; ``on_call``, when given, sees each call as it is recorded. ``plugin-executor run``
(record mode) runs the same code in the sandbox with these recorders as ``self.kili`` and
``self.api``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import io
import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugin_runtime import core
from plugin_runtime.api import RequestVerbs
from plugin_runtime.dispatch import attach, construction, find_method, handler_call
from plugin_runtime.envelope import EnvelopeError, Event, event_from_dict
from plugin_runtime.logs import PLUGIN_LOGGER_NAME, plugin_logger

__all__ = [
    "ApiCall",
    "Call",
    "CapturedLog",
    "HandlerRun",
    "PluginHarness",
    "RecordingApi",
    "RecordingKili",
]

PACKAGE = "plugin_code"
DEFAULT_PROJECT = "local-project"


@dataclass(frozen=True)
class Call:
    """One ``self.kili`` method call: ``kili.<name>(*args, **kwargs)``."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class ApiCall:
    """One ``self.api`` request; ``path`` without its leading ``/``."""

    method: str
    path: str
    json: Any
    params: dict[str, Any] | None


def _answer(answer: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(answer, BaseException):
        raise answer
    return answer(*args, **kwargs) if callable(answer) else answer


class RecordingKili:
    """Stands in for ``kili.client.Kili``: every method exists, is recorded in ``calls`` and
    returns ``returns[name]`` (value, callable or exception to raise; default ``None``)."""

    def __init__(
        self,
        returns: Mapping[str, Any] | None = None,
        on_call: Callable[[Call], None] | None = None,
    ) -> None:
        self.returns: dict[str, Any] = dict(returns or {})
        self.calls: list[Call] = []
        self._on_call = on_call

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):  # copy, pickle and mocks probe these: not Kili methods
            raise AttributeError(name)

        def method(*args: Any, **kwargs: Any) -> Any:
            call = Call(name, args, kwargs)
            self.calls.append(call)
            if self._on_call is not None:
                self._on_call(call)
            return _answer(self.returns.get(name), *args, **kwargs)

        return method

    def calls_to(self, name: str) -> list[Call]:
        """The recorded calls of one method, in order."""
        return [call for call in self.calls if call.name == name]


class RecordingApi(RequestVerbs):
    """Stands in for ``self.api`` (:class:`~plugin_runtime.api.ApiClient`): requests are
    recorded in ``calls``; ``returns[(METHOD, path)]`` is the answer (value, callable or
    exception, e.g. an ``ApiError``; default ``None``)."""

    def __init__(
        self,
        returns: Mapping[tuple[str, str], Any] | None = None,
        on_call: Callable[[ApiCall], None] | None = None,
    ) -> None:
        self.returns = {(m.upper(), p.lstrip("/")): a for (m, p), a in (returns or {}).items()}
        self.calls: list[ApiCall] = []
        self._on_call = on_call

    def request(
        self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        call = ApiCall(method.upper(), path.lstrip("/"), json, params)
        self.calls.append(call)
        if self._on_call is not None:
            self._on_call(call)
        return _answer(self.returns.get((call.method, call.path)), call)


@dataclass(frozen=True)
class CapturedLog:
    """A ``self.logger`` (or other logging) record: level name and formatted message."""

    level: str
    message: str


@dataclass
class HandlerRun:
    """What one handler call did: the handler, its recorders, its logs and printed text."""

    handler: Any
    kili: Any
    api: Any
    logs: list[CapturedLog] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""

    def messages(self, level: str | None = None) -> list[str]:
        """The log messages, of one level (``"INFO"``, ``"WARNING"``, ...) or all."""
        return [log.message for log in self.logs if level is None or log.level == level]


class _Capture(logging.Handler):
    def __init__(self, into: list[CapturedLog]) -> None:
        super().__init__(logging.DEBUG)
        self._into = into
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self._into.append(CapturedLog(record.levelname, self.format(record)))


class PluginHarness:
    """Loads a plugin folder's ``PluginHandler`` once; :meth:`run_event` calls a handler."""

    def __init__(self, folder: str | Path, project_id: str = DEFAULT_PROJECT) -> None:
        self.folder = Path(folder).resolve()
        self.project_id = project_id
        self.handler_class = _load_handler_class(self.folder)

    def read_event(self, event: str | Path | Mapping[str, Any]) -> Event:
        """An event from a dict or a JSON file (relative paths are read from the folder),
        in the shape ``plugin-executor run --event`` takes (``type``, ``asset_id``,
        ``label``, ``payload``)."""
        if isinstance(event, Mapping):
            return _event(dict(event), "the event")
        path = self.folder / event
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {path} as an event: {exc}") from None
        if not isinstance(body, dict):
            raise ValueError(f"{path}: an event is a JSON object, not {type(body).__name__}")
        return _event(body, str(path))

    def run_event(
        self,
        event: str | Path | Mapping[str, Any],
        *,
        kili: Any = None,
        api: Any = None,
    ) -> HandlerRun:
        """Build ``PluginHandler`` as the runtime does and call the event's handler method.

        ``kili`` and ``api`` default to new :class:`RecordingKili` / :class:`RecordingApi`.
        What the handler raises propagates (use ``pytest.raises``); a handler the plugin
        does not define raises ``LookupError`` (the sandbox would ignore the event).
        """
        parsed = self.read_event(event)
        run = HandlerRun(None, RecordingKili() if kili is None else kili, api or RecordingApi())
        call = handler_call(parsed)
        with _captured(run):
            run.handler = self._handler(run)
            method = find_method(run.handler, call.method)
            if method is None:
                raise LookupError(
                    f"PluginHandler has no {call.method}(): event {parsed.type} would be ignored"
                )
            result = method(*call.args)
            if inspect.iscoroutine(result):
                asyncio.run(result)
        return run

    def _handler(self, run: HandlerRun) -> Any:
        core.set_current_api(run.api)
        try:
            handler = construction(self.handler_class)(run.kili, self.project_id)
        finally:
            core.set_current_api(None)
        attach(handler, logger=plugin_logger(), api=run.api, kili=run.kili)
        if not hasattr(handler, "project_id"):
            attach(handler, project_id=self.project_id)
        return handler


def _event(body: dict[str, Any], where: str) -> Event:
    try:
        return event_from_dict(body)
    except EnvelopeError as exc:
        raise ValueError(f"{where}: {exc}") from None


@contextlib.contextmanager
def _captured(run: HandlerRun) -> Iterator[None]:
    """Logging records (the ``plugin`` logger's and warnings from others) and printed text
    go into ``run`` while the handler runs."""
    capture = _Capture(run.logs)
    logger = logging.getLogger(PLUGIN_LOGGER_NAME)
    root = logging.getLogger()
    logger.addHandler(capture)
    root.addHandler(capture)
    logger.propagate = False  # each record once, through the handler on the plugin logger
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    finally:
        logger.removeHandler(capture)
        root.removeHandler(capture)
        logger.propagate = True
        run.stdout, run.stderr = out.getvalue(), err.getvalue()


def _load_handler_class(folder: Path) -> type:
    """Import ``<folder>/main.py`` as ``plugin_code.main`` (a fresh import each time, so
    harnesses of several folders coexist) and return its ``PluginHandler``."""
    main = folder / "main.py"
    if not main.is_file():
        raise FileNotFoundError(f"no plugin here: {main} does not exist")
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]
    spec = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)
    if str(folder) not in sys.path:  # plain-name imports of its modules, as in the sandbox
        sys.path.append(str(folder))
    module = importlib.import_module(f"{PACKAGE}.main")
    handler = getattr(module, "PluginHandler", None)
    if not isinstance(handler, type):
        raise LookupError(f"{main} defines no class PluginHandler")
    return handler
