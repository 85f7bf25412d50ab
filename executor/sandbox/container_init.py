"""The plugin container's pid 1, run as ``python3 -I -S -c <this file's source> [COMMAND...]``.

This file is executed inside the container, not imported by the executor: the sandbox
passes its source on the command line, so it works with any runtime image version.

Docker's own init (tini) runs as the plugin's uid and stays dumpable, so the plugin could
ptrace-attach to pid 1. This init first marks itself non-dumpable (ptrace of pid 1 then
fails with EPERM and its /proc files are root's), then runs COMMAND (default: the runtime,
``python3 -m plugin_runtime``) as its child with the same stdin, stdout and stderr. It
forwards termination signals to the child, reaps every orphan so no zombie piles up, and
when the child ends SIGKILLs every other process of the container (children, ``setsid``
daemons: the runtime ends when the handler returns, and nothing the plugin started may run
on), reaps them all, and exits with the child's status (128+N when the child died of
signal N).

Before that it installs a small seccomp filter of its own, inherited by everything the
plugin starts: ``unshare`` and ``setns`` fail with EPERM. Under runc Docker's default
profile already refuses them; under runsc (gVisor) that profile is not applied inside the
sandbox, and gVisor would otherwise let a plugin make namespaces of its user-space kernel.

Standard library only, and nothing from the executor: it runs in the container's Python.
"""

from __future__ import annotations

import ctypes
import os
import signal
import struct
import sys

PR_SET_DUMPABLE = 4
EXIT_INTERNAL = 3
FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def make_undumpable() -> None:
    """prctl(PR_SET_DUMPABLE, 0): no ptrace by same-uid processes, /proc/1 owned by root."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_DUMPABLE, 0) failed: {os.strerror(errno)}")


PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
# Per machine: the audit arch the kernel reports and the denied syscalls' numbers
# (unshare, setns).
DENIED_SYSCALLS = {
    "x86_64": (0xC000003E, (272, 308)),
    "aarch64": (0xC00000B7, (97, 268)),
}
X32_SYSCALL_BIT = 0x40000000
BPF_LD_W_ABS, BPF_JEQ_K, BPF_JGE_K, BPF_RET_K = 0x20, 0x15, 0x35, 0x06
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_EPERM = 0x00050000 | 1  # SECCOMP_RET_ERRNO | EPERM


def namespace_filter(machine: str) -> list[tuple[int, int, int, int]]:
    """The BPF program (code, jt, jf, k): EPERM for unshare and setns, for any other
    architecture and for x32 calls; everything else allowed."""
    arch, denied = DENIED_SYSCALLS[machine]
    program = [
        (BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (BPF_JEQ_K, 1, 0, arch),
        (BPF_RET_K, 0, 0, SECCOMP_RET_EPERM),
        (BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        (BPF_JGE_K, 0, 1, X32_SYSCALL_BIT),
        (BPF_RET_K, 0, 0, SECCOMP_RET_EPERM),
    ]
    for number in denied:
        program += [(BPF_JEQ_K, 0, 1, number), (BPF_RET_K, 0, 0, SECCOMP_RET_EPERM)]
    return [*program, (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW)]


def deny_namespaces() -> None:
    """Install ``namespace_filter`` for this process and its descendants."""
    machine = os.uname().machine
    if machine not in DENIED_SYSCALLS:
        raise OSError(f"no seccomp filter for machine {machine!r}: run on x86_64 or aarch64")
    program = namespace_filter(machine)
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    filters = ctypes.create_string_buffer(code)
    fprog = struct.pack("HxxxxxxP", len(program), ctypes.addressof(filters))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.c_char_p(fprog), 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"seccomp filter refused: {os.strerror(errno)}")


def exit_status(wait_status: int) -> int:
    """A waitpid status as a shell-style exit code (128+N for signal N)."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def spawn(command: list[str]) -> int:
    """Fork and exec ``command``; the child's pid."""
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        except OSError as exc:
            os.write(2, f"plugin_runtime.init: cannot run {command[0]}: {exc}\n".encode())
        os._exit(127)
    return pid


def reap_until(pid: int) -> int:
    """Reap every child (orphans included) until ``pid`` ends; its exit code."""
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return EXIT_INTERNAL
        if reaped == pid:
            return exit_status(status)


def send(pid: int, signum: int) -> None:
    """os.kill, quiet when nothing is left to signal (contextlib is not imported: pid 1
    starts before every run, and each import adds to the start)."""
    try:  # noqa: SIM105 (see above)
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def kill_the_rest() -> None:
    """SIGKILL every other process in the container and reap them until none is left.

    ``kill(-1)`` reaches every process of the pid namespace but the caller; orphans are
    reparented to pid 1, so no child left means no process left. Repeated after each reap:
    a process that was forking when the signal went out has its new child killed too.
    Only as pid 1, i.e. inside a container: anywhere else ``kill(-1)`` would reach every
    process of the user.
    """
    if os.getpid() != 1:
        return
    while True:
        send(-1, signal.SIGKILL)
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def main(argv: list[str]) -> int:
    try:
        make_undumpable()
        deny_namespaces()
    except OSError as exc:
        os.write(2, f"plugin_runtime.init: {exc}\n".encode())
        return EXIT_INTERNAL
    child: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if child:
            send(child[0], signum)

    # Installed before the fork so no signal is lost; execve resets them in the child.
    for sig in FORWARDED:
        signal.signal(sig, forward)
    child.append(spawn(argv or [sys.executable, "-m", "plugin_runtime"]))
    status = reap_until(child[0])
    kill_the_rest()
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
