"""The build's import check, run as ``python3 -c <this file's source>`` in the plugin image.

This file is executed inside the container, not imported by the executor (like
``container_init.py``). It loads ``main.py`` exactly as the runtime does
(``plugin_runtime.loader``: the ``plugin_code`` package, relative and plain imports) and
exits 0 when ``PluginHandler`` is there, else prints why on stderr and exits 1. It ends with
``os._exit`` so that threads the plugin's modules started cannot keep it alive.
"""

import os
import sys

from plugin_runtime.loader import PluginLoadError, load_handler_class, plugin_root

try:
    handler = load_handler_class(plugin_root())
except PluginLoadError as exc:
    sys.stderr.write(f"{exc}\n")
    sys.stderr.flush()
    os._exit(1)
sys.stdout.write(f"import check: plugin_code.main imported, {handler.__name__} found\n")
sys.stdout.flush()
os._exit(0)
