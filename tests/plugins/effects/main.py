"""Acts on the platform twice, then works a while: one call where the platform ignores
Idempotency-Key (tests/platform_standin.py: under ``unkeyed/``), one where it honours it.
"start" is logged once both calls were answered. Its work: ``sleep`` seconds, or with
``hold`` in the label a wait on the platform's ``/wait`` (until the test releases it). With
``late`` in the label it calls once more after its work (``late <asset>`` logged just
before), and logs what was answered."""

import time

from plugin_runtime import ApiError, PluginCore


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        self.api.post(f"unkeyed/assets/{asset_id}/effects", json={"asset": asset_id})
        self.api.post(f"assets/{asset_id}/effects", json={"asset": asset_id})
        self.logger.info("start %s", asset_id)
        if label.get("hold"):
            self.api.get("wait")
        else:
            time.sleep(float(label.get("sleep", 1)))
        if label.get("late"):
            self.logger.info("late %s", asset_id)
            try:
                self.api.post(f"assets/{asset_id}/late", json={"asset": asset_id})
            except ApiError as error:
                self.logger.info("late %s refused: %s %s", asset_id, error.status, error.body)
                raise
        self.logger.info("end %s", asset_id)
