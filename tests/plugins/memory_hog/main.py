from plugin_runtime import PluginCore


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        self.logger.info("allocating")
        hoard = []
        while True:
            hoard.append(bytearray(16 * 1024 * 1024))
