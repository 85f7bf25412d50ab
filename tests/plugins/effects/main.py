"""Acts on the platform twice, then works a while: one call where the platform ignores
Idempotency-Key (tests/platform_standin.py: under ``unkeyed/``), one where it honours it.
"start" is logged once both calls were answered."""

import time

from plugin_runtime import PluginCore


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        self.api.post(f"unkeyed/assets/{asset_id}/effects", json={"asset": asset_id})
        self.api.post(f"assets/{asset_id}/effects", json={"asset": asset_id})
        self.logger.info("start %s", asset_id)
        time.sleep(float(label.get("sleep", 1)))
        self.logger.info("end %s", asset_id)
