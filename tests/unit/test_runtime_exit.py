"""The runtime's process ends when the handler returns, whatever the plugin left running.

Run as a subprocess on the host Python, like ``tests/unit/test_runtime.py``. Inside a
container the init then kills every other process (``tests/security/test_afterlife.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from tests.unit.test_runtime import make_envelope, run_runtime, write_plugin

# How long a plugin's leftover waits before it leaves its mark anyway: far longer than the
# runtime needs to end, so a mark means the runtime waited for the leftover.
LEFTOVER_WAIT_S = 30


def test_a_non_daemon_thread_does_not_keep_the_process(tmp_path: Path) -> None:
    mark = tmp_path / "thread-ran-on"
    source = f"""
        import os, threading, time

        def linger():
            deadline = time.monotonic() + {LEFTOVER_WAIT_S}
            while time.monotonic() < deadline:
                time.sleep(0.05)
            open({str(mark)!r}, "w").close()

        class PluginHandler:
            def on_submit(self, label, asset_id):
                threading.Thread(target=linger, daemon=False).start()
                print("thread started")
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())

    assert run.returncode == 0, run.stderr
    assert run.msgs("stdout") == ["thread started"]
    assert run.lines[-1] == {**run.lines[-1], "control": "handler_finished", "ok": True}
    assert not mark.exists()  # the process ended without joining the thread


def test_atexit_hooks_of_the_plugin_do_not_run(tmp_path: Path) -> None:
    mark = tmp_path / "atexit-ran"
    source = f"""
        import atexit

        class PluginHandler:
            def on_submit(self, label, asset_id):
                atexit.register(lambda: open({str(mark)!r}, "w").close())
                atexit.register(print, "from atexit")
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())

    assert run.returncode == 0, run.stderr
    assert run.lines[-1]["control"] == "handler_finished"
    assert run.msgs() == []
    assert not mark.exists()


def test_a_daemon_holding_stdout_does_not_hold_the_run(tmp_path: Path) -> None:
    """A ``setsid`` daemon inherits the captured fd 1: what it wrote before the handler
    returned is kept, and the runtime ends without waiting for it to close the pipe."""
    release = tmp_path / "release"
    source = f"""
        import os, time

        class PluginHandler:
            def on_submit(self, label, asset_id):
                ready_r, ready_w = os.pipe()
                if os.fork() == 0:
                    os.setsid()
                    devnull = os.open(os.devnull, os.O_RDWR)
                    os.dup2(devnull, 0)
                    os.dup2(devnull, 2)  # the test reads stderr to its end: only fd 1 held
                    os.write(1, f"daemon {{os.getpid()}} up\\n".encode())
                    os.write(ready_w, b"x")
                    os.closerange(3, 1024)  # e.g. the runtime's copy of the test's stdout
                    deadline = time.monotonic() + {LEFTOVER_WAIT_S}
                    while time.monotonic() < deadline and not os.path.exists({str(release)!r}):
                        time.sleep(0.05)
                    os._exit(0)
                os.read(ready_r, 1)
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())
    (line,) = run.msgs("stdout")
    daemon_pid = int(line.split()[1])
    try:
        assert run.returncode == 0, run.stderr
        assert line == f"daemon {daemon_pid} up"
        assert run.lines[-1]["control"] == "handler_finished"
        os.kill(daemon_pid, 0)  # still alive (no init on the host): the run did not wait
    finally:
        release.touch()
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon_pid, signal.SIGKILL)
