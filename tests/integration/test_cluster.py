"""The cluster of issue 15 with real parts only: a registry (TLS, htpasswd), PostgreSQL, an
API process and two workers, each on its own Docker Engine in its own network namespace
(``tests.integration.cluster``). Images reach the workers' engines only through the
registry, by digest."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from executor.store.leases import LEASE_EXPIRED
from tests.conftest import TERMINAL, ExecutorApi
from tests.integration.cluster import WORKERS, EngineCluster, engine_cluster, worker_credential
from tests.integration.processes import ExecutorProcess
from tests.integration.registry import image_events
from tests.platform_standin import PlatformStandIn, Recorded, per_invocation, platform_standin

DEADLINE_S = 240


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: docker.DockerClient,
    runtime_image: str,
) -> Iterator[EngineCluster]:
    with (
        platform_standin() as platform,
        engine_cluster(tmp_path_factory.mktemp("cluster"), docker_client) as started,
    ):
        started.platform = platform
        started.start_all()
        yield started


@pytest.fixture(scope="module")
def digest(cluster: EngineCluster) -> str:
    """``interval`` built once, pushed, and activated on one project per worker (a node
    selector on the worker's ``name`` label)."""
    api = cluster.api
    assert api is not None
    api.push("interval")
    for name in WORKERS:
        placed = api.api.put(
            f"/v1/projects/on-{name}/plugins/interval", json={"node_selector": {"name": name}}
        )
        assert placed.status_code == 200, placed.text
    (version,) = api.api.get("/v1/plugins/interval").json()["versions"]
    return str(version["image_digest"])


def wait_for(what: str, check: Any, timeout: float = DEADLINE_S) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what}: not seen within {timeout} s"
        time.sleep(0.3)
    return found


def run_on(cluster: EngineCluster, name: str, asset: str, *, hold: bool = False) -> str:
    """Post an event for the project only worker ``name`` may run; the invocation id.
    ``hold``: its handler waits for the platform stand-in's ``release()``."""
    assert cluster.api is not None
    label = {"hold": True} if hold else {"sleep": 0}
    accepted = cluster.api.post_event(
        type="onSubmit", project_id=f"on-{name}", asset_id=asset, label=label
    )
    return str(accepted["invocations"][0])


def pulls(client: docker.DockerClient, repository: str) -> list[str]:
    """What the engine pulled of ``repository`` since it started (it started empty)."""
    return [e["id"] for e in image_events(client, 0, "pull") if e["id"].startswith(repository)]


def forget(cluster: EngineCluster, name: str, plugin: str) -> None:
    """Remove ``plugin``'s newest image from worker ``name``'s engine."""
    assert cluster.api is not None
    version = cluster.api.api.get(f"/v1/plugins/{plugin}").json()["versions"][-1]
    cluster.clients[name].images.remove(version["image_digest"], force=True)


def test_a_version_is_active_once_every_worker_holds_its_image(
    cluster: EngineCluster, digest: str
) -> None:
    """The build waits after its push for the live workers' pre-pullers (announced through
    PostgreSQL, not found at their next check): when the upload reads ACTIVE, each worker's
    engine holds the image and the build log says when each pulled it."""
    api = cluster.api
    assert api is not None
    build = api.push("interval", name="spread")

    version = api.api.get("/v1/plugins/spread").json()["versions"][-1]
    assert (build["status"], version["status"]) == ("ACTIVE", "ACTIVE")
    for name in WORKERS:
        image = cluster.clients[name].images.get(version["image_digest"])
        assert image.attrs["RepoDigests"] == [version["image_digest"]], name
    log = build["log"]
    assert f"Waiting for 2 node(s) to pull it: {', '.join(WORKERS)}\n" in log, log
    for name in WORKERS:  # the API process (no dispatch) is no node: not waited for
        assert f"  {name} holds it (" in log, log
    assert "Every node holds it after " in log, log


