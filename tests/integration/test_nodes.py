"""Nodes sharing one PostgreSQL store on this machine's Docker Engine (issue 15): each
keeps its own runs and pools, a lost node's runs go elsewhere and its late writes are
refused, a drained node takes nothing new, a run lands only on a node that can run it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from executor.engine import NODE_LABEL, POOL_LABEL
from executor.store.leases import LEASE_EXPIRED
from tests.conftest import OPERATOR_KEY
from tests.integration.processes import (
    ExecutorProcess,
    built_images,
    executor_process,
    remove_images,
    stop_all,
)
from tests.platform_standin import PlatformStandIn, per_invocation, platform_standin

DEADLINE_S = 180
LEASE_S = 5  # short, so a stopped worker is lost soon; renewed every third of it
FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")  # Debian's faketime


class Cluster:
    """Executor processes (servers and workers) sharing one PostgreSQL database; each is
    a node named after its folder."""

    def __init__(self, root: Path, docker_client: docker.DockerClient, database_url: str) -> None:
        self.root = root
        self.docker_client = docker_client
        self.database_url = database_url
        self.started: list[ExecutorProcess] = []

    def start(
        self,
        name: str,
        command: str = "serve",
        env: dict[str, str] | None = None,
        **settings: Any,
    ) -> ExecutorProcess:
        """Start a process named ``name``, with ``env`` added to its environment."""
        return self.spawn(name, command, env, **settings).wait_ready()

    def spawn(
        self,
        name: str,
        command: str = "serve",
        env: dict[str, str] | None = None,
        **settings: Any,
    ) -> ExecutorProcess:
        """``start`` without waiting for the process to be ready (``ready``)."""
        process = executor_process(
            self.root / name,
            self.docker_client,
            command=command,
            database_url=self.database_url,
            node_id=name,
            **settings,
        )
        process.env.update(env or {})
        self.started.append(process)
        return process.spawn()

    def stop(self) -> None:
        servers = [p for p in self.started if p.command == "serve"]
        images = built_images(servers[0]) if servers else []
        stop_all(self.started)  # at once; a stopped worker is continued to stop
        remove_images(self.docker_client, images)


def ready(*processes: ExecutorProcess) -> None:
    """Wait until each of the spawned ``processes`` is ready (they start together)."""
    for process in processes:
        process.wait_ready()


@pytest.fixture
def cluster(
    postgres_url: str, docker_client: docker.DockerClient, runtime_image: str, tmp_path: Path
) -> Iterator[Cluster]:
    started = Cluster(tmp_path, docker_client, postgres_url)
    yield started
    started.stop()


def wait_for(what: str, check: Callable[[], Any], timeout: float = DEADLINE_S) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not seen within {timeout} s"
        time.sleep(0.3)


def node_states(api: ExecutorProcess) -> dict[str, str]:
    return {n["id"]: n["state"] for n in api.api.get("/v1/nodes").json()}


def run_of(api: ExecutorProcess, run_id: str) -> dict[str, Any]:
    return dict(api.api.get(f"/v1/invocations/{run_id}").json())


def started_run(api: ExecutorProcess, project: str, **label: Any) -> str:
    """Post an event for the ``interval`` or ``effects`` plugin (``sleep=S`` s, or ``hold=True``
    until the platform stand-in is released); wait until its handler logged ``start``."""
    run_id = api.post_event(type="onSubmit", project_id=project, asset_id="a", label=label)
    run_id = run_id["invocations"][0]
    wait_for("the handler's start line", lambda: api.logs(run_id=run_id, q="start a"))
    return str(run_id)


def cli(process: ExecutorProcess, *args: str) -> subprocess.CompletedProcess[str]:
    (result,) = clis(process, list(args))
    return result


def clis(process: ExecutorProcess, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run the CLI commands at once against ``process``; their results in order."""
    env = {**os.environ, "EXECUTOR_URL": process.url, "EXECUTOR_API_KEY": OPERATOR_KEY}
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "executor.cli", *args],
            env={**env, "COLUMNS": "300"},  # a wide terminal: a table row is one line
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    try:
        answers = [child.communicate(timeout=60) for child in started]
    finally:
        for child in started:  # the others too when one was cut
            child.kill()
            child.wait()
    return [
        subprocess.CompletedProcess(args, child.returncode, stdout, stderr)
        for args, child, (stdout, stderr) in zip(commands, started, answers, strict=True)
    ]


