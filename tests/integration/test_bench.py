"""The benchmark command in its short mode, one section, so it cannot rot: its figures come
with a baseline measured in the same run. A smoke of the full run only (``slow``): the whole
bench measures, it does not test, and takes minutes of the machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, RUNTIME_IMAGE

pytestmark = pytest.mark.slow
NOISY_FIGURES = ["B event→handler p99", "B GET /v1/plugins p99"]


def run_bench(*args: str, env: dict[str, str] | None = None, timeout_s: float = 600) -> str:
    """``python -m bench ARGS`` from the repository; its standard output (the test fails
    with its output if it does not exit 0)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_bench_gateway_section_alone_reports_calls_through_the_gateway_and_direct(
    tmp_path: Path,
) -> None:
    out = tmp_path / "gateway.json"
    stdout = run_bench("--short", "--section", "gateway", "--out", str(out))
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
    # Each figure against the goal of issue 24, met or not, in the report and printed.
    goals = {t["figure"]: (t["target"], t["met"]) for t in report["targets"]}
    assert set(goals) == {"gateway p50 per call", "gateway p99 per call"}
    assert [target for target, _ in goals.values()] == ["<= 1 ms", "<= 3 ms"]
    for name, (target, met) in goals.items():
        verdict = "met" if met else "NOT MET"
        assert f"target {name}: " in stdout and f", {target}: {verdict}" in stdout


def test_bench_noisy_section_alone_measures_tenant_b_with_and_without_tenant_a(
    runtime_image: str, tmp_path: Path
) -> None:
    out = tmp_path / "noisy.json"
    env = {**os.environ, "EXECUTOR_RUNTIME_IMAGE": RUNTIME_IMAGE}
    stdout = run_bench("--short", "--section", "noisy", "--out", str(out), env=env, timeout_s=900)
    report = json.loads(out.read_text())
    assert report["sections"] == ["noisy"]
    figures = {f["name"]: f for f in report["figures"]}
    assert list(figures) == NOISY_FIGURES
    for figure in figures.values():
        assert (figure["section"], figure["unit"]) == ("noisy neighbour", "ms")
        assert figure["baseline_name"] == "quiet round (B alone)"
        assert figure["value"] > 0 and figure["baseline"] > 0
    verdicts = [line for line in stdout.splitlines() if line.startswith("target noisy")]
    assert len(verdicts) == 2
    assert all(line.endswith((": met", ": NOT MET")) for line in verdicts)
    notes = report["notes"]
    # Every attack of tenant A was sent and answered (or timed out), and A's slow
    # receivers held connections during the noisy round.
    assert set(notes["noisy_attacks"]) == {
        "upload bomb",
        "costly graphql",
        "event flood",
        "slow webhooks' events",
    }
    assert all(sum(outcomes.values()) > 0 for outcomes in notes["noisy_attacks"].values())
    assert notes["noisy_slow_receivers_peak_connections"] >= 1
    assert set(notes["noisy_unstarted_b_runs"]) == {"quiet", "noisy"}
