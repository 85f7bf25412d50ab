"""Registers gVisor's runsc as the dockerd runtime "runsc" in /etc/docker/daemon.json.

Usage: register-runsc.py RUNSC_PATH [DAEMON_JSON]. Keeps every other key of an existing
daemon.json. Exit status 0 when the file changed (dockerd must reload it), 1 when it already
held this registration, 2 on error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RUNTIME = "runsc"
# --network=none: runsc cannot set up networking in this VM; --host-uds=open: the gateway's
# bind-mounted Unix socket must be reachable. Not --oci-seccomp: with Debian's runsc
# (2022-12-19) Docker's default profile inside the sandbox makes thread creation fail
# (clone3); gVisor's own seccomp filter on its Sentry is the host-facing boundary there.
RUNTIME_ARGS = ["--network=none", "--host-uds=open"]


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[2] if len(argv) == 3 else "/etc/docker/daemon.json")
    config = json.loads(path.read_text() or "{}") if path.exists() else {}
    wanted = {"path": argv[1], "runtimeArgs": RUNTIME_ARGS}
    runtimes = config.setdefault("runtimes", {})
    if runtimes.get(RUNTIME) == wanted:
        return 1
    runtimes[RUNTIME] = wanted
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    tmp.replace(path)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (OSError, ValueError) as exc:
        print(f"register-runsc: {exc}: fix /etc/docker/daemon.json and run again", file=sys.stderr)
        sys.exit(2)