def node_containers(client: docker.DockerClient, node_id: str, *labels: str) -> list[str]:
    """Running containers of ``node_id`` (with ``labels`` too)."""
    found = client.api.containers(filters={"label": [*labels, f"{NODE_LABEL}={node_id}"]})
    return sorted(c["Id"] for c in found)


def test_two_executors_on_one_engine_keep_their_own_runs_and_pools(
    cluster: Cluster, platform: PlatformStandIn
) -> None:
    """The run is held on the platform stand-in until the test released it."""
    first = cluster.start(
        "node-a",
        warm_pool_size=1,
        platform_api_url=platform.url + "/api/projects/{project_id}",
        gateway_upstream_timeout_s=600,
    )
    first.push("interval")
    first.activate("interval", "shared")
    client = first.docker_client
    wait_for("node-a's warm container", lambda: node_containers(client, "node-a", POOL_LABEL))
    run_id = started_run(first, "shared", hold=True)  # in the warm container: a pooled one
    holder = run_of(first, run_id)["executor"]
    # The one serving the run and the warm one started to replace it.
    wait_for("node-a's new warm container", lambda: len(node_containers(client, "node-a")) == 2)
    before = node_containers(client, "node-a")

    # A second node on the same engine and store reconciles at its start.
    cluster.start("node-b", command="worker")

    running = run_of(first, run_id)
    assert (running["status"], running["node"], running["executor"]) == (
        "running",
        "node-a",
        holder,
    ), "the new node adopted a live peer's run"
    assert set(before) <= set(node_containers(client, "node-a")), (
        "the new node removed a live peer's containers"
    )
    platform.release()
    done = first.wait_run(run_id, timeout=DEADLINE_S)
    assert (done["status"], done["attempt"], done["node"]) == ("succeeded", 1, "node-a")
    records = first.logs(run_id=run_id)
    assert {(r["node_id"], r["attempt"]) for r in records} == {("node-a", 1)}
    assert [r["content"] for r in records if r["stream"] == "logger"] == ["start a", "end a"]


@pytest.fixture
def platform() -> Iterator[PlatformStandIn]:
    with platform_standin() as standin:
        yield standin


