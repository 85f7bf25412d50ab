"""Uses ``self.kili`` without importing the Kili SDK itself: the client is built on first use."""

import sys

from plugin_runtime import PluginCore


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        self.logger.info("SDK imported before first use: %s", "kili.client" in sys.modules)
        issues = self.kili.create_issues(
            project_id=self.project_id, label_id_array=[label["id"]], text_array=["lazy"]
        )
        self.logger.info("issues %s", issues)
