"""Cluster commands: ``worker`` (a node without an HTTP port), ``nodes`` and
``nodes drain ID``."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated, Any

import typer
from rich.markup import escape

from executor.cli.common import NodeArg, call, client
from executor.cli.config import server_settings
from executor.cli.heap import settle_heap
from executor.cli.render import console, err_console, print_json, print_table
from executor.errors import ExecutorError

__all__ = ["register"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

nodes_app = typer.Typer(help="The nodes (dispatching processes) sharing the store.")


def worker() -> None:
    """Claim and run invocations on the local Docker Engine, with this node's own gateway
    socket, warm pool and recovery; no HTTP port. Stops (draining its runs) on SIGTERM."""
    from executor.service.wiring import ExecutorService

    settings = server_settings()
    if not settings.runs.dispatch:
        err_console.print("[red]error:[/] a worker dispatches: unset EXECUTOR_DISPATCH=false")
        raise typer.Exit(2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    service = ExecutorService(settings)
    try:
        service.start(api=False)
    except ExecutorError as exc:  # a setting the engine cannot honour: say which, exit
        service.stop()
        err_console.print(f"[red]error:[/] {escape(exc.message)}")
        raise typer.Exit(2) from exc
    settle_heap()
    console.print(f"worker node {service.engine.node_id} ready", soft_wrap=True)
    try:
        stop.wait()
    finally:
        service.stop()


@nodes_app.callback(invoke_without_command=True)
def list_nodes(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the nodes: state, runtimes, capacity, runs held, heartbeat, clock skew."""
    if ctx.invoked_subcommand is not None:
        return
    nodes = call(client().request, "GET", "/v1/nodes")
    if as_json:
        print_json(nodes)
        return
    columns = ["id", "state", "runtimes", "runs", "warm MiB", "labels", "engine", "heartbeat"]
    print_table("Nodes", [*columns, "clock skew"], (_row(n) for n in nodes))


def _row(node: dict[str, Any]) -> list[Any]:
    labels = ", ".join(f"{k}={v}" for k, v in sorted(node["labels"].items()))
    return [
        node["id"],
        node["state"],
        ", ".join(node["runtimes"]),
        f"{node['running']}/{node['max_concurrent_runs']}",
        node["warm_pool_memory_mib"],
        labels,
        node["engine_version"],
        node["heartbeat_at"][:19].replace("T", " "),
        _skew(node["clock_skew_s"]),
    ]


def _skew(seconds: float | None) -> str:
    """The node's clock against the database's: ``+600.0 s`` (ahead), ``-`` (not measured)."""
    return "-" if seconds is None else f"{seconds:+.1f} s"


@nodes_app.command("drain")
def drain(node_id: NodeArg, as_json: JsonOpt = False) -> None:
    """The node finishes the runs it holds and claims no new ones (until it restarts)."""
    node = call(client().request, "POST", f"/v1/nodes/{node_id}/drain")
    if as_json:
        print_json(node)
        return
    console.print(f"node {node['id']} is {node['state']}: {node['running']} run(s) to finish")


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.add_typer(nodes_app, name="nodes")
