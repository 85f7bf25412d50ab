"""Hands its token to the platform stand-in, then holds the run open until released."""

from plugin_runtime import PluginCore


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        token = self.api._ApiClient__token
        self.api.post("leak", json={"leaked_token": token, "project": self.project_id})
        self.logger.info("released: %s", self.api.get("wait")["released"])
