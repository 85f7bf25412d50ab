"""``plugin-executor``: serve, push, activate, deactivate, list, event, logs, runs, limits,
status; tenants, keys, audit."""

from __future__ import annotations

from typing import Annotated

import typer

from executor.cli import (
    builds,
    cluster,
    local,
    plugins,
    runs,
    scaffold,
    stats,
    tenants,
    webhooks,
)
from executor.cli.common import close_clients
from executor.cli.config import server_settings
from executor.cli.heap import settle_heap
from executor.cli.render import console

app = typer.Typer(no_args_is_help=True, help="Run untrusted labeling plugins in sandboxes.")


@app.callback()
def _each_command(ctx: typer.Context) -> None:
    # A command's API clients are closed when it ends, not left to the process's end.
    ctx.call_on_close(close_clients)


@app.command()
def serve(
    no_dispatch: Annotated[
        bool,
        typer.Option(
            "--no-dispatch",
            help="Serve the API and builds only; queued events wait for a process that "
            "dispatches (EXECUTOR_DISPATCH=false).",
        ),
    ] = False,
) -> None:
    """Start the executor server (API, builder and dispatcher) on EXECUTOR_HOST:EXECUTOR_PORT."""
    import uvicorn

    from executor.api.app import HTTP_PROTOCOL, create_app
    from executor.service.wiring import ExecutorService

    settings = server_settings()
    if no_dispatch:
        settings = settings.with_values(dispatch=False)
    service = ExecutorService(settings)
    service.engine.connect()  # the engine's reason now, not a failed startup later
    if service.operator_key_generated:
        console.print(
            f"Generated the operator API key (shown once, kept in {settings.operator_key_file}):"
            f"\n  {service.operator_key}"
        )
    api = create_app(service)
    settle_heap()
    uvicorn.run(api, host=settings.host, port=settings.port, log_level="info", http=HTTP_PROTOCOL)


# In the order --help lists them: serving, the plugin's life, its events and runs.
app.command()(plugins.push)
app.command()(plugins.activate)
app.command()(plugins.deactivate)
app.command("list")(plugins.list_plugins)
app.command()(runs.event)
app.command()(runs.logs)
app.command()(runs.runs)
app.command()(plugins.limits)
app.command()(runs.status)
builds.register(app)
tenants.register(app)
webhooks.register(app)
cluster.register(app)
local.register(app)
scaffold.register(app)
stats.register(app)
