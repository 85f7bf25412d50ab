import os
import time

from plugin_runtime import PluginCore


class PluginHandler(PluginCore):
    """Writes numbered lines through the logger, print() and raw fd 2, one round per pause;
    with ``hold`` in the label, only once the platform's ``/wait`` answered (the test released
    it)."""

    def on_submit(self, label, asset_id):
        self.logger.info("start %s", asset_id)
        if label.get("hold"):
            self.api.get("wait")
        for n in range(int(label.get("rounds", 10))):
            time.sleep(float(label.get("pause", 0.2)))
            self.logger.info("%s logger %d", asset_id, n)
            print(f"{asset_id} print {n}")
            os.write(2, f"{asset_id} raw {n}\n".encode())
        self.logger.info("end %s", asset_id)
