from plugin_runtime import PluginCore


def divide(a, b):
    return a / b


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        self.logger.info("about to fail")
        divide(1, 0)
