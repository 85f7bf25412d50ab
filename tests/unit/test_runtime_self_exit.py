"""A handler that ends its own process keeps its output; closing fds 1 and 2 is no failure.

Run as a subprocess on the host Python, like ``tests/unit/test_runtime.py``; FdCapture's
own tests use a pipe of the test process in place of fd 1.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_runtime.fdcapture import FdCapture
from plugin_runtime.protocol import ProtocolWriter
from plugin_runtime.streams import LineSink

from tests.unit.test_runtime import make_envelope, run_runtime, write_plugin

OUTPUT_THEN_EXIT = """
    import os, sys

    class PluginHandler:
        def on_submit(self, label, asset_id):
            print("a printed line")
            os.write(1, b"raw line\\n")
            sys.stdout.write("a partial line")
            os._exit(3)
"""


def test_output_written_before_os_exit_is_kept(tmp_path: Path) -> None:
    run = run_runtime(write_plugin(tmp_path, OUTPUT_THEN_EXIT), make_envelope())

    assert run.returncode == 3, run.stderr
    assert sorted(run.msgs("stdout")) == sorted(["a printed line", "raw line", "a partial line"])
    assert [c["control"] for c in run.controls] == ["handler_started"]


def test_os_exit_while_a_write_holds_the_output_lock_still_exits(tmp_path: Path) -> None:
    """As from a signal handler that interrupted a print: the flush cannot take the lock,
    and the exit is not held up by it. The lock is never released, so the exit's wait for
    the flush always runs out: the plugin shortens it (read at the exit) from 5 s."""
    source = """
        import os, sys
        from plugin_runtime import output

        class PluginHandler:
            def on_submit(self, label, asset_id):
                print("before the exit")
                output.EXIT_FLUSH_S = 0.2
                sys.stdout._sink._lock.acquire()
                os._exit(4)
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())

    assert run.returncode == 4, run.stderr
    assert run.msgs("stdout") == ["before the exit"]


def test_os_exit_of_a_forked_child_writes_nothing_of_the_parent(tmp_path: Path) -> None:
    """The child's copy of a pending partial line is not written: the line stays one."""
    source = """
        import os, sys

        class PluginHandler:
            def on_submit(self, label, asset_id):
                sys.stdout.write("begun")
                child = os.fork()
                if child == 0:
                    os._exit(0)
                os.waitpid(child, 0)
                print(" and ended")
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())

    assert run.returncode == 0, run.stderr
    assert run.msgs("stdout") == ["begun and ended"]


def test_a_handler_that_closed_fds_1_and_2_succeeds(tmp_path: Path) -> None:
    source = """
        import os

        class PluginHandler:
            def on_submit(self, label, asset_id):
                print("before closing")
                os.close(1)
                os.close(2)
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())

    assert run.returncode == 0, run.stderr
    assert run.msgs("stdout") == ["before closing"]
    assert run.lines[-1] == {**run.lines[-1], "control": "handler_finished", "ok": True}


class _Collected:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass


@pytest.fixture
def target_fd() -> Iterator[int]:
    """A descriptor standing in for fd 1 (the write end of a pipe nobody reads)."""
    read_fd, write_fd = os.pipe()
    yield write_fd
    os.close(read_fd)
    with contextlib.suppress(OSError):  # closed by the test
        os.close(write_fd)


def _capture(fd: int) -> tuple[FdCapture, _Collected]:
    collected = _Collected()
    capture = FdCapture(fd, LineSink(ProtocolWriter(collected), "stdout", "INFO"))  # type: ignore[arg-type]
    capture.start()
    return capture, collected


def test_stop_tries_dup2_again_on_ebusy(target_fd: int, monkeypatch: pytest.MonkeyPatch) -> None:
    capture, collected = _capture(target_fd)
    os.write(target_fd, b"captured\n")
    real_dup2 = os.dup2
    calls: list[tuple[int, int]] = []

    def busy_once(source: int, target: int) -> int:
        calls.append((source, target))
        if len(calls) == 1:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        return real_dup2(source, target)

    monkeypatch.setattr(os, "dup2", busy_once)
    capture.stop()

    assert len(calls) == 2 and calls[0][1] == calls[1][1] == target_fd
    assert os.path.samestat(os.fstat(target_fd), os.stat(os.devnull))
    assert b'"msg": "captured"' in collected.data


def test_stop_leaves_a_descriptor_the_plugin_closed_alone(target_fd: int) -> None:
    capture, collected = _capture(target_fd)
    os.write(target_fd, b"before close\n")
    os.close(target_fd)

    capture.stop()

    with pytest.raises(OSError) as closed:
        os.fstat(target_fd)  # not reopened by stop()
    assert closed.value.errno == errno.EBADF
    assert b'"msg": "before close"' in collected.data


def test_stop_leaves_a_descriptor_the_plugin_replaced_alone(target_fd: int) -> None:
    capture, _ = _capture(target_fd)
    replacement = os.open(os.devnull, os.O_RDONLY)
    os.dup2(replacement, target_fd)  # the plugin put a file of its own at the number
    os.close(replacement)

    capture.stop()

    assert os.read(target_fd, 1) == b""  # still the read-only file, not a write end
