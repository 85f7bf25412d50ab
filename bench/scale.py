"""``python -m bench scale [--short] [--label NAME] [--compare FILE]``: how far one PostgreSQL
carries claims, with simulated worker nodes.

Each worker is a process running the real dispatcher on a simulated engine
(``bench.scale_worker``: run times and outputs drawn from a distribution, no Docker), all
against one fresh database on the local PostgreSQL. Workers are added 1, 2, 4, ... up to
``--max-workers`` (on one database, waiting for the queue to empty between counts). At
each count the bench:

  rates   stores events (one queued run each, spread over 64 plugins and 16 projects) at
          rising rates, ``step_s`` seconds each, and reports the runs claimed per second,
          event-to-claim latency p50/p99 (the run's ``started_at`` minus its ``queued_at``)
          and PostgreSQL CPU per thousand runs, until the claims fall behind the events;
  burst   queues ``burst`` runs at once and reports the claims per second that drain them
          and the claim latency p50/p99 (one claim transaction of a worker, its commit
          included, from the workers' own samples).

Last, in the same run, ``floor`` workers as many as the largest count drain the same burst
with the cheapest claim there could be (``bench.scale_worker``: one ``UPDATE`` of the
oldest queued runs, no heartbeat, no limit): the claims/s no claim design reaches on
these cores, beside which the executor's claim is read. Then one claimer alone times its
claim with 100, 2,000, 20,000 and 100,000 runs queued (``depths``): what a backlog costs
each claim, against the claim with 100 queued.

It then names where each figure bends and writes ``bench/results/scale-LABEL.json`` and
``.png`` (``--compare`` draws an earlier run's JSON beside it). PostgreSQL CPU is read from
``/proc`` of the bench database's backends and the server's background processes; other
databases' load on the same server is not counted but shares its cores.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import func, insert, select, text

from bench.ingest import RESULTS, percentile
from executor.statuses import BuildStatus, InvocationStatus
from executor.store import claims as claim_store
from executor.store import nodes as node_store
from executor.store.db import Database
from executor.store.tables import Activation, Event, Invocation, Plugin, PluginVersion, new_id
from tests.integration.conftest import ADMIN_DSN, drop_template, fresh_database

PLUGINS = 64
PROJECTS = 16
TICK_S = 0.05  # events are stored in a batch every tick
SLOTS = 4  # runs at once per worker
POLL_S = 0.1  # the workers' dispatch_poll_s: nothing wakes a worker node but its poll


@dataclass(frozen=True)
class Sizes:
    workers: list[int]
    rates: list[int]
    step_s: float
    burst: int
    depths: list[int]  # queued runs, for the claim's cost by backlog


FULL = Sizes(
    [1, 2, 4, 8, 16, 32], [20, 40, 80, 160, 320, 640, 1280], 5.0, 1500, [100, 2000, 20000, 100000]
)
SHORT = Sizes([1, 2], [10, 20], 1.5, 60, [100, 2000])
DEPTH_CLAIMS = 50  # claims of 2 runs timed at each depth


@dataclass
class Step:
    """One rate step: events offered at ``rate`` for ``seconds``."""

    rate: int
    seconds: float
    runs: int = 0
    claimed_per_s: float = 0.0
    event_to_claim_p50_ms: float = 0.0
    event_to_claim_p99_ms: float = 0.0
    pg_cpu_s_per_1000: float = 0.0
    behind: bool = False  # the claims fell behind the events


@dataclass
class Count:
    """Every figure measured with ``workers`` workers."""

    workers: int
    steps: list[Step] = field(default_factory=list)
    claims_per_s: float = 0.0
    claim_transactions_per_s: float = 0.0
    claim_p50_ms: float = 0.0
    claim_p99_ms: float = 0.0
    burst_pg_cpu_s_per_1000: float = 0.0
    max_rate_kept_up: int = 0


# PostgreSQL CPU, from /proc.

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0  # ended meanwhile
    return int(fields[11]) + int(fields[12])  # utime, stime


def pg_cpu(database: str) -> dict[int, int]:
    """CPU ticks of the bench database's backends and the server's own processes."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        pids = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s "
            "OR backend_type <> 'client backend'",
            (database,),
        ).fetchall()
    return {pid: _cpu_ticks(pid) for (pid,) in pids}


def cpu_seconds(before: dict[int, int], after: dict[int, int]) -> float:
    return sum(ticks - before.get(pid, 0) for pid, ticks in after.items()) / TICKS