def test_a_stopped_worker_loses_its_run_and_its_late_writes_are_refused(
    cluster: Cluster, platform: PlatformStandIn
) -> None:
    """The run acts on the platform before its start line (``effects``): once where the
    platform honours Idempotency-Key, once where it ignores it. Then it waits on the
    platform stand-in, released only once w1 is stopped: attempt 1 cannot end before."""
    api = cluster.spawn("api", dispatch="false")
    to: dict[str, Any] = {
        "platform_api_url": platform.url + "/api/projects/{project_id}",
        "lease_s": LEASE_S,
        "gateway_upstream_timeout_s": 600,
    }
    stopped = cluster.spawn("w1", command="worker", **to)
    ready(api, stopped)
    api.push("effects")
    api.activate("effects", "p")
    run_id = started_run(api, "p", hold=True)
    assert run_of(api, run_id)["node"] == "w1"
    cluster.start("w2", command="worker", **to)

    stopped.pause()  # past its lease: w2 marks it lost and runs it again
    platform.release()  # attempt 2 goes through; attempt 1's answer waits at w1's gateway
    done = api.wait_run(run_id, timeout=DEADLINE_S)
    assert (done["status"], done["attempt"], done["node"]) == ("succeeded", 2, "w2"), done
    # The run's lease and w1's heartbeat age apart: w1 is marked lost by the next sweep
    # after its heartbeat is over lease_s old, which may come after attempt 2 ended.
    wait_for("w1 marked lost", lambda: node_states(api)["w1"] == "lost")
    assert node_states(api)["w2"] == "ready"

    stopped.resume()  # its container ends; it reads that end and tries to record it
    log_path = stopped.log_path
    assert log_path is not None
    refused = f"invocation {run_id} attempt 1: lease lost, result not recorded"
    wait_for("w1's refused result", lambda: refused in log_path.read_text())
    after = run_of(api, run_id)
    assert (after["status"], after["attempt"], after["node"]) == ("succeeded", 2, "w2")
    assert after["finished_at"] == done["finished_at"], "the run was finalised twice"
    assert [a["reason"] for a in after["attempts"]] == [LEASE_EXPIRED]
    records = api.logs(run_id=run_id)
    first = [r["content"] for r in records if r["attempt"] == 1]
    second = [r["content"] for r in records if r["attempt"] == 2 and r["stream"] == "logger"]
    assert first == ["start a"], "the stale attempt wrote after losing its lease"
    assert {r["node_id"] for r in records if r["attempt"] == 1} == {"w1"}
    assert second == ["start a", "end a"]
    assert {r["node_id"] for r in records if r["attempt"] == 2} == {"w2"}
    # Attempt 1 logged its start after its calls: both attempts made them. The keyed one
    # acted once; the other once per attempt (at-least-once).
    with platform.lock:
        received, acted = list(platform.requests), list(platform.acted)
    made = 1 + len(first)  # the attempts whose records show the calls made
    assert per_invocation(received, "/effects", keyed=True) == {run_id: made}
    assert per_invocation(acted, "/effects", keyed=True) == {run_id: 1}
    assert per_invocation(acted, "/effects", keyed=False) == {run_id: made}


def test_a_drained_node_finishes_its_runs_and_takes_no_new_ones(
    cluster: Cluster, platform: PlatformStandIn
) -> None:
    """The held run waits on the platform stand-in until the test releases it (no upstream
    timeout of these nodes can end it first)."""
    to: dict[str, Any] = {
        "platform_api_url": platform.url + "/api/projects/{project_id}",
        "gateway_upstream_timeout_s": 600,
    }
    first = cluster.start("node-a", **to)
    first.push("interval")
    first.activate("interval", "p")
    held = started_run(first, "p", hold=True)

    drained = cli(first, "nodes", "drain", "node-a")
    assert drained.returncode == 0, drained.stderr
    assert "node node-a is draining: 1 run(s) to finish" in drained.stdout
    later = first.post_event(type="onSubmit", project_id="p", asset_id="b", label={"sleep": 0})
    cluster.start("node-b", command="worker", **to)
    platform.release()

    assert first.wait_run(held)["node"] == "node-a"
    assert first.wait_run(held)["status"] == "succeeded"
    taken = first.wait_run(later["invocations"][0])
    assert (taken["status"], taken["node"]) == ("succeeded", "node-b")

    listed = {n["id"]: n for n in first.api.get("/v1/nodes").json()}
    assert {i: (n["state"], n["running"]) for i, n in listed.items()} == {
        "node-a": ("draining", 0),
        "node-b": ("ready", 0),
    }
    assert "runc" in listed["node-b"]["runtimes"]
    table, listed_json = clis(first, ["nodes"], ["nodes", "--json"])
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if "node-" in line]
    assert [("node-a" in r, "draining" in r, "node-b" in r) for r in rows] == [
        (True, True, False),
        (False, False, True),
    ]
    as_json = json.loads(listed_json.stdout)
    assert [n["id"] for n in as_json] == ["node-a", "node-b"]


