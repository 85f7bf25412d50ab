"""What ``plugin-executor run`` does (its command line is in ``executor.cli.local``).

It checks the plugin folder like an upload, builds it with the server's build recipe
(``executor.build.builder.build_plugin_image``) and runs it once in the server's sandbox
(``executor.run.sandbox.Sandbox``) on the local Docker Engine, printing build output, then the
plugin's log lines as they come, then its terminal status. Without ``--api-url`` it runs in
record mode (``executor.cli.record``): ``self.kili`` and ``self.api`` are recorders and each
call is printed as a ``CALL`` line among the logs. Exit code: the plugin's own
(0 succeeded, 1 its handler raised, ...), 124 timed out, 137 out of memory, 3 when the
plugin could not be checked or built, 4 when the engine failed.
"""

from __future__ import annotations

import json
import secrets
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from executor.build.builder import build_plugin_image
from executor.build.context import BuildContext
from executor.cli.builds import shown_lines
from executor.cli.config import server_settings
from executor.cli.local_gateway import LocalGateway
from executor.cli.record import AnswersError, LocalEnvelope, RecordAnswers, RecordedCalls
from executor.cli.record import read_answers as read_answers_file
from executor.cli.render import terminal_text
from executor.engine import Engine
from executor.errors import ExecutorError, PluginRejected, SandboxError
from executor.intake.bytecode import compile_sources
from executor.intake.manifest import choose_flavor
from executor.intake.upload import UploadLimits, pack_directory, read_upload, source_archive
from executor.run.exit_cause import RunOutcome
from executor.run.outcome import run_failure
from executor.run.output import OutputCollector, OutputLine
from executor.run.sandbox import Sandbox
from executor.schemas.envelope import ApiInfo, Envelope, EnvelopeEvent
from executor.schemas.events import EventIn
from executor.settings import Settings
from executor.statuses import InvocationStatus
from executor.tokens import mint_token

__all__ = ["exit_code_of", "run_locally"]

LOCAL_PROJECT = "local-project"
EXIT_NOT_BUILT = 3
EXIT_ENGINE = 4
EXIT_TIMED_OUT = 124
EXIT_OOM = 137

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def run_locally(
    path: Path,
    event: Path,
    api_url: str | None,
    record: bool | None,
    answers: Path | None,
    *,
    verbose: bool,
) -> None:
    """Build a plugin folder and run it once on an event, locally, in the real sandbox."""
    settings = server_settings()
    event_in = _read_event(event)
    recording = _recording(record, api_url, answers)
    build = _check(path, settings)
    engine = _engine()
    try:
        image = _build(engine, settings, build, verbose=verbose)
        if api_url is None:
            outcome = _run_once(engine, settings, build, image, event_in, None, recording)
        else:
            with LocalGateway(settings, api_url) as gateway:
                outcome = _run_once(engine, settings, build, image, event_in, gateway, None)
    finally:
        engine.close()
    style = "green" if outcome.status == InvocationStatus.SUCCEEDED else "red"
    reason = f": {outcome.error}" if outcome.error else ""
    err.print(f"[{style}]run {outcome.status}{escape(terminal_text(reason))}[/]")
    raise typer.Exit(exit_code_of(outcome))


def exit_code_of(outcome: RunOutcome) -> int:
    """The exit code ``run`` ends with for a run's outcome."""
    if outcome.status == InvocationStatus.TIMED_OUT:
        return EXIT_TIMED_OUT
    if outcome.status == InvocationStatus.OOM_KILLED:
        return EXIT_OOM
    if outcome.status == InvocationStatus.SUCCEEDED:
        return 0
    return outcome.exit_code or 1


def _read_event(path: Path) -> EventIn:
    try:
        body: Any = json.loads(path.read_text())
        if isinstance(body, dict):
            body.setdefault("project_id", LOCAL_PROJECT)
        return EventIn.model_validate(body)
    except (OSError, ValueError, ValidationError) as exc:
        err.print(f"[red]error:[/] cannot use {path} as an event: {escape(str(exc))}")
        raise typer.Exit(2) from exc


def _recording(
    record: bool | None, api_url: str | None, answers: Path | None
) -> RecordAnswers | None:
    """Record mode's answers, or None for a run whose clients are the real ones."""
    if record and api_url is not None:
        err.print("[red]error:[/] --record and --api-url exclude each other: choose one")
        raise typer.Exit(2)
    recording = api_url is None if record is None else record
    if not recording:
        if answers is not None:
            err.print("[red]error:[/] --answers is for record mode: drop --no-record/--api-url")
            raise typer.Exit(2)
        return None
    try:
        return read_answers_file(answers)
    except AnswersError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc


def _check(path: Path, settings: Settings) -> BuildContext:
    try:
        limits = UploadLimits(allow_url_requirements=settings.build.allow_url_requirements)
        source = read_upload(f"{path.name}.tar.gz", pack_directory(path), limits)
    except PluginRejected as exc:
        err.print(f"[red]plugin refused:[/] {escape(exc.message)}")
        raise typer.Exit(EXIT_NOT_BUILT) from exc
    name = "".join(c if c.isalnum() else "-" for c in path.resolve().name.lower()).strip("-")
    # Compiled here, as the server's builds compile in a check worker: the author's own
    # code, on the author's machine, which runs it next.
    bytecode = compile_sources(source.files)
    for warning in bytecode.warnings:
        err.out(terminal_text(warning))
    return BuildContext(
        version_id=f"local-{source.sha256[:12]}",
        plugin_id=f"local-{name or 'plugin'}",
        number=0,
        requirements=source.requirements,
        source=source_archive(source),
        runtime=choose_flavor(None, source.runtime, settings.images.runtime_default_flavor),
        bytecode=bytecode.files,
    )


def _engine() -> Engine:
    try:
        return Engine().connect()
    except SandboxError as exc:
        err.print(f"[red]error:[/] {escape(exc.message)}")
        raise typer.Exit(EXIT_ENGINE) from exc


def _build(engine: Engine, settings: Settings, build: BuildContext, *, verbose: bool) -> str:
    err.print(f"building {build.tag}", style="bold")
    try:
        return build_plugin_image(
            engine,
            settings,
            build,
            lambda text: err.out(terminal_text(shown_lines(text, verbose=verbose)), end=""),
            threading.Event(),
        )
    except ExecutorError as exc:
        err.print(f"[red]build FAILED:[/] {escape(exc.message)}")
        raise typer.Exit(EXIT_NOT_BUILT) from exc


def _run_once(
    engine: Engine,
    settings: Settings,
    build: BuildContext,
    image: str,
    event: EventIn,
    gateway: LocalGateway | None,
    recording: RecordAnswers | None,
) -> RunOutcome:
    run_id = f"local-{secrets.token_hex(6)}"
    deadline = datetime.now(UTC) + timedelta(seconds=settings.sandbox.timeout_s)
    if gateway is None:
        api = ApiInfo(url=settings.platform.api_url, token=mint_token())
    else:
        api = gateway.api_info(run_id, build.plugin_id, event.project_id, event.type, deadline)
    envelope = Envelope(
        invocation_id=run_id,
        plugin=build.plugin_id,
        version=build.number,
        project_id=event.project_id,
        event=EnvelopeEvent(
            type=event.type, asset_id=event.asset_id, label=event.label, payload=event.payload
        ),
        api=api,
        deadline=deadline,
    )
    if recording is not None:
        envelope = LocalEnvelope(**dict(envelope), record=recording)
    recorded = RecordedCalls()
    collector = OutputCollector(
        settings.sandbox.log_cap_bytes, on_control=recorded if recording is not None else None
    )

    def on_output(stream_id: int, data: bytes) -> bool:
        _print_lines(collector.feed(stream_id, data))
        return not collector.truncated

    err.print(f"running {event.type} on {image[:19]}", style="bold")
    try:
        sandbox = Sandbox(engine, settings.sandbox, gateway.socket_dir if gateway else None)
        outcome = sandbox.run(image, envelope.wire(), run_id, on_output)
    except SandboxError as exc:
        err.print(f"[red]error:[/] {escape(exc.message)}")
        raise typer.Exit(EXIT_ENGINE) from exc
    finally:
        calls = gateway.finish(run_id) if gateway else None
    _print_lines(collector.close())
    reported = collector.reported_error
    if reported is not None and run_failure(outcome, reported)[0] is reported:
        err.print(f"[red]the handler raised {escape(terminal_text(reported.summary()))}[/]")
    if calls is not None:
        err.print(f"{calls} platform API call(s) through the gateway")
    if recording is not None:
        err.print(f"record mode: {recorded.count} call(s) recorded, none reached a platform")
    return outcome


def _print_lines(lines: list[OutputLine]) -> None:
    for line in lines:
        text = Text(f"{line.log_type:<8} ")
        text.append(terminal_text(line.content, indent=len(text.plain)))
        out.print(text)
