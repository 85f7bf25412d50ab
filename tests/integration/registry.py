"""A real registry for tests: Debian's docker-registry (CNCF Distribution) set up by
``deploy/registry.sh`` (its own CA and TLS certificate, htpasswd auth, deletes enabled) and
run as a subprocess on a free loopback port. The engine trusts its CA through
``/etc/docker/certs.d/127.0.0.1:PORT/ca.crt``, removed again with everything pushed."""

from __future__ import annotations

import contextlib
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx

from tests.conftest import REPO, free_port

SCRIPT = REPO / "deploy" / "registry.sh"
CERTS_D = Path("/etc/docker/certs.d")
USER = "executor"
PASSWORD = "registry-test-password-0123"
STARTUP_TIMEOUT_S = 60
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.manifest.v1+json"
)


@dataclass
class LocalRegistry:
    """One registry process; ``stop`` and ``start`` take it down and bring it back."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"  # an address of this machine; its TLS certificate names it

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    def settings(self, password: str = PASSWORD) -> dict[str, Any]:
        """The executor's settings overrides for this registry."""
        return {
            "registry": self.address,
            "registry_user": USER,
            "registry_password": password,
            "registry_ca_bundle": self.ca,
        }

    def start(self) -> LocalRegistry:
        with (self.folder.parent / "registry.log").open("ab") as log_file:
            self.process = subprocess.Popen(
                ["bash", str(SCRIPT), "--serve", str(self.folder), self.address, USER],
                stdin=subprocess.PIPE,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        assert self.process.stdin is not None
        self.process.stdin.write(PASSWORD.encode())
        self.process.stdin.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        try:
            while not self._answers():
                assert self.process.poll() is None, "the registry exited: see registry.log"
                assert time.monotonic() < deadline, "the registry did not start"
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def _answers(self) -> bool:
        if not self.ca.exists():
            return False
        try:
            return self.get("/v2/").status_code == httpx.codes.OK
        except (httpx.HTTPError, ssl.SSLError):  # ssl: the set-up is still writing ca.crt
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None

    def get(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(
            f"https://{self.address}{path}",
            auth=(USER, PASSWORD),
            verify=ssl.create_default_context(cafile=str(self.ca)),
            headers=headers,
            timeout=30,
        )

    def manifest(self, reference: str) -> httpx.Response:
        """GET the manifest of ``repo@sha256:...`` from the registry."""
        repository, _, digest = reference.partition("@")
        name = repository.removeprefix(self.address + "/")
        return self.get(f"/v2/{name}/manifests/{digest}", Accept=MANIFEST_TYPES)

    def collect_garbage(self) -> str:
        """Run the registry's garbage collection (``deploy/registry.sh gc``); its output."""
        result = subprocess.run(
            ["bash", str(SCRIPT), "gc", str(self.folder)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    def blobs(self) -> set[str]:
        """The digests of the blobs (layers, configs, manifests) stored on disk."""
        root = self.folder / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
        return {path.parent.name for path in root.glob("*/*/data")}

    def remove_local_images(self, client: docker.DockerClient) -> None:
        """Remove every image on the engine that names this registry."""
        remove_images_of(client, self.address)

    def close(self, client: docker.DockerClient) -> None:
        self.stop()
        self.remove_local_images(client)
        shutil.rmtree(CERTS_D / self.address, ignore_errors=True)


def remove_images_of(client: docker.DockerClient, address: str) -> None:
    """Remove every image on the engine that names the registry at ``address``."""
    # The engine's one list call: images.list() then asks for each image again, and fails
    # on one that another test removed in between.
    for image in client.api.images():
        names = (image.get("RepoTags") or []) + (image.get("RepoDigests") or [])
        if any(name.startswith(address + "/") for name in names):
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(str(image["Id"]), force=True, noprune=True)


def image_events(client: docker.DockerClient, since: float, kind: str) -> list[dict[str, Any]]:
    """The engine's ``kind`` events (e.g. image pulls) from ``since`` until now."""
    events = client.events(
        since=int(since), until=int(time.time()) + 1, decode=True, filters={"event": kind}
    )
    return list(events)
