"""Warm-aware placement: the share of runs that start warm, placement on against off.

    .venv/bin/python -m bench.placement [--events 20]

On one PostgreSQL database per mode: an API process (``serve --no-dispatch``) and two
worker processes on this machine's engine, one with a warm pool of one container and one
without (pools are sized per node). Events of one version arrive one after another, each
once the previous run ended and the warm node's pool was refilled (or ``REFILL_WAIT_S``
passed). With placement off (``EXECUTOR_PLACEMENT_GRACE_S=0``) whichever worker claims
first runs the event; with it on, the worker without a warm container leaves it to the
other. The figure is the share of runs that started warm; no assertion.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg

from bench.ingest import KEY, push_plugin, wait_terminal
from bench.run import PG_ADMIN_DSN, PG_URL, free_port

REFILL_WAIT_S = 10.0
READY_WAIT_S = 120.0


def _process(data_dir: Path, command: str, **settings: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "EXECUTOR_DATA_DIR": str(data_dir),
        "EXECUTOR_OPERATOR_KEY": KEY,
        "EXECUTOR_DISPATCH_POLL_S": "0.2",
        **{f"EXECUTOR_{name.upper()}": value for name, value in settings.items()},
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "process.log").open("wb") as log:  # read it when a mode fails
        return subprocess.Popen(
            [sys.executable, "-m", "executor.cli", command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _until(what: str, api: httpx.Client, path: str, test: Callable[[httpx.Response], bool]) -> None:
    deadline = time.monotonic() + READY_WAIT_S
    while True:
        with contextlib.suppress(httpx.TransportError):
            if test(api.get(path)):
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not seen within {READY_WAIT_S:.0f} s")
        time.sleep(0.2)


@contextlib.contextmanager
def _cluster(workdir: Path, grace_s: str) -> Iterator[httpx.Client]:
    """API + a warm worker + a cold worker on a fresh database; torn down after."""
    name = f"bench_place_{os.getpid()}_{grace_s.replace('.', '_')}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = PG_URL.format(name=name)
    port = free_port()
    common = {"database_url": url, "placement_grace_s": grace_s}
    processes = [_process(workdir / "api", "serve", port=str(port), dispatch="false", **common)]
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {KEY}"}, timeout=120
    )
    try:
        _until("the API", api, "/healthz", lambda r: r.status_code == 200)
        for node, size in (("warm", "1"), ("cold", "0")):
            processes.append(
                _process(workdir / node, "worker", node_id=node, warm_pool_size=size, **common)
            )
        _until("two ready nodes", api, "/v1/nodes", lambda r: len(r.json()) == 2)
        yield api
    finally:
        images: list[str] = []
        with contextlib.suppress(httpx.HTTPError):
            images = [
                v["image_id"]
                for p in api.get("/v1/plugins").json()
                for v in api.get(f"/v1/plugins/{p['name']}").json()["versions"]
                if v["image_id"]
            ]
        api.close()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(120)
        if images:
            subprocess.run(["docker", "rmi", "-f", *images], capture_output=True, check=False)
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _warm_published(api: httpx.Client) -> bool:
    nodes = {n["id"]: n for n in api.get("/v1/nodes").json()}
    return bool(nodes.get("warm", {}).get("warm"))


def warm_share(workdir: Path, grace_s: str, events: int) -> float:
    """The share of ``events`` sequential runs that started warm."""
    with _cluster(workdir, grace_s) as api:
        push_plugin(api, "placed", workdir / "plugin")
        api.put("/v1/projects/place/plugins/placed").raise_for_status()
        warm = 0
        for n in range(events):
            deadline = time.monotonic() + REFILL_WAIT_S
            while not _warm_published(api) and time.monotonic() < deadline:
                time.sleep(0.1)
            body = {"type": "onSubmit", "project_id": "place", "asset_id": f"a{n}", "label": {}}
            run_id = api.post("/v1/events", json=body).json()["invocations"][0]
            wait_terminal(api, "place", [run_id])
            warm += api.get(f"/v1/invocations/{run_id}").json()["start"] == "warm"
        return warm / events


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        on = warm_share(Path(tmp) / "on", "2.0", args.events)
        off = warm_share(Path(tmp) / "off", "0", args.events)
    print(f"warm-aware placement, {args.events} sequential events, 2 workers (one warm pool)")
    print(f"  warm starts with placement on : {on:.0%}")
    print(f"  warm starts with placement off: {off:.0%}")


if __name__ == "__main__":
    main()
