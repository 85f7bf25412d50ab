"""A build against a package index whose certificate the host does not trust: the build log
names EXECUTOR_BUILD_CA_BUNDLE, and with the setting pointed at the index's CA it builds.

The index is a real HTTPS server started here with a self-signed certificate (openssl). It
listens on the Docker bridge's gateway address, the host's address that build containers
reach (127.0.0.1 inside a build container is the container itself).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import ipaddress
import os
import ssl
import subprocess
import sys
import threading
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import pytest

from executor.build.tls import CERTIFICATE_HINT
from executor.intake.upload import pack_directory
from tests.conftest import ServerFactory
from tests.e2e.test_scaffold import author_env

WHEEL = "tlsprobe-1.0-py3-none-any.whl"
MAIN = (
    "import tlsprobe\nfrom plugin_runtime import PluginCore\n\n"
    "class PluginHandler(PluginCore):\n"
    "    def on_submit(self, label, asset_id):\n"
    "        self.logger.info('tlsprobe %s', tlsprobe.VERSION)\n"
)
EVENT = '{"type": "onSubmit", "asset_id": "a1", "label": {"id": "l1"}}'


def probe_wheel() -> bytes:
    """A one-module wheel, made here: the index serves it and nothing else."""
    files = {
        "tlsprobe/__init__.py": b"VERSION = '1.0'\n",
        "tlsprobe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tlsprobe\nVersion: 1.0\n",
        "tlsprobe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{name},sha256="
        f"{base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
        f"{len(data)}\n"
        for name, data in files.items()
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(
            "tlsprobe-1.0.dist-info/RECORD", record + "tlsprobe-1.0.dist-info/RECORD,,\n"
        )
    return buffer.getvalue()


@dataclass
class TlsIndex:
    url: str
    ca: Path
    paths: list[str] = field(default_factory=list)


class _Index(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.index.paths.append(self.path)
        if self.path.rstrip("/") == "/simple/tlsprobe":
            digest = hashlib.sha256(self.server.wheel).hexdigest()
            body = f'<a href="/files/{WHEEL}#sha256={digest}">{WHEEL}</a>'.encode()
            self._send(body, "text/html")
        elif self.path == f"/files/{WHEEL}":
            self._send(self.server.wheel, "application/octet-stream")
        else:
            self.send_error(404)

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    index: TlsIndex
    wheel: bytes


@contextlib.contextmanager
def tls_index(folder: Path, host: str) -> Iterator[TlsIndex]:
    """An HTTPS package index on ``host``, its certificate self-signed for that address."""
    cert, key = folder / "index-ca.pem", folder / "index-key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=tls-index-test"),
            *("-addext", f"subjectAltName=IP:{host}"),
        ],
        check=True,
        capture_output=True,
    )
    server = _Server((host, 0), _Index)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.wheel = probe_wheel()
    server.index = TlsIndex(f"https://{host}:{server.server_address[1]}/simple", cert)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        yield server.index
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def bridge_gateway(client: docker.DockerClient) -> str:
    """The host's address on Docker's default bridge (the subnet's first host when the
    engine does not name a gateway)."""
    config = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    return str(config.get("Gateway") or next(ipaddress.ip_network(config["Subnet"]).hosts()))


@pytest.fixture
def plugin(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Path]:
    folder = tmp_path / f"tlsprobe-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "main.py").write_text(MAIN)
    (folder / "requirements.txt").write_text("tlsprobe==1.0\n")
    (folder / "event.json").write_text(EVENT)
    yield folder
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(f"plugin-executor/p-local-{folder.name}:v0", force=True)


def run_with(plugin: Path, index: TlsIndex, ca: str | None) -> subprocess.CompletedProcess[str]:
    env = {**author_env(), "EXECUTOR_BUILD_INDEX_URL": index.url}
    env.pop("EXECUTOR_BUILD_CA_BUNDLE", None)
    if ca is not None:
        env["EXECUTOR_BUILD_CA_BUNDLE"] = ca
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "executor.cli",
            "run",
            str(plugin),
            "--event",
            str(plugin / "event.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_an_untrusted_index_names_the_setting_and_its_ca_fixes_the_build(
    plugin: Path, tmp_path: Path, docker_client: docker.DockerClient, runtime_image: str
) -> None:
    assert os.path.exists("/etc/ssl/certs/ca-certificates.crt")  # the default this checks
    with tls_index(tmp_path, bridge_gateway(docker_client)) as index:
        # Unset: the system bundle, which does not know the index's certificate.
        refused = run_with(plugin, index, None)
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
        assert "pip could not verify the package index's TLS certificate: set " in refused.stderr
        assert (
            "build FAILED: pip could not verify the package index's TLS certificate: set "
            "EXECUTOR_BUILD_CA_BUNDLE to the CA bundle (PEM)" in refused.stderr.replace("\n", " ")
        )
        assert not any(p.startswith("/files/") for p in index.paths)  # TLS stopped it

        built = run_with(plugin, index, str(index.ca))
        assert built.returncode == 0, built.stdout + built.stderr
        assert "CERTIFICATE_VERIFY_FAILED" not in built.stderr
        assert f"/files/{WHEEL}" in index.paths
        assert built.stdout.splitlines() == ["INFO     tlsprobe 1.0"]


def test_a_server_build_against_an_untrusted_index_says_which_setting(
    server_factory: ServerFactory, plugin: Path, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    with tls_index(tmp_path, bridge_gateway(docker_client)) as index:
        # The test settings' CA bundle is the system one, which does not know the index.
        server = server_factory(build_index_url=index.url)
        (plugin / "event.json").unlink()
        response = server.api.post(
            "/v1/plugins",
            data={"name": "tlsprobe"},
            files={"file": ("tlsprobe.tar.gz", pack_directory(plugin))},
        )
        assert response.status_code == 202, response.text
        build = server.wait_build("tlsprobe", response.json()["version"])
    assert build["status"] == "FAILED"
    assert build["error"].startswith(f"{CERTIFICATE_HINT}; ")
    assert "CERTIFICATE_VERIFY_FAILED" in build["log"]
    assert f"\n{CERTIFICATE_HINT}\n" in build["log"]
    assert build["log"].rstrip().endswith(f"BUILD FAILED: {build['error']}")
