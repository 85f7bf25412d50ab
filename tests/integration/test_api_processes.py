"""Two API processes on one PostgreSQL behind one address (a round-robin proxy): upload
tickets, rate limits and key revocations hold across them (docs/scaling.md, "Several API
processes"). Process A also runs plugins; B serves the API and builds only.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import docker
import httpx
import pytest

from tests.conftest import OPERATOR_KEY, RunningServer, free_port
from tests.integration.conftest import fresh_database
from tests.integration.processes import ExecutorProcess
from tests.integration.round_robin import RoundRobinProxy, round_robin_proxy
from tests.integration.test_kili_sdk import SINGLE_FILE, KiliDriver, KiliSdk, kili_driver  # noqa: F401
from tests.integration.test_nodes import Cluster, wait_for

pytestmark = pytest.mark.docker

# A key may send 2 requests a minute: refilling one more takes 30 s, far longer than the
# few requests of a check, so "2 allowed, the 3rd refused" is decided by the shared count.
REQUESTS_PER_MINUTE = 2
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}
ALL_SCOPES = ["plugins:write", "plugins:read", "logs:read", "events:write", "admin"]


@dataclass
class Pair:
    """The two API processes and the proxy in front of them (backend 0 is ``a``)."""

    a: ExecutorProcess
    b: ExecutorProcess
    proxy: RoundRobinProxy

    @property
    def processes(self) -> list[ExecutorProcess]:
        return [self.a, self.b]

    def key(self, tenant: str, scopes: list[str]) -> dict[str, Any]:
        """A new tenant with a new key (``id``, ``key``), made through the proxy."""
        with httpx.Client(base_url=self.proxy.url, headers=OPERATOR, timeout=60) as api:
            made = api.post("/v1/tenants", json={"name": tenant})
            assert made.status_code == 201, made.text
            key = api.post(f"/v1/tenants/{tenant}/keys", json={"name": "t", "scopes": scopes})
            assert key.status_code == 201, key.text
            return dict(key.json())


@pytest.fixture(scope="module")
def pair(
    docker_client: docker.DockerClient, runtime_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("api-processes")
    wheelhouse = tmp_path_factory.mktemp("empty-wheelhouse")
    ports = [free_port(), free_port()]
    backends = [f"http://127.0.0.1:{port}" for port in ports]
    with (
        fresh_database() as database_url,
        round_robin_proxy(free_port(), backends) as proxy,
    ):
        cluster = Cluster(root, docker_client, database_url)
        # Upload URLs name the shared address; each key is trusted for an hour unless a
        # revocation is heard; a follower re-reads the store only when woken.
        shared: dict[str, Any] = {
            "public_url": proxy.url,
            "key_requests_per_minute": REQUESTS_PER_MINUTE,
            "key_cache_s": 3600,
            "log_follow_poll_s": 3600,
            "build_wheelhouse": wheelhouse,
            "build_index_url": "https://127.0.0.1:9/unreachable",
        }
        try:
            a = cluster.start("api-a", port=ports[0], **shared)
            b = cluster.start("api-b", port=ports[1], dispatch="false", **shared)
            yield Pair(a, b, proxy)
        finally:
            cluster.stop()


def graphql(url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"X-API-Key: {OPERATOR_KEY}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def single_file_zip() -> bytes:
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("main.py", SINGLE_FILE)
    return packed.getvalue()


def server_logs(pair: Pair) -> str:
    return "".join(p.log_path.read_text() for p in pair.processes if p.log_path is not None)


def test_the_kili_sdk_workflow_through_both_processes(
    pair: Pair,
    kili_driver: KiliDriver,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    path = tmp_path / "kili_pair.py"
    path.write_text(SINGLE_FILE)
    behind_proxy = SimpleNamespace(
        url=pair.proxy.url, settings=SimpleNamespace(api=SimpleNamespace(graphql_path="/graphql"))
    )
    kili = KiliSdk(kili_driver, cast(RunningServer, behind_proxy), OPERATOR_KEY)
    start = len(pair.proxy.forwarded)
    uploaded, activated = kili.calls(
        ("upload_plugin", {"plugin_path": str(path), "plugin_name": "kili_pair"}),
        ("activate_plugin_on_project", {"plugin_name": "kili_pair", "project_id": "pair"}),
    )
    assert uploaded == {"result": "Plugin created successfully"}, uploaded
    assert "result" in activated, activated
    forwarded = pair.proxy.forwarded[start:]
    # The ticket createPlugin issued was PUT to the other process.
    (issued,) = [f for f in forwarded if re.search(rb"\bcreatePlugin\s*\(", f.body)]
    (put,) = [f for f in forwarded if f.method == "PUT"]
    assert (put.path.startswith("/graphql/upload?ticket="), put.status) == (True, 200)
    assert put.backend != issued.backend
    assert {f.backend for f in forwarded} == {0, 1}

    with httpx.Client(base_url=pair.proxy.url, headers=OPERATOR, timeout=60) as api:
        accepted = api.post(
            "/v1/events",
            json={"type": "onSubmit", "project_id": "pair", "asset_id": "s1", "label": {}},
        )
        assert accepted.status_code == 202, accepted.text
        (run_id,) = accepted.json()["invocations"]
        run = wait_for(
            "the run's end",
            lambda: (
                (r := api.get(f"/v1/invocations/{run_id}").json())["status"] == "succeeded" and r
            ),
        )
        assert run["status"] == "succeeded"
    logs = json.loads(kili.call("get_plugin_logs", project_id="pair", plugin_name="kili_pair"))
    assert [e["content"] for e in logs][:3] == [f"line {n} of s1" for n in range(3)]
    # The upload URL's ticket is a credential: no access log line shows it.
    ticket = put.path.partition("ticket=")[2]
    logged = server_logs(pair)
    assert "ticket=..." in logged and ticket not in logged


def test_a_ticket_issued_by_one_process_is_used_once_on_the_other(pair: Pair) -> None:
    created = graphql(
        pair.a.url,
        "mutation($n: String!) { createPlugin(data: {pluginName: $n}) }",
        {"n": "crossed"},
    )
    url = created["data"]["createPlugin"]
    assert url.startswith(f"{pair.proxy.url}/graphql/upload?ticket=")
    on_b = url.replace(pair.proxy.url, pair.b.url)
    headers = {"Authorization": f"X-API-Key: {OPERATOR_KEY}"}
    put = httpx.put(on_b, content=single_file_zip(), headers=headers, timeout=60)
    assert put.status_code == 200, put.text
    again = httpx.put(url.replace(pair.proxy.url, pair.a.url), content=b"PK", headers=headers)
    assert again.status_code == 404
    assert "was used already" in again.json()["message"]
    runner = graphql(
        pair.a.url,
        "mutation($n: String!) { createPluginRunner(data: {pluginName: $n}) }",
        {"n": "crossed"},
    )
    assert "errors" not in runner, runner
    build = pair.b.wait_build("crossed", 1)
    assert build["status"] == "ACTIVE", build["log"]
    twice = graphql(
        pair.b.url,
        "mutation($n: String!) { updatePluginRunner(data: {pluginName: $n}) }",
        {"n": "crossed"},
    )
    assert "no archive was uploaded for plugin 'crossed'" in twice["errors"][0]["message"]


def test_a_keys_rate_limit_is_exact_across_both_processes(pair: Pair) -> None:
    key = pair.key("limited", ["plugins:read"])
    start = len(pair.proxy.forwarded)
    headers = {"Authorization": f"Bearer {key['key']}"}
    with httpx.Client(base_url=pair.proxy.url, headers=headers, timeout=60) as api:
        answers = [api.get("/v1/plugins") for _ in range(REQUESTS_PER_MINUTE + 2)]
    assert [a.status_code for a in answers] == [200] * REQUESTS_PER_MINUTE + [429, 429]
    assert answers[-1].json()["code"] == "rate_limited"
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 60
    # Round robin: each process served some of the allowed requests, and refused one.
    served = pair.proxy.forwarded[start:]
    assert {f.backend for f in served if f.status == 200} == {0, 1}
    assert {f.backend for f in served if f.status == 429} == {0, 1}


def revocations_heard(process: ExecutorProcess) -> float:
    """What the process's ``executor_key_revocations_heard_total`` counts."""
    metrics = httpx.get(f"{process.url}/metrics", headers=OPERATOR, timeout=60).text
    found = re.search(r"^executor_key_revocations_heard_total (\S+)$", metrics, re.MULTILINE)
    assert found is not None, metrics
    return float(found.group(1))


def test_a_revoked_key_is_refused_by_both_processes_once_they_heard_it(pair: Pair) -> None:
    key = pair.key("revoked", ["plugins:read"])
    headers = {"Authorization": f"Bearer {key['key']}"}
    for process in pair.processes:  # each trusts the key now, for an hour
        assert httpx.get(f"{process.url}/v1/plugins", headers=headers).status_code == 200
    before = [revocations_heard(p) for p in pair.processes]
    revoked = httpx.delete(f"{pair.a.url}/v1/tenants/revoked/keys/{key['id']}", headers=OPERATOR)
    assert revoked.status_code == 204, revoked.text
    started = time.monotonic()
    for process, heard in zip(pair.processes, before, strict=True):
        name = process.env["EXECUTOR_NODE_ID"]
        wait_for(f"{name} hearing the revocation", lambda: revocations_heard(process) > heard)  # noqa: B023
    print(f"both processes heard the revocation {time.monotonic() - started:.3f} s after its 204")
    for process in pair.processes:
        refused = httpx.get(f"{process.url}/v1/plugins", headers=headers)
        assert refused.status_code == 401
        assert f"API key {key['id']} was revoked" in refused.json()["message"]
