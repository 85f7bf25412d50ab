"""``plugin-executor stats``: the figures of ``GET /v1/stats`` as tables."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer

from executor.cli.common import ActAsOpt, call, client
from executor.cli.follow import parse_since
from executor.cli.render import console, err_console, print_json, print_table
from executor.statuses import InvocationStatus

__all__ = ["register"]


class Bucket(enum.StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead.")]


def stats(
    bucket: Annotated[Bucket, typer.Option(help="Bucket width (UTC).")] = Bucket.HOUR,
    since: Annotated[
        str | None, typer.Option(help="Start: 30m, 2h, 7d or an ISO time (default: 24 buckets).")
    ] = None,
    plugin: Annotated[str | None, typer.Option(help="Only this plugin.")] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only this project.")
    ] = None,
    tenant: ActAsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Runs by outcome, duration and start-latency percentiles, warm starts, platform API
    errors and builds per bucket; duration per version; the plugins failing most; the
    queue now (docs/stats.md)."""
    params: dict[str, Any] = {"bucket": bucket.value, "plugin": plugin, "project": project}
    if since is not None:
        try:
            params["since"] = parse_since(since)
        except ValueError as exc:
            err_console.print(f"[red]error:[/] {exc}", markup=True, highlight=False)
            raise typer.Exit(2) from exc
    found = call(
        client(tenant).request,
        "GET",
        "/v1/stats",
        params={k: v for k, v in params.items() if v is not None},
    )
    if as_json:
        print_json(found)
        return
    _buckets_table(found)
    print_table(
        "Duration per version",
        ["plugin", "version", "runs", "p50", "p95"],
        (
            [v["plugin"], v["version"], v["runs"], *_percentiles(v["duration_ms"])]
            for v in found["versions"]
        ),
    )
    print_table(
        "Failing most",
        ["plugin", "failures", "runs"],
        ([f["plugin"], f["failures"], f["runs"]] for f in found["top_failing"]),
    )
    queue = found["queue"]
    age = queue["oldest_queued_age_s"]
    oldest = "" if age is None else f", the oldest waiting {age:.0f} s"
    console.print(f"Queue: {queue['depth']} waiting{oldest}", markup=False, highlight=False)


def _buckets_table(found: dict[str, Any]) -> None:
    rows = []
    for b in found["buckets"]:
        failed = b["total"] - b["runs"].get(InvocationStatus.SUCCEEDED, 0)
        rows.append(
            [
                b["start"][:16].replace("T", " "),
                b["total"],
                failed,
                *_percentiles(b["duration_ms"]),
                *_percentiles(b["start_latency_ms"]),
                _share(b["warm_share"]),
                f"{b['gateway_errors']}/{b['gateway_calls']}",
                f"{b['builds_failed']}/{b['builds']}",
            ]
        )
    print_table(
        f"Runs per {found['bucket']} (UTC)",
        [
            "start",
            "runs",
            "failed",
            "dur p50",
            "dur p95",
            "lat p50",
            "lat p95",
            "warm",
            "api err",
            "builds failed",
        ],
        rows,
    )


def _percentiles(figures: dict[str, float | None]) -> list[str]:
    return [_millis(figures["p50"]), _millis(figures["p95"])]


def _millis(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def register(app: typer.Typer) -> None:
    app.command()(stats)
