"""File-system attacks: fill /tmp and /dev/shm, write to the read-only root and the plugin's
own code, execute from /tmp, leave a file for the next run; and what /proc/self/mountinfo
shows (docs/security.md lists it)."""

from __future__ import annotations

import json

import pytest

from tests.security.attacks import SHM_MIB, Attacker

MIB = 1024 * 1024
TMPFS_MIB = 8


def test_fill_tmp(attacker: Attacker) -> None:
    """Attack: disk fill of /tmp. Writing stops with ENOSPC at the tmpfs cap."""
    result = attacker.run(
        "fill-tmp",
        """
        def attack(plugin, label, emit):
            written = 0
            chunk = b"\\0" * MIB
            try:
                with open("/tmp/fill", "wb") as out:
                    while True:
                        written += out.write(chunk)
                        out.flush()
            except OSError as exc:
                emit("error", errno.errorcode[exc.errno])
            emit("written", written)
        """,
        limits={"tmpfs_mib": TMPFS_MIB},
    )
    assert result.run["status"] == "succeeded", result.text
    assert result.report["error"] == "ENOSPC"
    assert (TMPFS_MIB - 2) * MIB <= result.report["written"] <= TMPFS_MIB * MIB


FILL_SHM = """
    def attack(plugin, label, emit):
        stats = os.statvfs("/dev/shm")
        emit("size", stats.f_blocks * stats.f_frsize)
        with open("/proc/self/mounts") as mounts:
            shm = [line.split() for line in mounts if line.split()[1] == "/dev/shm"]
        emit("options", shm[-1][3].split(","))
        written = 0
        chunk = b"\\1" * MIB
        try:
            with open("/dev/shm/fill", "wb") as out:
                while True:
                    written += out.write(chunk)
                    out.flush()
                    if written % (8 * MIB) == 0:
                        emit("written_mib", written // MIB)
        except OSError as exc:
            emit("error", errno.errorcode[exc.errno])
        emit("written", written)
"""


def test_fill_dev_shm(attacker: Attacker) -> None:
    """Attack: fill /dev/shm. It is a tmpfs of the configured size (EXECUTOR_SANDBOX_SHM_MIB,
    here 96 MiB, as statvfs shows inside), noexec; writing stops with ENOSPC at that size."""
    result = attacker.run("fill-shm", FILL_SHM)
    assert result.run["status"] == "succeeded", result.text
    assert result.report["size"] == SHM_MIB * MIB
    assert {"rw", "noexec"} <= set(result.report["options"])
    assert result.report["error"] == "ENOSPC"
    assert (SHM_MIB - 2) * MIB <= result.report["written"] <= SHM_MIB * MIB


def test_dev_shm_counts_against_the_memory_limit(attacker: Attacker) -> None:
    """Attack: fill /dev/shm past the memory limit (64 MiB plugin limit, 96 MiB /dev/shm).
    tmpfs pages are charged to the container's memory cgroup and, with no swap, cannot be
    reclaimed: the OOM killer ends the run before /dev/shm is full."""
    result = attacker.run("shm-bomb", FILL_SHM, limits={"memory_mib": 64})
    assert result.run["status"] == "oom_killed", result.text
    assert result.run["error"] == "memory limit of 64 MiB exceeded"
    assert "error" not in result.report  # never reached ENOSPC
    assert result.report["written_mib"] <= 64


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # World-writable on the image's root file system: only the read-only mount refuses.
        ("/var/tmp/evil", ("EROFS",)),
        # Root-owned: the kernel may answer the permission check (EACCES) before EROFS.
        ("/evil", ("EROFS", "EACCES")),
        ("/usr/evil", ("EROFS", "EACCES")),
        ("/etc/passwd", ("EROFS", "EACCES")),
        ("/opt/plugin/plugin_code/main.py", ("EROFS", "EACCES")),
    ],
)
def test_write_outside_tmp(attacker: Attacker, path: str, expected: tuple[str, ...]) -> None:
    """Attack: write to /var/tmp, /, /usr, /etc and the plugin's own code. Each is refused
    (EROFS: the root file system is read-only; EACCES where permissions answer first), and
    the root file system is mounted read-only."""
    result = attacker.run(
        "write-root",
        """
        def attack(plugin, label, emit):
            try:
                with open(label["path"], "a") as out:
                    out.write("owned")
                emit("error", None)
            except OSError as exc:
                emit("error", errno.errorcode[exc.errno])
            with open("/proc/self/mounts") as mounts:
                root = [line.split() for line in mounts if line.split()[1] == "/"]
            emit("root_options", root[-1][3].split(","))
        """,
        label={"path": path},
    )
    assert result.run["status"] == "succeeded", result.text
    assert result.report["error"] in expected
    assert "ro" in result.report["root_options"]