def test_a_version_built_once_runs_on_both_workers_each_pulling_it_once_by_digest(
    cluster: EngineCluster, digest: str
) -> None:
    api = cluster.api
    assert api is not None
    repository = digest.partition("@")[0]
    assert repository.startswith(f"{cluster.registry.address}/plugin-executor/")
    runs = {name: [run_on(cluster, name, f"{name}-{i}") for i in range(2)] for name in WORKERS}
    for name, ids in runs.items():
        for run_id in ids:
            done = api.wait_run(run_id, timeout=DEADLINE_S)
            assert (done["status"], done["node"], done["attempt"]) == ("succeeded", name, 1)
        client = cluster.clients[name]
        assert pulls(client, repository) == [digest], f"{name} did not pull once by digest"
        assert client.images.get(digest).attrs["RepoDigests"] == [digest]
        tagged = [image.tags for image in client.images.list() if image.tags]
        assert tagged == [], "a worker must never hold a mutable tag"


def test_a_drained_worker_finishes_its_runs_and_takes_no_new_ones(
    cluster: EngineCluster, digest: str
) -> None:
    api = cluster.api
    assert api is not None
    assert cluster.platform is not None
    held = run_on(cluster, "w1", "held", hold=True)  # in flight until released below
    wait_for("w1's run to start", lambda: api.logs(run_id=held, q="start held"))

    drained = api.api.post("/v1/nodes/w1/drain")
    assert drained.status_code == 200, drained.text
    assert (drained.json()["state"], drained.json()["running"]) == ("draining", 1)
    waiting = run_on(cluster, "w1", "waiting")  # only w1 may run it
    api.activate("interval", "anywhere")
    elsewhere = [
        api.post_event(type="onSubmit", project_id="anywhere", asset_id=f"x{i}", label={})
        for i in range(3)
    ]

    for accepted in elsewhere:  # while w1 still runs its held run
        ran = api.wait_run(accepted["invocations"][0], timeout=DEADLINE_S)
        assert (ran["status"], ran["node"]) == ("succeeded", "w2"), "a drained node claimed"
    cluster.platform.release()
    done = api.wait_run(held, timeout=DEADLINE_S)
    cluster.platform.released.clear()  # a later hold waits again
    assert (done["status"], done["node"]) == ("succeeded", "w1")
    nodes = {n["id"]: (n["state"], n["running"]) for n in api.api.get("/v1/nodes").json()}
    assert nodes["w1"] == ("draining", 0)
    still = api.api.get(f"/v1/invocations/{waiting}").json()
    assert (still["status"], still["attempt"]) == ("queued", 0)

    worker = cluster.workers["w1"]  # a drain lasts until the node restarts
    worker.stop()
    cluster.start_worker("w1")
    ran = api.wait_run(waiting, timeout=DEADLINE_S)
    assert (ran["status"], ran["node"], ran["attempt"]) == ("succeeded", "w1", 1)


def test_registry_down_fails_a_build_and_a_first_pull_while_workers_holding_the_image_run(
    cluster: EngineCluster, digest: str, tmp_path: Path
) -> None:
    api = cluster.api
    assert api is not None
    api.push("interval", name="late")
    # Every worker pulled it before it became ACTIVE: w2 loses it (as to its image GC), so
    # its first run there pulls it.
    forget(cluster, "w2", "late")
    address = cluster.registry.address
    for name in WORKERS:  # each worker holds interval's image
        assert api.wait_run(run_on(cluster, name, "before"))["status"] == "succeeded"
    cluster.registry.stop()
    try:
        build = api.push("interval", name="unlucky", expect="FAILED")
        placed = api.api.put(
            "/v1/projects/late-on-w2/plugins/late", json={"node_selector": {"name": "w2"}}
        )
        assert placed.status_code == 200, placed.text
        unpulled = api.post_event(type="onSubmit", project_id="late-on-w2", asset_id="l", label={})
        held = {name: run_on(cluster, name, "during") for name in WORKERS}
        ran = {name: api.wait_run(run_id, timeout=DEADLINE_S) for name, run_id in held.items()}
        failed = api.wait_run(unpulled["invocations"][0], timeout=DEADLINE_S)
    finally:
        cluster.registry.start()

    unreachable = (
        "the registry cannot be reached: check that it runs and that the Docker Engine's "
        "host can reach it"
    )
    assert build["status"] == "FAILED"
    assert build["error"].startswith(f"pushing {address}/plugin-executor/p-")
    assert build["error"].endswith(unreachable)
    versions = api.api.get("/v1/plugins/unlucky").json()["versions"]
    assert [(v["status"], v["image_digest"]) for v in versions] == [("FAILED", None)]
    assert {name: (r["status"], r["node"]) for name, r in ran.items()} == {
        name: ("succeeded", name) for name in WORKERS
    }
    assert (failed["status"], failed["node"]) == ("dead", "w2")
    assert failed["error"].startswith(f"gave up after {failed['attempt']} attempts over "), failed[
        "error"
    ]
    assert (
        f" s of infrastructure failures, the last of the registry: pulling {address}/"
        in (failed["error"])
    )
    assert failed["error"].endswith(
        f"; {unreachable}; infrastructure failures are retried for "
        "EXECUTOR_INFRA_RETRY_BUDGET_S (3 s) from the first: raise it to wait out longer outages"
    ), failed["error"]


