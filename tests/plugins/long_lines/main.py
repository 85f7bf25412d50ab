import os
import sys

from plugin_runtime import PluginCore


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        print("X" * 70000)
        print("漢" * 25000)
        self.logger.warning("Y" * 70000)
        print("\udcff")
        sys.stdout.write("a\ud800b\n")
        # Straight to fd 2, past the runtime: raw text, cut by the executor.
        os.write(2, ("字" * 25000 + "\n").encode())
