"""One simulated worker node of ``python -m bench scale``, against the bench's PostgreSQL.

    python -m bench.scale_worker URL NODE_ID SAMPLES_FILE --kind dispatcher|claim|floor
                                 --slots 4 --poll 0.1 --images a:1,b:1

``dispatcher``: the real ``Dispatcher`` (its claim loop, runner, leases and heartbeats) on a
``SimEngine``, a ``FakeEngine`` whose containers run for a drawn time and write a drawn
output. ``claim``: the store's side of a node alone, for the claim's ceiling on a machine
whose cores cannot carry dozens of full runners: it registers, claims with the store's
``claim`` (the dispatcher's arguments), holds each run for a drawn time and records its end
with ``finish`` under its lease generation, one transaction each, as the runner does.
``floor``: ``claim`` with the cheapest claim there could be in its place, one ``UPDATE`` of
the oldest queued runs ``FOR UPDATE SKIP LOCKED``, no heartbeat, no limit, no node filter:
not a claim the executor could make, but what any claim costs at least on these cores.

It runs until its stdin closes (the bench ends it that way, or by dying), then stops its
dispatcher and writes what it measured to SAMPLES_FILE (``Samples``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from executor.engine.fake import FakeContainer, FakeContainers, FakeEngine, Script
from executor.metrics import Metrics, QueueFigures
from executor.run.dispatcher import Dispatcher
from executor.settings import SandboxProfile, Settings
from executor.statuses import InvocationStatus
from executor.store import claims as claim_store
from executor.store import nodes as node_store
from executor.store import outcomes as outcome_store
from executor.store.db import Database

# The floor kind's claim: what every claim does at least (a lease on the oldest queued runs).
FLOOR_CLAIM = text(
    "UPDATE invocations SET status = 'running', lease_owner = :node, node_id = :node, "
    "lease_generation = lease_generation + 1, started_at = now(), "
    "lease_expires_at = now() + interval '30 seconds' "
    "WHERE id IN (SELECT id FROM invocations WHERE status = 'queued' "
    "ORDER BY queued_at LIMIT :free FOR UPDATE SKIP LOCKED) "
    "RETURNING id, lease_generation"
)

# Run times: log-normal around RUN_MEDIAN_S (a few runs ten times longer); outputs: one to
# five lines; FAILING_SHARE of the runs exit 1.
RUN_MEDIAN_S = 0.05
RUN_SIGMA = 0.8
FAILING_SHARE = 0.02
POOL = 2  # database connections per worker


class SimContainers(FakeContainers):
    """Fake containers that take a drawn time between their envelope and their end, and
    write a drawn output: a plugin run as the dispatcher sees it, without Docker."""

    def __init__(self, engine: FakeEngine, seed: int) -> None:
        super().__init__(engine)
        self.random = random.Random(seed)

    def create(self, image: str, **kwargs: Any) -> str:
        container_id = super().create(image, **kwargs)
        lines = self.random.randint(1, 5)
        frames = tuple((1, f"simulated line {n}\n".encode()) for n in range(lines))
        exit_code = 1 if self.random.random() < FAILING_SHARE else 0
        self.held[container_id].script = Script(frames, exit_code)
        return container_id

    def _deliver(self, container: FakeContainer, envelope: bytes) -> None:
        run_s = run_time(self.random)
        deliver = super()._deliver
        threading.Timer(run_s, deliver, (container, envelope)).start()


class SimEngine(FakeEngine):
    """A fake engine whose containers are ``SimContainers``."""

    def __init__(self, seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.containers = SimContainers(self, seed)


class Samples:
    """``claims``: one ``[wall time at its commit, seconds, runs taken]`` per claim
    transaction (for the dispatcher, ``_claim_available``: the claim and its commit);
    ``runs``: run id -> wall time of the commit of its claim."""

    def __init__(self) -> None:
        self.claims: list[list[float]] = []
        self.runs: dict[str, float] = {}

    def add(self, started: float, ids: list[str]) -> None:
        now = time.time()
        self.claims.append([now, time.perf_counter() - started, float(len(ids))])
        self.runs.update(dict.fromkeys(ids, now))

    def write(self, path: Path) -> None:
        path.write_text(json.dumps({"claims": self.claims, "runs": self.runs}))


def timed_claims(dispatcher: Dispatcher, samples: Samples) -> None:
    """Record each claim transaction of ``dispatcher``: when, how long, which runs."""
    claim = claim_store.claim_with_inputs  # the dispatcher's claim
    taken: list[list[str]] = []

    def counting(*args: Any, **kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
        claimed, inputs = claim(*args, **kwargs)
        taken.append([i.id for i in claimed])
        return claimed, inputs

    claim_store.claim_with_inputs = counting
    claim_available = dispatcher._claim_available

    def timing() -> None:
        taken.clear()
        started = time.perf_counter()
        claim_available()
        if taken:  # a claim ran (not skipped for want of free slots)
            samples.add(started, taken[0])

    dispatcher._claim_available = timing  # type: ignore[method-assign]


def run_time(rng: random.Random) -> float:
    return rng.lognormvariate(0.0, RUN_SIGMA) * RUN_MEDIAN_S


Claimer = Callable[[Session, int], list[tuple[str, int]]]


def store_claimer(args: argparse.Namespace) -> Claimer:
    """The store's ``claim`` with the dispatcher's arguments: (run id, lease generation)s."""
    node = claim_store.NodeClaim(args.node_id, frozenset(["runc"]), {}, "runc")
    limits = claim_store.ClaimLimits(per_plugin=1000, per_project=1000)
    webhooks = claim_store.WebhookSlots(free=0)

    def claim(session: Session, free: int) -> list[tuple[str, int]]:
        runs = claim_store.claim(session, args.node_id, free, 30.0, limits, node, 0.0, webhooks)
        return [(run.id, run.lease_generation) for run in runs]

    return claim


def floor_claimer(args: argparse.Namespace) -> Claimer:
    def claim(session: Session, free: int) -> list[tuple[str, int]]:
        rows = session.execute(FLOOR_CLAIM, {"node": args.node_id, "free": free})
        return [(str(run_id), int(generation)) for run_id, generation in rows]

    return claim


def claim_loop(args: argparse.Namespace, stop: threading.Event, samples: Samples) -> None:
    """The ``claim`` and ``floor`` kinds: claim, hold, finish, until ``stop``."""
    rng = random.Random(args.seed)
    db = Database(args.url, pool_size=1)
    with db.session() as session:
        node_store.register(
            session, node_store.NodeInfo(args.node_id, args.node_id, "sim", ["runc"], args.slots, 0)
        )
    claim = floor_claimer(args) if args.kind == "floor" else store_claimer(args)
    holding: dict[str, tuple[int, float]] = {}  # run id -> lease generation, end
    while not stop.is_set():
        now = time.monotonic()
        for run_id, (generation, end) in list(holding.items()):
            if end <= now:
                with db.session() as session:
                    outcome_store.finish(
                        session, run_id, generation, status=InvocationStatus.SUCCEEDED
                    )
                del holding[run_id]
        claimed = 0
        if (free := args.slots - len(holding)) > 0:
            started = time.perf_counter()
            with db.session() as session:
                runs = claim(session, free)
            samples.add(started, [run_id for run_id, _ in runs])
            claimed = len(runs)
            for run_id, generation in runs:
                holding[run_id] = (generation, time.monotonic() + run_time(rng))
        if not claimed:  # nothing to take: wait for a run to end or the next poll
            ends = [end for _, end in holding.values()]
            stop.wait(min([args.poll, *(max(0.0, e - time.monotonic()) for e in ends)]))
    db.dispose()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench.scale_worker")
    parser.add_argument("url")
    parser.add_argument("node_id")
    parser.add_argument("samples", type=Path)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--poll", type=float, default=0.1)
    parser.add_argument("--images", default="")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=["dispatcher", "claim", "floor"], default="dispatcher")
    args = parser.parse_args(argv)
    if args.kind != "dispatcher":
        stop = threading.Event()
        samples = Samples()
        loop = threading.Thread(target=claim_loop, args=(args, stop, samples))
        loop.start()
        print("ready", flush=True)
        sys.stdin.read()
        stop.set()
        loop.join()
        samples.write(args.samples)
        return
    with tempfile.TemporaryDirectory(prefix="scale-worker-") as data_dir:
        settings = Settings(
            data_dir=Path(data_dir),
            database_url=args.url,
            database_pool_size=POOL,
            operator_key="pe_op_bench-scale-worker-0123456789",
            node_id=args.node_id,
            max_concurrent_runs=args.slots,
            max_runs_per_plugin=1000,
            max_runs_per_project=1000,
            dispatch_poll_s=args.poll,
            warm_pool_size=0,
            placement_grace_s=0.0,
            drain_timeout_s=5.0,
            sandbox=SandboxProfile(timeout_s=30.0),
        )
        db = Database(args.url, pool_size=POOL)
        # No overflow connections: 32 workers fit in PostgreSQL's default 100 connections.
        db.engine.pool._max_overflow = 0  # type: ignore[attr-defined]
        engine = SimEngine(args.seed)
        for image in filter(None, args.images.split(",")):
            engine.images.add(image)
        engine.identify(db.store_id(), args.node_id)
        dispatcher = Dispatcher(db, engine, settings, Metrics(lambda: QueueFigures({}, None, {})))
        samples = Samples()
        timed_claims(dispatcher, samples)
        dispatcher.start()
        print("ready", flush=True)
        try:
            sys.stdin.read()  # until the bench closes it
        finally:
            dispatcher.stop()
            db.dispose()
            samples.write(args.samples)


if __name__ == "__main__":
    main(sys.argv[1:])
