"""``python -m bench cluster [--short]``: a worker node against all-in-one, in one run.

The cluster is the one ``tests/integration/test_cluster.py`` runs (registry with TLS and
htpasswd, PostgreSQL, an API process, two workers each on its own Docker Engine in its own
network namespace, all on this machine); the all-in-one baseline is ``plugin-executor
serve`` with SQLite on the host's engine.

  cold start   event→handler entry p50/p95 on worker w1, pool off, vs all-in-one;
  warm start   the same with a warm pool of one on w1, vs all-in-one; and (no goal) vs
               the all-in-one on PostgreSQL, which splits the gap between the store and
               the worker's own process;
  new version  a new version's first run on a worker, event to handler, vs a bare pull of
               the same digest by the other engine: the p50s over five new plugins. The
               build waits for the workers to pull the image before the version becomes
               ACTIVE, so the run starts it cold without pulling it; the notes give when
               each worker held it;
  throughput   invocations/s of one event burst with one worker engine (the other
               drained), vs two worker engines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import httpx
import sqlalchemy

from bench import starts
from bench.ingest import RESULTS, percentile, push_plugin, wait_terminal
from bench.run import (
    Figure,
    executor,
    fresh_postgres,
    machine,
    print_table,
    print_targets,
    targets,
)
from executor.settings import Settings
from tests.integration.cluster import WORKERS, EngineCluster, engine_cluster
from tests.integration.conftest import drop_template
from tests.integration.registry import PASSWORD, USER


@dataclass(frozen=True)
class ClusterSizes:
    runs: int
    events: int
    versions: int  # new versions, a first run and a bare pull each


FULL = ClusterSizes(30, 60, 5)
SHORT = ClusterSizes(3, 6, 1)


def no_floor(_: str) -> float:
    return 0.0


def place(api: httpx.Client, plugin: str, project: str, worker: str | None) -> None:
    """Activate ``plugin`` on ``project``, only on ``worker`` when one is named."""
    body = {"node_selector": {"name": worker}} if worker else None
    api.put(f"/v1/projects/{project}/plugins/{plugin}", json=body).raise_for_status()


def hand_off_split(database_url: str, project: str) -> dict[str, float]:
    """p50s (ms) of a run's claim→hand-off (inputs, container taken, token stored) and
    hand-off→handler entry (envelope written, the runtime until the handler), from the
    store's rows: the hand-off began ``timeout_s`` before the deadline it recorded."""
    timeout = timedelta(seconds=Settings().sandbox.timeout_s)
    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text(
                    "SELECT started_at, deadline_at, handler_started_at, cold_start "
                    "FROM invocations WHERE project_id = :p AND handler_started_at IS NOT NULL"
                ),
                {"p": project},
            ).all()
    finally:
        engine.dispose()
    to_hand_off = [((d - timeout) - s).total_seconds() * 1000 for s, d, _, _ in rows]
    to_handler = [(h - (d - timeout)).total_seconds() * 1000 for _, d, h, _ in rows]
    return {
        "claim_to_hand_off_p50_ms": round(percentile(to_hand_off, 0.5), 1),
        "hand_off_to_handler_p50_ms": round(percentile(to_handler, 0.5), 1),
        "warm_starts": sum(not cold for *_, cold in rows),
        "runs": len(rows),
    }


def worker_starts(
    cluster: EngineCluster, api: httpx.Client, workdir: Path, runs: int, *, warm: bool
) -> starts.Latencies:
    kind = "warm" if warm else "cold"
    image = push_plugin(api, kind, workdir / kind)
    place(api, kind, kind, "w1")
    client = docker.APIClient(base_url=cluster.engines["w1"].host)
    try:
        return starts.latencies(api, image, kind, runs, warm=warm, floor=no_floor, client=client)
    finally:
        client.close()


def all_in_one_starts(
    workdir: Path, runs: int, *, warm: bool, database_url: str | None = None
) -> tuple[starts.Latencies, dict[str, float]]:
    """The start latencies of ``plugin-executor serve`` (on SQLite, or on ``database_url``)
    and its start phases' means."""
    kind = "warm" if warm else "cold"
    store = "pg" if database_url else "sqlite"
    with executor(database_url, warm_pool_size="1" if warm else "0") as api:
        image = push_plugin(api, kind, workdir / f"aio-{store}-{kind}")
        api.put(f"/v1/projects/{kind}/plugins/{kind}").raise_for_status()
        measured = starts.latencies(api, image, kind, runs, warm=warm, floor=no_floor)
        return measured, starts.phase_means_ms(api)


