"""``python3 -m plugin_runtime``: run one invocation (envelope on stdin, protocol on stdout)."""

from plugin_runtime.runner import main

raise SystemExit(main())
