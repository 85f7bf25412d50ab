"""The one interface to the Docker Engine (``client``), and its stand-in in memory
(``fake``, imported by name: it is not part of a running service).

``client.Engine`` is the connection to one engine; its parts are ``containers`` (create,
start, wait, kill, remove), ``records`` (the engine's copy of a container's output, its
events) and ``images`` (``builds`` runs a build for it). ``docker_errors`` turns docker-py's
errors into the executor's; ``base`` is what the real and the fake engine share. Only these
real engine modules import docker-py (an import contract holds that).
"""

from executor.engine.base import (
    INVOCATION_LABEL,
    LEASE_LABEL,
    MANAGED_LABEL,
    NODE_LABEL,
    POOL_LABEL,
    Attachment,
    EngineInfo,
    EngineRefused,
    Frames,
    ImageMissing,
    StopRecord,
)
from executor.engine.builds import BuildInterrupted, BuildTimedOut
from executor.engine.client import ENGINE_TIMEOUT_S, Engine
from executor.engine.containers import Containers, close_attached
from executor.engine.docker_errors import engine_errors
from executor.engine.images import Images
from executor.engine.records import Records

__all__ = [
    "ENGINE_TIMEOUT_S",
    "INVOCATION_LABEL",
    "LEASE_LABEL",
    "MANAGED_LABEL",
    "NODE_LABEL",
    "POOL_LABEL",
    "Attachment",
    "BuildInterrupted",
    "BuildTimedOut",
    "Containers",
    "Engine",
    "EngineInfo",
    "EngineRefused",
    "Frames",
    "ImageMissing",
    "Images",
    "Records",
    "StopRecord",
    "close_attached",
    "engine_errors",
]
