"""Docker Engine restarts mid-run: the affected invocations are retried and succeed.

The restart happens on a private ``dockerd`` the test starts (own socket, data root and
containerd, no bridge network) in a network namespace of its own, so other tests on the
shared engine are not disturbed: a dockerd without a bridge deletes any ``docker0`` it
finds, which must be the private namespace's (there is none), never the host's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import docker
import pytest

from executor.settings import Settings
from executor.statuses import RuntimeFlavor
from tests.conftest import OPERATOR_KEY, RUNTIME_IMAGE
from tests.integration.processes import executor_process

START_TIMEOUT_S = 60


@dataclass
class PrivateEngine:
    root: Path
    netns: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    def start(self) -> None:
        with (self.root / "dockerd.log").open("ab") as log:  # dockerd keeps its own fd
            self.process = self._spawn(log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._answers():
            assert self.process.poll() is None, (self.root / "dockerd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "private dockerd did not start"
            time.sleep(0.3)

    def _answers(self) -> bool:
        """The engine answers its ping (a raw socket: clients leak the socket of a failed
        connect until garbage collection)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            try:
                sock.connect(str(self.root / "docker.sock"))
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: engine\r\n\r\n")
                return sock.recv(1024).split(b"\r\n", 1)[0].endswith(b" 200 OK")
            except OSError:
                return False

    def _spawn(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                # nsenter joins only the network namespace: "ip netns exec" would also
                # remount /sys, hiding the cgroup hierarchy dockerd needs.
                "nsenter",
                f"--net=/run/netns/{self.netns}",
                "dockerd",
                f"--host={self.host}",
                f"--data-root={self.root / 'data'}",
                f"--exec-root={self.root / 'exec'}",
                f"--pidfile={self.root / 'docker.pid'}",
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(90)


@pytest.fixture(scope="module")
def private_engine(runtime_image: str) -> Iterator[PrivateEngine]:
    # Short paths: a Unix socket path must stay under 108 bytes.
    name = f"pe-engine-{secrets.token_hex(3)}"
    root = Path(f"/var/tmp/{name}")
    root.mkdir(parents=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    engine = PrivateEngine(root, name)
    engine.start()
    # Plugins build FROM the default flavor (kili) of the runtime image.
    kili = Settings(operator_key=OPERATOR_KEY, runtime_image=RUNTIME_IMAGE).flavor_image(
        RuntimeFlavor.KILI
    )
    images = ["docker", "save", RUNTIME_IMAGE, kili]
    with subprocess.Popen(images, stdout=subprocess.PIPE) as save:
        subprocess.run(
            ["docker", "-H", engine.host, "load"],
            stdin=save.stdout,
            check=True,
            capture_output=True,
        )
    yield engine
    engine.stop()
    subprocess.run(["umount", "-R", str(root / "exec")], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "delete", name], check=True)
    shutil.rmtree(root, ignore_errors=True)


def test_dockerd_restart_mid_run_is_retried_and_succeeds(
    private_engine: PrivateEngine, tmp_path: Path
) -> None:
    client = docker.DockerClient(base_url=private_engine.host, timeout=120)
    executor = executor_process(
        tmp_path / "data",
        client,
        docker_host=private_engine.host,
        retry_base_s=1,
        retry_max_s=4,
        retry_max_attempts=12,
    ).start()
    try:
        executor.push("interval")
        executor.activate("interval", "engine")
        ids = [
            executor.post_event(
                type="onSubmit", project_id="engine", asset_id=f"r{i}", label={"sleep": 6}
            )["invocations"][0]
            for i in range(3)
        ]
        deadline = time.monotonic() + 120
        while (
            sum(any(r["content"].startswith("start") for r in executor.logs(run_id=i)) for i in ids)
            < 3
        ):
            assert time.monotonic() < deadline, "runs did not start"
            time.sleep(0.3)
        private_engine.stop()
        private_engine.start()
        runs = [executor.wait_run(i, timeout=240) for i in ids]
        assert [r["status"] for r in runs] == ["succeeded"] * 3, runs
        for run in runs:
            assert run["attempt"] >= 2
            assert all(a["reason"].startswith("infrastructure: ") for a in run["attempts"])
            assert [r["content"] for r in executor.logs(run_id=run["id"])][-2:] == [
                f"start {run['asset_id']}",
                f"end {run['asset_id']}",
            ]
        # Containers that could not be removed while the engine was down are swept later.
        deadline = time.monotonic() + 30
        while client.api.containers(all=True, filters={"label": "io.plugin-executor.managed"}):
            assert time.monotonic() < deadline, "leftover containers were not swept"
            time.sleep(0.5)
    finally:
        executor.stop()
        client.close()
    assert os.path.exists(private_engine.root)
