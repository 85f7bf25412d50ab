from plugin_runtime import PluginCore

from .helpers import shout
from .rules import RULES
from .rules.iban import iban_ok


class PluginHandler(PluginCore):
    def on_review(self, label, asset_id):
        self.logger.info(shout(f"{len(RULES)} rules, iban ok: {iban_ok('FR76')}"))
