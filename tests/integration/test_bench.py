"""The benchmark command in its short mode, one section, so it cannot rot: its figures come
with a baseline measured in the same run. A smoke of the full run only (``slow``): the whole
bench measures, it does not test, and takes minutes of the machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_bench_gateway_section_alone_reports_calls_through_the_gateway_and_direct(
    tmp_path: Path,
) -> None:
    out = tmp_path / "gateway.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--short", "--section", "gateway", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["sections"] == ["gateway"]
    figures = {f["name"]: f for f in report["figures"]}
    assert set(figures) == {"p50 per call", "p99 per call"}
    for figure in figures.values():
        assert figure["section"] == "gateway" and figure["unit"] == "ms"
        assert figure["baseline_name"] == "direct call to the platform stand-in"
        assert figure["value"] > 0 and figure["baseline"] > 0
    assert set(report["notes"]["gateway_ms"]) == {
        f"{series}_{name}_ms" for series in ("gateway", "direct") for name in ("p50", "p99", "mean")
    }