def test_a_worker_with_wrong_registry_credentials_fails_the_run_it_cannot_pull(
    cluster: EngineCluster, digest: str
) -> None:
    api = cluster.api
    assert api is not None
    api.push("interval", name="guarded")
    forget(cluster, "w2", "guarded")  # pulled before it became ACTIVE: lost, as to a GC
    cluster.workers["w2"].stop()
    cluster.start_worker("w2", registry_password="not-the-password")
    try:
        placed = api.api.put(
            "/v1/projects/guarded-on-w2/plugins/guarded", json={"node_selector": {"name": "w2"}}
        )
        assert placed.status_code == 200, placed.text
        accepted = api.post_event(
            type="onSubmit", project_id="guarded-on-w2", asset_id="g", label={}
        )
        failed = api.wait_run(accepted["invocations"][0], timeout=DEADLINE_S)
        log_path = cluster.workers["w2"].log_path
        assert log_path is not None
        assert "not-the-password" not in log_path.read_text()
    finally:
        cluster.workers["w2"].stop()
        cluster.start_worker(
            "w2", registry_password=cluster.registry.settings()["registry_password"]
        )

    assert (failed["status"], failed["node"]) == ("dead", "w2")
    assert (
        "the registry refused the credentials: check EXECUTOR_REGISTRY_USER and "
        "EXECUTOR_REGISTRY_PASSWORD; infrastructure failures are retried for "
        "EXECUTOR_INFRA_RETRY_BUDGET_S (3 s)"
    ) in failed["error"], failed["error"]
    assert "not-the-password" not in failed["error"]
    records = [r["content"] for r in api.logs(run_id=failed["id"])]
    assert records and all("not-the-password" not in r for r in records)


def handler_lines(api: ExecutorApi, run_id: str, attempt: int, node: str) -> list[str]:
    """What the handler of ``run_id`` logged at ``attempt`` on ``node``, as stored."""
    return [
        r["content"]
        for r in api.logs(run_id=run_id)
        if (r["attempt"], r["node_id"], r["stream"]) == (attempt, node, "logger")
    ]


def pause_mid_run(worker: ExecutorProcess, in_flight: Callable[[], list[str]]) -> list[str]:
    """Pause ``worker`` once ``in_flight()`` names runs; what it names while the worker is
    paused (a paused worker records nothing, so those runs cannot end there). Runs that
    ended between the look and the pause let the worker go on, to look again."""
    while True:
        wait_for(f"a handler running on {worker.env['EXECUTOR_NODE_ID']}", in_flight)
        worker.pause()
        paused = in_flight()
        if paused:
            return paused
        worker.resume()


def effects(requests: list[Recorded], keyed: bool) -> Counter[str]:
    """Per invocation, the ``effects`` plugin's calls among ``requests``."""
    return per_invocation(requests, "/effects", keyed=keyed)