def start_figures(
    cluster: EngineCluster, workdir: Path, sizes: ClusterSizes, notes: dict[str, Any]
) -> list[Figure]:
    """Cold and warm starts on worker w1 and on an all-in-one; ``notes`` gets each one's
    breakdown (queued to claimed, claimed to handler) and the one box's start phases."""
    assert cluster.api is not None
    figures = []
    for warm in (False, True):
        kind = "warm" if warm else "cold"
        if warm:  # w1 again, now keeping a warm container per version
            cluster.workers["w1"].stop()
            cluster.start_worker("w1", warm_pool_size=1)
        node = worker_starts(cluster, cluster.api.api, workdir, sizes.runs, warm=warm)
        alone, phases = all_in_one_starts(workdir, sizes.runs, warm=warm)
        notes[f"{kind}_breakdown"] = {
            "worker": {
                **starts.breakdown(node),
                **hand_off_split(cluster.database_url, kind),
            },
            "all-in-one": starts.breakdown(alone),
            "all-in-one phase means (ms)": phases,
        }
        figures += [
            Figure(
                f"cluster {kind} start",
                f"worker {name}",
                "ms",
                percentile(node.executor, share),
                "all-in-one",
                percentile(alone.executor, share),
            )
            for name, share in (("p50", 0.5), ("p95", 0.95))
        ]
        if warm:
            figures.append(_against_postgres(node, workdir, sizes, notes))
    return figures


def _against_postgres(
    node: starts.Latencies, workdir: Path, sizes: ClusterSizes, notes: dict[str, Any]
) -> Figure:
    """The worker's warm starts against the all-in-one on PostgreSQL: whether the warm gap
    is the store's (its round trips and flushes) or the worker's (its own process and
    engine). No goal: the goal's floor is the all-in-one as shipped."""
    with fresh_postgres() as url:
        on_postgres, _ = all_in_one_starts(workdir, sizes.runs, warm=True, database_url=url)
    notes["warm_breakdown"]["all-in-one on PostgreSQL"] = starts.breakdown(on_postgres)
    return Figure(
        "cluster warm start",
        "worker p50, against the all-in-one on PostgreSQL",
        "ms",
        percentile(node.executor, 0.5),
        "all-in-one on PostgreSQL",
        percentile(on_postgres.executor, 0.5),
    )


def new_version_figure(
    cluster: EngineCluster, workdir: Path, versions: int, notes: dict[str, Any]
) -> Figure:
    """The first run of each of ``versions`` new plugins on w1, activated as soon as its
    upload is ACTIVE, against the bare pull of the same digest by w2's engine; the medians.
    One of each moved by tens of percent from run to run: one cold start against one pull
    (1.22x to 2.05x in ``cluster-run20`` to ``-run28``)."""
    runs, pulls = [], []
    notes["new_version_runs"], notes["new_version_distribution"] = [], []
    for number in range(1, versions + 1):
        run_ms, pull_ms = _first_run_and_pull(cluster, workdir, f"fresh{number}", notes)
        runs.append(run_ms)
        pulls.append(pull_ms)
    notes["new_version_samples_ms"] = {"first_run": runs, "bare_pull": pulls}
    return Figure(
        "cluster new version",
        "first run on a worker",
        "ms",
        percentile(runs, 0.5),
        "bare pull by digest",
        percentile(pulls, 0.5),
    )


def _first_run_and_pull(
    cluster: EngineCluster, workdir: Path, name: str, notes: dict[str, Any]
) -> tuple[float, float]:
    """A new plugin's first run on w1 (ms, event to handler), then the bare pull (ms) of
    its image by w2's engine; the run's breakdown and the build's distribution go to
    ``notes``."""
    assert cluster.api is not None
    api = cluster.api.api
    push_plugin(api, name, workdir / name)
    digest = api.get(f"/v1/plugins/{name}").json()["versions"][0]["image_digest"]
    log = api.get(f"/v1/plugins/{name}/versions/1/build-log").json()["log"]
    notes["new_version_distribution"].append(
        [line.strip() for line in log.splitlines() if "holds it" in line or "Waiting for" in line]
    )
    place(api, name, name, "w1")
    run = starts.run_one(api, name, "first")
    claim = starts.claim_ms(run)
    notes["new_version_runs"].append(
        {
            "start": run["start"],
            "claim_ms": round(claim, 1),
            "claim_to_handler_ms": round(float(run["start_latency_ms"]) - claim, 1),
        }
    )
    repository, _, tag = digest.partition("@")
    client = cluster.clients["w2"]
    # w2 pulled it before it became ACTIVE: removed, the bare pull fetches what the
    # distribution fetched (the layers the engine lacks).
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(digest, force=True)
    started = time.perf_counter()
    for _ in client.api.pull(
        repository,
        tag=tag,
        stream=True,
        decode=True,
        auth_config={"username": USER, "password": PASSWORD},
    ):
        pass
    return float(run["start_latency_ms"]), (time.perf_counter() - started) * 1000


