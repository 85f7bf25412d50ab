"""A plugin: the executor calls PluginHandler's methods on the platform's events.

self.logger records are kept with the run (plugin-executor logs NAME); self.kili is a
kili.client.Kili when `kili` is in requirements.txt; self.api calls the platform API.
"""

from typing import Any

from plugin_runtime import PluginCore


class PluginHandler(PluginCore):
    def on_submit(self, label: dict[str, Any], asset_id: str) -> None:
        self.logger.info("label %s submitted on asset %s", label.get("id"), asset_id)

    def on_review(self, label: dict[str, Any], asset_id: str) -> None:
        self.logger.info("label %s reviewed on asset %s", label.get("id"), asset_id)
