"""The benchmark suite: every figure next to a floor measured in the same run.

    .venv/bin/python -m bench [--short] [--postgres URL|auto|none] [--section NAME ...]
                              [--out bench/results/latest.json]

Sections (full mode; ``--short`` runs a few iterations of each, for CI):
  cold start   event→handler entry p50/p95/p99 over 100 runs, pool off, vs bare docker run;
  warm start   the same with the warm pool, vs bare docker run;
  throughput   invocations/s, 1 and 20 plugins, default concurrency, vs a bare docker run loop;
  ingest       POST /v1/events events/s and p99 with a platform (tenant events:write) key,
               SQLite and PostgreSQL, vs GET /healthz (alternating rounds, same client);
  gvisor       cold and warm starts with plugins under runsc, vs a bare
               ``docker run --rm --runtime runsc`` of the same image running ``true``;
  builds       first build, same requirements again, code-only version, vs a bare docker build;
  gateway      per-call latency p50/p99 through the platform API gateway, vs a direct call to
               the same platform stand-in (bench/gateway.py);
  noisy        tenant B's event→handler and GET /v1/plugins p99 while tenant A sends upload
               bombs, costly GraphQL, an event flood and slow webhooks, vs a quiet round of
               the same workload for B alone (bench/noisy.py).
``--section`` runs only the named ones: starts (cold, warm, throughput, ingest on SQLite),
ingest (ingest on SQLite alone), gvisor, postgresql (ingest), builds, gateway, noisy; all of
them by default (``--section ingest --section postgresql``: ingest on both stores).
Figures only, no assertions: the numbers depend on the machine and what else runs on it. The
ingest figures and the noisy-neighbour figures are compared with their
targets after the table: met or not met.
Every image, container and database it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench import builds, gateway, noisy, starts
from bench.ingest import (
    KEY,
    RESULTS,
    bare_runs,
    percentile,
    push_plugin,
    start_executor,
    timed_requests,
)
from executor.settings import Settings

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=executor password=executor dbname=postgres"
PG_URL = "postgresql+psycopg://executor:executor@127.0.0.1:5432/{name}"


@dataclass(frozen=True)
class Figure:
    """One measured figure and its floor from the same run."""

    section: str
    name: str
    unit: str
    value: float
    baseline_name: str
    baseline: float
    # Set where value and baseline were measured in alternating rounds: the median of the
    # rounds' ratios, each round's pair having seen the same load from the rest of the machine.
    paired_ratio: float | None = None

    @property
    def ratio(self) -> float:
        if self.paired_ratio is not None:
            return self.paired_ratio
        return self.value / self.baseline if self.baseline else float("nan")

    @property
    def difference(self) -> float:
        return self.value - self.baseline

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "difference": self.difference}


@dataclass(frozen=True)
class Sizes:
    runs: int
    events: int
    plugins: tuple[int, int]
    ingest_events: int
    ingest_concurrency: int
    requirements: tuple[str, ...]
    gateway_calls: int
    noisy: noisy.NoisySizes


FULL = Sizes(100, 100, (1, 20), 1000, 8, ("six==1.16.0", "attrs==23.2.0"), 1000, noisy.FULL)
SHORT = Sizes(5, 8, (1, 3), 100, 8, ("six==1.16.0",), 50, noisy.SHORT)
SECTIONS = ("starts", "ingest", "gvisor", "postgresql", "builds", "gateway", "noisy")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def executor(database_url: str | None = None, **settings: str) -> Iterator[httpx.Client]:
    """A ``plugin-executor serve`` process and a client; its plugin images removed after."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        process = start_executor(Path(tmp) / "data", port, database_url, None, **settings)
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=120,
        )
        try:
            yield api
        finally:
            images = [
                v["image_id"]
                for p in api.get("/v1/plugins").json()
                for v in api.get(f"/v1/plugins/{p['name']}").json()["versions"]
                if v["image_id"]
            ]
            api.close()
            process.terminate()
            process.wait(120)
            if images:
                subprocess.run(["docker", "rmi", "-f", *images], capture_output=True, check=False)


