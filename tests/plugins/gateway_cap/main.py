"""Makes more platform calls than one run may."""

import json

from plugin_runtime import ApiError, PluginCore


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        statuses = []
        for i in range(8):
            try:
                self.api.get(f"assets/{i}")
                statuses.append(200)
            except ApiError as exc:
                statuses.append(exc.status)
        print(json.dumps(statuses))
