"""The OCI registry plugin images go through (``EXECUTOR_REGISTRY``): push, pull, delete.

A build pushes its image and records the pushed manifest as ``repo@sha256:...``; runs use
only that reference (a tag can be moved, a digest cannot) and pull it on first use. The
Docker Engine does the pushing and pulling, so it is the engine that must trust the
registry's CA (``/etc/docker/certs.d/<host:port>/ca.crt``); the executor itself calls the
registry's HTTP API only to delete a manifest (retention), trusting
``registry_ca_bundle``. Credentials go to the engine with each call (the X-Registry-Auth
header) and to the registry as HTTP basic auth; they are never logged nor put in messages.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import httpx

from executor.engine import Engine, EngineRefused
from executor.errors import SandboxError
from executor.settings import ImageSettings

__all__ = ["ImageNotInRegistry", "Registry", "RegistryError", "is_digest_reference"]

REGISTRY_TIMEOUT_S = 30.0  # one HTTP API call to the registry
DIGEST_SEPARATOR = "@sha256:"
ACCEPTED = 202
NOT_FOUND = 404
UNAUTHORIZED = 401
METHOD_NOT_ALLOWED = 405
CREDENTIALS_HINT = (
    "the registry refused the credentials: check EXECUTOR_REGISTRY_USER and "
    "EXECUTOR_REGISTRY_PASSWORD"
)
UNTRUSTED_HINT = (
    "the executor does not trust the registry's certificate: set EXECUTOR_REGISTRY_CA_BUNDLE "
    "to the registry's CA (PEM)"
)
# What the engine's message says, and what the operator should do about it.
HINTS = (
    (("unauthorized", "authentication required", "no basic auth credentials"), CREDENTIALS_HINT),
    (
        ("x509", "certificate"),
        "the Docker Engine does not trust the registry's certificate: put its CA in "
        "/etc/docker/certs.d/<host:port>/ca.crt on the engine's host",
    ),
    (
        ("connection refused", "no such host", "timeout", "no route to host"),
        "the registry cannot be reached: check that it runs and that the Docker Engine's "
        "host can reach it",
    ),
)


class RegistryError(SandboxError):
    """The registry refused a push or a pull, or could not be reached."""


class ImageNotInRegistry(RegistryError):
    """The image reference does not exist in the registry: build the version again."""


def is_digest_reference(image: str) -> bool:
    """True for ``repo@sha256:...`` (what a pushed version runs), False for a tag."""
    return DIGEST_SEPARATOR in image


def _hint(message: str) -> str:
    lowered = message.lower()
    for needles, hint in HINTS:
        if any(needle in lowered for needle in needles):
            return hint
    return "check the registry's own log"


def _not_in_registry(doing: str, where: str, cause: str) -> ImageNotInRegistry:
    return ImageNotInRegistry(
        f"{doing}: the registry {where} has no such image ({cause}): the version's image is "
        "gone from the registry; upload the version again"
    )


@contextmanager
def _mapped(doing: str, where: str) -> Iterator[None]:
    """Turn the engine's refusals while ``doing`` something with the registry ``where``
    into ``RegistryError`` (or ``ImageNotInRegistry``) naming the registry and the cause."""
    try:
        yield
    except EngineRefused as exc:
        if exc.not_found:
            raise _not_in_registry(doing, where, exc.cause) from exc
        raise RegistryError(f"{doing} at {where} failed: {exc.cause}; {_hint(exc.cause)}") from exc
    except RegistryError:
        raise
    except SandboxError as exc:
        raise RegistryError(f"{doing} at {where} failed: {exc.message}") from exc


def _follow(stream: Iterable[dict[str, Any]], doing: str, where: str) -> str | None:
    """Read a push or pull progress stream to its end; the digest it reported, if any.
    An error in the stream (the engine reports most there) raises ``RegistryError``."""
    digest: str | None = None
    for chunk in stream:
        if "error" in chunk:
            cause = str(chunk["error"]).strip()
            if "manifest unknown" in cause.lower() or "not found" in cause.lower():
                raise _not_in_registry(doing, where, cause)
            raise RegistryError(f"{doing} at {where} failed: {cause}; {_hint(cause)}")
        aux = chunk.get("aux")
        if isinstance(aux, dict) and "Digest" in aux:
            digest = str(aux["Digest"])
    return digest


class Registry:
    """The configured registry: ``address`` is ``host:port[/prefix]``."""

    # One pull at a time per engine and reference in this process: the pre-puller and
    # the first runs of a version miss the image together, and each would pull it again.
    _pulls: ClassVar[dict[tuple[str, str], threading.Lock]] = {}
    _pulls_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, images: ImageSettings) -> None:
        if images.registry is None:
            raise ValueError("Registry needs EXECUTOR_REGISTRY")
        self.address = images.registry.rstrip("/")
        self.host = self.address.partition("/")[0]
        password = images.registry_password
        self._credentials = (
            (images.registry_user, password.get_secret_value())
            if images.registry_user is not None and password is not None
            else None
        )
        ca = images.registry_ca_bundle
        self._verify = ssl.create_default_context(cafile=str(ca) if ca else None)

    @classmethod
    def configured(cls, images: ImageSettings) -> Registry | None:
        """The registry when ``EXECUTOR_REGISTRY`` is set, else None (images stay local)."""
        return cls(images) if images.registry else None

    @property
    def _auth(self) -> dict[str, str] | None:
        if self._credentials is None:
            return None
        user, password = self._credentials
        return {"username": user, "password": password, "serveraddress": self.host}

    def push(self, engine: Engine, image_id: str, tag: str) -> str:
        """Push the built image ``image_id`` (local ``tag``) to the registry; the pushed
        manifest as ``repo@sha256:...``."""
        name, _, version_tag = tag.rpartition(":")
        repository = f"{self.address}/{name}"
        engine.images.tag(image_id, repository, version_tag)
        doing = f"pushing {repository}:{version_tag}"
        with _mapped(doing, self.host):
            digest = _follow(
                engine.images.push(repository, version_tag, self._auth), doing, self.host
            )
        if digest is None:
            raise RegistryError(f"{doing} at {self.host}: the engine reported no digest")
        return f"{repository}@{digest}"

    def pull(self, engine: Engine, reference: str) -> None:
        """Pull ``repo@sha256:...`` onto the engine. ``ImageNotInRegistry`` when the
        registry has no such manifest; ``RegistryError`` when it refuses or is down."""
        repository, _, digest = reference.partition("@")
        doing = f"pulling {reference}"
        with self._pulling(engine, reference), _mapped(doing, self.host):
            if engine.images.exists(reference):  # a pull that held the gate brought it
                return
            _follow(engine.images.pull(repository, digest, self._auth), doing, self.host)

    @classmethod
    def _pulling(cls, engine: Engine, reference: str) -> threading.Lock:
        with cls._pulls_lock:
            return cls._pulls.setdefault((engine.address, reference), threading.Lock())

    def delete(self, reference: str) -> None:
        """Delete the manifest ``repo@sha256:...`` from the registry (gone already is fine).
        Its blobs stay until the registry's garbage collection runs."""
        repository, _, digest = reference.partition("@")
        name = repository.removeprefix(self.host + "/")
        url = f"https://{self.host}/v2/{name}/manifests/{digest}"
        try:
            response = httpx.delete(
                url, auth=self._credentials, verify=self._verify, timeout=REGISTRY_TIMEOUT_S
            )
        except httpx.HTTPError as exc:
            # This call is the executor's own: its trust is EXECUTOR_REGISTRY_CA_BUNDLE.
            hint = UNTRUSTED_HINT if "CERTIFICATE_VERIFY_FAILED" in str(exc) else _hint(str(exc))
            raise RegistryError(
                f"deleting {reference} from the registry {self.host} failed: {exc}; {hint}"
            ) from exc
        if response.status_code in (ACCEPTED, NOT_FOUND):
            return
        raise RegistryError(
            f"deleting {reference} from the registry {self.host} failed: HTTP "
            f"{response.status_code}; {self._delete_hint(response.status_code)}"
        )

    @staticmethod
    def _delete_hint(status: int) -> str:
        if status == UNAUTHORIZED:
            return CREDENTIALS_HINT
        if status == METHOD_NOT_ALLOWED:
            return "the registry does not allow deletes: set storage.delete.enabled: true"
        return "check the registry's own log"
