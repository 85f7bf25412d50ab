"""Builds ``self.kili`` (a real ``kili.client.Kili``) when the kili SDK is installed."""

from __future__ import annotations

import importlib.util
import os
import traceback
from collections.abc import Callable
from typing import Any


def kili_endpoint(api_url: str) -> str:
    """The GraphQL endpoint the SDK expects: ``<api.url>/graphql`` (kept if already there)."""
    base = api_url.rstrip("/")
    return base if base.endswith("/graphql") else f"{base}/graphql"


def build_kili(api_url: str, token: str, warn: Callable[[str], None]) -> Any | None:
    """Return ``Kili(api_key=token, api_endpoint=kili_endpoint(api_url))`` or ``None``.

    ``None`` silently when the ``kili`` package is not installed. Otherwise sets
    ``KILI_SDK_SKIP_CHECKS=1`` (no key validation round trip), ``KILI_API_KEY`` and
    ``KILI_API_ENDPOINT`` in ``os.environ`` first — the only place the token goes into the
    environment. If building fails, ``warn`` gets a message (token redacted) and the result
    is ``None``.
    """
    if importlib.util.find_spec("kili") is None:
        return None
    endpoint = kili_endpoint(api_url)
    os.environ["KILI_SDK_SKIP_CHECKS"] = "1"
    os.environ["KILI_API_KEY"] = token
    os.environ["KILI_API_ENDPOINT"] = endpoint
    try:
        # kili is installed by the plugin's own requirements, in its image only.
        from kili.client import Kili  # type: ignore[import-not-found]

        return Kili(api_key=token, api_endpoint=endpoint)
    except Exception:
        text = traceback.format_exc().replace(token, "***")
        warn(f"the kili package is installed but kili.client.Kili could not be built:\n{text}")
        return None
