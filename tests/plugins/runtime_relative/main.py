"""Runtime test fixture: relative imports of a sibling module and of a sub-package."""

from plugin_runtime import PluginCore

from .helpers import shout
from .sub.tool import describe


class PluginHandler(PluginCore):
    """Prints what the imported helpers return."""

    def on_submit(self, label: dict, asset_id: str) -> None:
        print(shout(asset_id))
        print(describe(label))
