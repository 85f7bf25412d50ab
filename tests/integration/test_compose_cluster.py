"""deploy/compose.cluster.yaml brought up with Debian's docker-compose 1.29: PostgreSQL, the
registry, two API processes behind haproxy and two workers, every image built here from
Debian packages; an event runs through it end to end (upload, build, push, a worker pulls
by digest, run, logs), every request through the balancer."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from executor.engine import NODE_LABEL
from tests.conftest import OPERATOR_KEY, REPO, ExecutorApi, free_port
from tests.integration.processes import built_images, remove_images
from tests.integration.registry import remove_images_of
from tests.integration.service_image import checkout_tag, service_image

COMPOSE_FILE = REPO / "deploy" / "compose.cluster.yaml"
SERVICE_UID = 10001  # the executor image's user (deploy/Dockerfile)
TAG = secrets.token_hex(3)
# Node ids of this test's own: teardown removes whatever containers they left.
WORKERS = (f"compose-{TAG}-w1", f"compose-{TAG}-w2")
DEADLINE_S = 240
# The plugin also says whether it can see an engine socket: the worker's container has one
# mounted, its plugins must not.
MAIN = """import os


class PluginHandler:
    def on_submit(self, label, asset_id):
        sockets = [p for p in ("/var/run/docker.sock", "/run/docker.sock") if os.path.exists(p)]
        print("ran on", asset_id, "engine sockets:", sockets)
