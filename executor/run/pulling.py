"""A container of a pushed image, pulled by digest on its first use on this engine: what
an attempt's cold start and the warm pool's fill share."""

from __future__ import annotations

from functools import partial

from executor.engine import ImageMissing
from executor.registry import Registry, is_digest_reference
from executor.run.containers import StartedContainer
from executor.run.sandbox import Sandbox
from executor.settings import SandboxProfile

__all__ = ["start_pulling"]


def start_pulling(
    sandbox: Sandbox,
    registry: Registry | None,
    image: str,
    profile: SandboxProfile,
    *,
    invocation_id: str = "",
    generation: int = 0,
    pool: str = "",
) -> StartedContainer:
    """``sandbox.start`` (labelled with its invocation and generation, or its pool); when
    the engine lacks a pushed image (``repo@sha256:...``, with a registry), pull it once and
    start again. Else ``ImageMissing`` as the engine said."""
    start = partial(
        sandbox.start, image, profile, invocation_id=invocation_id, generation=generation, pool=pool
    )
    try:
        return start()
    except ImageMissing:
        if registry is None or not is_digest_reference(image):
            raise
        registry.pull(sandbox.engine, image)
    return start()
