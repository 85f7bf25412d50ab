"""The executor's side of the output pipeline (no Docker): ``OutputCollector`` turning
container frames into records, and ``RunLogWriter`` storing them in a real SQLite store."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from executor.run.log_writer import RunLogWriter
from executor.run.output import (
    MAX_LINE_BYTES,
    STDERR,
    STDOUT,
    OutputCollector,
    OutputLine,
)
from executor.statuses import InvocationStatus
from executor.store.db import Database
from executor.store.tables import Invocation, LogRecord
from executor.tokens import mint_token
from tests.output_migration import check_old_rows_gain_the_output_columns
from tests.store_rows import add_run

REPO = Path(__file__).resolve().parents[2]
CJK = "漢" * 25_000  # 75,000 bytes of UTF-8


def protocol(msg: str, level: str = "INFO", stream: str = "stdout", **extra: object) -> bytes:
    """One protocol line as the runtime writes it (``ensure_ascii=False``)."""
    record = {"level": level, "time": "2026-11-27T03:40:00.000Z", "msg": msg, "stream": stream}
    return (json.dumps({**record, **extra}, ensure_ascii=False) + "\n").encode()


def frames(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def feed(collector: OutputCollector, fd: int, data: bytes, size: int) -> list[OutputLine]:
    return [line for frame in frames(data, size) for line in collector.feed(fd, frame)]


def feed_all(collector: OutputCollector, fd: int, data: bytes, size: int) -> list[OutputLine]:
    return feed(collector, fd, data, size) + collector.close()


def joined(lines: list[OutputLine]) -> list[tuple[str, str, str]]:
    """(level, stream, text) per message: the parts of one message joined in order."""
    messages: list[tuple[str, str, str]] = []
    open_parts: dict[str, int] = {}
    for line in lines:
        if line.part_of is not None and line.part_of in open_parts:
            index = open_parts[line.part_of]
            level, stream, text = messages[index]
            assert (level, stream) == (line.log_type, line.stream), "a part changed level"
            messages[index] = (level, stream, text + line.content)
            continue
        if line.part_of is not None:
            open_parts[line.part_of] = len(messages)
        messages.append((line.log_type, line.stream, line.content))
    return messages


def test_the_line_limit_is_the_runtime_protocols() -> None:
    sys.path.insert(0, str(REPO / "runtime_image"))
    try:
        from plugin_runtime import protocol as runtime_protocol
    finally:
        sys.path.remove(str(REPO / "runtime_image"))
    assert MAX_LINE_BYTES == runtime_protocol.MAX_LINE_BYTES == 16 * 1024


def test_lone_surrogate_escape_is_stored_as_a_replacement_character(db: Database) -> None:
    """A protocol line carrying ``\\udcff`` (a valid JSON escape, not valid Unicode) used to
    make the SQLite write raise UnicodeEncodeError."""
    collector = OutputCollector(1024 * 1024)
    raw = b'{"level": "WARNING", "time": "t", "msg": "a\\udcffb\\ud800", "stream": "stdout"}\n'
    lines = collector.feed(STDOUT, raw)
    assert lines == [OutputLine("WARNING", "a\ufffdb\ufffd", "stdout")]

    writer = RunLogWriter(db, stored_invocation(db), None)
    writer.write(lines)
    with db.session() as session:
        assert list(session.scalars(select(LogRecord.content))) == ["a\ufffdb\ufffd"]


@pytest.mark.parametrize("size", [997, 4096, 70_000])
def test_a_raw_line_over_the_limit_is_cut_at_character_boundaries(size: int) -> None:
    """25,000 CJK characters written straight to fd 2 (not the runtime's protocol): parts of
    at most MAX_LINE_BYTES, none cutting a character, one message at ERROR."""
    lines = feed_all(OutputCollector(1024 * 1024), STDERR, (CJK + "\n").encode(), size)
    assert len(lines) == 5
    assert all(len(line.content.encode()) <= MAX_LINE_BYTES for line in lines)
    assert "\ufffd" not in "".join(line.content for line in lines)
    assert {line.part_of for line in lines} == {lines[0].part_of} != {None}
    assert joined(lines) == [("ERROR", "stderr", CJK)]


def test_a_stdout_line_over_the_limit_is_raw_text_never_parsed_as_a_fragment() -> None:
    """Only the runtime writes stdout, and never a line over the limit: a longer line is
    kept as raw text in parts (its pieces are not JSON to parse)."""
    line = protocol("X" * 70_000)
    lines = feed_all(OutputCollector(1024 * 1024), STDOUT, line, 4096)
    assert joined(lines) == [("INFO", "stdout", line.decode().rstrip("\n"))]


def test_protocol_parts_keep_their_level_in_any_frame_size() -> None:
    parts = [
        protocol("Y" * 16_000, "WARNING", "logger", part_of=7),
        protocol("short", "ERROR", "stderr"),
        protocol("Y" * 9_000, "WARNING", "logger", part_of=7),
    ]
    data = b"".join(parts)
    for size in (1, 100, 16_383, len(data)):
        lines = feed_all(OutputCollector(1024 * 1024), STDOUT, data, size)
        assert joined(lines) == [
            ("WARNING", "logger", "Y" * 25_000),
            ("ERROR", "stderr", "short"),
        ]


def test_a_run_token_cut_by_a_part_boundary_is_still_redacted() -> None:
    token = mint_token()
    for offset in range(0, len(token) + 2):
        text = "a" * (MAX_LINE_BYTES - offset) + token + "b" * 100
        lines = feed_all(OutputCollector(1024 * 1024), STDERR, (text + "\n").encode(), 1000)
        stored = "".join(line.content for line in lines)
        assert stored == text.replace(token, "***"), offset
        assert not any(token[:8] in line.content for line in lines), offset


def test_run_tokens_are_redacted_without_being_known() -> None:
    """An adopted run's collector does not know the token (the store keeps only its hash)."""
    token = mint_token()
    collector = OutputCollector(1024 * 1024)
    lines = collector.feed(STDOUT, protocol(f"token={token}")) + collector.feed(
        STDERR, f"raw {token}\n".encode()
    )
    assert [line.content for line in lines] == ["token=***", "raw ***"]


def test_replay_skips_exactly_what_is_stored() -> None:
    """An adopting executor replays the engine's copy from the start with ``resume_at`` =
    the stored ``read_bytes``: it gets exactly the records the first one had not stored."""
    stdout = b"".join(protocol(f"line {n}") for n in range(50))
    stdout += protocol("Z" * 40_000)[:20_000]  # a line still being written at the crash
    stderr = b"".join(f"raw {n}\n".encode() for n in range(50)) + b"half a li"
    first = OutputCollector(1024 * 1024)
    before = first.feed(STDOUT, stdout[:3001]) + first.feed(STDERR, stderr[:101])
    stored = first.read_bytes
    assert stored[STDOUT] < 3001 and stored[STDERR] < 101  # partial lines are not stored
    after = first.feed(STDOUT, stdout[3001:]) + first.feed(STDERR, stderr[101:]) + first.close()

    replay = OutputCollector(1024 * 1024, resume_at=stored)
    replayed = feed(replay, STDOUT, stdout, 4096) + feed_all(replay, STDERR, stderr, 7)
    assert len(before) > 0
    assert joined(replayed) == joined(after)
    assert replay.read_bytes == first.read_bytes


def test_the_cap_drops_whole_lines_and_never_stores_a_fragment() -> None:
    data = b"".join(protocol(f"{n} " + "x" * 250) for n in range(10))
    collector = OutputCollector(1024)
    lines = feed_all(collector, STDOUT, data, 100)
    assert [line.content.split()[0] for line in lines] == ["0", "1", "2"]
    assert all(line.content.endswith("x" * 250) for line in lines)
    assert collector.truncated and collector.kept_bytes <= 1024
    assert collector.kept_bytes + collector.dropped_bytes == len(data)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate()
    yield database
    database.dispose()


def stored_invocation(db: Database) -> Invocation:
    # A writer writes only while its attempt holds the run.
    return add_run(db, status=InvocationStatus.RUNNING, lease_generation=1)


def test_the_writer_links_parts_and_records_how_much_output_it_stored(db: Database) -> None:
    invocation = stored_invocation(db)
    writer = RunLogWriter(db, invocation, None)
    writer.system("before")
    writer.write(
        [
            OutputLine("WARNING", "a", "logger", "p1"),
            OutputLine("INFO", "other", "stdout"),
            OutputLine("WARNING", "b", "logger", "p1"),
            OutputLine("ERROR", "c", "stderr", "raw2.0"),
            OutputLine("WARNING", "d", "logger", "p1"),
        ],
        {STDOUT: 1234, STDERR: 56},
    )
    with db.session() as session:
        records = session.scalars(select(LogRecord).order_by(LogRecord.seq)).all()
        row = session.get(Invocation, invocation.id)
        assert row is not None
        assert (row.stdout_read_bytes, row.stderr_read_bytes) == (1234, 56)
    assert [(r.seq, r.content, r.continues) for r in records] == [
        (1, "before", None),
        (2, "a", None),
        (3, "other", None),
        (4, "b", 2),
        (5, "c", None),
        (6, "d", 4),
    ]


def test_rows_from_before_0014_gain_the_output_columns(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        check_old_rows_gain_the_output_columns(database)
    finally:
        database.dispose()
