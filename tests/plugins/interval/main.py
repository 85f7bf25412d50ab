import time

from plugin_runtime import PluginCore


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        self.logger.info("start %s", asset_id)
        if label.get("hold"):  # until the test releases the platform stand-in's /wait
            self.api.get("wait")
        else:
            time.sleep(float(label.get("sleep", 1)))
        self.logger.info("end %s", asset_id)
