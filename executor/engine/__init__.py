"""The one interface to the Docker Engine (``client``), and its stand-in in memory
(``fake``, imported by name: it is not part of a running service).

``client`` is the only module of the executor that imports docker-py (an import contract
holds that); ``builds`` runs and stops a build; ``base`` is what both engines share.
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
from executor.engine.client import ENGINE_TIMEOUT_S, Engine, close_attached, engine_errors

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
    "Engine",
    "EngineInfo",
    "EngineRefused",
    "Frames",
    "ImageMissing",
    "StopRecord",
    "close_attached",
    "engine_errors",
]
