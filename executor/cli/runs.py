"""Event and run commands: event (with --wait), logs (with --follow), runs, status."""

from __future__ import annotations

import enum
import json
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from executor.cli import common, explain
from executor.cli.client import ApiClient
from executor.cli.common import JsonOpt, PluginArg, ProjectOpt, checks
from executor.cli.follow import follow_records, paged_records, parse_since
from executor.cli.render import (
    console,
    err_console,
    print_json,
    print_log_record,
    print_table,
    terminal_text,
)
from executor.identifiers import IdKind
from executor.statuses import TERMINAL_STATUSES, InvocationStatus
from executor.store.run_errors import RunError

__all__ = ["event", "logs", "runs", "status"]

RUN_POLL_S = 0.5
ProjectOrNone = Annotated[
    str | None,
    typer.Option("--project", "-p", help="Project id.", callback=checks(IdKind.PROJECT)),
]


class LogLevel(enum.StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


def event(
    project: ProjectOrNone = None,
    type_: Annotated[str, typer.Option("--type", "-t", help="Event type.")] = "onSubmit",
    asset: Annotated[str | None, typer.Option(help="Asset id.")] = None,
    file: Annotated[Path | None, typer.Option(help="JSON file with the whole event.")] = None,
    label: Annotated[str | None, typer.Option(help="Label as JSON.")] = None,
    event_id: Annotated[
        str | None, typer.Option("--id", help="Idempotency key.", callback=checks(IdKind.EVENT))
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the runs to end.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Post one event, from a JSON file or from flags.

    With --wait, exits 1 when a run did not succeed, printing why (for an exception the
    handler raised: its type, message and file:line in the plugin)."""
    body: dict[str, Any] = json.loads(file.read_text()) if file else {}
    flags = {"project_id": project, "asset_id": asset, "id": event_id}
    body.update({k: v for k, v in flags.items() if v is not None})
    body.setdefault("type", type_)
    if label is not None:
        body["label"] = json.loads(label)
    client = common.client()
    accepted = common.call(client.request, "POST", "/v1/events", json=body)
    runs = [_wait_for_run(client, i) for i in accepted["invocations"]] if wait else []
    if as_json:
        print_json({**accepted, "runs": runs} if wait else accepted)
    if not accepted["invocations"]:  # the JSON above still says what was stored
        explain.fail(
            f"event {accepted['event_id']} started no run: "
            + explain.why_no_invocations(client, body.get("project_id", ""), body["type"])
        )
    if not as_json:
        console.print(f"event {accepted['event_id']}: {len(accepted['invocations'])} invocation(s)")
        for run_id in accepted["invocations"]:
            console.print(f"  {run_id}")
        for run in runs:
            console.print(_run_line(run), highlight=False, soft_wrap=True)
    failed = [run for run in runs if run["status"] != InvocationStatus.SUCCEEDED]
    if failed:
        first = failed[0]
        where = [first["plugin"], "-p", first["project_id"], "--run", first["id"]]
        command = shlex.join(["plugin-executor", "logs", *where])
        explain.fail(f"{len(failed)} of {len(runs)} run(s) did not succeed; logs: {command}")


def _run_line(run: dict[str, Any]) -> str:
    """``  ID PLUGIN: STATUS``, and for a run that did not succeed, why."""
    line = f"  {run['id']} {escape(terminal_text(run['plugin']))}: {run['status']}"
    if run["status"] == InvocationStatus.SUCCEEDED:
        return line
    return f"{line}: {escape(terminal_text(_failure_text(run)))}"


def _failure_text(run: dict[str, Any]) -> str:
    """``ValueError: bad label (main.py:12)``: the run's error summary (its ``error`` for
    a run recorded before runs kept one)."""
    if run.get("error_type") is None:
        return str(run["error"] or run["status"])
    return RunError(run["error_type"], run["error_message"] or "", run["error_location"]).summary()


def _wait_for_run(client: ApiClient, invocation_id: str) -> Any:
    while True:
        run = common.call(client.request, "GET", f"/v1/invocations/{invocation_id}")
        if run["status"] in TERMINAL_STATUSES:
            return run
        time.sleep(RUN_POLL_S)


def logs(
    plugin: PluginArg,
    project: ProjectOpt,
    run: Annotated[str | None, typer.Option(help="Only this invocation id.")] = None,
    level: Annotated[
        LogLevel | None, typer.Option(help="Minimum level (SYSTEM lines always shown).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only newer lines: 30m, 2h, 7d, or an ISO time.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines as they come.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Records at most (without --follow).")] = 1000,
    tenant: common.ActAsOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON list (with --follow: one record per line).")
    ] = False,
) -> None:
    """Print a plugin's logs on a project, oldest first, levels coloured.

    With --follow, new lines are printed as the plugin writes them; following one --run
    stops when that run has ended, otherwise press Ctrl-C.
    """
    params: dict[str, Any] = {"plugin_name": plugin, "project_id": project}
    if run:
        params["run_id"] = run
    if level:
        params["level"] = level.value
    if since:
        try:
            params["start_date"] = parse_since(since)
        except ValueError as exc:
            err_console.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from exc
    client = common.client(tenant)
    if not follow:
        records = common.call(list, paged_records(client, params, limit))
        if not records:
            explain.require_plugin(client, plugin)
        if as_json:
            print_json(records)
        else:
            _print_records(iter(records), as_json=False)
        return
    if not common.call(list, paged_records(client, params, 1)):
        explain.require_plugin(client, plugin)  # a typo would follow nothing forever
    until = "its run ends" if run else "you press Ctrl-C"
    try:
        err_console.print(
            f"following the logs of {escape(plugin)} on {escape(project)} until {until}"
        )
        common.call(_print_records, follow_records(client, params), as_json)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _print_records(records: Iterator[Any], as_json: bool) -> None:
    for record in records:
        if as_json:
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
        else:
            print_log_record(record)


def runs(
    plugin: PluginArg,
    project: ProjectOrNone = None,
    status_: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(help="Runs at most, newest first.")] = 50,
    tenant: common.ActAsOpt = None,
    wide: common.WideOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """List a plugin's invocations, newest first, as a table; the runs of deleted plugins
    that had the name follow in a table of their own."""
    params: dict[str, Any] = {"plugin_name": plugin, "limit": limit}
    if project:
        params["project_id"] = project
    if status_:
        params["status"] = status_
    client = common.client(tenant)
    found = common.call(client.request, "GET", "/v1/invocations", params=params)
    if not found:
        explain.require_plugin(client, plugin)
    if as_json:
        print_json(found)
        return
    current = [r for r in found if r["plugin_deleted_at"] is None]
    _runs_table(f"Runs of {plugin}", current, wide)
    deleted = [r for r in found if r["plugin_deleted_at"] is not None]
    if deleted:
        _runs_table(f"Runs of deleted plugins named {plugin}", deleted, wide)


def _runs_table(title: str, found: list[dict[str, Any]], wide: bool) -> None:
    print_table(
        title,
        [
            "id",
            "status",
            "event",
            "asset",
            "project",
            "attempt",
            "latency",
            "duration",
            "queued",
            "error",
        ],
        (
            [
                r["id"],
                r["status"],
                r["event_type"],
                r["asset_id"],
                r["project_id"],
                r["attempt"],
                _millis(r["start_latency_ms"]),
                _millis(r["duration_ms"]),
                r["queued_at"][:19].replace("T", " "),
                _error_cell(r),
            ]
            for r in found
        ),
        keep=("id",),
        wide=wide,
    )


def _error_cell(run: dict[str, Any]) -> str:
    """``ValueError (main.py:12)``: a failed run's error type and where (``status ID``
    shows its message)."""
    if run.get("error_type") is None:
        return ""
    where = f" ({run['error_location']})" if run["error_location"] else ""
    return f"{run['error_type']}{where}"


def _millis(value: int | None) -> str:
    if value is None:
        return "—"
    return f"{value} ms" if value < 1000 else f"{value / 1000:.1f} s"


def status(invocation_id: str, as_json: JsonOpt = False) -> None:
    """Show one invocation: status, exit code, timings, error, platform API calls."""
    run = common.call(common.client().request, "GET", f"/v1/invocations/{invocation_id}")
    if as_json:
        print_json(run)
        return
    fields = [
        "id",
        "plugin",
        "version",
        "project_id",
        "event_type",
        "asset_id",
        "status",
        "exit_code",
        "attempt",
        "duration_ms",
        "start_latency_ms",
        "error",
        "error_type",
        "error_message",
        "error_location",
    ]
    print_table(f"Invocation {invocation_id}", ["field", "value"], ([f, run[f]] for f in fields))
    calls = run.get("gateway_calls") or []
    if calls:
        print_table(
            "Platform API calls",
            ["method", "path", "status", "bytes out", "bytes in", "ms"],
            (
                [
                    c["method"],
                    c["path"],
                    c["status"],
                    c["request_bytes"],
                    c["response_bytes"],
                    c["duration_ms"],
                ]
                for c in calls
            ),
        )
