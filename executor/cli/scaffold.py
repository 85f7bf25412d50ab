"""``plugin-executor init NAME [--template blank|qa|consensus]``: a new plugin folder.

It gets the template's ``main.py``, ``test_plugin.py`` (unit tests through
``plugin_runtime.testing``, passing as written), ``requirements.txt`` and sample events in
``events/`` (the ``onSubmit`` sample of ``sample-event`` plus the template's own), in the
shape ``plugin-executor run --event`` takes. An existing non-empty folder is never written to.
"""

from __future__ import annotations

import enum
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["Template", "register", "write_plugin"]

COMMON_EVENTS = ("onSubmit",)
PLUGIN_FILES = ("main.py", "test_plugin.py")
EXIT_REFUSED = 2

err = Console(stderr=True, highlight=False, soft_wrap=True)


class Template(enum.StrEnum):
    BLANK = "blank"
    QA = "qa"
    CONSENSUS = "consensus"


class FolderNotEmpty(Exception):
    """The target folder exists and holds something: nothing is written."""


def _files(template: Template) -> dict[str, str]:
    """Relative path → text of every file the new plugin folder gets."""
    templates = resources.files("executor.templates")
    samples = resources.files("executor.samples")
    own = templates.joinpath(template.value)
    files = {name: own.joinpath(name).read_text() for name in PLUGIN_FILES}
    requirements = own.joinpath("requirements.txt")
    source = requirements if requirements.is_file() else templates.joinpath("requirements.txt")
    files["requirements.txt"] = source.read_text()
    for event in COMMON_EVENTS:
        files[f"events/{event}.json"] = samples.joinpath(f"{event}.json").read_text()
    files.update(_own_events(own))  # a template's own event of the same name wins
    return files


def _own_events(own: Traversable) -> dict[str, str]:
    events = own.joinpath("events")
    if not events.is_dir():
        return {}
    return {
        f"events/{entry.name}": entry.read_text()
        for entry in events.iterdir()
        if entry.name.endswith(".json")
    }


def write_plugin(folder: Path, template: Template) -> list[Path]:
    """Write the template into ``folder`` (created, or existing and empty); return the
    files written. Raises :class:`FolderNotEmpty` (or ``NotADirectoryError`` for a file)."""
    if folder.exists():
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} exists and is not a folder")
        entries = sorted(entry.name for entry in folder.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise FolderNotEmpty(f"{folder} is not empty ({len(entries)} entries: {shown})")
    written = []
    for name, text in sorted(_files(template).items()):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def init(
    name: Annotated[
        Path, typer.Argument(help="The new plugin folder (must not exist or be empty).")
    ],
    template: Annotated[
        Template, typer.Option("--template", "-t", help="What the plugin starts as.")
    ] = Template.BLANK,
) -> None:
    """Start a plugin: main.py, requirements.txt, sample events and a test_plugin.py."""
    try:
        written = write_plugin(name, template)
    except (FolderNotEmpty, NotADirectoryError) as exc:
        err.print(
            f"[red]error:[/] {escape(str(exc))}: nothing was written; "
            "choose a new folder name or empty that one"
        )
        raise typer.Exit(EXIT_REFUSED) from exc
    for path in written:
        err.print(f"  wrote {escape(str(path))}")
    event = name / "events" / "onSubmit.json"
    err.print(
        f"[green]plugin {escape(str(name))} created from template {template.value}[/]\n"
        f"  test it in-process:   cd {escape(str(name))} && pytest\n"
        f"  run it in the sandbox: plugin-executor run {escape(str(name))} --event "
        f"{escape(str(event))}\n"
        f"  upload it:            plugin-executor push {escape(str(name))}"
    )


def register(app: typer.Typer) -> None:
    app.command()(init)
