"""Maps an event to a handler method and its arguments; builds the handler instance."""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass

from plugin_runtime.envelope import Event

TYPE_CHECKING = False  # typing is not imported at run time: see loader's docstring
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

LABEL_EVENTS = {
    "onSubmit": "on_submit",
    "onReview": "on_review",
    "onCustomInterfaceClick": "on_custom_interface_click",
}
SEND_BACK_EVENT = "onSendBackToQueue"
GENERIC_METHOD = "on_event"


@dataclass(frozen=True)
class HandlerCall:
    """Which method of ``PluginHandler`` to call and with which positional arguments."""

    method: str
    args: tuple[Any, ...]


def handler_call(event: Event) -> HandlerCall:
    """``onSubmit``/``onReview``/``onCustomInterfaceClick`` → ``(label, asset_id)``;
    ``onSendBackToQueue`` → ``on_send_back_to_queue(asset_id)``; anything else →
    ``on_event(payload)``."""
    if event.type in LABEL_EVENTS:
        return HandlerCall(LABEL_EVENTS[event.type], (event.label, event.asset_id))
    if event.type == SEND_BACK_EVENT:
        return HandlerCall("on_send_back_to_queue", (event.asset_id,))
    return HandlerCall(GENERIC_METHOD, (event.payload,))


def construction(cls: type) -> Callable[[Any, str], Any]:
    """How to build the handler: ``cls(kili, project_id)`` — or ``cls()`` if its constructor
    takes no arguments. Decided once the class is loaded, before the event comes: a
    process's first ``inspect.signature`` takes milliseconds (a warm container spends them
    while it waits). A signature that cannot be read, or raises, means Kili's form."""
    try:
        signature = inspect.signature(cls)
    except (Exception, SystemExit):  # the plugin's metaclass may compute it
        return cls
    try:
        signature.bind(None, "")
    except TypeError:
        try:
            signature.bind()
        except TypeError:
            pass
        else:
            return lambda _kili, _project_id: cls()
    return cls


def attach(handler: Any, **attributes: Any) -> None:
    """Set attributes on the handler; read-only ones (the plugin's choice) are skipped."""
    for name, value in attributes.items():
        with contextlib.suppress(AttributeError):
            setattr(handler, name, value)


def find_method(handler: Any, name: str) -> Any | None:
    """The bound handler method ``name``, or ``None`` when missing or not callable."""
    method = getattr(handler, name, None)
    return method if callable(method) else None
