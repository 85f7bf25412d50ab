"""One attempt of one invocation, up to its container's end: what it works with (its log
writer and output collector), its container (a warm one, else a fresh one, pulled by digest
on first use), the hand-off (the token and the deadline begin there, then the envelope) and
what the container's end revokes. What follows the end is ``executor.run.outcome``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from executor.errors import SandboxError
from executor.gateway.live import LiveTokens
from executor.gateway.policy import PlatformTargets
from executor.gateway.server import CONTAINER_SOCKET_DIR, SOCKET_NAME
from executor.metrics import Metrics
from executor.registry import Registry, RegistryError
from executor.run.containers import StartedContainer
from executor.run.limits import effective_profile
from executor.run.log_writer import RunLogWriter
from executor.run.output import OutputCollector
from executor.run.pulling import start_pulling
from executor.run.retry import Infrastructure
from executor.run.sandbox import Sandbox
from executor.run.warm_pool import WarmPool
from executor.schemas.envelope import ApiInfo, Envelope, EnvelopeEvent
from executor.settings import SandboxProfile, Settings
from executor.store import gateway as gateway_store
from executor.store import outcomes as outcome_store
from executor.store import queries as query_store
from executor.store.db import Database
from executor.store.tables import Event, Invocation, utcnow
from executor.tokens import hash_token

__all__ = ["Attempt", "AttemptStarter", "ToRun", "failed_part", "what_to_run"]

log = logging.getLogger(__name__)


def failed_part(error: SandboxError) -> Infrastructure:
    """What failed a container's start: the registry (a pull) or the engine."""
    return Infrastructure.REGISTRY if isinstance(error, RegistryError) else Infrastructure.ENGINE


@dataclass
class Attempt:
    """What one attempt works with."""

    invocation: Invocation
    writer: RunLogWriter
    collector: OutputCollector
    token_revoked: bool = False
    live: LiveTokens = field(default_factory=LiveTokens)  # the gateway's, when it shares one
    # Called once, when the plugin's handler has started (the warm pool's refill).
    on_handler_started: Callable[[], None] | None = None

    def on_output(self, db: Database) -> Callable[[int, bytes], bool]:
        def sink(stream_id: int, data: bytes) -> bool:
            lines = self.collector.feed(stream_id, data)
            self._revoke_when_handler_finished(db)
            self.writer.write(lines, self.collector.read_bytes)
            self._note_handler_start(db)
            # A run whose lease is lost is stopped: another node runs it now.
            return not self.collector.truncated and not self.writer.lost

        return sink

    def _revoke_when_handler_finished(self, db: Database) -> None:
        """The handler returned: nothing the plugin left running may call the platform."""
        if self.collector.handler_finished_at is not None and not self.token_revoked:
            self.token_revoked = True
            self.live.revoke(self.invocation.id)  # refused from now on, before the store says
            with db.session() as session:
                gateway_store.revoke_for(
                    session, self.invocation.id, self.invocation.lease_generation
                )

    def _note_handler_start(self, db: Database) -> None:
        started = self.collector.handler_started_at
        if started is not None and self.invocation.handler_started_at is None:
            self.invocation.handler_started_at = started
            with db.session() as session:
                outcome_store.mark_handler_started(
                    session, self.invocation.id, self.invocation.lease_generation, started
                )
            if self.on_handler_started is not None:
                self.on_handler_started()


@dataclass(frozen=True)
class ToRun:
    event: Event
    image: str
    profile: SandboxProfile
    seq: int  # of the run's last log record (earlier attempts')


def what_to_run(
    db: Database,
    operator: SandboxProfile,
    invocation: Invocation,
    inputs: query_store.RunInputs | None = None,
) -> ToRun | None:
    """A claimed attempt's event, image, sandbox profile (``operator``'s, tightened by the
    plugin's limits) and last log record, from its ``inputs`` (read now when the claim did
    not); None when its version or event is gone."""
    if inputs is None:
        with db.session() as session:
            inputs = query_store.run_inputs(session, invocation)
    event, version, plugin = inputs.event, inputs.version, inputs.plugin
    # The plugin's own limits, tightened from the operator's (executor.run.limits).
    profile = effective_profile(operator, plugin.limits if plugin else None)
    if inputs.runtime:  # the activation's: the claim made sure this node has it
        profile = profile.model_copy(update={"oci_runtime": inputs.runtime})
    image = version.run_image if version is not None else None
    if event is None or image is None:
        return None
    return ToRun(event, image, profile, inputs.last_seq)


