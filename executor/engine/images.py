"""The Docker Engine's images: whether one is there and its labels, building, tagging,
pushing, pulling and removing them, and reading a file out of one."""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import docker.errors

from executor.engine.builds import build_image
from executor.engine.docker_errors import engine_errors, registry_refusals
from executor.errors import SandboxError

if TYPE_CHECKING:
    from executor.engine.client import Engine

__all__ = ["Images"]


class Images:
    """The images of one ``Engine`` (``engine.images``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _inspect(self, image: str) -> dict[str, Any] | None:
        """The engine's record of ``image``; None when there is no such image."""
        with engine_errors("inspecting an image"):
            try:
                return dict(self._engine.api.inspect_image(image))  # type: ignore[no-untyped-call]
            except docker.errors.NotFound:  # inside: engine_errors would map it first
                return None

    def exists(self, image: str) -> bool:
        return self._inspect(image) is not None

    def labels(self, image: str) -> dict[str, str] | None:
        """The labels of ``image``; None when there is no such image."""
        info = self._inspect(image)
        return None if info is None else dict(info["Config"].get("Labels") or {})

    def parent(self, image: str) -> str | None:
        """The id of the image the engine built ``image`` on, one step below it (None when
        it recorded none, as for a pulled image, or there is no such image): image ids are
        digests of their layers, so one parent means the same files below the last step."""
        info = self._inspect(image) or {}
        return str(info.get("Parent") or "") or None

    def remove(self, image: str) -> bool:
        """Remove an image by tag or id; True if removed, False if already gone or in use
        by a container (the engine refuses; GC tries again later)."""
        try:
            with engine_errors("removing an image"):
                self._engine.api.remove_image(image)
        except docker.errors.NotFound:
            return False
        except SandboxError:
            return False
        return True

    def build(
        self,
        context: bytes,
        *,
        tag: str,
        on_output: Callable[[str], None],
        timeout_s: float,
        stop: threading.Event,
        **options: Any,
    ) -> str:
        """Build ``context`` as ``tag``; the image id (``builds.build_image`` tells how a
        build is stopped and how it fails)."""
        return build_image(
            self._engine.api,
            context,
            tag=tag,
            on_output=on_output,
            timeout_s=timeout_s,
            stop=stop,
            **options,
        )

    def tag(self, image: str, repository: str, tag: str) -> None:
        with engine_errors("tagging the image for the registry"):
            self._engine.api.tag(image, repository, tag)

    def push(
        self, repository: str, tag: str, auth: dict[str, str] | None
    ) -> Iterator[dict[str, Any]]:
        """Push ``repository:tag``: the engine's progress messages. The engine's refusals
        raise ``EngineRefused``."""
        with registry_refusals(f"pushing {repository}:{tag}"):
            yield from self._engine.api.push(
                repository, tag, stream=True, decode=True, auth_config=auth
            )

    def pull(
        self, repository: str, digest: str, auth: dict[str, str] | None
    ) -> Iterator[dict[str, Any]]:
        """Pull ``repository@digest``: the engine's progress messages. The engine's refusals
        raise ``EngineRefused``."""
        with registry_refusals(f"pulling {repository}@{digest}"):
            yield from self._engine.api.pull(
                repository, tag=digest, stream=True, decode=True, auth_config=auth
            )

    def read_files(
        self,
        image: str,
        paths: Sequence[str],
        labels: dict[str, str],
        max_bytes: int | None = None,
    ) -> dict[str, bytes | None]:
        """The content of each regular file of ``paths`` in ``image`` (None if absent, or
        larger than ``max_bytes``: then it is not read), read from one created, never
        started, container."""
        with engine_errors("reading a file from an image"):
            created = self._engine.api.create_container(image, labels=labels, network_disabled=True)
        container_id = str(created["Id"])
        try:
            return {path: self._read(container_id, path, max_bytes) for path in paths}
        finally:
            self._engine.containers.remove(container_id)

    def _read(self, container_id: str, path: str, max_bytes: int | None) -> bytes | None:
        try:
            with engine_errors("reading a file from an image"):
                stream, stat = self._engine.api.get_archive(container_id, path)
                if max_bytes is not None and int((stat or {}).get("size", 0)) > max_bytes:
                    for _ in stream:  # read to its end, kept nowhere: frees the connection
                        pass
                    return None
                data = b"".join(stream)
        except docker.errors.NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member is not None else None
            return extracted.read() if extracted is not None else None
