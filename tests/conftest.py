"""Shared fixtures: a real executor server on loopback, its API client, sample plugins.

Every server gets its own data folder and SQLite database; the images it built are
removed when it stops.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import docker
import httpx
import pytest
import uvicorn

from executor.api.app import HTTP_PROTOCOL, create_app
from executor.build.context import IMAGE_LABEL
from executor.service.wiring import ExecutorService
from executor.settings import SandboxProfile, Settings
from executor.statuses import TERMINAL_STATUSES, RuntimeFlavor
from tests.durations import order_longest_first
from tests.schema_template import copied_schema

REPO = Path(__file__).resolve().parent.parent
PLUGINS = REPO / "tests" / "plugins"
EXAMPLES = REPO / "examples"
# Another tag lets a branch that changes plugin_runtime test its own build of the image.
RUNTIME_IMAGE = os.environ.get("EXECUTOR_TEST_RUNTIME_IMAGE", "plugin-executor-runtime:latest")
TIERS = ("unit", "integration", "security", "e2e")
# A test that takes one of these (directly or through another fixture) needs a Docker Engine.
DOCKER_FIXTURES = frozenset({"docker_client", "runtime_image"})
# Where the fast tier sends Docker clients: nothing listens, so a test that needs an engine
# but is not marked for it fails there instead of passing only on a machine with Docker.
NO_ENGINE = "unix:///nonexistent/plugin-executor-fast-tier/docker.sock"


def _clear_environment() -> None:
    """A developer's shell must not change a result: the executor's settings, Docker's
    client variables and the terminal's size come from the tests alone. (pytest-xdist's
    workers start with COLUMNS set; the CLI run in this process, ``tests/cli_runner.py``,
    would keep that width for every command.)"""
    for name in list(os.environ):
        if name.startswith(("EXECUTOR_", "DOCKER_")) or name in ("COLUMNS", "LINES"):
            del os.environ[name]


_clear_environment()
OPERATOR_KEY = "pe_op_test-operator-key-0123456789"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
TERMINAL = TERMINAL_STATUSES


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="the fast tier: only tests that need no Docker Engine and are not slow",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--fast"):
        config.option.markexpr = "not docker and not slow"
        os.environ["DOCKER_HOST"] = NO_ENGINE


# The plugin images that were on the engine when the run began (pytest's main process).
IMAGES_BEFORE = pytest.StashKey[set[str]]()
STARTED_AT = pytest.StashKey[float]()
SERVICE_IMAGES = "plugin-executor-test"  # tests/integration/service_image.py's repository


def _plugin_images(config: pytest.Config) -> set[str] | None:
    """The ids of the plugin images on the engine (every plugin build labels its image)
    and of the service images tests built (tests/integration/service_image.py); None when
    the run is not one that reaches an engine, or none answers."""
    if config.getoption("--fast") or hasattr(config, "workerinput"):
        return None  # xdist workers: the main process keeps the count for all of them
    try:
        client = docker.from_env(timeout=60)
        try:
            plugins = client.api.images(quiet=True, filters={"label": f"{IMAGE_LABEL}=true"})
            services = client.api.images(quiet=True, name=SERVICE_IMAGES)
            return set(plugins) | set(services)
        finally:
            client.close()
    except docker.errors.DockerException:
        return None


def pytest_sessionstart(session: pytest.Session) -> None:
    if (images := _plugin_images(session.config)) is not None:
        session.config.stash[IMAGES_BEFORE] = images
        session.config.stash[STARTED_AT] = time.time()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove the plugin images the run built and left behind: servers remove theirs when
    they stop, but in-process services, CLI sessions and nodes pulling from a registry
    each left some (20-40 a run, 448 on this machine after a day of runs). Only images
    that were not there when the run began are removed."""
    before = session.config.stash.get(IMAGES_BEFORE, None)
    if before is None or (now := _plugin_images(session.config)) is None:
        return
    client = docker.from_env(timeout=300)
    try:
        for image in now - before:
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_image(image, force=True)
        # What the run left untagged: the cached steps its removals kept (``noprune``,
        # ``stop_server``) and the last good step of each failed build.
        since = session.config.stash[STARTED_AT]
        for image in client.api.images(filters={"dangling": True}):
            if image["Created"] >= since:
                with contextlib.suppress(docker.errors.APIError):
                    client.api.remove_image(image["Id"], force=True)
    finally:
        client.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test is marked with its tier (its folder under tests/) and ``docker`` when one of
    its fixtures reaches the engine; the security tier runs attacks in containers only. Files
    run longest first (``tests/durations.py``)."""
    order_longest_first(items, REPO)
    tests = REPO / "tests"
    for item in items:
        tier = item.path.relative_to(tests).parts[0]
        if tier in TIERS:
            item.add_marker(tier)
        fixtures = set(getattr(item, "fixturenames", ()))
        if tier == "security" or fixtures & DOCKER_FIXTURES:
            item.add_marker("docker")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session", autouse=True)
def migrated_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Empty SQLite stores start as a copy of the first one migrated (tests/schema_template)."""
    with copied_schema(tmp_path_factory.mktemp("schema")):
        yield


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The real Docker Engine; the suite fails (never skips) when it is not there."""
    client = docker.from_env(timeout=300)  # a loaded engine can be slow to remove images
    assert client.ping(), "Docker Engine not reachable: run deploy/setup.sh first"
    yield client
    client.close()


def _missing(docker_client: docker.DockerClient, image: str) -> bool:
    try:
        docker_client.images.get(image)
    except docker.errors.ImageNotFound:
        return True
    return False


@pytest.fixture(scope="session")
def runtime_image(docker_client: docker.DockerClient) -> str:
    """The runtime base image and its flavors (named after it: ``<name>-kili:<tag>``), built
    by deploy/build-runtime-image.sh and deploy/build-flavor-images.sh if missing."""
    if _missing(docker_client, RUNTIME_IMAGE):
        subprocess.run(
            ["bash", str(REPO / "deploy" / "build-runtime-image.sh"), RUNTIME_IMAGE], check=True
        )
    flavors = Settings(operator_key=OPERATOR_KEY, runtime_image=RUNTIME_IMAGE)
    if any(_missing(docker_client, flavors.images.flavor_image(f)) for f in RuntimeFlavor):
        subprocess.run(
            ["bash", str(REPO / "deploy" / "build-flavor-images.sh"), RUNTIME_IMAGE], check=True
        )
    return RUNTIME_IMAGE


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    sandbox = SandboxProfile(**overrides.pop("sandbox", {}))
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "port": free_port(),
        "operator_key": OPERATOR_KEY,
        "runtime_image": RUNTIME_IMAGE,
        "build_ca_bundle": CA_BUNDLE if CA_BUNDLE.exists() else None,
        "dispatch_poll_s": 0.2,
        # Loaded CI cores import numpy and pandas slowly: the import check's own tests set less.
        "build_import_timeout_s": 600,
        # Tests count containers: only the warm pool's own tests turn the pool on.
        "warm_pool_size": 0,
        "sandbox": sandbox,
        **overrides,
    }
    return Settings(**values)


@dataclass
class ExecutorApi:
    """An authorized HTTP client to a real executor, with the steps tests repeat."""

    api: httpx.Client
    url: str
    docker_client: docker.DockerClient

    def push(
        self, plugin_dir: str | Path, name: str | None = None, *, expect: str = "ACTIVE"
    ) -> dict[str, Any]:
        """Upload a plugin folder (or file) and wait for its build to end."""
        from executor.intake.upload import pack_directory

        path = Path(plugin_dir) if Path(plugin_dir).is_absolute() else PLUGINS / plugin_dir
        if path.is_dir():
            data, filename = pack_directory(path), f"{path.name}.tar.gz"
        else:
            data, filename = path.read_bytes(), path.name
        name = name or path.name.split(".")[0]
        response = self.api.post(
            "/v1/plugins", data={"name": name}, files={"file": (filename, data)}
        )
        assert response.status_code == 202, response.text
        version = response.json()["version"]
        build = self.wait_build(name, version)
        assert build["status"] == expect, build["log"]
        return build

    def wait_build(self, name: str, version: int, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            build = self.api.get(
                f"/v1/plugins/{quote(name, safe='')}/versions/{version}/build-log"
            ).json()
            if build["status"] != "DEPLOYING":
                return dict(build)
            time.sleep(0.3)
        raise AssertionError(f"build of {name} v{version} did not end in {timeout} s")

    def activate(self, name: str, project: str, events: list[str] | None = None) -> dict[str, Any]:
        body = {"events": events} if events else None
        path = f"/v1/projects/{project}/plugins/{quote(name, safe='')}"  # names are free text
        response = self.api.put(path, json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def post_event(self, **event: Any) -> dict[str, Any]:
        response = self.api.post("/v1/events", json=event)
        assert response.status_code in (200, 202), response.text
        return dict(response.json())

    def wait_run(self, invocation_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.api.get(f"/v1/invocations/{invocation_id}").json()
            if run["status"] in TERMINAL:
                return dict(run)
            time.sleep(0.2)
        raise AssertionError(f"invocation {invocation_id} did not end in {timeout} s")

    def run_event(self, **event: Any) -> dict[str, Any]:
        """Post one event that must start exactly one run, and wait for that run."""
        accepted = self.post_event(**event)
        assert len(accepted["invocations"]) == 1, accepted
        return self.wait_run(accepted["invocations"][0])

    def logs(self, **params: Any) -> list[dict[str, Any]]:
        response = self.api.get("/v1/logs", params={"limit": 1000, **params})
        assert response.status_code == 200, response.text
        return list(response.json())


@dataclass
class RunningServer(ExecutorApi):
    """A real executor served by uvicorn in a thread of the test process."""

    settings: Settings
    service: ExecutorService
    service_app: Any


class ServerFactory(Protocol):
    """The ``server_factory`` fixture: starts an executor with the given settings overrides."""

    def __call__(self, **overrides: Any) -> RunningServer: ...


def start_server(
    settings: Settings, docker_client: docker.DockerClient
) -> tuple[RunningServer, uvicorn.Server, threading.Thread]:
    service = ExecutorService(settings)
    app = create_app(service)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=settings.port, log_level="warning", http=HTTP_PROTOCOL
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{settings.port}"
    # Started, or its thread ended (a failed start logs why): loaded cores can take long.
    deadline = time.monotonic() + 300
    while not server.started:
        assert thread.is_alive(), "executor server failed to start: see its log above"
        assert time.monotonic() < deadline, "executor server did not start in 300 s"
        thread.join(0.05)
    api = httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}, timeout=60
    )
    running = RunningServer(
        api=api,
        url=url,
        docker_client=docker_client,
        settings=settings,
        service=service,
        service_app=app,
    )
    return running, server, thread


def stop_server(running: RunningServer, server: uvicorn.Server, thread: threading.Thread) -> None:
    running.api.close()
    with running.service.db.session() as session:
        from sqlalchemy import select

        from executor.store.tables import PluginVersion

        tags = [t for t in session.scalars(select(PluginVersion.image_tag)) if t]
    server.should_exit = True
    # A server still stopping would leave its engine connections open: wait it out.
    thread.join(600)
    assert not thread.is_alive(), "the executor server did not stop"
    # ``noprune``: an image's untagged parents are the build cache's shared steps (the run
    # user and label of every code-only plugin of a flavor); removing them while a build in
    # another test process had just taken one from the cache failed that build ("unknown
    # parent image ID") or left its image without a parent. The session's end removes them.
    for tag in tags:
        with contextlib.suppress(docker.errors.ImageNotFound):
            running.docker_client.images.remove(tag, force=True, noprune=True)


@pytest.fixture(scope="module")
def server_factory(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, runtime_image: str
) -> Iterator[ServerFactory]:
    """Start executor servers with given settings overrides; all are stopped at teardown."""
    started: list[tuple[RunningServer, uvicorn.Server, threading.Thread]] = []

    def start(**overrides: Any) -> RunningServer:
        settings = make_settings(tmp_path_factory.mktemp("executor"), **overrides)
        started.append(start_server(settings, docker_client))
        return started[-1][0]

    yield start
    for entry in reversed(started):
        stop_server(*entry)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, runtime_image: str
) -> Iterator[RunningServer]:
    """One executor with the default sandbox profile for a whole test module."""
    settings = make_settings(tmp_path_factory.mktemp("executor"))
    entry = start_server(settings, docker_client)
    yield entry[0]
    stop_server(*entry)
