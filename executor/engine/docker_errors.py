"""docker-py and requests errors, turned into the executor's where they enter (the real
engine's client, containers, records and images all meet them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import docker.errors
import requests.exceptions

from executor.engine.base import EngineRefused
from executor.errors import SandboxError

__all__ = ["CONFLICT", "ENGINE_FAILURES", "engine_errors", "registry_refusals"]

CONFLICT = 409
# What docker-py raises when the engine fails or cannot be reached.
ENGINE_FAILURES = (docker.errors.DockerException, requests.exceptions.RequestException)


@contextmanager
def engine_errors(doing: str) -> Iterator[None]:
    """Map Docker Engine failures met while ``doing`` something to ``SandboxError``."""
    try:
        yield
    except ENGINE_FAILURES as exc:
        raise SandboxError(
            f"Docker Engine error while {doing}: {exc}. Check that dockerd is running."
        ) from exc


@contextmanager
def registry_refusals(doing: str) -> Iterator[None]:
    """Like ``engine_errors``, but the engine's refusals become ``EngineRefused``."""
    with engine_errors(doing):
        try:
            yield
        except docker.errors.NotFound as exc:
            cause = str(exc.explanation)
            raise EngineRefused(f"{doing}: {cause}", cause, not_found=True) from exc
        except docker.errors.APIError as exc:
            cause = str(exc.explanation or exc)
            raise EngineRefused(f"{doing}: {cause}", cause, not_found=False) from exc