def test_node_routes_refuse_unknown_ids_bad_ids_and_keys_without_the_scope(
    cluster: Cluster,
) -> None:
    first = cluster.start("node-a")
    unknown = first.api.post("/v1/nodes/nope/drain")
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["code"] == "not_found"
    assert "no node 'nope'" in unknown.json()["message"]
    bad = first.api.post("/v1/nodes/-bad/drain")
    assert bad.status_code == 422, bad.text
    assert "node_id" in bad.text
    assert first.api.post("/v1/tenants", json={"name": "acme"}).status_code == 201
    key = first.api.post(
        "/v1/tenants/acme/keys", json={"name": "dev", "scopes": ["plugins:read"]}
    ).json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    refused = first.api.get("/v1/nodes", headers=headers)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "missing_scope"
    assert refused.json()["message"] == "only the operator key may do this: ask your operator"
    admin_key = first.api.post(
        "/v1/tenants/acme/keys", json={"name": "ops", "scopes": ["admin"]}
    ).json()["key"]
    admin = {"Authorization": f"Bearer {admin_key}"}
    # Nodes are shared by every tenant: a tenant's admin neither lists nor drains them.
    assert first.api.get("/v1/nodes", headers=admin).status_code == 403
    drain = first.api.post("/v1/nodes/node-a/drain", headers=admin)
    assert drain.status_code == 403, "a tenant's admin must not drain a shared node"
    assert [(n["id"], n["state"]) for n in first.api.get("/v1/nodes").json()] == [
        ("node-a", "ready")
    ]


def test_a_runsc_activation_is_never_claimed_by_a_node_without_runsc(cluster: Cluster) -> None:
    api = cluster.spawn("api", dispatch="false")
    ready(api, cluster.spawn("runc-only", command="worker", node_runtimes="runc"))
    api.push("interval")
    bad = api.api.put("/v1/projects/gvisor/plugins/interval", json={"runtime": "run sc"})
    assert bad.status_code == 422, bad.text
    assert "runtime" in bad.text
    placed = api.api.put("/v1/projects/gvisor/plugins/interval", json={"runtime": "runsc"})
    assert placed.status_code == 200 and placed.json()["runtime"] == "runsc", placed.text
    unlabelled = cli(api, "activate", "interval", "-p", "plain", "--node-label", "zone")
    assert unlabelled.returncode == 2
    assert "--node-label 'zone': write KEY=VALUE" in unlabelled.stderr
    assert api.api.get("/v1/projects/plain/plugins").json() == []  # nothing activated
    plain_activation = cli(api, "activate", "interval", "-p", "plain", "--runtime", "runc")
    assert plain_activation.returncode == 0, plain_activation.stderr
    gvisor = api.post_event(type="onSubmit", project_id="gvisor", asset_id="g", label={"sleep": 0})
    plain = api.post_event(type="onSubmit", project_id="plain", asset_id="p", label={"sleep": 0})

    # The runc-only node claimed the newer run: it looked past the older runsc one.
    assert api.wait_run(plain["invocations"][0])["node"] == "runc-only"
    waiting = run_of(api, gvisor["invocations"][0])
    assert (waiting["status"], waiting["attempt"]) == ("queued", 0)

    cluster.start("gvisor-node", command="worker")
    ran = api.wait_run(gvisor["invocations"][0], timeout=DEADLINE_S)
    assert (ran["status"], ran["attempt"], ran["node"]) == ("succeeded", 1, "gvisor-node")
    runtimes = {n["id"]: n["runtimes"] for n in api.api.get("/v1/nodes").json()}
    assert runtimes["runc-only"] == ["runc"] and "runsc" in runtimes["gvisor-node"]


