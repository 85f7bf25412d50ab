"""``python -m bench scale --short`` runs end to end, so it cannot rot: simulated workers (the
real dispatcher on a simulated engine) on a fresh PostgreSQL database, its figures in the
JSON (beside the floor claim's) and its charts drawn. A smoke only (``slow``): the figures
depend on the machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_bench import run_bench

pytestmark = pytest.mark.slow


def test_bench_scale_short_measures_one_and_two_simulated_workers(tmp_path: Path) -> None:
    run_bench("scale", "--short", "--label", "smoke", "--out", str(tmp_path))
    report = json.loads((tmp_path / "scale-smoke.json").read_text())
    assert (report["label"], report["short"]) == ("smoke", True)
    assert report["conditions"]["workers"] == "dispatcher"
    assert [c["workers"] for c in report["counts"]] == [1, 2]
    for count in report["counts"]:
        assert count["claims_per_s"] > 0 and count["claim_p99_ms"] > 0, count
        assert count["steps"], count
        first = count["steps"][0]
        assert first["runs"] > 0 and first["event_to_claim_p99_ms"] > 0, first
    floor = report["floor"]  # the cheapest claim, drained by as many workers as the last count
    assert floor["workers"] == 2 and floor["claims_per_s"] > 0 and floor["claim_p99_ms"] > 0
    depths = report["depths"]  # one claimer's claim by backlog
    assert [d["queued"] for d in depths] == [100, 2000]
    assert all(d["claim_p50_ms"] > 0 for d in depths), depths
    assert set(report["bends"]) == {
        "claims_per_s_bends_at_workers",
        "claim_p99_bends_at_workers",
        "pg_cpu_per_1000_bends_at_workers",
        "event_to_claim_p99_bends_at_rate",
    }
    assert (tmp_path / "scale-smoke.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
