"""File-system attacks: fill /tmp, write to the read-only root and the plugin's own code,
execute from /tmp, and leave a file for the next run."""

from __future__ import annotations

import pytest

from tests.security.attacks import Attacker

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