class AttemptStarter:
    """Opens attempts and brings them to their container's hand-off, in containers from
    ``pool`` when it has one ready."""

    def __init__(
        self,
        db: Database,
        sandbox: Sandbox,
        pool: WarmPool,
        settings: Settings,
        metrics: Metrics,
        live: LiveTokens,
        on_logs_written: Callable[[], None],
    ) -> None:
        """``live`` holds the tokens minted here for the gateway of this process;
        ``on_logs_written`` is called after log records were committed."""
        self.db = db
        self.sandbox = sandbox
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.live = live
        self.on_logs_written = on_logs_written
        self.targets = PlatformTargets(settings)
        self.registry = Registry.configured(settings.images)

    def open(
        self,
        invocation: Invocation,
        event: Event | None,
        profile: SandboxProfile | None = None,
        resume_at: Mapping[int, int] | None = None,
        seq: int | None = None,
        pooled: bool = False,
    ) -> Attempt:
        """The attempt's writer (its first line names the previous attempt's end) and
        collector; ``resume_at``: the output bytes already stored, ``seq``: the run's last
        record's, when the caller read it already; ``pooled``: its container came from
        ``container`` (the warm pool replaces what the run took, or would have, once the
        handler has started)."""
        label = event.label if event is not None else None
        label_id = label.get("id") if isinstance(label, dict) else None
        writer = RunLogWriter(
            self.db, invocation, str(label_id) if label_id else None, self.on_logs_written, seq
        )
        if invocation.attempt > 1 and invocation.attempts:
            previous = invocation.attempts[-1]["reason"]
            writer.system(f"attempt {invocation.attempt} (previous attempt: {previous})")
        cap = (profile or self.settings.sandbox).log_cap_bytes
        collector = OutputCollector(cap, resume_at or {})
        attempt = Attempt(invocation, writer, collector, live=self.live)
        if pooled:
            refill = partial(self.pool.refill, invocation.version_id, invocation.id)
            attempt.on_handler_started = refill
        return attempt

    def container(
        self, invocation: Invocation, image: str, profile: SandboxProfile
    ) -> tuple[StartedContainer, bool]:
        """A warm container from the pool, else a fresh one; and whether it was warm. The
        caller calls ``container_ended`` with ``pooled`` once done with it; when this
        raises, the pool is told here."""
        warm = self.pool.take(invocation.version_id, image, profile, invocation.id)
        self.metrics.starts.labels("warm" if warm else "cold").inc()
        if warm is not None:
            return warm, True
        try:
            started = start_pulling(
                self.sandbox,
                self.registry,
                image,
                profile,
                invocation_id=invocation.id,
                generation=invocation.lease_generation,
            )
        except BaseException:
            self.pool.refill(invocation.version_id, invocation.id)
            raise
        return started, False

    def begin_hand_off(
        self, invocation: Invocation, token: str, profile: SandboxProfile, warm: bool
    ) -> datetime | None:
        """Record the deadline, the start kind and the token; returns the deadline (None:
        the lease was lost, nothing recorded)."""
        deadline = utcnow() + timedelta(seconds=profile.timeout_s)
        invocation.cold_start = not warm
        generation, token_sha256 = invocation.lease_generation, hash_token(token)
        handed = outcome_store.HandOff(
            invocation.id, generation, deadline, not warm, token_sha256, invocation.project_id
        )
        if not outcome_store.hand_off(self.db, handed):
            return None
        self.live.grant(token_sha256, invocation.id, invocation.project_id, generation, deadline)
        return deadline

    def envelope(
        self, invocation: Invocation, event: Event, token: str, deadline: datetime
    ) -> Envelope:
        return Envelope(
            invocation_id=invocation.id,
            plugin=invocation.plugin_name,
            version=invocation.version_number,
            project_id=invocation.project_id,
            event=EnvelopeEvent(
                type=event.type, asset_id=event.asset_id, label=event.label, payload=event.payload
            ),
            api=ApiInfo(
                url=self.targets.plugin_url(invocation.project_id),
                token=token,
                socket=f"{CONTAINER_SOCKET_DIR}/{SOCKET_NAME}",
            ),
            deadline=deadline.astimezone(UTC),
        )

    def container_ended(self, invocation: Invocation, pooled: bool = False) -> None:
        """The token never outlives the container, whatever happens next; the records of
        the calls it made are written before the run's end is. ``pooled``: it came from
        ``container``: what the run took of the warm pool is replaced now, if its handler
        never started."""
        if pooled:
            self.pool.refill(invocation.version_id, invocation.id)
        self.live.revoke(invocation.id)
        if not self.live.settle(invocation.id):
            log.warning("invocation %s: gateway call records still pending", invocation.id)
        with self.db.session() as session:
            gateway_store.revoke_for(session, invocation.id, invocation.lease_generation)
        self.live.forget(invocation.id)  # the store refuses it now

    def phase(self, name: str, since: datetime, until: datetime | None = None) -> datetime:
        """Observe how long a start phase took; returns its end."""
        end = until or utcnow()
        self.metrics.start_phases.labels(name).observe(max((end - since).total_seconds(), 0.0))
        return end
