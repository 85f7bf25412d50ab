"""A worker cut off from PostgreSQL mid-run (a network partition as it sees it) for longer
than its lease while another worker lives, then the partition heals.

Worker w1 reaches the database only through a relay the test cuts (``tests.integration.relay``:
bytes stop in both directions, sockets stay open, new connections wait); the API process
and worker w2 reach it directly. Both workers run on this machine's Docker Engine, which w1
still reaches: its containers go on while it cannot record anything."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import psycopg
import pytest
from sqlalchemy.engine import make_url

from executor.engine import INVOCATION_LABEL, NODE_LABEL
from executor.store.leases import LEASE_EXPIRED
from tests.conftest import TERMINAL
from tests.integration.cluster import worker_credential
from tests.integration.conftest import ADMIN_DSN
from tests.integration.relay import TcpRelay, tcp_relay
from tests.integration.test_nodes import Cluster, run_of, wait_for
from tests.platform_standin import PlatformStandIn, Recorded, per_invocation, platform_standin

RUNS = 3
LEASE_S = 5  # short, so the cut-off worker is lost soon; renewed every third of it
# Each handler's work: long enough that w1's handlers are mid-work when it is cut off and
# make their late call while it still is (each case is checked, not assumed).
SLEEP_S = 20
# A lost attempt's call is refused as such, though lease expiry revoked its token too.
SUPERSEDED_LOG = "gateway refused POST: the attempt this token was issued to lost its run"


@pytest.fixture
def relay(postgres_url: str) -> Iterator[TcpRelay]:
    url = make_url(postgres_url)
    assert url.host is not None and url.port is not None
    with tcp_relay(url.host, url.port) as started:
        yield started


@pytest.fixture
def cluster(
    postgres_url: str,
    docker_client: docker.DockerClient,
    runtime_image: str,
    tmp_path: Path,
    relay: TcpRelay,  # torn down after the processes, which may still use it as they stop
) -> Iterator[Cluster]:
    started = Cluster(tmp_path, docker_client, postgres_url)
    yield started
    started.stop()


@pytest.fixture
def platform() -> Iterator[PlatformStandIn]:
    with platform_standin() as standin:
        yield standin


def handler_lines(api: Any, run_id: str, attempt: int, node: str) -> list[str]:
    """What the handler of ``run_id`` logged at ``attempt`` on ``node``, as stored."""
    return [
        r["content"]
        for r in api.logs(run_id=run_id)
        if (r["attempt"], r["node_id"], r["stream"]) == (attempt, node, "logger")
    ]


def container_output(client: docker.DockerClient, run_id: str, node: str) -> bytes:
    """What the containers of ``run_id`` on ``node`` wrote, from the engine's own copy."""
    labels = [f"{INVOCATION_LABEL}={run_id}", f"{NODE_LABEL}={node}"]
    found = client.api.containers(all=True, filters={"label": labels})
    output = b""
    for container in found:
        try:
            output += client.api.logs(container["Id"])
        except docker.errors.NotFound:  # removed since
            continue
    return output


def wait_statements_done(relay: TcpRelay) -> None:
    """Wait until no statement the relay carried before the cut still runs on the server:
    from then on the store holds all it will hold of w1 until the partition heals."""

    def active() -> list[Any]:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            return admin.execute(
                "SELECT client_port FROM pg_stat_activity "
                "WHERE state = 'active' AND client_port = ANY(%s)",
                (relay.upstream_ports(),),
            ).fetchall()

    wait_for("w1's last statements to end on the server", lambda: not active())


def by_credential(requests: list[Recorded], name: str) -> list[Recorded]:
    return [r for r in requests if r.headers["authorization"].endswith(worker_credential(name))]