def percentiles(
    section: str, measured: list[float], floor: list[float], floor_name: str = "bare docker run"
) -> list[Figure]:
    return [
        Figure(
            section,
            name,
            "ms",
            percentile(measured, share),
            floor_name,
            percentile(floor, share),
        )
        for name, share in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    ]


def start_sections(sizes: Sizes, workdir: Path) -> tuple[list[Figure], dict[str, Any]]:
    """Cold start (pool off) and ingest on SQLite; warm start and throughput (defaults)."""
    figures: list[Figure] = []
    notes: dict[str, Any] = {}
    with executor(warm_pool_size="0", key_requests_per_minute=BENCH_KEY_REQUESTS_PER_MINUTE) as api:
        image = push_plugin(api, "cold", workdir / "cold")
        api.put("/v1/projects/cold/plugins/cold").raise_for_status()
        cold = starts.latencies(api, image, "cold", sizes.runs, warm=False)
        figures += percentiles("cold start", cold.executor, cold.bare)
        notes["cold_claim_p50_ms"] = percentile(cold.claim, 0.5)
        notes["cold_phase_means_ms"] = starts.phase_means_ms(api)
        notes["cold_breakdown"] = starts.breakdown(cold)
        figures += ingest_figures("sqlite", api, sizes)
    with executor() as api:
        image = push_plugin(api, "warm", workdir / "warm")
        api.put("/v1/projects/warm/plugins/warm").raise_for_status()
        warm = starts.latencies(api, image, "warm", sizes.runs, warm=True)
        figures += percentiles("warm start", warm.executor, warm.bare)
        notes["warm_starts"] = f"{warm.warm_starts} of {len(warm.executor)} runs started warm"
        notes["warm_claim_p50_ms"] = percentile(warm.claim, 0.5)
        notes["warm_phase_means_ms"] = starts.phase_means_ms(api)
        notes["warm_breakdown"] = starts.breakdown(warm)
        concurrency = Settings().runs.max_concurrent_runs
        notes["concurrency"] = concurrency
        for plugins in sizes.plugins:
            rate, image = starts.throughput(api, workdir / f"tp{plugins}", plugins, sizes.events)
            floor_rate = bare_runs(image, sizes.events, concurrency)
            figures.append(
                Figure(
                    "throughput",
                    f"{plugins} plugin(s)",
                    "inv/s",
                    rate,
                    f"bare docker run loop x{concurrency}",
                    floor_rate,
                )
            )
    return figures, notes


# Floor and ingest alternate in rounds, so both see the same load from the rest of the machine;
# many short rounds let a burst of load elsewhere spoil a few rounds' ratios, not the median.
INGEST_ROUNDS = 10
# The ingest targets, each figure against its floor from the same run.
INGEST_RATE_TARGET = 0.6  # events/s at least this share of GET /healthz's
INGEST_P99_TARGET = 2.0  # p99 at most this multiple of GET /healthz's
# A tenant key's request budget in the bench: the load is the point, not the abuse limit.
BENCH_KEY_REQUESTS_PER_MINUTE = "100000000"


def platform_client(api: httpx.Client, project: str) -> httpx.Client:
    """A client with the key a labeling platform posts events with: a tenant's
    ``events:write`` key, for a project of that tenant (so ingest checks key, rate, project
    as in production)."""
    api.post("/v1/tenants", json={"name": "bench"}).raise_for_status()
    api.put(f"/v1/tenants/bench/projects/{project}").raise_for_status()
    created = api.post(
        "/v1/tenants/bench/keys", json={"name": "platform", "scopes": ["events:write"]}
    )
    created.raise_for_status()
    return httpx.Client(
        base_url=api.base_url,
        headers={"Authorization": f"Bearer {created.json()['key']}"},
        timeout=120,
    )


