"""deploy/build-flavor-images.sh offline: a flavor built from a wheelhouse, with no network."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
from pathlib import Path

import docker
import docker.errors

from executor.build.flavors import MODULES_LABEL, PACKAGES_LABEL
from tests.conftest import REPO, RUNTIME_IMAGE

PIP_DOWNLOAD = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check"]
KILI_FLAVOR = REPO / "runtime_image" / "flavors" / "kili.txt"


def test_the_kili_flavor_builds_offline_from_a_wheelhouse(
    runtime_image: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    # setuptools and wheel: an sdist among the pins (cuid) is built in pip's isolation.
    subprocess.run(
        [*PIP_DOWNLOAD, "-d", str(wheelhouse), "-r", str(KILI_FLAVOR), "setuptools", "wheel"],
        check=True,
    )
    tag = f"offline-{secrets.token_hex(4)}"
    image = f"{RUNTIME_IMAGE.rpartition(':')[0]}-kili:{tag}"
    try:
        done = subprocess.run(
            ["bash", str(REPO / "deploy" / "build-flavor-images.sh"), runtime_image, tag],
            env={"PATH": "/usr/bin:/bin", "EXECUTOR_BUILD_WHEELHOUSE": str(wheelhouse)}
            | {"EXECUTOR_FLAVORS": "kili"},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"flavor kili: building {image} FROM {runtime_image}" in done.stdout
        assert "flavor minimal" not in done.stdout  # EXECUTOR_FLAVORS left it out
        labels = docker_client.images.get(image).labels
        packages = labels[PACKAGES_LABEL].split()
        assert "kili==26.2.4" in packages
        assert {"kili", "gql", "requests"} <= set(labels[MODULES_LABEL].split())
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(image, force=True)
