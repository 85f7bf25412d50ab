"""Parsing and validation of the invocation envelope read from stdin.

Error messages name the offending field and never contain field values (the envelope
carries the API token).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing is not imported at run time: see loader's docstring
if TYPE_CHECKING:
    from typing import Any, BinaryIO


class EnvelopeError(ValueError):
    """The envelope is not usable; the message says what is wrong."""


@dataclass(frozen=True)
class Event:
    """The event to dispatch. ``label`` and ``payload`` are ``{}`` when absent or null."""

    type: str
    asset_id: str | None
    label: dict[str, Any]
    payload: dict[str, Any]


@dataclass(frozen=True)
class ApiAccess:
    """Where the platform API (the gateway) is and the invocation's token."""

    url: str
    token: str = field(repr=False)
    # The gateway's Unix socket inside the container; when set, the runtime relays
    # ``url``'s loopback port to it (absent in older envelopes: no forwarder).
    socket: str | None = None


@dataclass(frozen=True)
class RecordAnswers:
    """Record mode (:mod:`plugin_runtime.record`) and its canned answers: Kili method name
    → value, ``(METHOD, path)`` → value."""

    kili: dict[str, Any]
    api: dict[tuple[str, str], Any]


@dataclass(frozen=True)
class Envelope:
    """``{"invocation_id", "plugin", "version", "project_id", "event", "api", "deadline"}``,
    and ``record`` only from ``plugin-executor run`` (record mode)."""

    invocation_id: str | None
    plugin: str | None
    version: str | int | None
    project_id: str
    event: Event
    api: ApiAccess
    deadline: str | int | float | None
    record: RecordAnswers | None = None


def _get(obj: dict[str, Any], key: str, where: str, types: tuple[type, ...], required: bool) -> Any:
    name = f"{where}{key}"
    if key not in obj or obj[key] is None:
        if required:
            raise EnvelopeError(f"missing field {name}")
        return None
    value = obj[key]
    if not isinstance(value, types) or isinstance(value, bool):
        expected = " or ".join(t.__name__ for t in types)
        raise EnvelopeError(f"field {name} must be {expected}, not {type(value).__name__}")
    return value


def _object(obj: dict[str, Any], key: str, where: str, required: bool) -> dict[str, Any]:
    value = _get(obj, key, where, (dict,), required)
    return value if value is not None else {}


def _parse_event(doc: dict[str, Any]) -> Event:
    event = _object(doc, "event", "", required=True)
    event_type = _get(event, "type", "event.", (str,), required=True)
    if not event_type:
        raise EnvelopeError("field event.type must not be empty")
    return Event(
        type=event_type,
        asset_id=_get(event, "asset_id", "event.", (str,), required=False),
        label=_object(event, "label", "event.", required=False),
        payload=_object(event, "payload", "event.", required=False),
    )


def event_from_dict(event: dict[str, Any]) -> Event:
    """An event as the envelope's ``event`` field holds it (``type``, ``asset_id``,
    ``label``, ``payload``), checked the same way; other keys are ignored."""
    return _parse_event({"event": event})


def _parse_api(doc: dict[str, Any]) -> ApiAccess:
    api = _object(doc, "api", "", required=True)
    url = _get(api, "url", "api.", (str,), required=True)
    if not url.startswith(("http://", "https://")):
        raise EnvelopeError("field api.url must be an http:// or https:// URL")
    token = _get(api, "token", "api.", (str,), required=True)
    if not token:
        raise EnvelopeError("field api.token must not be empty")
    socket_path = _get(api, "socket", "api.", (str,), required=False)
    return ApiAccess(url=url, token=token, socket=socket_path or None)


def _api_key(key: str) -> tuple[str, str]:
    method, _, path = key.partition(" ")
    if not method.isalpha() or not path.strip():
        raise EnvelopeError(
            f"record.api keys are 'METHOD path' (e.g. 'GET assets/a1'), not {key[:80]!r}"
        )
    return method.upper(), path.strip().lstrip("/")


def _parse_record(doc: dict[str, Any]) -> RecordAnswers | None:
    if doc.get("record") is None:
        return None
    record = _object(doc, "record", "", required=True)
    kili = _object(record, "kili", "record.", required=False)
    api = _object(record, "api", "record.", required=False)
    return RecordAnswers(kili=kili, api={_api_key(k): v for k, v in api.items()})


def read_envelope(stdin: BinaryIO) -> Envelope:
    """The envelope on ``stdin``: its first line when that line is a whole JSON document
    (the executor writes one line, and a warm container need not wait for the end of
    stdin, which the engine relays milliseconds after the line), else everything up to the
    end of stdin (an envelope written over several lines, by hand)."""
    first = stdin.readline()
    if first.endswith(b"\n") and first.strip():
        try:
            doc = _decode(first)
        except EnvelopeError:
            pass  # not the whole envelope: read on
        else:
            return _envelope(doc)
    return parse_envelope(first + stdin.read())


def parse_envelope(raw: bytes) -> Envelope:
    """Parse the stdin bytes; raise :class:`EnvelopeError` saying what is wrong.

    Required: ``project_id``, ``event.type``, ``api.url`` (http/https), ``api.token``;
    ``api.socket`` is optional; ``record`` (record mode) is absent or an object of
    ``kili`` (method → answer) and ``api`` (``"METHOD path"`` → answer).
    ``invocation_id``, ``plugin``, ``version``, ``deadline``, ``event.asset_id``,
    ``event.label``, ``event.payload`` may be absent or null but are type-checked.
    """
    return _envelope(_decode(raw))


def _decode(raw: bytes) -> Any:
    if not raw.strip():
        raise EnvelopeError("stdin is empty: expected one JSON envelope")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"envelope is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EnvelopeError(
            f"envelope is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
        ) from None


def _envelope(doc: Any) -> Envelope:
    if not isinstance(doc, dict):
        raise EnvelopeError(f"envelope must be a JSON object, not {type(doc).__name__}")
    return Envelope(
        invocation_id=_get(doc, "invocation_id", "", (str,), required=False),
        plugin=_get(doc, "plugin", "", (str,), required=False),
        version=_get(doc, "version", "", (str, int), required=False),
        project_id=_get(doc, "project_id", "", (str,), required=True),
        event=_parse_event(doc),
        api=_parse_api(doc),
        deadline=_get(doc, "deadline", "", (str, int, float), required=False),
        record=_parse_record(doc),
    )
