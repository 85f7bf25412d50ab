"""Sample events, one per event type a handler takes: what the console's Test panel starts
from (the same files ``plugin-executor sample-event`` and ``init`` write)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter

from executor.api.deps import PluginsRead

router = APIRouter(prefix="/v1/samples", tags=["samples"])

_SUFFIX = ".json"


@cache
def _samples() -> dict[str, dict[str, Any]]:
    folder = resources.files("executor.samples")
    return {
        entry.name.removesuffix(_SUFFIX): json.loads(entry.read_text())
        for entry in folder.iterdir()
        if entry.name.endswith(_SUFFIX)
    }


@router.get("/events", response_model=dict[str, dict[str, Any]])
def sample_events(_caller: PluginsRead) -> dict[str, dict[str, Any]]:
    """Event type -> a sample event of that type (its ``project_id`` a placeholder)."""
    return _samples()
