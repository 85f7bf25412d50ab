"""Local commands for plugin authors, no server needed: ``run`` and ``sample-event``.

``run`` builds a plugin folder with the server's recipe and runs it once in the server's
sandbox on the local Docker Engine (``executor.cli.local_run``). Its work is imported when it
runs: the builder, the sandbox and the gateway would add ~0.7 s to every other command's start.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from executor.cli.builds import VerboseOpt

__all__ = ["SAMPLE_EVENTS", "register"]

SAMPLE_EVENTS = (
    "onSubmit",
    "onReview",
    "onCustomInterfaceClick",
    "onSendBackToQueue",
    "asset.issue.created",
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def sample_event(
    event_type: Annotated[str, typer.Argument(help=f"One of: {', '.join(SAMPLE_EVENTS)}.")],
) -> None:
    """Print a sample event of that type (JSON), to edit and pass to 'run --event'."""
    if event_type not in SAMPLE_EVENTS:
        err.print(
            f"[red]error:[/] no sample for {escape(event_type)!r}: choose one of "
            f"{', '.join(SAMPLE_EVENTS)}"
        )
        raise typer.Exit(2)
    sys.stdout.write(resources.files("executor.samples").joinpath(f"{event_type}.json").read_text())


def run(
    path: Annotated[Path, typer.Argument(help="Plugin folder (with main.py).")],
    event: Annotated[Path, typer.Option(help="Event JSON file (see 'sample-event').")],
    api_url: Annotated[
        str | None,
        typer.Option(help="Local platform API base URL self.api reaches (through the gateway)."),
    ] = None,
    record: Annotated[
        bool | None,
        typer.Option(
            "--record/--no-record",
            help="self.kili and self.api record calls and answer from --answers; nothing "
            "reaches a platform. Default: on without --api-url.",
        ),
    ] = None,
    answers: Annotated[
        Path | None,
        typer.Option(
            help='Record mode\'s answers (JSON): {"kili": {"labels": [...]}, '
            '"api": {"GET assets/a1": {...}}}; default: [] for Kili list queries, 0 for '
            "counts, null otherwise."
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Build a plugin folder and run it once on an event, locally, in the real sandbox."""
    from executor.cli.local_run import run_locally

    run_locally(path, event, api_url, record, answers, verbose=verbose)


def register(app: typer.Typer) -> None:
    app.command("sample-event")(sample_event)
    app.command()(run)
