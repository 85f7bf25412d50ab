"""Handlers inherited from the plugin's own modules: on_submit comes from a mixin imported
by its plain name (two levels up), on_send_back_to_queue from a class imported relatively
under an alias; on_review is the class's own."""

from mixins import SubmitMixin
from plugin_runtime import PluginCore

from .review import ReviewBase as Base


class PluginHandler(SubmitMixin, Base, PluginCore):
    def on_review(self, label, asset_id):
        self.logger.info("own on_review for %s", asset_id)