def check_side_effects(
    platform: PlatformStandIn, ids: list[str], again: set[str], interrupted: list[str]
) -> None:
    """Each run's keyed call acted once, whatever attempts it took; its unkeyed call
    (at-least-once) acted once more for each run whose first attempt made it on w1 before
    w1 was lost, as the platform's record of w1's credential shows."""
    with platform.lock:
        received, acted = list(platform.requests), list(platform.acted)
    on_w1 = [r for r in received if r.headers["authorization"].endswith(worker_credential("w1"))]
    keyed_on_w1, unkeyed_on_w1 = set(effects(on_w1, keyed=True)), set(effects(on_w1, False))
    assert set(interrupted) <= keyed_on_w1 & unkeyed_on_w1, "seen mid-handler, not called"
    keyed, unkeyed = effects(acted, keyed=True), effects(acted, keyed=False)
    repeated = {i: n - 1 for i, n in unkeyed.items() if n > 1}
    print(
        f"\nside effects of {len(ids)} runs, {len(again)} run again: doubled with the key "
        f"honoured {sum(n - 1 for n in keyed.values())}, ignored {sum(repeated.values())}"
    )
    assert keyed == Counter(dict.fromkeys(ids, 1)), "a keyed side effect was doubled"
    sent_twice = again & keyed_on_w1  # the second answered from the platform's store
    assert effects(received, keyed=True) == Counter({i: 1 + (i in sent_twice) for i in ids})
    assert repeated == dict.fromkeys(again & unkeyed_on_w1, 1)
    assert set(unkeyed) == set(ids)


def test_kill_9_of_a_worker_and_its_engine_mid_run_loses_no_invocation(
    cluster: EngineCluster, digest: str
) -> None:
    """Last in the module: w1 and its engine stay dead (the fixture starts the engine
    again at the end, which stops the containers it left). The ten runs need both
    workers' five slots (``WORKER_SETTINGS``), whichever worker claims first. Each run
    acts on the platform before its handler logs its start (``effects``)."""
    api = cluster.api
    assert api is not None
    assert cluster.platform is not None
    api.push("effects")
    api.activate("effects", "flight")
    ids = [
        api.post_event(type="onSubmit", project_id="flight", asset_id=f"f{i}", label={"sleep": 3})[
            "invocations"
        ][0]
        for i in range(10)
    ]

    def in_flight_on_w1() -> list[str]:
        """w1's runs whose handler logged its start and not (yet) its end."""
        runs = [api.api.get(f"/v1/invocations/{i}").json() for i in ids]
        placed = [(r["asset_id"], r["status"], r["node"]) for r in runs]
        assert any(r["status"] not in TERMINAL for r in runs), f"all ended, none on w1: {placed}"
        return [
            r["id"]
            for r in runs
            if (r["status"], r["node"]) == ("running", "w1")
            and handler_lines(api, r["id"], 1, "w1") == [f"start {r['asset_id']}"]
        ]

    worker = cluster.workers["w1"]
    interrupted = pause_mid_run(worker, in_flight_on_w1)
    worker.signal(signal.SIGKILL)
    worker.wait_exit(30)
    cluster.engines["w1"].kill()

    runs = [api.wait_run(i, timeout=DEADLINE_S) for i in ids]
    assert [r["status"] for r in runs] == ["succeeded"] * 10, runs
    listed = api.api.get("/v1/invocations", params={"project_id": "flight"}).json()
    assert sorted(r["id"] for r in listed) == sorted(ids), "one invocation per event"
    again = {r["id"]: r for r in runs if r["attempt"] == 2}
    assert set(interrupted) <= set(again)
    assert all(r["attempt"] == 1 for r in runs if r["id"] not in again)
    for run in again.values():
        assert run["node"] == "w2"
        assert [a["reason"] for a in run["attempts"]] == [LEASE_EXPIRED]
        start, end = f"start {run['asset_id']}", f"end {run['asset_id']}"
        on_w1 = handler_lines(api, run["id"], 1, "w1")
        # A run w1 held but was not seen mid-handler was paused before its handler
        # started, or after it ended but before w1 recorded the outcome.
        expected = [start] if run["id"] in interrupted else [start, end][: len(on_w1)]
        assert on_w1 == expected, on_w1
        assert handler_lines(api, run["id"], 2, "w2") == [start, end]
        records = {(r["attempt"], r["node_id"]) for r in api.logs(run_id=run["id"])}
        assert (2, "w2") in records and records <= {(1, "w1"), (2, "w2")}, records
    nodes = {n["id"]: n["state"] for n in api.api.get("/v1/nodes").json()}
    assert nodes["w1"] == "lost", nodes
    finished = {r["id"]: r["finished_at"] for r in runs}
    later = {i: api.api.get(f"/v1/invocations/{i}").json()["finished_at"] for i in ids}
    assert later == finished, "a run was finalised twice"
    check_side_effects(cluster.platform, ids, set(again), interrupted)
