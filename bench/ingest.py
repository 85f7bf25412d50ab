"""Ingest and drain figures of a real executor process: figures, not assertions.

    .venv/bin/python bench/ingest.py [--events 1000] [--concurrency 8] [--runs 100]
                                     [--postgres postgresql+psycopg://executor:executor@127.0.0.1/db]

For each store (SQLite, and PostgreSQL when a URL is given) it starts ``plugin-executor
serve`` on loopback and measures:
  1. ingest: ``--events`` POST /v1/events from ``--concurrency`` client threads to a project
     with no active plugin (events/s and latency percentiles of the store + API alone);
  2. drain: ``--runs`` events to a project where a trivial plugin is active, and the time
     until every invocation is terminal, next to the same number of bare ``docker run``s of
     that plugin's image at the same concurrency (the engine's floor, measured in this run).
Prints a table and writes bench/results/ingest.json. Images are removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from executor.intake.upload import pack_directory

KEY = "pe_op_bench-key-0123456789abcdef"
PLUGIN = "class PluginHandler:\n    def on_submit(self, label, asset_id):\n        print('ok')\n"
TERMINAL = {"succeeded", "failed", "timed_out", "oom_killed", "crashed", "canceled", "dead"}
RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def start_executor(
    data_dir: Path,
    port: int,
    database_url: str | None,
    concurrency: int | None,
    **settings: str,
) -> subprocess.Popen[bytes]:
    """``plugin-executor serve`` on loopback; ``settings`` are extra ``EXECUTOR_*`` values
    (lower-case names without the prefix), ``concurrency`` None keeps the default."""
    env = {
        **os.environ,
        "EXECUTOR_DATA_DIR": str(data_dir),
        "EXECUTOR_PORT": str(port),
        "EXECUTOR_OPERATOR_KEY": KEY,
        "EXECUTOR_DISPATCH_POLL_S": "0.2",
        **{f"EXECUTOR_{name.upper()}": value for name, value in settings.items()},
    }
    if concurrency is not None:
        env["EXECUTOR_MAX_CONCURRENT_RUNS"] = str(concurrency)
    if database_url:
        env["EXECUTOR_DATABASE_URL"] = database_url
    process = subprocess.Popen(
        [sys.executable, "-m", "executor.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the executor did not start")


def timed_requests(
    count: int, concurrency: int, request: Callable[[int], httpx.Response], first: int = 0
) -> tuple[float, list[float]]:
    """Send requests ``first`` to ``first + count`` from ``concurrency`` threads: the
    seconds it took and each request's latency (s)."""

    def timed(i: int) -> float:
        started = time.perf_counter()
        request(i).raise_for_status()
        return time.perf_counter() - started

    # The client is a Python process too: a full collection in it (tens of milliseconds)
    # stalled every request in flight, and counted as the server's latency.
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = list(pool.map(timed, range(first, first + count)))
        return time.perf_counter() - started, latencies
    finally:
        gc.enable()


