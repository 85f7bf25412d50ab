"""Calls the platform once, then ends its own process the way the label says.

``wait`` instead blocks on the platform's ``/wait`` until the test releases it (the test
stops the container from outside meanwhile); ``output`` writes three kinds of output
before ``os._exit(3)``; ``close_fds`` closes fds 1 and 2 and returns.
"""

import os
import signal
import sys
import time

from plugin_runtime import PluginCore


def output_then_exit():
    print("a printed line")
    os.write(1, b"raw line\n")
    sys.stdout.write("a partial line")
    os._exit(3)


def close_fds():
    print("closing fds 1 and 2")
    os.close(1)
    os.close(2)


WAYS = {
    "exit137": lambda: os._exit(137),
    "exit143": lambda: os._exit(143),
    "sigkill_self": lambda: os.kill(os.getpid(), signal.SIGKILL),
    "sigterm_init": lambda: os.kill(1, signal.SIGTERM),
    "output": output_then_exit,
    "close_fds": close_fds,
}


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        way = label["way"]
        if way == "wait":
            print("waiting", flush=True)
            self.api.get("wait")
            return
        if way in {"output", "close_fds"}:
            WAYS[way]()
            return
        self.api.post(f"assets/{asset_id}/issues", json={"text": way})
        WAYS[way]()
        time.sleep(600)  # the init's SIGTERM (forwarded from pid 1) ends the process first
