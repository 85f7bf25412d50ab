"""Executors as separate processes (``plugin-executor serve`` or ``worker``), to kill and
restart them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx

from tests.conftest import CA_BUNDLE, OPERATOR_KEY, RUNTIME_IMAGE, ExecutorApi, free_port

STARTUP_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30  # for every thread of a process to stop on SIGSTOP
WORKER_READY = b"ready"  # the last word of the line a worker prints once it claims


@dataclass
class ExecutorProcess(ExecutorApi):
    """One ``plugin-executor serve`` (or ``worker``: ``command``) process; ``env`` holds its
    EXECUTOR_* settings."""

    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    command: str = "serve"
    log_start: int = field(default=0, init=False)  # where this start's lines begin in the log

    def start(self) -> ExecutorProcess:
        self.spawn()
        return self.wait_ready()

    def spawn(self) -> ExecutorProcess:
        """Start the process without waiting for it to be ready (``wait_ready``): several
        started at once get ready together."""
        assert self.log_path is not None
        if self.api.is_closed:  # stopped before: a new client for the new process
            self.api = httpx.Client(base_url=self.url, headers=self.api.headers, timeout=60)
        self.log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log_file:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "executor.cli", self.command],
                env={**os.environ, **self.env},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_ready(self) -> ExecutorProcess:
        """Wait until the spawned process serves (or, a worker, claims)."""
        assert self.process is not None and self.log_path is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert self.process.poll() is None, self.log_path.read_text()
            if self._ready(self.log_start):
                return self
            assert time.monotonic() < deadline, "executor process did not start"
            time.sleep(0.2)

    def _ready(self, log_start: int) -> bool:
        """A server answers /healthz; a worker (no HTTP port) has printed its ready line."""
        assert self.log_path is not None
        if self.command == "worker":
            with self.log_path.open("rb") as log_file:
                log_file.seek(log_start)
                return any(line.rstrip().endswith(WORKER_READY) for line in log_file)
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        return False

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def pause(self) -> None:
        """SIGSTOP; returns once every thread of the process is stopped, so from then on
        it writes nothing (until ``resume``)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        tasks = Path(f"/proc/{self.process.pid}/task")
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while not all(_stopped(task) for task in tasks.iterdir()):
            assert time.monotonic() < deadline, "SIGSTOP did not stop the process"
            time.sleep(0.01)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        stop_all([self])


def stop_all(processes: list[ExecutorProcess]) -> None:
    """SIGTERM every running one of ``processes`` at once (a stopped one is continued
    first, so that it can stop), then wait for each; kill one that does not end."""
    running = [p for p in processes if p.process is not None and p.process.poll() is None]
    for process in running:
        assert process.process is not None
        process.process.send_signal(signal.SIGCONT)
        process.process.send_signal(signal.SIGTERM)
    for process in running:
        assert process.process is not None
        try:
            process.process.wait(60)
        except subprocess.TimeoutExpired:
            process.process.kill()
            process.process.wait()
    for process in processes:
        process.api.close()


def _stopped(task: Path) -> bool:
    """Whether the thread ``task`` (``/proc/PID/task/TID``) is stopped or gone."""
    try:
        stat = (task / "stat").read_text()
    except FileNotFoundError:  # the thread ended
        return True
    state = stat.rpartition(")")[2].split()[0]  # after the name, which may hold anything
    return state in {"T", "t", "Z", "X"}


def executor_process(
    data_dir: Path,
    docker_client: docker.DockerClient,
    port: int | None = None,
    docker_host: str | None = None,
    command: str = "serve",
    **settings: Any,
) -> ExecutorProcess:
    """An executor process (not started) on ``port`` (default: a free one) with settings,
    using the Docker Engine at ``docker_host`` (default: the one tests use); ``command``
    ``worker`` starts a worker instead of a server."""
    port = port or free_port()
    env = {
        "EXECUTOR_DATA_DIR": str(data_dir),
        "EXECUTOR_PORT": str(port),
        "EXECUTOR_OPERATOR_KEY": OPERATOR_KEY,
        "EXECUTOR_RUNTIME_IMAGE": RUNTIME_IMAGE,
        "EXECUTOR_DISPATCH_POLL_S": "0.2",
        "EXECUTOR_WARM_POOL_SIZE": "0",  # as in make_settings: tests count containers
        **({"EXECUTOR_BUILD_CA_BUNDLE": str(CA_BUNDLE)} if CA_BUNDLE.exists() else {}),
        **{f"EXECUTOR_{key.upper()}": str(value) for key, value in settings.items()},
        **({"DOCKER_HOST": docker_host} if docker_host else {}),
    }
    url = f"http://127.0.0.1:{port}"
    api = httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}, timeout=60
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    return ExecutorProcess(
        api=api,
        url=url,
        docker_client=docker_client,
        env=env,
        log_path=data_dir / "server.log",
        command=command,
    )


def built_images(api: ExecutorApi) -> list[str]:
    """The image ids of every plugin version the executor behind ``api`` built."""
    return [
        version["image_id"]
        for plugin in api.api.get("/v1/plugins").json()
        for version in api.api.get(f"/v1/plugins/{plugin['name']}").json()["versions"]
        if version["image_id"]
    ]


def remove_images(client: docker.DockerClient, image_ids: list[str]) -> None:
    for image_id in image_ids:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(image_id, force=True, noprune=True)


def managed_containers(client: docker.DockerClient, invocation_ids: set[str]) -> list[str]:
    """Containers (any state) labelled with one of ``invocation_ids``."""
    # The low-level call: the high-level list inspects each container and races removals.
    found = client.api.containers(all=True, filters={"label": "io.plugin-executor.managed"})
    return [
        c["Id"] for c in found if c["Labels"].get("io.plugin-executor.invocation") in invocation_ids
    ]