def ingest_figures(store: str, api: httpx.Client, sizes: Sizes) -> list[Figure]:
    """POST /v1/events to a project with no active plugin (the API and store alone), next
    to GET /healthz (the HTTP floor) from the same client at the same concurrency, in
    alternating rounds (which goes first alternates too); events/s is compared by the
    median of the rounds' ratios, p99 over all rounds."""
    project = "bench-idle"
    per_round = max(1, sizes.ingest_events // INGEST_ROUNDS)
    elapsed: dict[str, list[float]] = {"floor": [], "ingest": []}
    latencies: dict[str, list[float]] = {"floor": [], "ingest": []}
    with platform_client(api, project) as platform:
        requests: dict[str, Callable[[int], httpx.Response]] = {
            "floor": lambda _: platform.get("/healthz"),
            "ingest": lambda i: platform.post(
                "/v1/events",
                json={"type": "onSubmit", "project_id": project, "asset_id": f"i{i}", "label": {}},
            ),
        }
        for n in range(INGEST_ROUNDS):
            for kind in ("floor", "ingest") if n % 2 == 0 else ("ingest", "floor"):
                seconds, measured = timed_requests(
                    per_round, sizes.ingest_concurrency, requests[kind], first=n * per_round
                )
                elapsed[kind].append(seconds)
                latencies[kind].extend(measured)
    rate = {kind: len(latencies[kind]) / sum(elapsed[kind]) for kind in elapsed}
    # Each round's rate ratio is floor time / ingest time (the same number of requests).
    paired = statistics.median(
        f / i for f, i in zip(elapsed["floor"], elapsed["ingest"], strict=True)
    )
    p99 = {kind: percentile(measured, 0.99) * 1000 for kind, measured in latencies.items()}
    section = f"ingest {store}"
    return [
        Figure(section, "events/s", "1/s", rate["ingest"], "GET /healthz", rate["floor"], paired),
        Figure(section, "p99", "ms", p99["ingest"], "GET /healthz", p99["floor"]),
    ]


@dataclass(frozen=True)
class Goal:
    """A figure's goal: at most ``limit`` times its floor, or with ``absolute``
    at most ``limit`` of its own unit."""

    limit: float
    absolute: bool = False

    def check(self, f: Figure) -> dict[str, Any]:
        measured = f.value if self.absolute else f.ratio
        target = (
            f"<= {self.limit:g} {f.unit}"
            if self.absolute
            else f"<= {self.limit:g}x {f.baseline_name}"
        )
        return {
            "figure": f"{f.section} {f.name}",
            "ratio": round(f.ratio, 2),
            "value": round(f.value, 2),
            "shown": f"{f.value:.1f} {f.unit}" if self.absolute else f"{f.ratio:.2f}x",
            "target": target,
            "met": measured <= self.limit,
        }


# The start and gateway goals, each figure next to its floor measured in the same run.
GOALS = {
    ("warm start", "p50"): Goal(15, absolute=True),
    ("warm start", "p99"): Goal(60, absolute=True),
    ("cold start", "p50"): Goal(0.7),
    ("gvisor cold start", "p50"): Goal(1.5),
    ("builds", "code-only new version"): Goal(3),
    ("gateway", "p50 per call"): Goal(1, absolute=True),
    ("gateway", "p99 per call"): Goal(3, absolute=True),
    ("cluster warm start", "worker p50"): Goal(1.2),
    ("cluster cold start", "worker p50"): Goal(1.1),
    ("cluster new version", "first run on a worker"): Goal(2),
}


def print_targets(checks: list[dict[str, Any]]) -> None:
    for check in checks:
        verdict = "met" if check["met"] else "NOT MET"
        shown = check.get("shown", f"{check['ratio']}x")
        print(f"target {check['figure']}: {shown}, {check['target']}: {verdict}")


def targets(figures: list[Figure]) -> list[dict[str, Any]]:
    """Each ingest, noisy-neighbour and issue-24 figure against its target: met or not."""
    checks = []
    for f in figures:
        goal = GOALS.get((f.section, f.name))
        if goal is not None:
            checks.append(goal.check(f))
            continue
        if f.section == NOISY_SECTION:
            target, at_least = NOISY_TARGET, False
        elif f.section.startswith("ingest"):
            at_least = f.name == "events/s"
            target = INGEST_RATE_TARGET if at_least else INGEST_P99_TARGET
        else:
            continue
        met = f.ratio >= target if at_least else f.ratio <= target
        checks.append(
            {
                "figure": f"{f.section} {f.name}",
                "ratio": round(f.ratio, 2),
                "target": f"{'>=' if at_least else '<='} {target}x {f.baseline_name}",
                "met": met,
            }
        )
    return checks


@contextlib.contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new database on the local PostgreSQL (deploy/setup.sh), dropped after."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_URL.format(name=name)
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def sqlite_ingest_figures(sizes: Sizes) -> list[Figure]:
    with executor(warm_pool_size="0", key_requests_per_minute=BENCH_KEY_REQUESTS_PER_MINUTE) as api:
        return ingest_figures("sqlite", api, sizes)


def postgres_figures(sizes: Sizes, url: str) -> list[Figure]:
    with contextlib.ExitStack() as stack:
        if url == "auto":
            url = stack.enter_context(fresh_postgres())
        with executor(
            url, warm_pool_size="0", key_requests_per_minute=BENCH_KEY_REQUESTS_PER_MINUTE
        ) as api:
            return ingest_figures("postgresql", api, sizes)


GVISOR_FLOOR = "bare runsc docker run of true"


def gvisor_figures(sizes: Sizes, workdir: Path) -> tuple[list[Figure], dict[str, Any]]:
    """Cold (pool off) and warm starts with plugins under runsc (gVisor), each run followed
    by a bare ``docker run --rm --runtime runsc`` of the same image running ``true``."""
    figures: list[Figure] = []
    notes: dict[str, Any] = {}
    floor = functools.partial(starts.bare_true_ms, runtime="runsc")
    for kind, pool in (("cold", "0"), ("warm", "1")):
        with executor(warm_pool_size=pool, sandbox_oci_runtime="runsc") as api:
            project = f"gvisor-{kind}"
            image = push_plugin(api, project, workdir / project)
            api.put(f"/v1/projects/{project}/plugins/{project}").raise_for_status()
            measured = starts.latencies(
                api, image, project, sizes.runs, warm=kind == "warm", floor=floor
            )
        figures += percentiles(
            f"gvisor {kind} start", measured.executor, measured.bare, GVISOR_FLOOR
        )
        notes[f"gvisor_{kind}_starts"] = f"{measured.warm_starts} of {sizes.runs} runs started warm"
    return figures, notes


def build_figures(sizes: Sizes) -> list[Figure]:
    rows = builds.measure_builds(list(sizes.requirements))
    floor = builds.bare_build_s(Settings().images.runtime_image)
    for case, _, status, _ in rows:
        assert status == "ACTIVE", f"bench build {case!r} ended {status}"
    return [
        Figure("builds", case, "s", seconds, "bare docker build", floor)
        for case, seconds, *_ in rows
    ]


def gateway_figures(sizes: Sizes) -> tuple[list[Figure], dict[str, Any]]:
    """Per-call latency through the gateway next to a direct call, same stand-in, same run."""
    calls = gateway.measure_calls(sizes.gateway_calls)
    figures = [
        Figure(
            "gateway",
            f"{name} per call",
            "ms",
            percentile(calls["gateway"], share),
            "direct call to the platform stand-in",
            percentile(calls["direct"], share),
        )
        for name, share in (("p50", 0.5), ("p99", 0.99))
    ]
    return figures, {"gateway_ms": gateway.summary(calls)}


NOISY_SECTION = "noisy neighbour"
NOISY_TARGET = 2.0  # B's p99s with A attacking at most this multiple of the quiet round's


def noisy_figures(sizes: Sizes, attacks: frozenset[str]) -> tuple[list[Figure], dict[str, Any]]:
    """Tenant B's p99s while tenant A attacks, next to a quiet round of B alone."""
    run_slots = Settings().runs.max_concurrent_runs
    images: list[str] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        noisy.LorisServer.serving() as loris,
        executor(**noisy.executor_settings(loris.port, run_slots)) as api,
    ):
        try:
            rounds = noisy.measure(api, loris, sizes.noisy, Path(tmp), images, attacks)
        finally:
            noisy.remove_images(images)
    quiet, loud = rounds.of[noisy.QUIET], rounds.of[noisy.NOISY]
    figures = [
        Figure(
            NOISY_SECTION,
            f"B {name} p99",
            "ms",
            percentile(getattr(loud, series), 0.99),
            "quiet round (B alone)",
            percentile(getattr(quiet, series), 0.99),
        )
        for name, series in (("event→handler", "handler_ms"), ("GET /v1/plugins", "api_ms"))
    ]
    notes = {
        "noisy_attacks": rounds.attacks,
        # How much of B's event→handler was the wait for a slot (claim), per round.
        "noisy_b_claim_p99_ms": {
            name: round(percentile(r.claim_ms, 0.99), 1) for name, r in rounds.of.items()
        },
        "noisy_unstarted_b_runs": {name: r.unstarted for name, r in rounds.of.items()},
        "noisy_b_run_p50_ms": {
            name: round(statistics.median(r.run_ms or [0.0]), 1) for name, r in rounds.of.items()
        },
        "noisy_slow_receivers_peak_connections": rounds.loris_peak,
        "noisy_conditions": {
            "run_slots": run_slots,
            **noisy.executor_settings(loris.port, run_slots),
            "bombs_in_flight": noisy.BOMBS_IN_FLIGHT,
            "graphql_aliases": noisy.GRAPHQL_ALIASES,
            "slow_webhooks": noisy.LORIS_HOOKS,
            "attacks": sorted(attacks),
        },
    }
    return figures, notes


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    docker_version = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "docker": docker_version,
        "python": platform.python_version(),
    }


