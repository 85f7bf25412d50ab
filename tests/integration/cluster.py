"""The cluster of issue 15 on this one machine: a registry, PostgreSQL, one API process
(``serve --no-dispatch``) on the host's Docker Engine, and two worker processes, each on
its own private Docker Engine (``tests.integration.engines``) in its own network namespace.

The namespaces are joined to the host by veth pairs on a bridge of the test's own, whose
address on the host is the registry's: the private engines reach the registry there and
nowhere else (no route leaves the bridge's subnet). They start with no images: a version's
image reaches them only by a pull of its digest from the registry."""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from tests.integration.conftest import fresh_database
from tests.integration.engines import PrivateEngine, network_namespace, private_engines
from tests.integration.processes import ExecutorProcess, built_images, executor_process
from tests.integration.registry import LocalRegistry
from tests.platform_standin import PlatformStandIn

WORKERS = ("w1", "w2")
LEASE_S = 5  # short, so a killed worker is lost soon; renewed every third of it
WORKER_SETTINGS = {
    "max_concurrent_runs": 5,  # ten runs in flight: five on each worker
    # These caps count the runs of every node; by default (2 x cores) they would let four
    # runs of the ten be in flight, all on whichever worker claimed first.
    "max_runs_per_plugin": 10,
    "max_runs_per_project": 10,
    # Placement would hold runs back for the worker with a warm container (tested in
    # test_nodes.py); these tests need both workers to claim at once.
    "placement_grace_s": 0,
    # A pull that cannot succeed (registry down, refused) gives up after 3 s of retries.
    "retry_base_s": 1,
    "retry_max_s": 2,
    "infra_retry_budget_s": 3,
    "retry_max_attempts": 3,
}


def worker_credential(name: str) -> str:
    """The platform credential worker ``name``'s gateway presents."""
    return f"credential-of-{name}"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.213.0.0/16 no address of this machine is in."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], check=True, capture_output=True, text=True)
    while True:
        subnet = ipaddress.IPv4Network(f"10.213.{secrets.randbelow(256)}.0/24")
        if str(subnet.network_address)[:-1] not in used.stdout:
            return subnet


@contextlib.contextmanager
def host_bridge(name: str, address: str) -> Iterator[str]:
    """A bridge on the host with ``address`` (CIDR); removed after."""
    ip("link", "add", name, "type", "bridge")
    try:
        ip("addr", "add", address, "dev", name)
        ip("link", "set", name, "up")
        yield name
    finally:
        ip("link", "delete", name)


@contextlib.contextmanager
def join(netns: str, bridge: str, veth: str, address: str) -> Iterator[None]:
    """A veth pair from ``netns`` (there with ``address``, CIDR) to ``bridge``; its host end
    is deleted after (which deletes the pair), whether or not the namespace is gone."""
    inside = f"{veth}n"
    ip("link", "add", f"{veth}h", "type", "veth", "peer", "name", inside)
    try:
        ip("link", "set", inside, "netns", netns)
        ip("link", "set", f"{veth}h", "master", bridge, "up")
        ip("-n", netns, "addr", "add", address, "dev", inside)
        ip("-n", netns, "link", "set", inside, "up")
        ip("-n", netns, "link", "set", "lo", "up")
        yield
    finally:
        subprocess.run(["ip", "link", "delete", f"{veth}h"], capture_output=True, check=False)


@dataclass
class EngineCluster:
    root: Path
    registry: LocalRegistry
    database_url: str
    host_client: docker.DockerClient
    engines: dict[str, PrivateEngine] = field(default_factory=dict)
    clients: dict[str, docker.DockerClient] = field(default_factory=dict)
    workers: dict[str, ExecutorProcess] = field(default_factory=dict)
    api: ExecutorProcess | None = None
    # Where the workers' gateways send plugin calls; each worker presents its own
    # credential, so the platform's record says which node made a call.
    platform: PlatformStandIn | None = None

    def start_api(self) -> ExecutorProcess:
        self.api = executor_process(
            self.root / "api",
            self.host_client,
            command="serve",
            database_url=self.database_url,
            node_id="api",
            dispatch="false",
            lease_s=LEASE_S,
            **self.registry.settings(),
        ).start()
        return self.api

    def start_worker(self, name: str, **settings: Any) -> ExecutorProcess:
        known = self.workers.get(name)
        worker = (
            known
            if known is not None and not settings
            else executor_process(
                self.root / name,
                self.clients[name],
                command="worker",
                docker_host=self.engines[name].host,
                database_url=self.database_url,
                node_id=name,
                lease_s=LEASE_S,
                node_labels=f'{{"name": "{name}"}}',
                **{
                    **WORKER_SETTINGS,
                    **self._platform(name),
                    **self.registry.settings(),
                    **settings,
                },
            )
        )
        self.workers[name] = worker
        return worker.start()

    def start_all(self) -> None:
        """The API process and every worker, started side by side (each takes seconds to
        be ready): they share nothing but the database, whose migration they take turns at."""
        with concurrent.futures.ThreadPoolExecutor(1 + len(WORKERS)) as pool:
            starting = [pool.submit(self.start_api)]
            starting += [pool.submit(self.start_worker, name) for name in WORKERS]
            for started in starting:
                started.result()

    def _platform(self, name: str) -> dict[str, str]:
        if self.platform is None:
            return {}
        return {
            "platform_api_url": self.platform.url + "/api/projects/{project_id}",
            "platform_credential": worker_credential(name),
        }

    def stop(self) -> None:
        with concurrent.futures.ThreadPoolExecutor(max(1, len(self.workers))) as pool:
            for stopped in [pool.submit(worker.stop) for worker in self.workers.values()]:
                stopped.result()
        if self.api is not None:
            images = built_images(self.api)
            self.api.stop()
            for image_id in images:
                with contextlib.suppress(docker.errors.APIError):
                    self.host_client.images.remove(image_id, force=True, noprune=True)
        for client in self.clients.values():
            client.close()


@contextlib.contextmanager
def engine_cluster(root: Path, host_client: docker.DockerClient) -> Iterator[EngineCluster]:
    """Everything but the executor processes: registry, database, two private engines."""
    tag = secrets.token_hex(3)
    subnet = free_subnet()
    hosts = [str(h) for h in subnet.hosts()]
    with contextlib.ExitStack() as stack:
        bridge = stack.enter_context(host_bridge(f"pe-br-{tag}", f"{hosts[0]}/24"))
        registry = LocalRegistry(root / "registry", host=hosts[0])
        (root / "registry").mkdir(parents=True)
        registry.start()
        stack.callback(registry.close, host_client)
        database_url = stack.enter_context(fresh_database())
        cluster = EngineCluster(root, registry, database_url, host_client)
        netns_of = {}
        for index, name in enumerate(WORKERS, start=1):
            netns = stack.enter_context(network_namespace(f"pe-{tag}-{name}"))
            stack.enter_context(join(netns, bridge, f"pe{tag}{index}", f"{hosts[index]}/24"))
            netns_of[f"pe-{tag}-{name}"] = netns
        engines = stack.enter_context(private_engines(netns_of))
        for name in WORKERS:
            engine = engines[f"pe-{tag}-{name}"]
            cluster.engines[name] = engine
            cluster.clients[name] = docker.DockerClient(base_url=engine.host, timeout=120)
        stack.callback(cluster.stop)
        yield cluster
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert f"pe{tag}" not in links and f"pe-br-{tag}" not in links, "a veth or bridge was left"
