"""Prometheus metrics of one executor process (its own registry, so tests can run several)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from executor.statuses import TERMINAL_STATUSES, BuildStatus, InvocationStatus, NodeState

__all__ = ["OTHER_PLUGINS", "Metrics", "QueueFigures"]

DURATION_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
LATENCY_BUCKETS_S = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
DEFAULT_MAX_PLUGINS = 200


@dataclass(frozen=True)
class QueueFigures:
    """What the store says at scrape time: invocations by status, the oldest queued one,
    the nodes by state."""

    count_by_status: dict[str, int]
    oldest_queued_at: datetime | None
    nodes_by_state: dict[str, int]


class _StoreCollector(Collector):
    """Invocations by current status (queue depth is ``status="queued"``), the age of the
    oldest queued one and the nodes by state, read at scrape (small indexed queries, see
    ``executor.store``)."""

    def __init__(self, figures: Callable[[], QueueFigures]) -> None:
        self._figures = figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = self._figures()
        family = GaugeMetricFamily(
            "executor_invocations", "Invocations by current status", labels=["status"]
        )
        # Every status, 0 included: "queue depth is 0" must be a value, not a missing series.
        for status in InvocationStatus:
            family.add_metric([status], figures.count_by_status.get(status, 0))
        yield family
        oldest = figures.oldest_queued_at
        age = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
        yield GaugeMetricFamily(
            "executor_oldest_queued_seconds",
            "Age of the oldest queued invocation (0 when none waits)",
            value=max(age, 0.0),
        )
        nodes = GaugeMetricFamily(
            "executor_nodes", "Nodes (dispatching processes) by state", labels=["state"]
        )
        for state in NodeState:  # 0 included: "no node is lost" is a value
            nodes.add_metric([state], figures.nodes_by_state.get(state, 0))
        yield nodes


OTHER_PLUGINS = "other"  # the plugin label of runs past the cap on plugins with series


class Metrics:
    def __init__(
        self, figures: Callable[[], QueueFigures], max_plugins: int = DEFAULT_MAX_PLUGINS
    ) -> None:
        self.registry = CollectorRegistry()
        self._max_plugins = max_plugins
        self.events_received = Counter(
            "executor_events_received",
            "Events accepted by POST /v1/events",
            registry=self.registry,
        )
        self.invocations_finished = Counter(
            "executor_invocations_finished",
            "Invocations that reached a terminal status",
            ["status"],
            registry=self.registry,
        )
        # Per plugin, for alerts and dashboards on one plugin's failure ratio; a plugin name
        # is unique within its tenant only, hence both labels.
        self.plugin_runs = Counter(
            "executor_plugin_runs",
            "Invocations that reached a terminal status, by tenant, plugin and status",
            ["tenant", "plugin", "status"],
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "executor_run_duration_seconds",
            "Wall time of one plugin container run",
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self.start_latency = Histogram(
            "executor_start_latency_seconds",
            "Time from event accepted to handler entry",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        # Per plugin, so a dashboard shows which plugin got slow; bounded like plugin_runs.
        self.plugin_duration = Histogram(
            "executor_plugin_run_duration_seconds",
            "Wall time of one plugin container run, by tenant and plugin",
            ["tenant", "plugin"],
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self.plugin_start_latency = Histogram(
            "executor_plugin_start_latency_seconds",
            "Time from event accepted to handler entry, by tenant and plugin",
            ["tenant", "plugin"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.starts = Counter(
            "executor_container_starts",
            "Runs by how their container started: warm (from the pool) or cold",
            ["kind"],
            registry=self.registry,
        )
        self.start_phases = Histogram(
            "executor_start_phase_seconds",
            "Where starts go: claim (event accepted to claimed), create, attach, start (engine "
            "calls of a container start, warm-pool fills included), token (token, deadline and "
            "envelope made), handler (envelope written to handler entry)",
            ["phase"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.builds = Counter(
            "executor_builds",
            "Plugin image builds by final status",
            ["status"],
            registry=self.registry,
        )
        self.gateway_calls = Counter(
            "executor_gateway_calls",
            "Platform API calls through the gateway",
            ["status"],
            registry=self.registry,
        )
        self.key_revocations_heard = Counter(
            "executor_key_revocations_heard",
            "API keys revoked or deleted through any process sharing the store (PostgreSQL "
            "NOTIFY) that this process stopped trusting",
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(figures))
        self._plugins_seen: set[tuple[str, str]] = set()
        self._start_known_series()

    def _start_known_series(self) -> None:
        """Export the label values known in advance at 0. Prometheus's ``increase()`` counts
        nothing for a series that first appears already at 1: without this, the first dead
        run or failed build after a start would never alert."""
        for status in TERMINAL_STATUSES:
            self.invocations_finished.labels(status)
        for build_status in (BuildStatus.ACTIVE, BuildStatus.FAILED):
            self.builds.labels(build_status)
        for kind in ("warm", "cold"):
            self.starts.labels(kind)
        for gateway_status in ("200", "502", "504"):  # 502/504: the platform unreachable/slow
            self.gateway_calls.labels(gateway_status)

    def _plugin_labels(self, tenant: str, plugin: str) -> tuple[str, str]:
        """The labels of a plugin's series: its own for the first ``max_plugins`` plugins
        seen, then ``other`` (in its tenant). A plugin's other statuses start at 0 with
        its first run (see _start_known_series)."""
        if (tenant, plugin) not in self._plugins_seen:
            if len(self._plugins_seen) >= self._max_plugins:
                plugin = OTHER_PLUGINS
            if (tenant, plugin) not in self._plugins_seen:
                self._plugins_seen.add((tenant, plugin))
                for other in TERMINAL_STATUSES:
                    self.plugin_runs.labels(tenant, plugin, other)
        return tenant, plugin

    def run_finished(self, tenant: str, plugin: str, status: str) -> None:
        """Count one invocation that reached terminal ``status``, overall and per plugin."""
        self.invocations_finished.labels(status).inc()
        self.plugin_runs.labels(*self._plugin_labels(tenant, plugin), status).inc()

    def run_timed(
        self, tenant: str, plugin: str, duration_s: float | None, latency_s: float | None
    ) -> None:
        """Observe one run's wall time and start latency (None: not measured), overall and
        per plugin."""
        labels = self._plugin_labels(tenant, plugin)
        if duration_s is not None:
            self.run_duration.observe(duration_s)
            self.plugin_duration.labels(*labels).observe(duration_s)
        if latency_s is not None:
            self.start_latency.observe(latency_s)
            self.plugin_start_latency.labels(*labels).observe(latency_s)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