def test_a_worker_naming_a_runtime_its_engine_lacks_does_not_start(
    cluster: Cluster, tmp_path: Path
) -> None:
    worker = executor_process(
        tmp_path / "w",
        cluster.docker_client,
        command="worker",
        database_url=cluster.database_url,
        node_runtimes="runc,nosuch",
    )
    assert worker.process is None
    result = subprocess.run(
        [sys.executable, "-m", "executor.cli", "worker"],
        env={**os.environ, **worker.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "error: EXECUTOR_NODE_RUNTIMES names nosuch, which this Docker Engine does not" in (
        " ".join(result.stderr.split())
    )
    assert "Traceback" not in result.stderr


def test_logs_follow_of_a_run_on_a_worker_is_woken_across_processes(
    cluster: Cluster, platform: PlatformStandIn, tmp_path: Path
) -> None:
    """The run writes its rounds only once the platform stand-in is released, after the
    follow's first line: the rest comes while the worker runs the plugin."""
    # The API process re-reads the store only once an hour unless PostgreSQL's NOTIFY of the
    # worker's commits wakes it: the follow below ends only if every wake-up crossed over.
    api = cluster.spawn("api", dispatch="false", log_follow_poll_s=3600)
    to_platform = platform.url + "/api/projects/{project_id}"
    worker = cluster.spawn(
        "w1", command="worker", platform_api_url=to_platform, gateway_upstream_timeout_s=600
    )
    ready(api, worker)
    api.push("paced")
    api.activate("paced", "p")
    label = {"rounds": 20, "pause": 0.1, "hold": True}
    run_id = api.post_event(type="onSubmit", project_id="p", asset_id="a", label=label)[
        "invocations"
    ][0]
    wait_for("the handler's start line", lambda: api.logs(run_id=run_id, q="start a"))
    env = {**os.environ, "EXECUTOR_URL": api.url, "EXECUTOR_API_KEY": OPERATOR_KEY}
    command = [sys.executable, "-m", "executor.cli", "logs", "paced", "-p", "p"]
    errors_file = tmp_path / "follow.stderr"
    with errors_file.open("w") as errors_out:
        follower = subprocess.Popen(
            [*command, "--run", run_id, "--follow", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors_out,
            text=True,
        )
    assert follower.stdout is not None
    with follower:
        try:
            first = follower.stdout.readline()
            status_then = run_of(api, run_id)["status"]
            platform.release()
            rest = follower.stdout.read()
            follower.wait(timeout=DEADLINE_S)
        finally:
            follower.kill()
    assert follower.returncode == 0, errors_file.read_text()
    assert status_then == "running"  # the rest came while the worker still ran the plugin
    followed = [json.loads(line) for line in [first, *rest.splitlines()]]
    stored = api.logs(run_id=run_id)
    assert run_of(api, run_id)["status"] == "succeeded"
    assert [r["id"] for r in followed] == [r["id"] for r in stored]  # each once, in order
    assert len([r for r in followed if r["stream"] == "logger"]) == 22
    assert {(r["node_id"], r["attempt"]) for r in followed} == {("w1", 1)}
    # In one stream: a CLI that heard nothing for a minute would have reconnected, and the
    # new stream's first read would have caught up without any wake-up.
    assert api.log_path is not None
    streams = [line for line in api.log_path.read_text().splitlines() if "/v1/logs/stream" in line]
    assert len(streams) == 1, streams


def test_a_worker_claims_an_event_another_process_queued_when_it_is_queued(
    cluster: Cluster,
) -> None:
    # The worker polls the queue once an hour: only PostgreSQL's NOTIFY of the API's commit
    # of the event can make it claim (and run) it within the deadline.
    api = cluster.spawn("api", dispatch="false")
    ready(api, cluster.spawn("w1", command="worker", dispatch_poll_s=3600, warm_pool_size=0))
    api.push("counter")
    api.activate("counter", "p")
    for n in range(2):  # every event, not only the first after the worker started
        event = api.post_event(type="onSubmit", project_id="p", asset_id=f"a{n}", label={})
        run = api.wait_run(event["invocations"][0], timeout=DEADLINE_S)
        assert (run["status"], run["node"], run["attempt"]) == ("succeeded", "w1", 1), run


def warm_on(api: ExecutorProcess, node_id: str) -> dict[str, int]:
    """The warm containers ``node_id`` published: version id -> ready count."""
    nodes = {n["id"]: n for n in api.api.get("/v1/nodes").json()}
    return dict(nodes.get(node_id, {}).get("warm", {}))


def test_runs_of_a_version_go_to_the_node_holding_its_warm_container(cluster: Cluster) -> None:
    api = cluster.spawn("api", dispatch="false")
    # The grace is long so that a slow claim by the warm node still wins on a loaded host.
    cold = cluster.spawn("cold", command="worker", warm_pool_size=0, placement_grace_s=60)
    warm = cluster.spawn("warm", command="worker", warm_pool_size=1, placement_grace_s=60)
    ready(api, cold, warm)
    api.push("counter")
    api.activate("counter", "p")
    for n in range(6):
        wait_for("the warm node's ready container", lambda: warm_on(api, "warm"))
        event = api.post_event(type="onSubmit", project_id="p", asset_id=f"a{n}", label={})
        run = api.wait_run(event["invocations"][0], timeout=DEADLINE_S)
        assert (run["status"], run["node"], run["start"]) == ("succeeded", "warm", "warm"), run
    assert warm_on(api, "cold") == {}


def clock_off_by(offset: str) -> dict[str, str]:
    """The environment of a process whose wall clock is ``offset`` off (libfaketime,
    ``+10m``); its monotonic clock is left alone, or its timed waits would never end."""
    assert FAKETIME.exists(), "no libfaketime: deploy/setup.sh installs Debian's faketime"
    return {"LD_PRELOAD": str(FAKETIME), "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def test_nodes_ten_minutes_ahead_and_behind_take_no_lease_of_a_live_node(
    cluster: Cluster,
) -> None:
    """Heartbeats, leases and "lost" are the database's clock: nodes whose own clocks are
    ten minutes off mark no one lost through their reaper rounds (a node ahead used to
    find every other silent for ten minutes; one behind looked silent itself)."""
    api = cluster.spawn("api", dispatch="false")
    ready(api, cluster.spawn("live", command="worker", lease_s=LEASE_S, drain_timeout_s=0))
    api.push("interval")
    api.activate("interval", "p")
    run_id = started_run(api, "p", sleep=600)  # held by the live node all along
    assert run_of(api, run_id)["node"] == "live"
    skewed = {"ahead": "+10m", "behind": "-10m"}
    ready(
        *(
            cluster.spawn(name, command="worker", env=clock_off_by(offset), lease_s=LEASE_S)
            for name, offset in skewed.items()
        )
    )
    for name in skewed:
        # Drained, they claim nothing (a claim renews the heartbeat too), so each new
        # heartbeat of theirs is a reaper round: heartbeat and mark lost, one transaction.
        assert api.api.post(f"/v1/nodes/{name}/drain").status_code == 200

    rounds: dict[str, set[str]] = {name: set() for name in skewed}
    states: set[tuple[str, str]] = set()

    def enough_rounds() -> bool:
        for node in api.api.get("/v1/nodes").json():
            states.add((node["id"], node["state"]))
            if node["id"] in rounds:
                rounds[node["id"]].add(node["heartbeat_at"])
        return all(len(beats) > 5 for beats in rounds.values())

    wait_for("five reaper rounds of each skewed node", enough_rounds)
    assert {state for node, state in states if node == "live"} == {"ready"}, states
    assert all(state != "lost" for _, state in states), states
    held = run_of(api, run_id)
    assert (held["status"], held["node"], held["attempt"], held["attempts"]) == (
        "running",
        "live",
        1,
        [],
    ), "a skewed node took the live node's lease"
    for process in cluster.started:
        assert process.log_path is not None
        lost = re.findall(r"node \S+ is (?:now )?lost.*", process.log_path.read_text())
        assert lost == [], (process.log_path, lost)

    listed = {n["id"]: n["clock_skew_s"] for n in api.api.get("/v1/nodes").json()}
    assert abs(listed["live"]) < 5, listed
    assert abs(listed["ahead"] - 600) < 5, listed
    assert abs(listed["behind"] + 600) < 5, listed
    listing = cli(api, "nodes")
    assert listing.returncode == 0, listing.stderr
    table = listing.stdout
    assert "clock skew" in table
    for name, sign in (("ahead", "+"), ("behind", "-")):
        (row,) = [line for line in table.splitlines() if f" {name} " in line]
        shown = re.search(r"([+-]\d+\.\d) s", row)
        assert shown is not None and shown[1].startswith(sign), row
        assert abs(abs(float(shown[1])) - 600) < 5, row
        log = cluster.root.joinpath(name, "server.log").read_text()
        assert f"node {name}: this host's clock is {sign}" in log
