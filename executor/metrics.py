"""Prometheus metrics of one executor process (its own registry, so tests can run several)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Metrics"]

DURATION_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
LATENCY_BUCKETS_S = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)


class _StoreCollector(Collector):
    """Invocations by current status (queue depth is ``status="queued"``), read at scrape."""

    def __init__(self, count_by_status: Callable[[], dict[str, int]]) -> None:
        self._count_by_status = count_by_status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "executor_invocations", "Invocations by current status", labels=["status"]
        )
        for status, count in sorted(self._count_by_status().items()):
            family.add_metric([status], count)
        yield family


class Metrics:
    def __init__(self, count_by_status: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
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
        self.registry.register(_StoreCollector(count_by_status))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