def burst(api: httpx.Client, project: str, events: int) -> float:
    """Invocations/s of ``events`` events posted at once, until all are terminal."""
    started = time.perf_counter()
    ids = [
        api.post(
            "/v1/events",
            json={"type": "onSubmit", "project_id": project, "asset_id": str(n), "label": {}},
        ).json()["invocations"][0]
        for n in range(events)
    ]
    wait_terminal(api, project, ids)
    return events / (time.perf_counter() - started)


def throughput_figure(cluster: EngineCluster, workdir: Path, sizes: ClusterSizes) -> Figure:
    assert cluster.api is not None
    api = cluster.api.api
    push_plugin(api, "tp", workdir / "tp")
    place(api, "tp", "tp", None)
    for name in WORKERS:  # each engine pulls the image before the clock starts
        place(api, "tp", f"tp-{name}", name)
        starts.run_one(api, f"tp-{name}", "warmup")
    api.post("/v1/nodes/w2/drain").raise_for_status()
    one = burst(api, "tp", sizes.events)
    cluster.workers["w2"].stop()  # a drain lasts until the node starts again
    cluster.start_worker("w2")
    two = burst(api, "tp", sizes.events)
    return Figure(
        "cluster throughput", "two worker engines", "inv/s", two, "one worker engine", one
    )


def print_breakdown(notes: dict[str, Any]) -> None:
    """Where a start goes, p50 per part, a worker next to the all-in-one."""
    for kind in ("cold", "warm"):
        parts = notes.get(f"{kind}_breakdown")
        if parts is None:
            continue
        for who in ("worker", "all-in-one", "all-in-one on PostgreSQL"):
            if who not in parts:
                continue
            shown = ", ".join(
                f"{k.removesuffix('_p50_ms')} {v} ms" if k.endswith("_ms") else f"{k} {v}"
                for k, v in parts[who].items()
            )
            print(f"{kind} start breakdown, {who} (p50): {shown}")
        print(f"{kind} start phase means, all-in-one: {parts['all-in-one phase means (ms)']}")
    for number, run in enumerate(notes.get("new_version_runs", []), 1):
        print(f"new version {number}, its first run: {run}")
    for number, lines in enumerate(notes.get("new_version_distribution", []), 1):
        print(f"new version {number}, its build after the push: {'; '.join(lines)}")
    if "new_version_samples_ms" in notes:
        samples = notes["new_version_samples_ms"]
        print(f"new versions, first runs (ms): {[round(ms) for ms in samples['first_run']]}")
        print(f"new versions, bare pulls (ms): {[round(ms) for ms in samples['bare_pull']]}")


@contextlib.contextmanager
def running_cluster(root: Path) -> Iterator[EngineCluster]:
    host = docker.from_env()
    try:
        with engine_cluster(root, host) as cluster:
            cluster.start_api()
            for name in WORKERS:
                cluster.start_worker(name)
            yield cluster
    finally:
        host.close()
        # The migrated database the cluster's was copied from: pytest drops it at the end
        # of a session, and this process is none (each run left one behind).
        drop_template()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--short", action="store_true", help="a few iterations of each (CI)")
    parser.add_argument("--out", type=Path, default=RESULTS / "cluster.json")
    args = parser.parse_args(argv)
    sizes = SHORT if args.short else FULL
    started = time.monotonic()
    notes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp, running_cluster(Path(tmp)) as cluster:
        workdir = Path(tmp) / "plugins"
        figures = start_figures(cluster, workdir, sizes, notes)
        figures.append(new_version_figure(cluster, workdir, sizes.versions, notes))
        figures.append(throughput_figure(cluster, workdir, sizes))
    print_table(figures)
    print_breakdown(notes)
    checks = targets(figures)
    print_targets(checks)
    report: dict[str, Any] = {
        "mode": "short" if args.short else "full",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "sizes": {"runs": sizes.runs, "events": sizes.events, "versions": sizes.versions},
        "seconds": round(time.monotonic() - started, 1),
        "load_average": os.getloadavg(),
        "notes": notes,
        "targets": checks,
        "figures": [f.as_json() for f in figures],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
