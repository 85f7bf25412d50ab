"""Per-plugin metrics: their own series for the first plugins seen, ``other`` after."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from executor.metrics import Metrics, QueueFigures


def samples(metrics: Metrics, name: str) -> dict[tuple[str, str], float]:
    """(tenant, plugin) -> value of the samples called ``name``."""
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == name:
                key = (sample.labels["tenant"], sample.labels["plugin"])
                found[key] = found.get(key, 0) + sample.value
    return found


def metrics(max_plugins: int) -> Metrics:
    return Metrics(lambda: QueueFigures({}, None, {}), max_plugins)


def test_plugins_past_the_cap_share_the_other_series_of_their_tenant() -> None:
    capped = metrics(max_plugins=2)
    for tenant, plugin in [("t", "a"), ("t", "b"), ("t", "c"), ("u", "d"), ("t", "a")]:
        capped.run_timed(tenant, plugin, duration_s=1.0, latency_s=0.1)
        capped.run_finished(tenant, plugin, "succeeded")
    expected = {("t", "a"): 2.0, ("t", "b"): 1.0, ("t", "other"): 1.0, ("u", "other"): 1.0}
    assert samples(capped, "executor_plugin_run_duration_seconds_count") == expected
    assert samples(capped, "executor_plugin_start_latency_seconds_count") == expected
    runs = samples(capped, "executor_plugin_runs_total")
    assert runs == expected  # other statuses are exported at 0
    # The executor-wide histograms count every run.
    families = {f.name: f for f in text_string_to_metric_families(capped.render().decode())}
    (count,) = [
        s.value
        for s in families["executor_run_duration_seconds"].samples
        if s.name.endswith("_count")
    ]
    assert count == 5


def test_a_run_without_timings_is_counted_but_not_observed() -> None:
    plain = metrics(max_plugins=10)
    plain.run_timed("t", "a", duration_s=None, latency_s=None)
    assert samples(plain, "executor_plugin_run_duration_seconds_count") == {}
    plain.run_timed("t", "a", duration_s=2.0, latency_s=None)
    assert samples(plain, "executor_plugin_run_duration_seconds_count") == {("t", "a"): 1.0}
    assert samples(plain, "executor_plugin_start_latency_seconds_count") == {}
