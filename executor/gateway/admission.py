"""Whether the gateway forwards one call: the run token (in memory for a run of this
process, in the store otherwise), the path against the project's platform API base, the
body size and the run's call count."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from executor.gateway.forward import Incoming, Reply, error_reply
from executor.gateway.live import LiveTokens
from executor.gateway.policy import PathRefused, PlatformTargets, Target, check_path
from executor.settings import Settings
from executor.store import gateway as gateway_store
from executor.store.db import Database
from executor.store.gateway import CallRefused
from executor.tokens import hash_token, token_from_headers

__all__ = ["TOKEN_REFUSALS", "Admission", "Admitted", "Grant"]

log = logging.getLogger(__name__)

TOKEN_REFUSALS = {
    CallRefused.UNKNOWN: "the run token is not known",
    CallRefused.REVOKED: "the run this token was issued to has finished (its handler returned "
    "or its container ended): a run token is good only while its handler runs",
    CallRefused.SUPERSEDED: "the attempt this token was issued to lost its run (its lease "
    "expired, so another node may run it now, or the run was queued again): only the attempt "
    "holding the run may call",
    CallRefused.EXPIRED: "the run token expired at the run's deadline",
}


@dataclass(frozen=True)
class Grant:
    token_sha256: str
    invocation_id: str
    project_id: str
    generation: int  # the lease generation of the attempt the token was minted for


@dataclass(frozen=True)
class Admitted:
    """A call that passed every check: where it goes."""

    grant: Grant
    target: Target
    path_and_query: str
    ordinal: int  # of the call in its attempt, from 1: the platform's idempotency key
    counted_here: bool  # by ``LiveTokens`` (a run of this process): recorded after the answer


class Admission:
    """The gateway's checks of a call, each answered with ``Admitted`` or the refusal."""

    def __init__(self, db: Database, settings: Settings, live: LiveTokens) -> None:
        self.db = db
        self.settings = settings
        self.live = live
        self.targets = PlatformTargets(settings)

    def admit_live(self, incoming: Incoming) -> tuple[Grant, Admitted | Reply] | None:
        """The checks of ``admit`` in memory, for a token of a run this process holds;
        None when the store must decide."""
        token = token_from_headers(incoming.headers)
        if token is None:
            return None
        found = self.live.admit(hash_token(token))
        if found is None:
            return None
        held, refusal = found
        grant = Grant(held.token_sha256, held.invocation_id, held.project_id, held.generation)
        if refusal is not None:
            log.warning("gateway refused %s: %s", incoming.method, TOKEN_REFUSALS[refusal])
            return grant, self.refused(refusal)
        return grant, self.check(grant, incoming)

    def admit(self, incoming: Incoming) -> tuple[Grant | None, Admitted | Reply]:
        """On a store thread: the token's grant (None when it names no run) and whether the
        call may be forwarded."""
        grant, refusal = self.authenticate(incoming.headers)
        if refusal is not None:
            log.warning("gateway refused %s: %s", incoming.method, refusal.error)
            return grant, refusal
        assert grant is not None
        return grant, self.check(grant, incoming)

    def authenticate(self, headers: httpx.Headers) -> tuple[Grant | None, Reply | None]:
        """The token's grant, and the refusal if it may not call: for a revoked or an expired
        token both (the call is refused but recorded on its run)."""
        token = token_from_headers(headers)
        if token is None:
            return None, error_reply(
                401,
                "token_missing",
                "no run token: send it as 'Authorization: Bearer <token>', "
                "'Authorization: X-API-Key: <token>' or 'X-API-Key: <token>'",
            )
        token_sha256 = hash_token(token)
        with self.db.session() as session:
            row = gateway_store.find_token(session, token_sha256)
            if row is None:
                return None, self.refused(CallRefused.UNKNOWN)
            grant = Grant(token_sha256, row.invocation_id, row.project_id, row.lease_generation)
            refusal = gateway_store.token_refusal(session, row, datetime.now(UTC))
            return grant, self.refused(refusal) if refusal is not None else None

    def check(self, grant: Grant, incoming: Incoming) -> Admitted | Reply:
        """Path, body size and call count of a live token's call, the count taken if it
        passes."""
        target = self.targets.for_project(grant.project_id)
        try:
            path_and_query = check_path(incoming.target, target.base_path)
        except PathRefused as exc:
            return error_reply(403, "path_forbidden", f"{exc}: refused")
        cap = self.settings.gateway.max_request_bytes
        if incoming.length > cap:
            return error_reply(
                413,
                "request_too_large",
                f"request body of {incoming.length} bytes is over the cap of {cap} bytes",
                close=True,
            )
        counted = self.live.count(grant.token_sha256, self.settings.gateway.max_calls)
        ordinal = counted if counted is not None else self._take_call(grant)
        if isinstance(ordinal, CallRefused):
            return self.refused(ordinal)
        return Admitted(grant, target, path_and_query, ordinal, counted is not None)

    def _take_call(self, grant: Grant) -> int | CallRefused:
        """The call's ordinal in its attempt, from the statement that counts it and checks
        the token once more (it may have been revoked or superseded since it was read)."""
        with self.db.session() as session:
            return gateway_store.take_call(
                session, grant.token_sha256, self.settings.gateway.max_calls, datetime.now(UTC)
            )

    def refused(self, reason: CallRefused) -> Reply:
        if reason is CallRefused.CAP_REACHED:
            return error_reply(
                429,
                reason.value,
                f"this run already made its {self.settings.gateway.max_calls} platform calls",
            )
        return error_reply(401, reason.value, TOKEN_REFUSALS[reason])
