"""The order test files go to the workers in: longest first, from a JUnit report's times."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests import durations

REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="tests.unit.test_durations" name="a" time="1.5"/>
<testcase classname="tests.unit.test_durations" name="b" time="2.0"/>
<testcase classname="tests.unit.test_example_plugins.TestQaRules" name="c" time="0.25"/>
</testsuite></testsuites>
"""


def test_a_report_gives_seconds_per_file_with_test_classes_folded_into_their_file(
    tmp_path: Path,
) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(REPORT)

    assert durations.file_seconds(report) == {
        "tests/unit/test_durations.py": 3.5,
        "tests/unit/test_example_plugins.py": 0.2,
    }


def test_files_go_longest_first_keeping_each_files_own_order(
    monkeypatch: Any, tmp_path: Path
) -> None:
    table = tmp_path / "durations.json"
    table.write_text('{"tests/short.py": 1.0, "tests/long.py": 50.0}')
    monkeypatch.setattr(durations, "DURATIONS", table)
    names = ["short.py::a", "new.py::a", "long.py::a", "short.py::b", "long.py::b"]
    items: list[Any] = [
        SimpleNamespace(path=tmp_path / "tests" / n.split("::")[0], name=n) for n in names
    ]

    durations.order_longest_first(items, tmp_path)

    # new.py is unknown: UNKNOWN_S, between the long and the short file
    assert [i.name for i in items] == [
        "long.py::a",
        "long.py::b",
        "new.py::a",
        "short.py::a",
        "short.py::b",
    ]