"""
EVENT = {"type": "onSubmit", "asset_id": "a1", "label": {}, "project_id": "cluster"}


@dataclass
class ClusterImages:
    executor: str
    postgres: str
    registry: str
    balancer: str


@pytest.fixture(scope="module")
def cluster_images(
    docker_client: docker.DockerClient, runtime_image: str
) -> Iterator[ClusterImages]:
    """Throwaway tags of the four images the compose file runs, built from this checkout,
    the executor's and the other three side by side. The three are Debian packages on the
    runtime's root file system, whatever the checkout's code: their build steps stay in
    the engine's build cache (only their tags are removed), so the next run's builds take
    seconds instead of a minute, and still build anew what a change to deploy/images (or
    the base) touches. The executor's image is removed whole: each change of the code would
    leave another one behind: it is the checkout's (tests/integration/service_image.py),
    shared with test_service_image and removed when the run ends."""
    tag = secrets.token_hex(4)
    images = ClusterImages(
        checkout_tag(),
        f"plugin-executor-postgres-test:{tag}",
        f"plugin-executor-registry-test:{tag}",
        f"plugin-executor-balancer-test:{tag}",
    )
    base = "plugin-executor-rootfs:bookworm"
    env = {**os.environ, "EXECUTOR_RUNTIME_BASE": base}
    try:
        docker_client.images.get(base)
    except docker.errors.ImageNotFound:  # made once, before the two builds that start FROM it
        rootfs = REPO / "deploy" / "build-rootfs-image.sh"
        subprocess.run(["bash", str(rootfs), base], check=True)
    others = (images.postgres, images.registry, images.balancer)
    script = REPO / "deploy" / "build-cluster-images.sh"
    try:
        with subprocess.Popen(["bash", str(script), *others], env=env) as building:
            service_image(docker_client, base)  # meanwhile
            assert building.wait() == 0, "the cluster images' build failed"
        yield images
    finally:
        for name in others:
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(name, force=True, noprune=True)


@dataclass
class ComposeCluster:
    api: ExecutorApi  # through the balancer
    api_processes: list[str]  # each API process's own URL
    registry_address: str
    command: list[str]
    project: str

    def compose(self, *args: str) -> str:
        result = subprocess.run([*self.command, *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


def secret_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def write_env(root: Path, images: ClusterImages, runtime_image: str) -> tuple[Path, dict[str, str]]:
    """The compose variables file and the secrets files it names, under ``root``."""
    postgres_port, api_port, registry_port = free_port(), free_port(), free_port()
    api_process_ports = free_port(), free_port()
    postgres_password, registry_password = secrets.token_hex(16), secrets.token_hex(16)
    state = root / "state"
    for name in ("api", "api-2", "worker-1", "worker-2"):
        (state / name).mkdir(parents=True)
        os.chown(state / name, SERVICE_UID, SERVICE_UID)
    url = f"postgresql+psycopg://executor:{postgres_password}@127.0.0.1:{postgres_port}/executor"
    executor_secrets = secret_file(
        root / "cluster-secrets.env",
        f"EXECUTOR_DATABASE_URL={url}\nEXECUTOR_OPERATOR_KEY={OPERATOR_KEY}\n"
        f"EXECUTOR_REGISTRY_PASSWORD={registry_password}\n",
    )
    variables = {
        "DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid),
        "EXECUTOR_STATE_DIR": str(state),
        "REGISTRY_DIR": str(root / "registry"),
        "REGISTRY_ADDRESS": f"127.0.0.1:{registry_port}",
        "POSTGRES_PASSWORD_FILE": str(secret_file(root / "pg-password", postgres_password)),
        "REGISTRY_PASSWORD_FILE": str(secret_file(root / "reg-password", registry_password)),
        "CLUSTER_SECRETS": str(executor_secrets),
        "EXECUTOR_IMAGE": images.executor,
        "POSTGRES_IMAGE": images.postgres,
        "REGISTRY_IMAGE": images.registry,
        "EXECUTOR_RUNTIME_IMAGE": runtime_image,
        "POSTGRES_PORT": str(postgres_port),
        "EXECUTOR_PORT": str(api_port),
        "EXECUTOR_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
        "API_1_PORT": str(api_process_ports[0]),
        "API_2_PORT": str(api_process_ports[1]),
        "BALANCER_IMAGE": images.balancer,
        "WORKER_1_NODE_ID": WORKERS[0],
        "WORKER_2_NODE_ID": WORKERS[1],
    }
    env_file = root / "cluster.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in variables.items()))
    return env_file, variables


def wait_for(what: str, check: Any) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what}: not reached in {DEADLINE_S} s"
        time.sleep(0.5)
    return found


def ready(url: str) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(f"{url}/readyz", timeout=3).status_code == 200
    return False


@pytest.fixture
def compose_cluster(
    cluster_images: ClusterImages,
    runtime_image: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> Iterator[ComposeCluster]:
    compose_bin = shutil.which("docker-compose")
    assert compose_bin, "docker-compose is missing: apt-get install docker-compose"
    env_file, variables = write_env(tmp_path, cluster_images, runtime_image)
    project = f"pe-cluster-{TAG}"
    command = [compose_bin, "-p", project, "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
    url = f"http://127.0.0.1:{variables['EXECUTOR_PORT']}"
    api = ExecutorApi(
        api=httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}, timeout=60
        ),
        url=url,
        docker_client=docker_client,
    )
    api_processes = [f"http://127.0.0.1:{variables[f'API_{n}_PORT']}" for n in (1, 2)]
    cluster = ComposeCluster(api, api_processes, variables["REGISTRY_ADDRESS"], command, project)
    try:
        cluster.compose("up", "-d")
        for process_url in api_processes:
            wait_for(f"{process_url} answers /readyz", lambda: ready(process_url))  # noqa: B023
        wait_for("the balancer answers /readyz", lambda: ready(url))
        yield cluster
    finally:
        plugin_images: list[str] = []
        with contextlib.suppress(httpx.HTTPError):
            plugin_images = built_images(api)
        api.api.close()
        subprocess.run([*command, "logs", "--no-color"], check=False)  # shown when failing
        subprocess.run([*command, "down", "-v"], check=False)
        remove_node_containers(docker_client)
        remove_images(docker_client, plugin_images)
        shutil.rmtree(Path("/etc/docker/certs.d") / cluster.registry_address, ignore_errors=True)
        remove_images_of(docker_client, cluster.registry_address)


def remove_node_containers(client: docker.DockerClient) -> None:
    """The warm and finished plugin containers the workers left (stopping keeps them)."""
    for node in WORKERS:
        for found in client.api.containers(all=True, filters={"label": f"{NODE_LABEL}={node}"}):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(found["Id"], force=True)


@contextlib.contextmanager
def engine_pulls(client: docker.DockerClient) -> Iterator[list[str]]:
    """What the engine pulls while the block runs, read live: a shared engine keeps only
    its last few hundred events, so asking afterwards can miss them."""
    stream = client.events(decode=True, filters={"type": "image", "event": "pull"})
    pulled: list[str] = []

    def read() -> None:
        with contextlib.suppress(Exception):  # the stream ends with an error when closed
            pulled.extend(str(event["id"]) for event in stream)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield pulled
    finally:
        stream.close()
        reader.join(timeout=10)


def ready_nodes(api: ExecutorApi) -> set[str]:
    return {node["id"] for node in api.api.get("/v1/nodes").json() if node["state"] == "ready"}


# Four images built from Debian packages, then seven services: near 10 minutes on two
# loaded cores, past the suite's 600 s guard (a guard against a hang, not a deadline).
@pytest.mark.timeout(1800)
def test_an_event_runs_through_the_compose_cluster(
    compose_cluster: ComposeCluster, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    api = compose_cluster.api
    wait_for("both workers are ready nodes", lambda: set(WORKERS) <= ready_nodes(api))
    plugin = tmp_path / "clustered"
    plugin.mkdir()
    (plugin / "main.py").write_text(MAIN)

    build = api.push(plugin)

    (version,) = api.api.get("/v1/plugins/clustered").json()["versions"]
    digest = str(version["image_digest"])
    assert digest.startswith(f"{compose_cluster.registry_address}/plugin-executor/p-"), digest
    assert f"Pushed {digest}\n" in build["log"]
    # Only the registry holds the image now: a worker must pull it, by digest (ahead of
    # the first event, as the activation makes it what a project runs, or on first use).
    remove_images_of(docker_client, compose_cluster.registry_address)
    remove_images(docker_client, built_images(api))
    with engine_pulls(docker_client) as pulled:
        api.activate("clustered", "cluster")

        run = api.run_event(**EVENT)

        wait_for("the engine reports the pull by digest", lambda: digest in pulled)
    assert run["status"] == "succeeded", run["error"]
    assert run["node"] in WORKERS
    logs = [r for r in api.logs(run_id=run["id"]) if r["log_type"] != "SYSTEM"]
    assert [(r["content"], r["node_id"]) for r in logs] == [
        ("ran on a1 engine sockets: []", run["node"])
    ]
    for service in ("api", "api-2"):  # the balancer spread the requests over both
        assert b'"GET /v1/' in service_logs(docker_client, compose_cluster.project, service)


def service_logs(client: docker.DockerClient, project: str, service: str) -> bytes:
    labels = [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]
    (container,) = client.containers.list(filters={"label": labels})
    logs: bytes = container.logs()
    return logs