# The store.


def seed(db: Database) -> list[tuple[str, str, str, str]]:
    """PLUGINS active plugins, each activated on one of PROJECTS projects; returns
    (plugin id, version id, plugin name, project id) of each."""
    plugins = []
    with db.session() as session:
        for n in range(PLUGINS):
            plugin = Plugin(name=f"sim{n:02d}")
            session.add(plugin)
            session.flush()
            version = PluginVersion(
                plugin_id=plugin.id,
                number=1,
                source_sha256="x",
                source=b"",
                status=BuildStatus.ACTIVE.value,
                image_tag=f"sim{n:02d}:1",
            )
            project = f"project{n % PROJECTS:02d}"
            session.add_all([version, Activation(plugin_id=plugin.id, project_id=project)])
            session.flush()
            plugins.append((plugin.id, version.id, plugin.name, project))
    return plugins


def queue_runs(
    db: Database, plugins: list[tuple[str, str, str, str]], first: int, n: int
) -> dict[str, float]:
    """Store ``n`` events and their queued runs, round robin over the plugins; returns
    run id -> when it was queued (wall time)."""
    queued = time.time()
    now = datetime.fromtimestamp(queued, UTC)
    events: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    for k in range(first, first + n):
        plugin_id, version_id, name, project = plugins[k % len(plugins)]
        event_id = new_id()
        events.append({"id": event_id, "type": "onSubmit", "project_id": project})
        runs.append(
            {
                "id": new_id(),
                "event_id": event_id,
                "plugin_id": plugin_id,
                "version_id": version_id,
                "plugin_name": name,
                "version_number": 1,
                "project_id": project,
                "event_type": "onSubmit",
                "queued_at": now,
            }
        )
    with db.session() as session:
        session.execute(insert(Event), events)
        session.execute(insert(Invocation), runs)
    return {str(run["id"]): queued for run in runs}


def queued_left(db: Database) -> int:
    with db.session() as session:
        left = session.scalar(
            select(func.count()).where(
                Invocation.status.in_((InvocationStatus.QUEUED, InvocationStatus.RUNNING))
            )
        )
    return int(left or 0)


def wait_empty(db: Database, limit_s: float) -> bool:
    """Wait until nothing is queued or running (True), for up to ``limit_s``."""
    give_up = time.monotonic() + limit_s
    while queued_left(db):
        if time.monotonic() > give_up:
            return False
        time.sleep(0.2)
    return True


# The workers.


@dataclass
class Samples:
    """What the workers measured (``bench.scale_worker.Samples``), all of them together."""

    claims: list[list[float]] = field(default_factory=list)
    runs: dict[str, float] = field(default_factory=dict)


@dataclass
class Worker:
    process: subprocess.Popen[str]
    samples: Path

    def stop(self, into: Samples) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=120)
        if self.samples.exists():
            found = json.loads(self.samples.read_text())
            into.claims += found["claims"]
            into.runs.update(found["runs"])


def start_workers(
    url: str, first: int, n: int, workdir: Path, kind: str, prefix: str = "w"
) -> list[Worker]:
    images = ",".join(f"sim{k:02d}:1" for k in range(PLUGINS))
    workers = []
    for k in range(first, first + n):
        samples = workdir / f"{prefix}{k:02d}.json"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.scale_worker",
                url,
                f"{prefix}{k:02d}",
                str(samples),
                f"--slots={SLOTS}",
                f"--poll={POLL_S}",
                f"--images={images}",
                f"--seed={k}",
                f"--kind={kind}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        workers.append(Worker(process, samples))
    for worker in workers:
        assert worker.process.stdout is not None
        line = worker.process.stdout.readline()
        assert line.strip() == "ready", f"a simulated worker did not start: {line!r}"
    return workers


@contextmanager
def worker_pool(url: str, workdir: Path) -> Iterator[list[Worker]]:
    workers: list[Worker] = []
    try:
        yield workers
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.stop(Samples())


# Measuring.


def ms(seconds: list[float], share: float) -> float:
    return round(percentile(seconds, share) * 1000, 1) if seconds else 0.0


@dataclass
class Window:
    """The runs one step (or burst) queued, and PostgreSQL's CPU meanwhile."""

    queued: dict[str, float]
    pg_cpu_s: float


