"""Builds ``self.kili`` (a real ``kili.client.Kili``) when the kili SDK is installed."""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from collections.abc import Callable

TYPE_CHECKING = False  # typing is not imported at run time: see loader's docstring
if TYPE_CHECKING:
    from typing import Any


def kili_endpoint(api_url: str) -> str:
    """The GraphQL endpoint the SDK expects: ``<api.url>/graphql`` (kept if already there)."""
    base = api_url.rstrip("/")
    return base if base.endswith("/graphql") else f"{base}/graphql"


class LazyKili:
    """Stands for the Kili client until a plugin first uses it, then builds it.

    Importing the SDK takes about a second (more on a loaded host): a plugin that never
    touches ``self.kili`` must not spend that inside its wall time. Attribute access goes to
    the real client, so ``self.kili.create_issues(...)`` works unchanged.
    """

    def __init__(self, build: Callable[[], Any | None]) -> None:
        self._build = build
        self._client: Any | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probe dunders: not the SDK's
            raise AttributeError(name)
        if self._client is None:
            self._client = self._build()
            if self._client is None:
                raise RuntimeError(
                    "self.kili: the Kili client could not be built (see the warning logged "
                    "just before)"
                )
        return getattr(self._client, name)

    def __repr__(self) -> str:
        state = "built" if self._client is not None else "not built yet"
        return f"<Kili client, {state}>"


def build_kili(api_url: str, token: str, warn: Callable[[str], None]) -> Any | None:
    """``Kili(api_key=token, api_endpoint=kili_endpoint(api_url))``, or ``None``.

    ``None`` silently when the ``kili`` package is not installed. When the plugin imported
    the SDK already (``from kili.plugins import PluginCore``) the client is built now;
    otherwise a :class:`LazyKili` builds it on first use. Building sets
    ``KILI_SDK_SKIP_CHECKS=1`` (no key validation round trip), ``KILI_API_KEY`` and
    ``KILI_API_ENDPOINT`` in ``os.environ`` first — the only place the token goes into the
    environment. If building fails, ``warn`` gets a message (token redacted).
    """
    if importlib.util.find_spec("kili") is None:
        return None

    def build() -> Any | None:
        return _build(kili_endpoint(api_url), token, warn)

    return build() if "kili.client" in sys.modules else LazyKili(build)


def _build(endpoint: str, token: str, warn: Callable[[str], None]) -> Any | None:
    os.environ["KILI_SDK_SKIP_CHECKS"] = "1"
    os.environ["KILI_API_KEY"] = token
    os.environ["KILI_API_ENDPOINT"] = endpoint
    try:
        # kili comes with the plugin's flavor (or its own requirements), in its image only.
        from kili.client import Kili  # type: ignore[import-not-found,unused-ignore]

        return Kili(api_key=token, api_endpoint=endpoint)
    except Exception:
        text = traceback.format_exc().replace(token, "***")
        warn(f"the kili package is installed but kili.client.Kili could not be built:\n{text}")
        return None
