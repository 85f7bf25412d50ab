"""The benchmark command in its short mode, so it cannot rot: every section has figures,
each with a baseline measured in the same run."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, RUNTIME_IMAGE

SECTIONS = {
    "cold start",
    "warm start",
    "throughput",
    "ingest sqlite",
    "ingest postgresql",
    "gvisor cold start",
    "gvisor warm start",
    "builds",
    "gateway",
    "noisy neighbour",
}
NOISY_FIGURES = ["B event→handler p99", "B GET /v1/plugins p99"]


def test_bench_short_mode_reports_every_figure_with_its_baseline(
    runtime_image: str, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "EXECUTOR_RUNTIME_IMAGE": RUNTIME_IMAGE}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--short", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "baseline" in done.stdout
    report = json.loads(out.read_text())
    assert report["mode"] == "short" and report["machine"]["cpus"] >= 1
    figures = report["figures"]
    assert {f["section"] for f in figures} == SECTIONS
    for figure in figures:
        for key in ("value", "baseline", "ratio", "difference"):
            assert isinstance(figure[key], float) and math.isfinite(figure[key]), figure
        assert figure["value"] > 0 and figure["baseline"] > 0 and figure["baseline_name"]
    for section in ("cold start", "gvisor cold start", "gvisor warm start"):
        assert {f["name"] for f in figures if f["section"] == section} == {"p50", "p95", "p99"}
    # Where a cold start's time goes, from the executor's own metrics.
    phases = {"claim", "create", "attach", "start", "token", "handler"}
    assert set(report["notes"]["cold_phase_means_ms"]) == phases
    # The ingest and noisy-neighbour figures against their targets, each verdict next to
    # its ratio.
    assert [t["figure"] for t in report["targets"]] == [
        f"ingest {store} {name}"
        for store in ("sqlite", "postgresql")
        for name in ("events/s", "p99")
    ] + [f"noisy neighbour {name}" for name in NOISY_FIGURES]
    assert all(isinstance(t["met"], bool) for t in report["targets"])
    assert done.stdout.count("target ingest") == 4
    assert done.stdout.count("target noisy neighbour") == 2


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


def test_bench_noisy_section_alone_measures_tenant_b_with_and_without_tenant_a(
    runtime_image: str, tmp_path: Path
) -> None:
    out = tmp_path / "noisy.json"
    env = {**os.environ, "EXECUTOR_RUNTIME_IMAGE": RUNTIME_IMAGE}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--short", "--section", "noisy", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["sections"] == ["noisy"]
    figures = {f["name"]: f for f in report["figures"]}
    assert list(figures) == NOISY_FIGURES
    for figure in figures.values():
        assert (figure["section"], figure["unit"]) == ("noisy neighbour", "ms")
        assert figure["baseline_name"] == "quiet round (B alone)"
        assert figure["value"] > 0 and figure["baseline"] > 0
    verdicts = [line for line in done.stdout.splitlines() if line.startswith("target noisy")]
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