def rate_step(
    db: Database, name: str, plugins: list[tuple[str, str, str, str]], rate: int, step_s: float
) -> tuple[Step, Window]:
    """Queue runs at ``rate`` for ``step_s`` and wait for the queue to empty (for as long
    again, at least 5 s: ``behind`` if it did not)."""
    step = Step(rate, step_s)
    cpu_before = pg_cpu(name)
    queued: dict[str, float] = {}
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < step_s:
        due = int(rate * elapsed) - len(queued)
        if due > 0:
            queued |= queue_runs(db, plugins, len(queued), due)
        time.sleep(TICK_S)
    step.behind = not wait_empty(db, max(step_s, 5.0))
    return step, Window(queued, cpu_seconds(cpu_before, pg_cpu(name)))


def burst(db: Database, name: str, plugins: list[tuple[str, str, str, str]], n: int) -> Window:
    """Queue ``n`` runs at once and wait until they ended."""
    cpu_before = pg_cpu(name)
    queued = queue_runs(db, plugins, 0, n)
    wait_empty(db, 600.0)
    return Window(queued, cpu_seconds(cpu_before, pg_cpu(name)))


def claimed(window: Window, samples: Samples) -> tuple[float, list[float], float, float]:
    """Of the window's runs: claims/s (from the first claim to the last), event-to-claim
    seconds of each, the first and last claim's wall time."""
    at = [samples.runs[i] for i in window.queued if i in samples.runs]
    if not at:
        return 0.0, [], 0.0, 0.0
    waits = [samples.runs[i] - q for i, q in window.queued.items() if i in samples.runs]
    first, last = min(at), max(at)
    return round(len(at) / max(last - first, 1e-3), 1), waits, first, last


def step_figures(step: Step, window: Window, samples: Samples) -> None:
    rate, waits, _, _ = claimed(window, samples)
    step.runs = len(waits)
    step.claimed_per_s = rate
    step.event_to_claim_p50_ms = ms(waits, 0.5)
    step.event_to_claim_p99_ms = ms(waits, 0.99)
    if waits:
        step.pg_cpu_s_per_1000 = round(window.pg_cpu_s / len(waits) * 1000, 2)


def burst_figures(count: Count, window: Window, samples: Samples) -> None:
    count.claims_per_s, waits, first, last = claimed(window, samples)
    if waits:
        count.burst_pg_cpu_s_per_1000 = round(window.pg_cpu_s / len(waits) * 1000, 2)
    inside = [c for c in samples.claims if first <= c[0] <= last and c[2] > 0]
    seconds = [c[1] for c in inside]
    count.claim_p50_ms = ms(seconds, 0.5)
    count.claim_p99_ms = ms(seconds, 0.99)
    count.claim_transactions_per_s = round(len(inside) / max(last - first, 1e-3), 1)


def bend(xs: list[float], ys: list[float], *, rising: bool) -> float | None:
    """Where a figure bends: for one that should grow with x (claims/s), the first x after
    which doubling x gains less than 20 %; for a latency, the first x where it passes twice
    its value at the smallest x. None: it did not bend in the range measured."""
    for k in range(1, len(xs)):
        if rising and ys[k] < ys[k - 1] * 1.2:
            return xs[k - 1]
        if not rising and ys[0] > 0 and ys[k] > 2 * ys[0]:
            return xs[k]
    return None


@dataclass(frozen=True)
class Store:
    """A fresh bench database, migrated and seeded (``seed``)."""

    url: str
    name: str  # the database's, for its backends' CPU (``pg_cpu``)
    db: Database
    plugins: list[tuple[str, str, str, str]]


@contextmanager
def seeded_store() -> Iterator[Store]:
    with fresh_database() as url:
        db = Database(url)
        db.migrate()
        try:
            yield Store(url, url.rsplit("/", 1)[1], db, seed(db))
        finally:
            db.dispose()


