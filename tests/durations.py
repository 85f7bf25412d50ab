"""Test files longest first, so that pytest-xdist (``--dist loadfile``) does not start a
long file last while the other workers are idle.

``tests/durations.json`` holds each file's seconds in a full run (its tests' setup, call and
teardown together). ``bash scripts/test`` writes ``artifacts/junit.xml``; refresh the file
from it after files are added or grow:

    .venv/bin/python -m tests.durations artifacts/junit.xml
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from xml.etree import ElementTree

import pytest

DURATIONS = Path(__file__).with_name("durations.json")
REPO = DURATIONS.parent.parent
# A file the last refresh did not see is placed as if it took this long: after the long
# files, before the many short ones.
UNKNOWN_S = 10.0


def order_longest_first(items: list[pytest.Item], root: Path) -> None:
    """Reorder ``items`` in place, file by file, longest file first (the order within a file
    is kept; the sort is stable)."""
    seconds: dict[str, float] = json.loads(DURATIONS.read_text())
    items.sort(key=lambda item: -seconds.get(item.path.relative_to(root).as_posix(), UNKNOWN_S))


def file_seconds(junit_xml: Path) -> dict[str, float]:
    """Seconds per test file of a pytest JUnit XML report, longest first."""
    per_file: defaultdict[str, float] = defaultdict(float)
    for case in ElementTree.parse(junit_xml).iter("testcase"):
        per_file[_test_file(case.get("classname", ""))] += float(case.get("time", 0))
    longest_first = sorted(per_file.items(), key=lambda pair: -pair[1])
    return {path: round(seconds, 1) for path, seconds in longest_first}


def _test_file(classname: str) -> str:
    """The file of a JUnit ``classname``: its module, without a test class after it."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        path = "/".join(parts[:end]) + ".py"
        if (REPO / path).is_file():
            return path
    return classname


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.durations JUNIT_XML", file=sys.stderr)
        return 2
    seconds = file_seconds(Path(argv[0]))
    DURATIONS.write_text(json.dumps(seconds, indent=1) + "\n")
    print(f"{DURATIONS}: {len(seconds)} files, {sum(seconds.values()):.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
