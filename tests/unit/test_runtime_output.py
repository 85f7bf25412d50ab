"""The runtime's side of the output pipeline, run as a subprocess (see test_runtime.py):
long lines in parts that keep their level, valid Unicode, and the executor's collector
reading what the runtime wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.run.output import MAX_LINE_BYTES, STDOUT, OutputCollector
from tests.unit.test_output import frames, joined
from tests.unit.test_runtime import TOKEN, Run, make_envelope, run_runtime, write_plugin

LONG_LINES = """
    import os, sys
    from plugin_runtime import PluginCore

    class PluginHandler(PluginCore):
        def on_submit(self, label, asset_id):
            print("X" * 70000)
            print("漢" * 25000)
            self.logger.warning("Y" * 70000)
            os.write(1, ("Z" * 40000 + "\\n").encode())
            sys.stderr.write("W" * 20000 + "\\n")
            print("short")
"""
EXPECTED = [
    ("INFO", "stdout", "X" * 70000),
    ("INFO", "stdout", "漢" * 25000),
    ("WARNING", "logger", "Y" * 70000),
    ("INFO", "stdout", "Z" * 40000),
    ("INFO", "stderr", "W" * 20000),
    ("INFO", "stdout", "short"),
]


def messages(run: Run) -> list[tuple[str, str, str]]:
    """(level, stream, text) per message: records with the same part_of joined in order."""
    found: list[tuple[str, str, str]] = []
    open_parts: dict[int, int] = {}
    for record in run.records:
        part_of = record.get("part_of")
        if part_of in open_parts:
            level, stream, text = found[open_parts[part_of]]
            assert (level, stream) == (record["level"], record["stream"]), record
            found[open_parts[part_of]] = (level, stream, text + record["msg"])
            continue
        if part_of is not None:
            open_parts[part_of] = len(found)
        found.append((record["level"], record["stream"], record["msg"]))
    return found


def test_long_lines_are_parts_of_one_message_that_keep_their_level(tmp_path: Path) -> None:
    run = run_runtime(write_plugin(tmp_path, LONG_LINES), make_envelope())

    assert run.returncode == 0, run.stderr
    assert max(len(line) + 1 for line in run.stdout.split(b"\n")) <= MAX_LINE_BYTES
    assert sorted(messages(run)) == sorted(EXPECTED)  # fd 1 is read by a thread of its own
    short = [r for r in run.records if r["msg"] == "short"]
    assert len(short) == 1 and "part_of" not in short[0]


@pytest.mark.parametrize("size", [1000, 4096, 65536])
def test_the_executor_reads_the_runtime_output_back_whole(tmp_path: Path, size: int) -> None:
    run = run_runtime(write_plugin(tmp_path, LONG_LINES), make_envelope())
    collector = OutputCollector(1024 * 1024)
    lines = [line for frame in frames(run.stdout, size) for line in collector.feed(STDOUT, frame)]
    lines += collector.close()

    assert sorted(joined(lines)) == sorted(EXPECTED)
    assert not any(line.content.startswith('{"') for line in lines)


def test_lone_surrogates_are_written_as_replacement_characters(tmp_path: Path) -> None:
    source = """
        import sys
        from plugin_runtime import PluginCore

        class PluginHandler(PluginCore):
            def on_submit(self, label, asset_id):
                print("\\udcff")
                sys.stdout.write("a\\ud800b\\n")
                print("\\ud83d\\ude00")  # a pair of surrogates: the character they encode
                self.logger.info("x\\udfffy")
                sys.stdout.buffer.write(b"bad \\xff byte\\n")
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())

    assert run.returncode == 0, run.stderr
    run.stdout.decode("utf-8")  # strict: every line is valid UTF-8
    assert b"\\ud" not in run.stdout
    assert run.msgs("stdout") == ["\ufffd", "a\ufffdb", "😀", "bad \ufffd byte"]
    assert run.msgs("logger") == ["x\ufffdy"]


def test_a_secret_at_a_cut_of_a_long_line_is_still_redacted(tmp_path: Path) -> None:
    """print() writes its text before the newline: a long text is cut while it comes."""
    source = """
        from plugin_runtime import PluginCore

        class PluginHandler(PluginCore):
            def on_submit(self, label, asset_id):
                for n in range(16200, 16300, 3):
                    print("x" * n + self.api._ApiClient__token + "y" * 20000)
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())  # asserts no TOKEN

    assert run.returncode == 0, run.stderr
    assert [text for _, _, text in messages(run)] == [
        "x" * n + "***" + "y" * 20000 for n in range(16200, 16300, 3)
    ]
    assert not any(TOKEN[:6] in r["msg"] for r in run.records)
