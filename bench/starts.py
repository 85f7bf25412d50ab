"""Start latency and throughput of a real executor, next to bare ``docker run`` floors.

Start latency is the invocation record's ``start_latency_ms``: from the event's 202 (its
``queued_at``) to the handler's first line (the runtime's ``handler_started`` control line
reaching the executor). The floor is a bare ``docker run --rm -i`` of the same plugin
image, timed from the command to the same control line on its stdout.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import httpx

from bench.ingest import (
    BARE_ENVELOPE,
    BARE_RUN,
    TERMINAL,
    percentile,
    push_plugin,
    wait_terminal,
)
from executor.engine import POOL_LABEL

HANDLER_STARTED = b'"handler_started"'
BARE_TRUE = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "true"]
POOL_SETTLE_S = 1.0  # after a warm container is up, time for its runtime to import main.py
RECORD_POLL_S = 0.05  # run_one's reads of the run's record


def bare_latency_ms(image: str) -> float:
    """One bare ``docker run`` of ``image``: milliseconds until its handler started."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [*BARE_RUN, image],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(BARE_ENVELOPE)
    process.stdin.close()
    elapsed: float | None = None
    for line in process.stdout:
        if HANDLER_STARTED in line:
            elapsed = (time.perf_counter() - started) * 1000
    process.wait()
    assert elapsed is not None, "the bare run never reached its handler"
    return elapsed


def bare_true_ms(image: str, runtime: str) -> float:
    """One bare ``docker run --rm --runtime RUNTIME`` of ``image`` running ``true``: the
    milliseconds until it exited (a container's whole life, no Python started in it)."""
    started = time.perf_counter()
    subprocess.run(
        [*BARE_TRUE, "--runtime", runtime, image],
        capture_output=True,
        check=True,
    )
    return (time.perf_counter() - started) * 1000


def run_one(api: httpx.Client, project: str, asset: str) -> dict[str, Any]:
    """Post one event, wait for its run; the invocation record.

    The run's record is read every ``RECORD_POLL_S``, the first time that long after the
    202: a read made during the start it measures competes with it for the two cores (a
    read of the project's list, as ``wait_terminal`` makes, took the API 4 ms of a warm
    start's 15). The figures come from the record's times, not from when it was read."""
    accepted = api.post(
        "/v1/events",
        json={"type": "onSubmit", "project_id": project, "asset_id": asset, "label": {}},
    )
    accepted.raise_for_status()
    (invocation_id,) = accepted.json()["invocations"]
    while True:
        time.sleep(RECORD_POLL_S)
        run = api.get(f"/v1/invocations/{invocation_id}").json()
        if run["status"] in TERMINAL:
            break
    assert run["status"] == "succeeded", run
    return dict(run)


def claim_ms(run: dict[str, Any]) -> float:
    """The store and dispatcher's share of a start: from the 202 to the run's claim."""
    queued, claimed = (datetime.fromisoformat(run[k]) for k in ("queued_at", "started_at"))
    return (claimed - queued).total_seconds() * 1000


def breakdown(measured: Latencies) -> dict[str, float]:
    """p50s (ms) of a start's two parts, from the runs' own records: queued to claimed,
    claimed to the handler's entry; and the whole."""
    return {
        "claim_p50_ms": round(percentile(measured.claim, 0.5), 1),
        "claim_to_handler_p50_ms": round(percentile(measured.handoff, 0.5), 1),
        "event_to_handler_p50_ms": round(percentile(measured.executor, 0.5), 1),
    }


def warm_ready(client: docker.APIClient, image: str) -> bool:
    """A warm container of ``image`` is running."""
    filters = {"label": POOL_LABEL, "ancestor": image, "status": "running"}
    return bool(client.containers(filters=filters))


def phase_means_ms(api: httpx.Client) -> dict[str, float]:
    """Mean milliseconds of each start phase so far (``executor_start_phase_seconds``)."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in api.get("/metrics").text.splitlines():
        for suffix, into in (("_sum", sums), ("_count", counts)):
            prefix = f'executor_start_phase_seconds{suffix}{{phase="'
            if line.startswith(prefix):
                phase, value = line[len(prefix) :].split('"} ')
                into[phase] = float(value)
    return {p: round(sums[p] / counts[p] * 1000, 1) for p in sums if counts.get(p)}


@dataclass
class Latencies:
    """Start latencies (ms) of sequential runs and of the bare floor, measured alternately
    so both see the same machine load."""

    executor: list[float] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)
    claim: list[float] = field(default_factory=list)  # the executor's store + dispatch share
    # From the claim to the handler's entry: run inputs, container (warm or started), token
    # and envelope, the runtime until the handler begins.
    handoff: list[float] = field(default_factory=list)
    warm_starts: int = 0


def latencies(
    api: httpx.Client,
    image: str,
    project: str,
    runs: int,
    *,
    warm: bool,
    floor: Callable[[str], float] = bare_latency_ms,
    client: docker.APIClient | None = None,
) -> Latencies:
    """``runs`` events one after the other (with ``warm``, each once the pool of the engine
    ``client`` talks to, default the local one, is ready), each followed by one ``floor``
    run of ``image``."""
    own_client = client is None
    client = client or docker.APIClient()
    measured = Latencies()
    try:
        for n in range(runs):
            if warm:
                deadline = time.monotonic() + 60
                while not warm_ready(client, image) and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(POOL_SETTLE_S)
            run = run_one(api, project, f"{project}-{n}")
            measured.executor.append(float(run["start_latency_ms"]))
            measured.claim.append(claim_ms(run))
            measured.handoff.append(measured.executor[-1] - measured.claim[-1])
            measured.warm_starts += run["start"] == "warm"
            measured.bare.append(floor(image))
    finally:
        if own_client:
            client.close()
    return measured


def throughput(api: httpx.Client, workdir: Path, plugins: int, events: int) -> tuple[float, str]:
    """Invocations/s of ``events`` events spread over ``plugins`` distinct plugins (each
    active on its own project), from the first post until all are terminal; and the image
    of one of them for the floor."""
    project = f"tp{plugins}"
    images = [push_plugin(api, f"{project}_{i}", workdir) for i in range(plugins)]
    for i in range(plugins):
        api.put(f"/v1/projects/{project}-{i}/plugins/{project}_{i}").raise_for_status()
    time.sleep(POOL_SETTLE_S * 2)  # let the pools fill, as they would in steady state
    started = time.perf_counter()
    ids = []
    for n in range(events):
        body = {
            "type": "onSubmit",
            "project_id": f"{project}-{n % plugins}",
            "asset_id": str(n),
            "label": {},
        }
        ids += api.post("/v1/events", json=body).json()["invocations"]
    for i in range(plugins):
        wait_terminal(api, f"{project}-{i}", ids)
    return events / (time.perf_counter() - started), images[0]