def test_a_worker_cut_off_from_the_store_loses_its_runs_and_writes_nothing_after(
    cluster: Cluster, relay: TcpRelay, platform: PlatformStandIn
) -> None:
    """Each run calls the platform twice (once where it honours Idempotency-Key, once where
    it ignores it), logs ``start``, works, then calls once more (``late``): w1's late calls
    are made while it is cut off, so its gateway cannot check their tokens."""
    api = cluster.start("api", dispatch="false")
    through_relay = make_url(cluster.database_url).set(port=relay.port)

    def worker(name: str, **env: str) -> Any:
        return cluster.start(
            name,
            command="worker",
            env=env,
            platform_api_url=platform.url + "/api/projects/{project_id}",
            platform_credential=worker_credential(name),
            lease_s=LEASE_S,
            max_concurrent_runs=RUNS,
            max_runs_per_plugin=RUNS,
            max_runs_per_project=RUNS,
        )

    cut_off = worker("w1", EXECUTOR_DATABASE_URL=through_relay.render_as_string(False))
    api.push("effects")
    api.activate("effects", "p")
    label = {"sleep": SLEEP_S, "late": True}
    ids = [
        api.post_event(type="onSubmit", project_id="p", asset_id=f"a{i}", label=label)[
            "invocations"
        ][0]
        for i in range(RUNS)
    ]

    def mid_work_on_w1() -> list[str]:
        """w1's runs whose handler logged its start and nothing after, and has not yet
        written ``late`` (in the engine's copy of its output)."""
        runs = [run_of(api, i) for i in ids]
        assert any(r["status"] not in TERMINAL for r in runs), "all ended before the cut"
        return [
            r["id"]
            for r in runs
            if (r["status"], r["node"]) == ("running", "w1")
            and handler_lines(api, r["id"], 1, "w1") == [f"start {r['asset_id']}"]
            and f"late {r['asset_id']}".encode()
            not in container_output(api.docker_client, r["id"], "w1")
        ]

    def started_on_w1() -> bool:
        return all(handler_lines(api, i, 1, "w1")[:1] == [f"start a{n}"] for n, i in enumerate(ids))

    # Each handler on w1 made its calls; those still at work when cut off are the test's.
    wait_for("every handler started on w1", started_on_w1)
    worker("w2")
    client = api.docker_client
    with relay.partitioned():
        wait_statements_done(relay)
        cut = mid_work_on_w1()  # what the store shows of w1 stays so until the heal
        assert cut, "every run of w1 ended as it was cut off"
        assets = {i: run_of(api, i)["asset_id"] for i in cut}

        def taken_over_and_called_late() -> bool:
            nodes = {n["id"]: n["state"] for n in api.api.get("/v1/nodes").json()}
            if nodes["w1"] != "lost":
                return False
            for run_id, asset in assets.items():
                run = run_of(api, run_id)
                if run["node"] != "w2" or f"start {asset}" not in handler_lines(
                    api, run_id, run["attempt"], "w2"
                ):
                    return False
                if f"late {asset}".encode() not in container_output(client, run_id, "w1"):
                    return False
            return True

        # Past its lease: w2 marks w1 lost and runs its runs again; w1's handlers, still
        # going, make their late call to a gateway that cannot reach the store.
        wait_for("w2 running w1's runs and w1's late calls", taken_over_and_called_late)

    runs = [api.wait_run(i) for i in ids]
    assert [r["status"] for r in runs] == ["succeeded"] * RUNS, runs
    listed = api.api.get("/v1/invocations", params={"project_id": "p"}).json()
    assert sorted(r["id"] for r in listed) == sorted(ids), "one invocation per event"
    again = {r["id"]: r for r in runs if r["attempt"] == 2}
    assert set(cut) <= set(again)
    assert all((r["attempt"], r["node"]) == (1, "w1") for r in runs if r["id"] not in again)

    # Healed, w1 learns that it lost each run: its result is refused, as are its logs.
    log_path = cut_off.log_path
    assert log_path is not None
    refused = [f"invocation {i} attempt 1: lease lost, result not recorded" for i in cut]
    wait_for("w1's refused results", lambda: all(r in log_path.read_text() for r in refused))

    def late_from_w1() -> set[str]:
        """The cut runs whose late call from w1 reached the platform."""
        with platform.lock:
            received = by_credential(list(platform.requests), "w1")
        return set(per_invocation(received, "/late", keyed=True)) & set(cut)

    # Its late calls waited for the store, then were refused (401 token_superseded),
    # never forwarded.
    wait_for(
        "w1's gateway answering the late calls",
        lambda: late_from_w1() or log_path.read_text().count(SUPERSEDED_LOG) >= len(cut),
    )
    assert late_from_w1() == set(), "a call made while cut off from the store was forwarded"
    assert log_path.read_text().count(SUPERSEDED_LOG) >= len(cut)
    check_taken_over(api, list(again.values()), cut)

    with platform.lock:
        received, acted = list(platform.requests), list(platform.acted)
    check_side_effects(received, acted, ids, set(again))


def check_taken_over(api: Any, again: list[dict[str, Any]], cut: list[str]) -> None:
    """Each run taken over ended once, on w2, and holds nothing of w1 after the cut: of a
    run cut mid-work, w1's start line only."""
    for run in again:
        after = run_of(api, run["id"])
        assert (after["status"], after["attempt"], after["node"]) == ("succeeded", 2, "w2")
        assert after["finished_at"] == run["finished_at"], "a run was finalised twice"
        assert [a["reason"] for a in after["attempts"]] == [LEASE_EXPIRED]
        start = f"start {run['asset_id']}"
        on_w1 = handler_lines(api, run["id"], 1, "w1")
        if run["id"] in cut:
            assert on_w1 == [start], on_w1
        else:  # ended its work as it was cut off: maybe its later lines too
            assert on_w1[:1] == [start], on_w1
        assert handler_lines(api, run["id"], 2, "w2") == [
            start,
            f"late {run['asset_id']}",
            f"end {run['asset_id']}",
        ]
        records = {(r["attempt"], r["node_id"]) for r in api.logs(run_id=run["id"])}
        assert records <= {(1, "w1"), (2, "w2")}, records


def check_side_effects(
    received: list[Recorded], acted: list[Recorded], ids: list[str], again: set[str]
) -> None:
    """Each run's keyed call acted once, whatever attempts it took; its unkeyed call acted
    once more for each run taken over whose first attempt (on w1) had made it."""
    on_w1 = by_credential(received, "w1")
    unkeyed_on_w1 = set(per_invocation(on_w1, "/effects", keyed=False))
    keyed = per_invocation(acted, "/effects", keyed=True)
    unkeyed = per_invocation(acted, "/effects", keyed=False)
    repeated = {i: n - 1 for i, n in unkeyed.items() if n > 1}
    print(
        f"\nside effects of {len(ids)} runs, {len(again)} run again after the partition: "
        f"doubled with the key honoured {sum(n - 1 for n in keyed.values())}, "
        f"ignored {sum(repeated.values())}"
    )
    assert keyed == Counter(dict.fromkeys(ids, 1)), "a keyed side effect was doubled"
    assert repeated == dict.fromkeys(again & unkeyed_on_w1, 1)
    assert set(unkeyed) == set(ids)
    late = per_invocation(acted, "/late", keyed=True)
    assert late == Counter(dict.fromkeys(ids, 1)), "each run's late call acted once"
