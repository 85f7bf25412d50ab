"""Webhook deliveries: one attempt POSTs the event to the receiver, signed, and records it.

An invocation of a webhook is claimed, leased, retried and logged like a run of a
container; only the attempt differs. 5xx answers, 429, timeouts and connection errors are
retried with backoff (``executor.run.retry``) up to ``webhook_max_attempts``; a redirect is
never followed (the attempt fails naming its ``Location``); any other answer is final.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from executor.errors import WebhookRejected
from executor.metrics import Metrics
from executor.run.log_writer import RunLogWriter
from executor.run.outbound import AllowList, PinnedTarget, pin
from executor.run.output import OutputLine
from executor.run.retry import RetryPolicy
from executor.settings import Settings
from executor.statuses import InvocationStatus, RunErrorType
from executor.store import outcomes as outcome_store
from executor.store import queries as query_store
from executor.store import webhooks as webhook_store
from executor.store.db import Database
from executor.store.run_errors import RunError
from executor.store.tables import Event, Invocation, Webhook, utcnow

__all__ = ["SIGNATURE_HEADER", "WebhookDeliverer", "WebhookDocument", "answered", "sign"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Executor-Signature"
USER_AGENT = "plugin-executor-webhook/1"
# Statuses worth another try: the receiver is overloaded or failing, not refusing.
RETRIED_HTTP = frozenset({429})


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value: ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>." + body>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


class LogPayload(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    run_id: str = Field(serialization_alias="runId")
    project_id: str = Field(serialization_alias="projectId")
    plugin_name: str = Field(serialization_alias="pluginName")


class WebhookDocument(BaseModel):
    """The JSON body POSTed to a webhook, in Kili's webhook shape: ``eventType``,
    ``logPayload`` and ``payload`` (the event as a plugin gets it: ``label``, ``asset_id``
    and the event's own ``payload``)."""

    model_config = ConfigDict(populate_by_name=True)

    event_type: str = Field(serialization_alias="eventType")
    log_payload: LogPayload = Field(serialization_alias="logPayload")
    payload: dict[str, Any]
    attempt: int

    @classmethod
    def of(cls, invocation: Invocation, event: Event) -> WebhookDocument:
        return cls(
            event_type=event.type,
            log_payload=LogPayload(
                run_id=invocation.id,
                project_id=invocation.project_id,
                plugin_name=invocation.plugin_name,
            ),
            payload={"label": event.label, "asset_id": event.asset_id, "payload": event.payload},
            attempt=invocation.attempt,
        )

    def body(self) -> bytes:
        return json.dumps(self.model_dump(by_alias=True), separators=(",", ":")).encode()


@dataclass(frozen=True)
class Delivery:
    """How one attempt went."""

    status: InvocationStatus
    summary: str
    http_status: int | None = None
    retryable: bool = False


def answered(response: httpx.Response, elapsed_ms: int) -> Delivery:
    """What the receiver's answer means for the delivery (its body is never read)."""
    code = response.status_code
    said = f"HTTP {code} {response.reason_phrase} in {elapsed_ms} ms"
    if response.is_success:
        return Delivery(InvocationStatus.SUCCEEDED, said, code)
    if 300 <= code < 400:  # any 3xx: never followed (it could lead anywhere)
        location = response.headers.get("Location", "(no Location header)")
        return Delivery(
            InvocationStatus.FAILED,
            f"{said}: redirect to {location[:300]} not followed; configure the final URL",
            code,
        )
    retryable = code >= 500 or code in RETRIED_HTTP
    return Delivery(InvocationStatus.FAILED, said, code, retryable)


class Watchdog:
    """The time limit of a whole delivery: when it passes, the delivery's socket is shut
    down, so a receiver that keeps each read within the per-step timeout (a byte now and
    then) is cut off too. Its ``trace`` is the request's httpx ``trace`` extension."""

    CONNECTED = "connection.connect_tcp.complete"

    def __init__(self, limit_s: float) -> None:
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(limit_s, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        stream = info.get("return_value") if event == self.CONNECTED else None
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets.append(sock)
                fired = self.fired
            if fired:
                self._shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed: nothing left to cut off
            sock.shutdown(socket.SHUT_RDWR)


def visible_url(url: httpx.URL) -> str:
    """The URL without its query (which may hold a credential), for logs."""
    return str(url.copy_with(query=None))


class WebhookDeliverer:
    """Runs delivery attempts of claimed invocations; every write is fenced by the
    attempt's lease generation (a node that lost the run writes nothing)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        metrics: Metrics,
        on_logs_written: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.on_logs_written = on_logs_written
        self.timeout_s = settings.webhooks.timeout_s
        self.allowed = AllowList.parse(settings.webhooks.allowed_hosts)
        self.policy = RetryPolicy(
            settings.webhooks.max_attempts, settings.runs.retry_base_s, settings.runs.retry_max_s
        )
        # No proxies or .netrc from the environment, no redirects, and no kept connections:
        # the pool keys on the pinned address, so a TLS connection opened (and verified) for
        # one name must not carry a request for another name on the same address.
        self.client = httpx.Client(
            timeout=settings.webhooks.timeout_s,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def close(self) -> None:
        self.client.close()

    def deliver(self, invocation: Invocation, webhook: Webhook) -> None:
        """One attempt: POST the event, log what the receiver answered, record what follows."""
        with self.db.session() as session:
            event = query_store.find_event(session, invocation.event_id)
            deadline = utcnow() + timedelta(seconds=self.timeout_s)
            held = outcome_store.begin_hand_off(
                session, invocation.id, invocation.lease_generation, deadline, cold_start=False
            )
        if not held:
            log.warning("invocation %s: lease lost before the delivery", invocation.id)
            return
        label_id = event.label.get("id") if event is not None and event.label else None
        writer = RunLogWriter(
            self.db, invocation, str(label_id) if label_id else None, self.on_logs_written
        )
        if invocation.attempt > 1 and invocation.attempts:
            previous = invocation.attempts[-1]["reason"]
            writer.system(f"attempt {invocation.attempt} (previous attempt: {previous})")
        if event is None:
            self._finish(invocation, Delivery(InvocationStatus.CRASHED, "the event is gone"))
            return
        body = WebhookDocument.of(invocation, event).body()
        try:
            target = pin(webhook.url, self.allowed)
        except WebhookRejected as exc:  # AddressRefused: not sent, and not retried
            delivery = Delivery(InvocationStatus.FAILED, f"{exc.code}: {exc.message}")
        else:
            delivery = self._post(target, body, webhook)
        shown = visible_url(httpx.URL(webhook.url))
        level = "INFO" if delivery.status == InvocationStatus.SUCCEEDED else "ERROR"
        writer.write([OutputLine(level, f"POST {shown}: {delivery.summary}", "system")])
        self._conclude(invocation, writer, delivery)

    def _post(self, target: PinnedTarget, body: bytes, webhook: Webhook) -> Delivery:
        headers = {
            **target.headers,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(webhook.signing_secret, int(time.time()), body),
        }
        if webhook.header:
            headers["Authorization"] = webhook.header
        started = time.monotonic()
        try:
            # Streamed and closed unread: a receiver's answer body is never loaded.
            with (
                Watchdog(self.timeout_s) as watchdog,
                self.client.stream(
                    "POST",
                    target.request_url,
                    content=body,
                    headers=headers,
                    extensions={**target.extensions, "trace": watchdog.trace},
                ) as response,
            ):
                return answered(response, int((time.monotonic() - started) * 1000))
        except httpx.TimeoutException as exc:
            return self._timed_out(type(exc).__name__, target)
        except httpx.TransportError as exc:
            if watchdog.fired:
                return self._timed_out("the delivery's time limit", target)
            return Delivery(
                InvocationStatus.FAILED,
                f"connection to {target.address} failed: {type(exc).__name__}: {exc}"[:500],
                retryable=True,
            )

    def _timed_out(self, what: str, target: PinnedTarget) -> Delivery:
        return Delivery(
            InvocationStatus.TIMED_OUT,
            f"timed out ({what}) after {self.timeout_s:g} s at {target.address}",
            retryable=True,
        )

    def _conclude(self, invocation: Invocation, writer: RunLogWriter, delivery: Delivery) -> None:
        if delivery.retryable and invocation.attempt < self.policy.max_attempts:
            delay = self.policy.delay_s(invocation.attempt)
            writer.system(f"{delivery.summary}; retrying in {delay:.1f} s")
            with self.db.session() as session:
                if outcome_store.retry_later(
                    session, invocation.id, invocation.lease_generation, delivery.summary, delay
                ):
                    webhook_store.note_http_status(session, invocation.id, delivery.http_status)
            return
        if delivery.retryable:
            delivery = Delivery(
                delivery.status,
                f"gave up after {invocation.attempt} attempts: {delivery.summary}",
                delivery.http_status,
            )
            writer.system(delivery.summary)
        self._finish(invocation, delivery)

    def _finish(self, invocation: Invocation, delivery: Delivery) -> None:
        succeeded = delivery.status == InvocationStatus.SUCCEEDED
        with self.db.session() as session:
            recorded = outcome_store.finish(
                session,
                invocation.id,
                invocation.lease_generation,
                delivery.summary,
                status=delivery.status,
                error=None if succeeded else delivery.summary,
                failure=None if succeeded else RunError(RunErrorType.WEBHOOK, delivery.summary),
            )
            if recorded:
                webhook_store.note_http_status(session, invocation.id, delivery.http_status)
        self.on_logs_written()
        if not recorded:
            log.warning("invocation %s: lease lost, delivery not recorded", invocation.id)
            return
        self.metrics.invocations_finished.labels(delivery.status).inc()