def print_table(figures: list[Figure]) -> None:
    table = Table(title="plugin executor bench (baseline measured in the same run)")
    for column in ("section", "figure", "value", "baseline", "ratio", "difference"):
        table.add_column(column, justify="left" if column in ("section", "figure") else "right")
    for f in figures:
        table.add_row(
            f.section,
            f.name,
            f"{f.value:.1f} {f.unit}",
            f"{f.baseline:.1f} ({f.baseline_name})",
            f"{f.ratio:.2f}x",
            f"{f.difference:+.1f} {f.unit}",
        )
    Console(width=140).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="a few iterations of each (CI)")
    parser.add_argument(
        "--postgres",
        default="auto",
        help="URL of an empty database, 'auto' (a fresh one on the local server) or 'none'",
    )
    parser.add_argument(
        "--section", action="append", choices=SECTIONS, help="run only this one (repeatable)"
    )
    parser.add_argument(
        "--attack",
        action="append",
        choices=noisy.ATTACKS,
        help="noisy section: only this attack of tenant A (repeatable; all by default)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args()
    sizes = SHORT if args.short else FULL
    sections = set(args.section or SECTIONS)
    started = time.monotonic()
    figures: list[Figure] = []
    notes: dict[str, Any] = {}
    if "starts" in sections:
        with tempfile.TemporaryDirectory() as tmp:
            figures, notes = start_sections(sizes, Path(tmp))
    elif "ingest" in sections:  # SQLite ingest alone (starts includes it)
        figures = sqlite_ingest_figures(sizes)
    if "gvisor" in sections:
        with tempfile.TemporaryDirectory() as tmp:
            gvisor, gvisor_notes = gvisor_figures(sizes, Path(tmp))
        figures += gvisor
        notes.update(gvisor_notes)
    if "postgresql" in sections and args.postgres != "none":
        figures += postgres_figures(sizes, args.postgres)
    if "builds" in sections:
        figures += build_figures(sizes)
    if "gateway" in sections:
        gateway_section, gateway_notes = gateway_figures(sizes)
        figures += gateway_section
        notes.update(gateway_notes)
    if "noisy" in sections:
        noisy_section, noisy_notes = noisy_figures(sizes, frozenset(args.attack or noisy.ATTACKS))
        figures += noisy_section
        notes.update(noisy_notes)
    print_table(figures)
    for kind in ("cold", "warm"):
        if f"{kind}_breakdown" in notes:
            print(f"{kind} start breakdown (p50 ms): {notes[f'{kind}_breakdown']}")
            print(f"{kind} start phase means (ms): {notes[f'{kind}_phase_means_ms']}")
    checks = targets(figures)
    print_targets(checks)
    report = {
        "mode": "short" if args.short else "full",
        "sections": sorted(sections),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "sizes": asdict(sizes),
        "notes": {
            **notes,
            "seconds": round(time.monotonic() - started, 1),
            "load_average": os.getloadavg(),
        },
        "targets": checks,
        "figures": [f.as_json() for f in figures],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
