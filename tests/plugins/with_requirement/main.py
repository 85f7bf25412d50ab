import six
from plugin_runtime import PluginCore


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        self.logger.info("six %s from %s", six.__version__, six.__file__)
