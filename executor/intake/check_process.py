"""One upload check worker process (``executor.intake.check_worker``) and its pipes: started
with none of the executor's environment, killed and reaped with its kernel record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import executor
from executor.intake.check_wire import READY, FrameReader

__all__ = ["CheckWorker"]

WORKER_MODULE = "executor.intake.check_worker"
# A new worker has this long to start (interpreter, imports) before the check's own limit.
WORKER_START_S = 120.0
KIB = 1024
# What a worker may see of the environment: never the executor's secrets.
WORKER_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TMPDIR")


class CheckWorker:
    """One worker process and its pipes."""

    def __init__(self, memory_bytes: int) -> None:
        env = {key: os.environ[key] for key in WORKER_ENV_KEYS if key in os.environ}
        env["PYTHONPATH"] = str(Path(executor.__file__).resolve().parent.parent)
        self.process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd="/",
            close_fds=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.requests = self.process.stdin
        self.replies = self.process.stdout.fileno()
        ready = FrameReader(self.replies, time.monotonic() + WORKER_START_S, len(READY))
        try:
            started = ready.read() == READY
        except TimeoutError:
            started = False
        if not started:
            self.stop()
            raise RuntimeError(f"the upload check worker ({WORKER_MODULE}) did not start")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> int:
        """Kill the process and reap it; its peak RSS in bytes, from the kernel."""
        peak = 0
        if self.process.returncode is None:
            # Not Popen.kill: it polls first, reaping the process before wait4 sees its usage.
            os.kill(self.process.pid, signal.SIGKILL)  # unreaped, the pid is still this one's
            _, status, usage = os.wait4(self.process.pid, 0)
            self.process.returncode = os.waitstatus_to_exitcode(status)
            peak = usage.ru_maxrss * KIB
        self.requests.close()
        assert self.process.stdout is not None
        self.process.stdout.close()
        return peak

    def ended_how(self) -> str:
        code = self.process.returncode
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"