def test_exec_from_tmp(attacker: Attacker) -> None:
    """Attack: drop an executable in /tmp and run it. /tmp is noexec: EACCES."""
    result = attacker.run(
        "exec-tmp",
        """
        def attack(plugin, label, emit):
            with open("/tmp/payload", "w") as out:
                out.write("#!/bin/sh\\necho pwned\\n")
            os.chmod("/tmp/payload", 0o755)
            try:
                os.execv("/tmp/payload", ["/tmp/payload"])
            except OSError as exc:
                emit("error", errno.errorcode[exc.errno])
        """,
    )
    assert result.run["status"] == "succeeded", result.text
    assert result.report["error"] == "EACCES"


def test_file_does_not_survive_to_next_run(attacker: Attacker) -> None:
    """Attack: leave a file in /tmp for the next run of the same plugin. It is not there."""
    body = """
        def attack(plugin, label, emit):
            emit("found", os.path.exists("/tmp/left-behind"))
            with open("/tmp/left-behind", "w") as out:
                out.write("state")
            emit("wrote", True)
        """
    first = attacker.run("persist", body)
    second = attacker.run("persist", body)
    assert first.run["status"] == second.run["status"] == "succeeded"
    assert first.report == {"found": False, "wrote": True}
    assert second.report == {"found": False, "wrote": True}


MOUNTS = """
    def attack(plugin, label, emit):
        mounts = []
        with open("/proc/self/mountinfo") as info:
            for line in info:
                fields, _, fs = line.rstrip("\\n").partition(" - ")
                fields, fs = fields.split(), fs.split()
                mounts.append(
                    {"root": fields[3], "point": fields[4], "options": fields[5].split(","),
                     "fs": fs[0], "super": fs[2]}
                )
        writable = []
        for point in sorted({m["point"] for m in mounts if os.path.isdir(m["point"])}):
            try:
                with open(os.path.join(point, ".probe"), "w"):
                    writable.append(point)
            except OSError:
                pass
        emit("mounts", mounts)
        emit("writable", writable)
"""
# File systems that are not the kernel's own pseudo or memory file systems: host storage.
VIRTUAL_FS = {"overlay", "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2"}


def test_mounts_seen_inside(attacker: Attacker) -> None:
    """What /proc/self/mountinfo shows (docs/security.md, profile table). The plugin can
    create files in /tmp and /dev/shm only (runc: also POSIX message queues in /dev/mqueue);
    the host storage it sees is read-only: the gateway socket folder and /etc/hostname (runsc:
    also the root, over 9p). Under runc the entries name host paths (overlay layers under
    Docker's root folder, the gateway folder under the executor's data folder); gVisor's do
    not."""
    result = attacker.run("mounts", MOUNTS)
    assert result.run["status"] == "succeeded", result.text
    mounts = {m["point"]: m for m in result.report["mounts"]}
    host_backed = {point for point, m in mounts.items() if m["fs"] not in VIRTUAL_FS}
    gateway_dir = str(attacker.server.settings.resolved_gateway_socket_dir)
    docker_root = attacker.server.docker_client.info()["DockerRootDir"] + "/"
    text = json.dumps(result.report["mounts"])
    if attacker.runtime == "runc":
        assert result.report["writable"] == ["/dev/mqueue", "/dev/shm", "/tmp"]
        assert host_backed == {"/run/executor", "/etc/hostname"}
        assert {"nosuid", "nodev", "noexec"} <= set(mounts["/dev/shm"]["options"])
        assert mounts["/run/executor"]["root"] == gateway_dir
        assert docker_root in text
    else:
        assert result.report["writable"] == ["/dev/shm", "/tmp"]
        assert host_backed == {"/", "/run/executor", "/etc/hostname"}
        assert gateway_dir not in text and docker_root not in text
    assert all("ro" in mounts[point]["options"] for point in host_backed | {"/"})
    assert "noexec" in mounts["/dev/shm"]["options"] and "noexec" in mounts["/tmp"]["options"]