def measure_requests(
    count: int, concurrency: int, request: Callable[[int], httpx.Response]
) -> dict[str, float]:
    """Send ``count`` requests from ``concurrency`` threads: rate and latency percentiles."""
    elapsed, latencies = timed_requests(count, concurrency, request)
    return {
        "per_s": count / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def measure_ingest(api: httpx.Client, events: int, concurrency: int) -> dict[str, float]:
    """POST /v1/events to a project with no active plugin: the store and API alone."""
    figures = measure_requests(
        events,
        concurrency,
        lambda i: api.post(
            "/v1/events",
            json={"type": "onSubmit", "project_id": "idle", "asset_id": f"i{i}", "label": {}},
        ),
    )
    return {
        "events_per_s": figures["per_s"],
        "p50_ms": figures["p50_ms"],
        "p99_ms": figures["p99_ms"],
    }


def push_plugin(api: httpx.Client, name: str, workdir: Path, source: str = PLUGIN) -> str:
    """Upload a one-file plugin, wait until it is ACTIVE; its image id."""
    plugin = workdir / name
    plugin.mkdir(parents=True)
    (plugin / "main.py").write_text(source)
    api.post(
        "/v1/plugins",
        data={"name": name},
        files={"file": ("p.tar.gz", pack_directory(plugin))},
    ).raise_for_status()
    while (build := api.get(f"/v1/plugins/{name}/versions/1/build-log").json())[
        "status"
    ] == "DEPLOYING":
        time.sleep(0.2)
    assert build["status"] == "ACTIVE", build["log"]
    return str(api.get(f"/v1/plugins/{name}").json()["versions"][0]["image_id"])


def wait_terminal(api: httpx.Client, project: str, ids: list[str]) -> None:
    """Until every one of ``ids`` (invocations of ``project``) is terminal."""
    pending = set(ids)
    while pending:
        page = api.get("/v1/invocations", params={"project_id": project, "limit": 1000}).json()
        pending = {r["id"] for r in page if r["status"] not in TERMINAL} & pending
        time.sleep(0.05)


def measure_drain(
    api: httpx.Client, runs: int, concurrency: int, workdir: Path
) -> tuple[dict[str, float], str]:
    image = push_plugin(api, "bench_noop", workdir)
    api.put("/v1/projects/drain/plugins/bench_noop").raise_for_status()
    started = time.perf_counter()
    ids = [
        api.post(
            "/v1/events",
            json={"type": "onSubmit", "project_id": "drain", "asset_id": f"d{i}", "label": {}},
        ).json()["invocations"][0]
        for i in range(runs)
    ]
    wait_terminal(api, "drain", ids)
    drain_s = time.perf_counter() - started
    return {"drain_s": drain_s, "runs_per_s": runs / drain_s}, image


# What a bare ``docker run`` of a plugin image gets on stdin (no gateway socket).
BARE_ENVELOPE = b'{"invocation_id":"b","plugin":"b","version":1,"project_id":"p","event":{"type":"onSubmit","asset_id":"a","label":{},"payload":{}},"api":{"url":"http://127.0.0.1:1","token":"t"},"deadline":"2099-01-01T00:00:00Z"}'
BARE_RUN = ["docker", "run", "--rm", "-i", "--network", "none"]


def bare_runs(image: str, runs: int, concurrency: int) -> float:
    """Runs/s of ``runs`` bare ``docker run``s of ``image`` at ``concurrency``: the floor."""

    def one(_: int) -> None:
        subprocess.run(
            [*BARE_RUN, image],
            input=BARE_ENVELOPE,
            capture_output=True,
            check=False,
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(runs)))
    return runs / (time.perf_counter() - started)


def bench_store(label: str, database_url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        port = 18700 + (1 if database_url else 0)
        process = start_executor(Path(tmp) / "data", port, database_url, args.concurrency)
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=60,
        )
        try:
            ingest = measure_ingest(api, args.events, args.concurrency)
            drain, image = measure_drain(api, args.runs, args.concurrency, Path(tmp))
            bare = bare_runs(image, args.runs, args.concurrency)
        finally:
            process.terminate()
            process.wait(60)
            subprocess.run(
                ["docker", "rmi", "-f", image], capture_output=True, check=False
            ) if "image" in locals() else None
    return {
        "store": label,
        **ingest,
        **drain,
        "bare_docker_runs_per_s": bare,
        "ratio_to_bare": drain["runs_per_s"] / bare,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--postgres", default=None, help="PostgreSQL URL (an empty database)")
    args = parser.parse_args()
    rows = [bench_store("sqlite", None, args)]
    if args.postgres:
        rows.append(bench_store("postgresql", args.postgres, args))
    columns = [
        ("store", "store", "<11", ""),
        ("events/s", "events_per_s", ">10", ".0f"),
        ("p50 ms", "p50_ms", ">9", ".1f"),
        ("p99 ms", "p99_ms", ">9", ".1f"),
        ("drain s", "drain_s", ">9", ".1f"),
        ("runs/s", "runs_per_s", ">8", ".2f"),
        ("bare/s", "bare_docker_runs_per_s", ">8", ".2f"),
        ("ratio", "ratio_to_bare", ">7", ".2f"),
    ]
    print("".join(f"{title:{align}}" for title, _, align, _ in columns))
    for row in rows:
        print("".join(f"{row[key]:{align}{fmt}}" for _, key, align, fmt in columns))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
