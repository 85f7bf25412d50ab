import time

from plugin_runtime import PluginCore

PAUSE_S = 1.5


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        for n in range(1, 5):
            if n == 3:
                self.logger.warning("tick %d of 4 for %s", n, asset_id)
            else:
                self.logger.info("tick %d of 4 for %s", n, asset_id)
            if n == 1 and label.get("hold"):  # until the test releases the platform stand-in
                self.api.get("wait")
            else:
                time.sleep(PAUSE_S)
        print("ticker done")
