"""A Kili SDK plugin: adds an issue to the label and sends the asset back to the queue."""

from kili.plugins import PluginCore


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        issues = self.kili.create_issues(
            project_id=self.project_id,
            label_id_array=[label["id"]],
            text_array=["IBAN must start with FR"],
        )
        outcome = self.kili.send_back_to_queue(asset_ids=[asset_id])
        self.logger.info("issues %s; sent back %s", issues, outcome["succeeded"])
