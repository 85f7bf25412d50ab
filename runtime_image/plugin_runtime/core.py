"""``PluginCore``: the base class plugin authors subclass (``from plugin_runtime import ...``)."""

from __future__ import annotations

import logging

from plugin_runtime.api import ApiClient
from plugin_runtime.logs import plugin_logger

TYPE_CHECKING = False  # typing is not imported at run time: see loader's docstring
if TYPE_CHECKING:
    from typing import Any

_current_api: ApiClient | None = None


def set_current_api(api: ApiClient | None) -> None:
    """Runtime use: the client that ``PluginCore.__init__`` hands to new instances."""
    global _current_api
    _current_api = api


class PluginCore:
    """Base class of a plugin's ``PluginHandler``, constructor-compatible with Kili's SDK.

    ``PluginCore(kili=None, project_id="", logger=None)`` sets:

    * ``self.kili`` — a ``kili.client.Kili`` when the ``kili`` package is installed in the
      plugin image, else ``None``;
    * ``self.project_id`` — the project the event belongs to;
    * ``self.logger`` — the ``plugin`` logger (level DEBUG); its records are kept with
      level and time;
    * ``self.api`` — an :class:`~plugin_runtime.api.ApiClient` pointed at the platform API
      with the invocation's token (``None`` outside the runtime).

    Implement any of ``on_submit(label, asset_id)``, ``on_review(label, asset_id)``,
    ``on_custom_interface_click(label, asset_id)``, ``on_send_back_to_queue(asset_id)``,
    ``on_event(payload)``. A custom ``__init__`` must call ``super().__init__(kili,
    project_id)``; the runtime sets ``logger``, ``api`` and ``kili`` again afterwards.
    """

    kili: Any
    project_id: str
    logger: logging.Logger
    api: ApiClient | None

    def __init__(
        self, kili: Any = None, project_id: str = "", logger: logging.Logger | None = None
    ) -> None:
        self.kili = kili
        self.project_id = project_id
        self.logger = logger if logger is not None else plugin_logger()
        self.api = _current_api
