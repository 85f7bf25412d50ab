"""Run tokens this process minted, checked in memory: a call through the gateway of the
node running the run waits on no store round trip before it is forwarded.

The store stays the record of every token (``executor.store.gateway``); this is a copy of
what the process itself decided, kept in step by the only parties that change it:

- the runner ``grant``s a token once the store holds it, and ``revoke``s it here *before*
  it revokes it in the store: from that call on, the gateway refuses it. It ``forget``s it
  once the store's revocation committed (a token whose revocation in the store failed stays
  here, refused, until its deadline);
- the dispatcher vouches for the run's lease (``lease``, ``renewed``): a token is admitted
  here only while this process knows that its attempt still holds the run. Another node
  can take a run only once its lease expired by the store's clock, and a lease is vouched
  for only up to ``lease_s`` after the moment before the claim (or renewal) that set it
  was sent, so a superseded attempt's token is never admitted from memory;
- the gateway takes each call's ordinal here (the platform's idempotency key and the cap),
  and writes its record after the answer (``recording``); the runner waits for those
  records (``settle``) before it records the run's end.

A token this process does not hold, or whose lease it cannot vouch for, is checked in the
store as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from executor.store.gateway import CallRefused

__all__ = ["LiveGrant", "LiveTokens"]

# How long the runner waits at a run's end for the records of its last calls (written on
# the gateway's store threads, normally within milliseconds).
SETTLE_S = 10.0
PRUNE_S = 1.0  # tokens past their deadline are dropped at most this often


@dataclass
class LiveGrant:
    """A token this process minted for the attempt of ``invocation_id`` under lease
    ``generation``; ``calls`` made through this process's gateway so far."""

    token_sha256: str
    invocation_id: str
    project_id: str
    generation: int
    expires_at: datetime
    calls: int = 0
    revoked: bool = False


class LiveTokens:
    """The live tokens and vouched leases of this process; every method is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._grants: dict[str, LiveGrant] = {}  # token sha256 -> grant
        self._leases: dict[str, float] = {}  # invocation id -> monotonic vouched-until
        self._pending: dict[str, int] = {}  # invocation id -> records not yet written
        self._pruned_at = time.monotonic()
        # Set while a runner waits for records (``settle``): their writer does not
        # gather more calls into its batch meanwhile (``recording``).
        self.awaited = threading.Event()
        self._settling = 0

    def grant(
        self,
        token_sha256: str,
        invocation_id: str,
        project_id: str,
        generation: int,
        expires_at: datetime,
    ) -> None:
        """Hold a token the store now holds (minted for a new attempt)."""
        now = datetime.now(UTC)
        with self._lock:
            if time.monotonic() - self._pruned_at >= PRUNE_S:
                # Past their deadline the store refuses them anyway: forget them here.
                self._pruned_at = time.monotonic()
                for sha, old in list(self._grants.items()):
                    if old.expires_at <= now:
                        del self._grants[sha]
            self._grants[token_sha256] = LiveGrant(
                token_sha256, invocation_id, project_id, generation, expires_at
            )

    def revoke(self, invocation_id: str) -> None:
        """Refuse the tokens of ``invocation_id`` from now on (call before the store's
        revocation)."""
        with self._lock:
            for held in self._grants.values():
                if held.invocation_id == invocation_id:
                    held.revoked = True

    def forget(self, invocation_id: str) -> None:
        """The store revoked the run's tokens (committed): it refuses them from now on."""
        with self._lock:
            for sha in [s for s, g in self._grants.items() if g.invocation_id == invocation_id]:
                del self._grants[sha]

    def lease(self, invocation_ids: Iterable[str], until: float) -> None:
        """This process holds the runs' leases at least until monotonic ``until``
        (``lease_s`` after the moment before their claim was sent)."""
        with self._lock:
            for invocation_id in invocation_ids:
                self._leases[invocation_id] = until

    def renewed(self, invocation_ids: Iterable[str], sent_at: float, until: float) -> None:
        """A renewal of these runs' leases, sent at monotonic ``sent_at``, committed: each
        lease still vouched for at ``sent_at`` was this process's when renewed, so it is
        until ``until``; a lease that may have expired before is not vouched for again."""
        with self._lock:
            for invocation_id in invocation_ids:
                if self._leases.get(invocation_id, 0.0) > sent_at:
                    self._leases[invocation_id] = until

    def release(self, invocation_id: str) -> None:
        """The run is no longer this process's (ended, handed back, lost)."""
        with self._lock:
            self._leases.pop(invocation_id, None)

    def admit(self, token_sha256: str) -> tuple[LiveGrant, CallRefused | None] | None:
        """The grant of a call's token and why the call is refused (None: it may call);
        None when this process cannot decide (the store must). The call is counted by
        ``count``, once its path passed."""
        now = datetime.now(UTC)
        with self._lock:
            held = self._grants.get(token_sha256)
            if held is None:
                return None
            if held.revoked:
                return held, CallRefused.REVOKED
            if self._leases.get(held.invocation_id, 0.0) <= time.monotonic():
                return None  # the attempt may have lost the run: the store says
            if held.expires_at <= now:
                return held, CallRefused.EXPIRED
            return held, None

    def count(self, token_sha256: str, max_calls: int) -> int | CallRefused | None:
        """Count a call of a token held here (``admit``, or the store, found it live): its
        ordinal in the attempt, from 1; None when the token is not held here (the store
        counts it)."""
        with self._lock:
            held = self._grants.get(token_sha256)
            if held is None:
                return None
            if held.revoked:
                return CallRefused.REVOKED
            if held.calls >= max_calls:
                return CallRefused.CAP_REACHED
            held.calls += 1
            return held.calls

    def recording(self, invocation_id: str) -> None:
        """A call's record is about to be written on another thread."""
        with self._lock:
            self._pending[invocation_id] = self._pending.get(invocation_id, 0) + 1

    def recorded(self, invocation_id: str) -> None:
        """A call's record was written (or failed)."""
        with self._lock:
            left = self._pending.get(invocation_id, 0) - 1
            if left > 0:
                self._pending[invocation_id] = left
            else:
                self._pending.pop(invocation_id, None)
                self._settled.notify_all()

    def settle(self, invocation_id: str, timeout_s: float = SETTLE_S) -> bool:
        """Wait until the records of the run's calls so far are written; False if some
        were not within ``timeout_s``."""
        with self._lock:
            self._settling += 1
            self.awaited.set()
            try:
                return self._settled.wait_for(
                    lambda: invocation_id not in self._pending, timeout=timeout_s
                )
            finally:
                self._settling -= 1
                if not self._settling:
                    self.awaited.clear()
