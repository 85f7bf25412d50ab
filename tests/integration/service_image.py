"""The executor's service image (deploy/Dockerfile), built from this checkout once per test
session for every test that runs it.

Its tag names the checkout's content (the build context and the Dockerfile): the first
test that needs it builds it under a file lock, the others (on other xdist workers too)
wait for that build and use its image. The session's main process removes it when the run
ends, with the other images the run left (tests/conftest.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import docker

from tests.conftest import REPO, SERVICE_IMAGES

__all__ = ["checkout_tag", "service_image"]

# What deploy/build-service-image.sh puts in the build context, and the Dockerfile.
CONTEXT = (
    "pyproject.toml",
    "README.md",
    "executor",
    "examples/__init__.py",
    "examples/labeling_platform",
    "deploy/Dockerfile",
)


def checkout_tag() -> str:
    """``plugin-executor-test:<digest of the image's inputs in this checkout>``."""
    digest = hashlib.sha256()
    for path in sorted(_context_files()):
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return f"{SERVICE_IMAGES}:{digest.hexdigest()[:16]}"


def _context_files() -> list[Path]:
    files = []
    for name in CONTEXT:
        root = REPO / name
        found = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        files += [p for p in found if "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return files


def service_image(docker_client: docker.DockerClient, base: str) -> str:
    """The tag of this checkout's service image, built FROM ``base`` if no test built it
    yet."""
    tag = checkout_tag()
    lock_path = Path(tempfile.gettempdir()) / f"{tag.replace(':', '-')}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        try:
            docker_client.images.get(tag)
        except docker.errors.ImageNotFound:
            script = REPO / "deploy" / "build-service-image.sh"
            env = {**os.environ, "EXECUTOR_RUNTIME_BASE": base}
            subprocess.run(["bash", str(script), tag], env=env, check=True)
    return tag
