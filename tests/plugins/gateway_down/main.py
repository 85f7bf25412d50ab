"""Calls a platform that is down and lets the error end the run."""

from plugin_runtime import PluginCore


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        self.api.get(f"assets/{asset_id}")
