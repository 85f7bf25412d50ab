"""``python3 -m plugin_runtime``: run one invocation (envelope on stdin, protocol on stdout).

``main()`` has flushed and closed the output when it returns; the process then ends at
once with ``os._exit``, without joining the plugin's threads or running its ``atexit``
hooks: nothing the plugin started runs on after its handler (plugin_runtime.runner).
"""

import os

from plugin_runtime.runner import main

os._exit(main())
