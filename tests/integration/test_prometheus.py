"""Alerts and the dashboard against real tools: promtool runs the rules' unit tests, Debian's
Prometheus server scrapes a real executor, and every metric they read is served."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningServer, ServerFactory
from tests.integration.prometheus import (
    DASHBOARD,
    PROMETHEUS_DIR,
    dashboard_expressions,
    grafana_to_promql,
    metric_names,
    prometheus_server,
    rule_expressions,
    tool,
)

# Sample names a family of each type exposes (prometheus_client's text format).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def served_names(server: RunningServer) -> set[str]:
    """Every sample name /metrics declares, whether or not a sample was recorded yet."""
    families = text_string_to_metric_families(server.api.get("/metrics").text)
    return {f"{family.name}{suffix}" for family in families for suffix in SUFFIXES[family.type]}


def test_promtool_checks_the_rules_and_passes_their_unit_tests() -> None:
    for args in (["check", "rules", "rules.yml"], ["test", "rules", "rules_test.yml"]):
        done = subprocess.run(
            [tool("promtool"), *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS" in done.stdout


def test_the_metric_name_parser_finds_selected_names_only() -> None:
    expr = (
        'sum by (tenant, plugin) (increase(a_total{status=~"x|y"}[15m])) / on (plugin) '
        'b_seconds > 0.5 and histogram_quantile(0.95, c_bucket{le!="1"}) unless d offset 5m'
    )
    assert metric_names(expr) == {"a_total", "b_seconds", "c_bucket", "d"}


def test_every_metric_the_rules_and_the_dashboard_read_is_served(server: RunningServer) -> None:
    served = served_names(server)
    expressions = {**rule_expressions(), **dashboard_expressions()}
    assert len(rule_expressions()) == 6
    for where, expr in expressions.items():
        names = metric_names(grafana_to_promql(expr))
        assert names, (where, expr)
        assert names <= served, f"{where} reads {sorted(names - served)}, not in /metrics"


def test_the_dashboard_is_a_grafana_dashboard_with_unique_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "plugin-executor" and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}, panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all(target["expr"] and target["refId"] for target in panel["targets"])


@pytest.mark.docker
def test_prometheus_scrapes_the_executor_and_counts_the_runs_this_test_caused(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    # Its own registry: only this test's counts; quick retries for the run that ends dead.
    executor = server_factory(retry_base_s=0.2, retry_max_s=0.5)
    executor.push("counter", name="scraped-ok")
    executor.push("raising", name="scraped-fail")
    executor.push("raising", name="scraped-dead")
    executor.activate("scraped-ok", "prom-ok")
    executor.activate("scraped-fail", "prom-fail")
    retried = executor.api.put(
        "/v1/projects/prom-dead/plugins/scraped-dead", json={"max_retries": 1}
    )
    assert retried.status_code == 200, retried.text
    with prometheus_server(tmp_path, executor.url) as prometheus:
        # increase() needs a sample from before the dead run: a counter first scraped at 1
        # would never alert. Runs start once Prometheus has the zeros.
        prometheus.wait_value('sum(executor_invocations_finished_total{status="dead"})', 0)
        runs = [
            executor.run_event(type="onSubmit", project_id="prom-ok", asset_id=f"a{i}", label={})
            for i in range(3)
        ]
        runs.append(
            executor.run_event(type="onSubmit", project_id="prom-fail", asset_id="b", label={})
        )
        runs.append(
            executor.run_event(type="onSubmit", project_id="prom-dead", asset_id="c", label={})
        )
        assert [run["status"] for run in runs] == ["succeeded"] * 3 + ["failed", "dead"]
        per_plugin = 'sum(executor_plugin_runs_total{{plugin="{}", status="{}"}})'
        prometheus.wait_value(per_plugin.format("scraped-ok", "succeeded"), 3)
        prometheus.wait_value(per_plugin.format("scraped-fail", "failed"), 1)
        prometheus.wait_value('sum(executor_invocations_finished_total{status="failed"})', 1)
        prometheus.wait_value(per_plugin.format("scraped-dead", "dead"), 1)
        prometheus.wait_value('sum(executor_invocations_finished_total{status="dead"})', 1)
        prometheus.wait_value('sum(executor_builds_total{status="ACTIVE"})', 3)
        dead = prometheus.wait_firing("InvocationsDead")
        assert dead["labels"] == {"alertname": "InvocationsDead", "severity": "critical"}
        prometheus.wait_value('sum(executor_invocations{status="queued"})', 0)
        prometheus.wait_value("max(executor_oldest_queued_seconds)", 0)
        # The all-in-one executor is one ready node; none is lost.
        prometheus.wait_value('max(executor_nodes{state="ready"})', 1)
        prometheus.wait_value('max(executor_nodes{state="lost"})', 0)
        for where, expr in {**rule_expressions(), **dashboard_expressions()}.items():
            assert "result" in prometheus.query(grafana_to_promql(expr)), where
        rules = prometheus.evaluated_rules()
    assert {
        rule["name"]: (rule["health"], rule.get("lastError", "")) for rule in rules
    } == dict.fromkeys(rule_expressions(), ("ok", ""))


@pytest.mark.docker
def test_per_plugin_histograms_past_the_cap_count_as_other(
    server_factory: ServerFactory,
) -> None:
    """One plugin gets its own duration and start-latency series; the second, past
    EXECUTOR_METRICS_MAX_PLUGINS=1, is counted as plugin="other" of its tenant."""
    executor = server_factory(metrics_max_plugins=1)
    for name in ("capped-one", "capped-two"):
        executor.push("counter", name=name)
        executor.activate(name, "prom-capped")
    accepted = executor.post_event(
        type="onSubmit", project_id="prom-capped", asset_id="a", label={}
    )
    runs = [executor.wait_run(run_id) for run_id in accepted["invocations"]]
    assert sorted(run["status"] for run in runs) == ["succeeded", "succeeded"]
    names = (
        "executor_plugin_run_duration_seconds_count",
        "executor_plugin_start_latency_seconds_count",
    )
    # A run's figures are observed just after its record is written: wait for them.
    deadline = time.monotonic() + 60
    while True:
        counts = plugin_counts(executor)
        done = all(sum(counts.get(name, {}).values()) == 2 for name in names)
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for name in names:
        by_plugin = counts[name]
        assert sorted(by_plugin.values()) == [1.0, 1.0], (name, by_plugin)
        assert "other" in by_plugin and set(by_plugin) - {"other"} <= {"capped-one", "capped-two"}


def plugin_counts(server: RunningServer) -> dict[str, dict[str, float]]:
    """Sample name -> plugin label -> value, of the per-plugin histograms' counts."""
    counts: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(server.api.get("/metrics").text):
        for sample in family.samples:
            if sample.name.startswith("executor_plugin_") and sample.name.endswith("_count"):
                counts.setdefault(sample.name, {})[sample.labels["plugin"]] = sample.value
    return counts
