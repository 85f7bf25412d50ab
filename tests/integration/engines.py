"""Private Docker Engines for tests: each a ``dockerd`` with its own socket, data root,
exec root and pidfile (and its own containerd), started in a network namespace of its own.

Never in the host's namespace: a dockerd without a bridge (``--bridge=none``) deletes any
``docker0`` it finds, which must be the private namespace's (there is none), never the
host's."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

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
        self.spawn()
        self.wait_started()

    def spawn(self) -> None:
        """Start dockerd, not waiting for it to answer (``wait_started``)."""
        with (self.root / "dockerd.log").open("ab") as log:  # dockerd keeps its own fd
            self.process = self._spawn(log)

    def wait_started(self) -> None:
        """Until the spawned engine answers its ping; fails if it ended or took too long."""
        assert self.process is not None
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

    def kill(self) -> None:
        """``kill -9`` the engine: dockerd and the containerd it started (its process
        group); the containers' shims live on until the engine starts again."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        with contextlib.suppress(FileNotFoundError):
            (self.root / "docker.pid").unlink()


@contextlib.contextmanager
def network_namespace(name: str) -> Iterator[str]:
    """A new, empty network namespace ``name``; deleted after, with whatever still runs in it
    (the shim of a container whose engine was killed outlives the engine and every restart of
    it, and would keep the namespace and its veth alive)."""
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        kill_processes_in(name)
        subprocess.run(["ip", "netns", "delete", name], check=True)


def kill_processes_in(netns: str) -> list[int]:
    """SIGKILL every process in ``netns`` and their descendants (a shim's container has a
    namespace of its own); returns the pids that were in the namespace."""
    listed = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    inside = [int(pid) for pid in listed.stdout.split()]
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo = list(inside)
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return inside


@contextlib.contextmanager
def private_engine(name: str, netns: str) -> Iterator[PrivateEngine]:
    """A started private engine in ``netns``, its files under ``/var/tmp/NAME`` (short:
    a Unix socket path must stay under 108 bytes); stopped and removed after."""
    with private_engines({name: netns}) as engines:
        yield engines[name]


@contextlib.contextmanager
def private_engines(netns_of: dict[str, str]) -> Iterator[dict[str, PrivateEngine]]:
    """``private_engine`` for each name (key) in its namespace (value), the engines started
    side by side and stopped side by side (each takes seconds)."""
    engines: dict[str, PrivateEngine] = {}
    try:
        for name, netns in netns_of.items():
            root = Path(f"/var/tmp/{name}")
            root.mkdir(parents=True)
            engines[name] = PrivateEngine(root, netns)
            engines[name].spawn()
        for engine in engines.values():
            engine.wait_started()
        yield engines
    finally:
        with concurrent.futures.ThreadPoolExecutor(max(1, len(engines))) as pool:
            for ended in [pool.submit(_remove, engine) for engine in engines.values()]:
                ended.result()


def _remove(engine: PrivateEngine) -> None:
    """Stop ``engine`` and remove its files."""
    if engine.process is not None and engine.process.poll() is not None:
        engine.start()  # killed: started again, it stops its containers when stopped
    engine.stop()
    for mounted in ("exec", "data"):  # an engine started after a kill -9 mounts both
        subprocess.run(
            ["umount", "-R", str(engine.root / mounted)], capture_output=True, check=False
        )
    shutil.rmtree(engine.root, ignore_errors=True)


def load_images(engine: PrivateEngine, images: list[str]) -> None:
    """Copy ``images`` from the host's engine into ``engine`` (docker save | docker load)."""
    with subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE) as save:
        subprocess.run(
            ["docker", "-H", engine.host, "load"],
            stdin=save.stdout,
            check=True,
            capture_output=True,
        )