def measure_floor(workers: int, burst_size: int, workdir: Path) -> Count:
    """The floor claim's burst (``claims_per_s`` and the claim latencies of a ``Count``),
    on a database of its own: the workers' runs left the first one thousands of ended rows
    and dead index entries, which an ``UPDATE`` of the oldest queued runs would walk past."""
    floor = Count(workers)
    samples = Samples()
    with seeded_store() as store, worker_pool(store.url, workdir) as pool:
        pool += start_workers(store.url, 0, workers, workdir, "floor", prefix="f")
        # Warm first, as the counts' workers are by their rate steps: a backend's first
        # statements load its caches, and the burst drains in a few seconds.
        burst(store.db, store.name, store.plugins, burst_size // 2)
        window = burst(store.db, store.name, store.plugins, burst_size)
        for worker in pool:
            worker.stop(samples)
    burst_figures(floor, window, samples)
    return floor


@dataclass(frozen=True)
class Depth:
    """One claimer alone with ``queued`` runs waiting: its claim's latency (2 runs each)."""

    queued: int
    claim_p50_ms: float
    claim_p99_ms: float


def measure_depths(depths: list[int]) -> list[Depth]:
    """The store's claim, timed with a backlog of each of ``depths`` queued runs, on a
    database of its own (one claimer: the cost of the claim's statements alone; the
    smallest depth is the floor the others are read against)."""
    node = claim_store.NodeClaim("depth", frozenset(["runc"]), {}, "runc")
    limits = claim_store.ClaimLimits(per_plugin=1_000_000, per_project=1_000_000)
    found = []
    with seeded_store() as store:
        db = store.db
        with db.session() as session:
            info = node_store.NodeInfo("depth", "depth", "sim", ["runc"], 2, 0)
            node_store.register(session, info)
        queued = 0
        for depth in depths:
            while queued < depth:
                added = min(5000, depth - queued)
                queue_runs(db, store.plugins, queued, added)
                queued += added
            with db.session() as session:
                session.execute(text("ANALYZE invocations"))  # as autovacuum would, in time
            seconds = []
            for _ in range(DEPTH_CLAIMS):
                began = time.perf_counter()
                with db.session() as session:
                    claim_store.claim(session, "depth", 2, 30.0, limits, node)
                seconds.append(time.perf_counter() - began)
            queued -= 2 * DEPTH_CLAIMS
            found.append(Depth(depth, ms(seconds, 0.5), ms(seconds, 0.99)))
    return found


def measure(sizes: Sizes, max_workers: int, workdir: Path, kind: str) -> tuple[list[Count], Count]:
    counts: list[Count] = []
    windows: list[tuple[Count, list[tuple[Step, Window]], Window]] = []
    samples = Samples()
    with seeded_store() as store:
        url, name, db, plugins = store.url, store.name, store.db, store.plugins
        with worker_pool(url, workdir) as workers:
            for n in [w for w in sizes.workers if w <= max_workers]:
                workers += start_workers(url, len(workers), n - len(workers), workdir, kind)
                count = Count(n)
                steps = []
                for rate in sizes.rates:
                    step, window = rate_step(db, name, plugins, rate, sizes.step_s)
                    steps.append((step, window))
                    count.steps.append(step)
                    print(f"  {n} workers, {rate} events/s: kept up: {not step.behind}", flush=True)
                    if step.behind:
                        break
                    count.max_rate_kept_up = rate
                wait_empty(db, 600.0)
                windows.append((count, steps, burst(db, name, plugins, sizes.burst)))
                counts.append(count)
            for worker in workers:
                worker.stop(samples)
    floor = measure_floor(counts[-1].workers, sizes.burst, workdir)
    for count, steps, burst_window in windows:
        for step, window in steps:
            step_figures(step, window, samples)
        burst_figures(count, burst_window, samples)
    return counts, floor


# Reporting.


def report(
    counts: list[Count], floor: Count, depths: list[Depth], label: str, short: bool, kind: str
) -> dict[str, Any]:
    xs = [float(c.workers) for c in counts]
    bends = {
        "claims_per_s_bends_at_workers": bend(xs, [c.claims_per_s for c in counts], rising=True),
        "claim_p99_bends_at_workers": bend(xs, [c.claim_p99_ms for c in counts], rising=False),
        "pg_cpu_per_1000_bends_at_workers": bend(
            xs, [c.burst_pg_cpu_s_per_1000 for c in counts], rising=False
        ),
        "event_to_claim_p99_bends_at_rate": {
            str(c.workers): bend(
                [float(s.rate) for s in c.steps],
                [s.event_to_claim_p99_ms for s in c.steps],
                rising=False,
            )
            for c in counts
        },
    }
    return {
        "label": label,
        "short": short,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "conditions": {
            "cpus": os.cpu_count(),
            "postgresql": _server_version(),
            "workers": kind,
            "plugins": PLUGINS,
            "projects": PROJECTS,
            "slots_per_worker": SLOTS,
            "worker_poll_s": POLL_S,
            "run_time": "log-normal, median 50 ms, sigma 0.8",
            "note": "workers, driver and PostgreSQL share the machine's cores",
        },
        "counts": [asdict(c) for c in counts],
        "floor": asdict(floor),
        "depths": [asdict(d) for d in depths],
        "bends": bends,
    }


def _server_version() -> str:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        row = admin.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def draw(result: dict[str, Any], compare: dict[str, Any] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    runs = [(result, "-")] + ([(compare, "--")] if compare else [])
    for data, style in runs:
        counts = data["counts"]
        xs = [c["workers"] for c in counts]
        label = data["label"]
        axes[0][0].plot(xs, [c["claims_per_s"] for c in counts], style, marker="o", label=label)
        for key in ("claim_p50_ms", "claim_p99_ms"):
            axes[0][1].plot(
                xs, [c[key] for c in counts], style, marker="o", label=f"{label} {key[6:9]}"
            )
        axes[1][1].plot(
            xs, [c["burst_pg_cpu_s_per_1000"] for c in counts], style, marker="o", label=label
        )
    for c in result["counts"]:
        axes[1][0].plot(
            [s["rate"] for s in c["steps"]],
            [s["event_to_claim_p99_ms"] for s in c["steps"]],
            marker=".",
            label=f"{c['workers']} workers",
        )
    titles = [
        ("claims/s draining a burst", "workers", "runs claimed/s"),
        ("claim transaction latency (burst)", "workers", "ms"),
        (f"event-to-claim p99 ({result['label']})", "events/s offered", "ms"),
        ("PostgreSQL CPU per 1000 runs (burst)", "workers", "CPU s"),
    ]
    for ax, (title, xlabel, ylabel) in zip(
        [axes[0][0], axes[0][1], axes[1][0], axes[1][1]], titles, strict=True
    ):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_xscale("log", base=2)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[1][0].set_yscale("log")
    fig.suptitle(f"bench scale: simulated workers on one PostgreSQL ({result['at']})")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__)
    parser.add_argument("--short", action="store_true", help="two worker counts, CI smoke")
    parser.add_argument("--label", default="latest", help="names the result files")
    parser.add_argument("--max-workers", type=int, default=32)
    parser.add_argument(
        "--workers", help="worker counts to measure, comma-separated (default 1, 2, 4 ... 32)"
    )
    parser.add_argument(
        "--kind",
        choices=["dispatcher", "claim", "floor"],
        default="dispatcher",
        help="workers running the whole dispatcher, only its store calls, or the store calls "
        "with the cheapest claim there could be (bench.scale_worker)",
    )
    parser.add_argument("--compare", type=Path, help="an earlier run's JSON, drawn beside")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory of the results")
    args = parser.parse_args(argv)
    # Stopped with SIGTERM, it still stops its workers and drops its database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sizes = SHORT if args.short else FULL
    if args.workers:
        sizes = replace(sizes, workers=[int(n) for n in args.workers.split(",")])
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as workdir:
        try:
            counts, floor = measure(sizes, args.max_workers, Path(workdir), args.kind)
            depths = measure_depths(sizes.depths)
        finally:
            drop_template()  # the migrated database its database was copied from
    result = report(counts, floor, depths, args.label, args.short, args.kind)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"scale-{args.label}.json"
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    compare = json.loads(args.compare.read_text()) if args.compare else None
    draw(result, compare, args.out / f"scale-{args.label}.png")
    for c in counts:
        print(
            f"{c.workers:>3} workers: {c.claims_per_s:>8} claims/s, claim p50 {c.claim_p50_ms} "
            f"ms p99 {c.claim_p99_ms} ms, PG CPU {c.burst_pg_cpu_s_per_1000} s/1000 runs, "
            f"kept up to {c.max_rate_kept_up} events/s"
        )
    share = counts[-1].claims_per_s / floor.claims_per_s if floor.claims_per_s else 0.0
    print(
        f"floor ({floor.workers} workers, the cheapest claim): {floor.claims_per_s} claims/s, "
        f"claim p50 {floor.claim_p50_ms} ms p99 {floor.claim_p99_ms} ms; "
        f"the executor's claim reaches {share:.0%} of it"
    )
    for depth in depths:
        print(
            f"one claimer, {depth.queued:>6} queued: claim p50 {depth.claim_p50_ms} ms "
            f"p99 {depth.claim_p99_ms} ms ({depth.claim_p50_ms / depths[0].claim_p50_ms:.1f}x "
            f"the p50 with {depths[0].queued} queued)"
        )
    print(f"bends: {json.dumps(result['bends'])}")
    print(f"wrote {json_path}")
