"""Privilege attacks: capabilities, no_new_privs and seccomp, setuid binaries, namespace and
mount syscalls, ptrace of pid 1, the Docker socket, and hunting for the invocation token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from executor.sandbox.profile import GATEWAY_MOUNT
from tests.security.attacks import Attacker, host_processes_of, running_container

PROC_STATUS = """
import ctypes

def attack(plugin, label, emit):
    emit("hostname", socket.gethostname())
    status = dict(
        line.split(":", 1) for line in open("/proc/self/status").read().splitlines()
    )
    emit("status", {k: v.strip() for k, v in status.items()})
    libc = ctypes.CDLL(None, use_errno=True)
    emit("no_new_privs", libc.prctl(39, 0, 0, 0, 0))  # PR_GET_NO_NEW_PRIVS
    emit("uid", [os.getuid(), os.geteuid(), os.getgid(), os.getegid()])
    time.sleep(2)
"""


def host_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, v in (line.split(":", 1) for line in lines)}


def test_proc_self_status(attacker: Attacker) -> None:
    """Attack: look for privileges (capabilities, a way to gain more, no syscall filter).
    /proc/self/status shows CapEff 0 and Seccomp 2 (runc also NoNewPrivs 1); the plugin has
    no_new_privs, and every host process of the container (gVisor's too) runs filtered."""
    invocation = attacker.start("proc-status", PROC_STATUS)
    report = attacker.wait_report(invocation, "uid")
    host_pids = host_processes_of(report["hostname"])
    host = [host_status(pid) for pid in host_pids]
    result = attacker.finish(invocation)
    assert result.run["status"] == "succeeded", result.text
    status = report["status"]
    assert status["CapEff"] == status["CapPrm"] == "0000000000000000"
    assert report["no_new_privs"] == 1
    assert report["uid"] == [10000, 10000, 10000, 10000]
    assert host, "no host process found for the running container"
    assert status["Seccomp"] == "2"  # runsc: the init's own filter, seen by gVisor
    if attacker.runtime == "runc":
        assert status["NoNewPrivs"] == "1"
    # Every host process of the container (the plugin's, or gVisor's) is filtered.
    assert {h["Seccomp"] for h in host} == {"2"}, host
    assert {h["NoNewPrivs"] for h in host} == {"1"}, host


def test_setuid_binary(attacker: Attacker) -> None:
    """Attack: run a setuid-root binary (passwd) to become root. Its effective uid stays
    10000 (no_new_privs ignores the setuid bit)."""
    result = attacker.run(
        "setuid",
        """
        import subprocess

        def attack(plugin, label, emit):
            child = subprocess.Popen(
                ["/usr/bin/passwd"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            time.sleep(1)
            with open(f"/proc/{child.pid}/status") as status:
                uids = [l.split()[1:] for l in status if l.startswith("Uid:")][0]
            child.kill()
            child.wait()
            emit("setuid_bit", bool(os.stat("/usr/bin/passwd").st_mode & 0o4000))
            emit("uids", [int(u) for u in uids])
        """,
    )
    assert result.run["status"] == "succeeded", result.text
    assert result.report["setuid_bit"] is True
    assert result.report["uids"] == [10000, 10000, 10000, 10000]


SYSCALLS = """
import ctypes

def attack(plugin, label, emit):
    libc = ctypes.CDLL(None, use_errno=True)
    os.makedirs("/tmp/mnt", exist_ok=True)
    calls = {
        # CLONE_NEWUSER | CLONE_NEWNS
        "unshare": lambda: libc.unshare(0x10000000 | 0x00020000),
        "mount": lambda: libc.mount(b"none", b"/tmp/mnt", b"tmpfs", 0, None),
        # SYS_keyctl (x86_64), KEYCTL_JOIN_SESSION_KEYRING
        "keyctl": lambda: libc.syscall(250, 1, b"plugin"),
        # PTRACE_ATTACH to the container's init
        "ptrace": lambda: libc.ptrace(16, 1, 0, 0),
    }
    # In a forked child: single-threaded, as unshare(CLONE_NEWUSER) requires (the runtime
    # itself runs threads, which would make it fail with EINVAL for that reason alone).
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        result = calls[label["call"]]()
        code = errno.errorcode.get(ctypes.get_errno()) if result != 0 else None
        os.write(write_end, json.dumps([result, code]).encode())
        os._exit(0)
    os.close(write_end)
    result, code = json.loads(os.read(read_end, 1024))
    emit("result", result)
    emit("errno", code)
"""


@pytest.mark.parametrize("call", ["unshare", "mount", "keyctl", "ptrace"])
def test_privileged_syscalls(attacker: Attacker, call: str) -> None:
    """Attack: unshare(CLONE_NEWUSER|CLONE_NEWNS), mount a tmpfs, join a keyring (keyctl),
    and ptrace-attach pid 1. Each fails with EPERM (gVisor answers keyctl with EACCES).
    Under runsc unshare is refused by the init's own seccomp filter, not Docker's."""
    result = attacker.run("syscalls", SYSCALLS, label={"call": call})
    assert result.run["status"] == "succeeded", result.text
    expected = "EACCES" if (attacker.runtime, call) == ("runsc", "keyctl") else "EPERM"
    assert result.report == {"result": -1, "errno": expected}


def test_no_docker_socket(attacker: Attacker) -> None:
    """Attack: look for the Docker socket (or any Unix socket) anywhere in the file system."""
    result = attacker.run(
        "docker-socket",
        """
        import stat

        def attack(plugin, label, emit):
            sockets = []
            for root, dirs, files in os.walk("/"):
                if root in ("/proc", "/sys"):
                    dirs[:] = []
                    continue
                for name in files + dirs:
                    path = os.path.join(root, name)
                    try:
                        if stat.S_ISSOCK(os.lstat(path).st_mode) or "docker.sock" in name:
                            sockets.append(path)
                    except OSError:
                        pass
            emit("sockets", sockets)
        """,
    )
    assert result.run["status"] == "succeeded", result.text
    # The gateway's socket, bind-mounted at GATEWAY_MOUNT, is the only way out.
    others = [s for s in result.report["sockets"] if not s.startswith(GATEWAY_MOUNT + "/")]
    assert others == []
    assert "docker.sock" not in json.dumps(result.report["sockets"])


TOKEN_HUNT = """
def attack(plugin, label, emit):
    token = plugin.api._ApiClient__token
    hits = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/environ", "rb") as env:
                    if token.encode() in env.read():
                        hits.append(pid)
            except OSError:
                pass
    emit("env_hits", hits)
    emit("token_hex", token.encode().hex())
    emit("hostname", socket.gethostname())
    time.sleep(2)
"""


def test_token_not_exposed(attacker: Attacker) -> None:
    """Attack: hunt for the invocation token outside the envelope: in the environment of
    any process, in container labels, in the engine's inspect output, in the engine's copy
    of the output (what an executor adopting the run after a restart reads)."""
    invocation = attacker.start("token-hunt", TOKEN_HUNT)
    report = attacker.wait_report(invocation, "hostname")
    token = bytes.fromhex(report["token_hex"]).decode()
    inspect = running_container(attacker.server.docker_client, invocation)
    engine_copy = attacker.server.docker_client.api.logs(inspect["Id"])
    host_environ = [
        Path(f"/proc/{pid}/environ").read_bytes() for pid in host_processes_of(report["hostname"])
    ]
    result = attacker.finish(invocation)
    assert result.run["status"] == "succeeded", result.text
    assert len(token) >= 32
    assert report["env_hits"] == []
    assert token not in json.dumps(inspect)
    assert token not in json.dumps(inspect["Config"]["Labels"])
    assert b"token_hex" in engine_copy and token.encode() not in engine_copy
    assert all(token.encode() not in environ for environ in host_environ)
    assert all(token not in record["content"] for record in result.logs)


def allowed_mount(mount: dict[str, Any], gateway_dir: Path) -> bool:
    """The only host mount a plugin container may have: the gateway socket folder, read-only."""
    return (
        mount.get("Source") == str(gateway_dir)
        and mount.get("Destination") == GATEWAY_MOUNT
        and mount.get("RW") is False
    )


def test_inspect_shows_hardened_profile(attacker: Attacker) -> None:
    """Attack surface review: the running container, as the engine reports it, has the
    sandbox profile (docs/architecture.md): no capabilities, no-new-privileges, default
    seccomp, read-only root, non-root user, no network, limits set, no host mounts but the
    gateway socket."""
    invocation = attacker.start("inspect", PROC_STATUS)
    attacker.wait_report(invocation, "uid")
    inspect = running_container(attacker.server.docker_client, invocation)
    attacker.finish(invocation)
    host = inspect["HostConfig"]
    profile = attacker.server.settings.sandbox
    assert host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"]
    assert not host.get("CapAdd")
    assert host["SecurityOpt"] == ["no-new-privileges:true"]  # no seccomp=unconfined
    assert host["ReadonlyRootfs"] is True
    assert host["NetworkMode"] == "none"
    assert host["Runtime"] == attacker.runtime
    assert host["Memory"] == host["MemorySwap"] == profile.memory_mib * 1024 * 1024
    assert host["NanoCpus"] == int(profile.cpus * 1e9)
    assert host["PidsLimit"] == profile.pids
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 1024}]
    assert host["Tmpfs"] == {"/tmp": f"rw,noexec,nosuid,nodev,size={profile.tmpfs_mib}m,mode=1777"}
    assert host["ShmSize"] == profile.shm_mib * 1024 * 1024
    assert host["LogConfig"] == {
        "Type": "local",  # in dockerd's data root, capped, removed with the container
        "Config": {
            "max-size": str(profile.engine_log_max_bytes // 2),
            "max-file": "2",
            "compress": "false",
        },
    }
    assert not host.get("Devices") and not host.get("VolumesFrom")
    gateway_dir = attacker.server.settings.resolved_gateway_socket_dir
    assert all(allowed_mount(m, gateway_dir) for m in inspect["Mounts"]), inspect["Mounts"]
    assert len(host.get("Binds") or []) == len(inspect["Mounts"]) <= 1
    assert inspect["Config"]["User"] == "10000:10000"
    assert inspect["Config"]["Entrypoint"][:4] == ["python3", "-I", "-S", "-c"]
    assert inspect["Config"]["StdinOnce"] is True
    assert inspect["Config"]["Env"] is None or all(
        "TOKEN" not in e for e in inspect["Config"]["Env"]
    )
