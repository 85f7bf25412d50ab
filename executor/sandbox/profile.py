"""The sandbox profile as the engine's host config: limits, the one mount, pid 1, the capped
copy of the output. What the engine is asked to do with it is ``executor.run.sandbox``.

Pid 1 is the executor's own init (``executor/sandbox/container_init.py``, passed as
``python3 -I -S -c``) rather than Docker's: it makes itself non-dumpable so the plugin, which runs
as the same uid, cannot ptrace it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from executor.gateway.server import CONTAINER_SOCKET_DIR
from executor.settings import SandboxProfile

__all__ = [
    "GATEWAY_MOUNT",
    "INIT_COMMAND",
    "container_config",
    "engine_log_config",
    "engine_log_file_bytes",
]

MIB = 1024 * 1024
# Files of the engine's copy of a container's output: the newest and one rotated, so the
# first file survives one rotation.
ENGINE_LOG_FILES = 2

# Where the gateway socket folder appears inside every plugin container.
GATEWAY_MOUNT = CONTAINER_SOCKET_DIR  # the folder the runner tells plugins to use


# pid 1 of every plugin container (see the module docstring); it starts the runtime. Its
# module docstring is left out: the command line shows in every inspect and `docker ps`.
# Isolated (-I: no PYTHON* variable, no user site) and without `site` (-S): it needs the
# standard library only, and it starts before every run's runtime.
_INIT_SOURCE = (Path(__file__).parent / "container_init.py").read_text().split('"""', 2)[2]
INIT_COMMAND = ["python3", "-I", "-S", "-c", _INIT_SOURCE.strip()]


def container_config(profile: SandboxProfile, gateway_dir: Path | None = None) -> dict[str, Any]:
    """The host config of the sandbox profile (docs/architecture.md), as docker-py
    ``create_host_config`` args.

    Seccomp is deliberately not named: under runc Docker then applies its default profile;
    under runsc the plugin's syscalls go to gVisor's Sentry, itself held by gVisor's filter.

    ``gateway_dir``, the folder of the gateway socket, is the one host mount: read-only at
    ``/run/executor``.
    """
    memory = profile.memory_mib * MIB
    binds = {str(gateway_dir): {"bind": GATEWAY_MOUNT, "mode": "ro"}} if gateway_dir else {}
    return {
        "binds": binds,
        "mem_limit": memory,
        "memswap_limit": memory,  # equal to the memory limit: no swap
        "nano_cpus": int(profile.cpus * 1e9),
        "pids_limit": profile.pids,
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,noexec,nosuid,nodev,size={profile.tmpfs_mib}m,mode=1777"},
        # The engine's own /dev/shm tmpfs (noexec, nosuid, nodev); its pages are charged to
        # the container's memory cgroup, so a full /dev/shm holds that much of memory_mib.
        "shm_size": profile.shm_mib * MIB,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "init": False,  # pid 1 is INIT_COMMAND, see the module docstring
        "privileged": False,
        "network_mode": "none",
        "ulimits": [{"Name": "nofile", "Soft": profile.nofile, "Hard": profile.nofile}],
        # The executor reads output over attach; the engine's capped copy is read back only
        # by an executor adopting the run after a restart (Sandbox.watch).
        "log_config": engine_log_config(profile),
        "runtime": profile.oci_runtime,
    }


def engine_log_file_bytes(profile: SandboxProfile) -> int:
    """Size at which the engine's copy of a container's output starts a new file."""
    return profile.engine_log_max_bytes // ENGINE_LOG_FILES


def engine_log_config(profile: SandboxProfile) -> dict[str, Any]:
    """The engine keeps a container's output in its data root (no host path the plugin
    names), in at most two files of half ``engine_log_max_bytes``, dropped with the container.

    The ``local`` driver stores the bytes as written (``json-file`` would replace invalid
    UTF-8); it keeps a line of up to 16 KiB (the runtime's protocol limit) as one message.
    A longer line can only be raw output past the runtime (fd 2): Docker 20.10 gives it back
    without its line break, so a replay that skips past such a line starts a byte late.
    """
    size = str(engine_log_file_bytes(profile))
    return {
        "Type": "local",
        "Config": {"max-size": size, "max-file": str(ENGINE_LOG_FILES), "compress": "false"},
    }
