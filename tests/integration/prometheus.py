"""Debian's ``prometheus`` server for tests, and the metric names a PromQL expression reads.

The server gets its own free loopback port, configuration and data folder; it scrapes an
executor every second with the operator key read from a file (never from the environment).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import OPERATOR_KEY, REPO, free_port

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "plugin-executor.json"
STARTUP_TIMEOUT_S = 60
SCRAPE_INTERVAL = "1s"

# What a PromQL expression holds besides metric names: keywords, and Grafana's variables
# (replaced by values Prometheus accepts before an expression is sent to it).
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
_GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m", "$plugin": ".*", "$tenant": ".*"}


def tool(name: str) -> str:
    """The path of a tool of Debian's ``prometheus`` package (deploy/setup.sh installs it)."""
    path = shutil.which(name)
    assert path, f"{name} not found: run deploy/setup.sh (it installs Debian's prometheus)"
    return path


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects.

    String literals, label matchers (``{...}``), ranges (``[...]``) and label lists of
    ``by``/``without``/``on``/``ignoring`` are dropped first; what is left that is neither a
    function call, a keyword nor part of a number or duration is a metric name.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        followed_by_call = text[match.end() :].lstrip().startswith("(")
        if not followed_by_call and match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


def grafana_to_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced by plain values."""
    for variable, value in _GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def rule_expressions() -> dict[str, str]:
    """Alert name → expression, from deploy/prometheus/rules.yml."""
    groups = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard_expressions() -> dict[str, str]:
    """``panel title / refId`` → expression, from the Grafana dashboard."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {
        f"{panel['title']} / {target['refId']}": target["expr"]
        for panel in panels
        for target in panel["targets"]
    }


@dataclass
class PrometheusServer:
    url: str
    log_path: Path

    def query(self, expr: str) -> dict[str, Any]:
        """The ``data`` of an instant query through the HTTP API (status ``success``)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=30)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (expr, body)
        return dict(body["data"])

    def value(self, expr: str) -> float | None:
        """The single value of an instant query, or None while it has no result."""
        result = self.query(expr)["result"]
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    def evaluated_rules(self, timeout: float = 120) -> list[dict[str, Any]]:
        """The loaded alert rules once each has been evaluated (health no longer unknown)."""
        deadline = time.monotonic() + timeout
        while True:
            response = httpx.get(f"{self.url}/api/v1/rules", timeout=30)
            groups = response.json()["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            if rules and all(rule["health"] != "unknown" for rule in rules):
                return rules
            assert time.monotonic() < deadline, f"rules not evaluated: {rules}"
            time.sleep(0.5)

    def wait_firing(self, alert: str, timeout: float = 120) -> dict[str, Any]:
        """The alert once Prometheus reports it firing (rules are evaluated every second)."""
        deadline = time.monotonic() + timeout
        while True:
            response = httpx.get(f"{self.url}/api/v1/alerts", timeout=30)
            alerts = response.json()["data"]["alerts"]
            firing = [a for a in alerts if a["labels"]["alertname"] == alert]
            if firing and firing[0]["state"] == "firing":
                return dict(firing[0])
            assert time.monotonic() < deadline, f"{alert} not firing: {alerts}"
            time.sleep(0.5)

    def wait_value(self, expr: str, expected: float, timeout: float = 120) -> None:
        """Wait until the query answers ``expected`` (scrapes come every second)."""
        deadline = time.monotonic() + timeout
        last = self.value(expr)
        while last != expected:
            assert time.monotonic() < deadline, f"{expr} = {last}, expected {expected}"
            time.sleep(0.5)
            last = self.value(expr)


def write_config(folder: Path, executor_url: str) -> Path:
    """deploy/prometheus/prometheus.yml pointed at ``executor_url``, scraping every second,
    with the operator key in a 0600 file of ``folder`` and the shipped rules."""
    key_file = folder / "executor_key"
    key_file.write_text(OPERATOR_KEY)
    key_file.chmod(0o600)
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=SCRAPE_INTERVAL, evaluation_interval=SCRAPE_INTERVAL)
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules.yml")]
    (job,) = config["scrape_configs"]
    job["authorization"]["credentials_file"] = str(key_file)
    job["static_configs"] = [{"targets": [executor_url.removeprefix("http://")]}]
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def prometheus_server(folder: Path, executor_url: str) -> Iterator[PrometheusServer]:
    """A Prometheus server scraping ``executor_url``; stopped (and waited for) on exit."""
    config = write_config(folder, executor_url)
    port = free_port()
    log_path = folder / "prometheus.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(f"http://127.0.0.1:{port}", log_path)
    try:
        _wait_ready(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: PrometheusServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        assert process.poll() is None, server.log_path.read_text()
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return
        assert time.monotonic() < deadline, f"prometheus did not start: {server.log_path}"
        time.sleep(0.2)
