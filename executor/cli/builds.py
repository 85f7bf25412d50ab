"""Build and version commands: build-log (with follow), versions, rollback."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from executor.buildlog import LineKind, line_kind
from executor.cli.client import ApiClient, segment
from executor.cli.common import PluginArg, WideOpt, call, client
from executor.cli.render import console, err_console, print_json, print_table, terminal_text
from executor.statuses import BuildStatus

__all__ = ["VerboseOpt", "follow_build", "register", "shown_lines"]

BUILD_POLL_S = 0.5
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="Also show the engine's layer lines (Step 3/7, ---> 1a2b3c)."
    ),
]


def follow_build(
    api: ApiClient, name: str, version: int, *, echo: bool, verbose: bool = False
) -> Any:
    """Poll the build log until the version leaves DEPLOYING, writing each new whole line
    of the log to stdout as it arrives (when ``echo``: control characters escaped, the
    engine's layer lines only when ``verbose``); returns the final build-log body."""
    shown = 0
    while True:
        build = call(api.build_log, name, version)
        text = str(build["log"])
        ended = build["status"] != BuildStatus.DEPLOYING
        # Whole lines only while it runs: a line's kind shows at its start, and a part
        # line would be printed again whole.
        upto = len(text) if ended else text.rfind("\n", shown) + 1
        if echo and upto > shown:
            sys.stdout.write(terminal_text(shown_lines(text[shown:upto], verbose=verbose)))
            sys.stdout.flush()
            shown = upto
        if ended:
            return build
        time.sleep(BUILD_POLL_S)


def shown_lines(text: str, *, verbose: bool) -> str:
    """The lines of a build log a person reads: all of them when ``verbose``, else all but
    the engine's layer lines (steps with their times, pip's output and every error stay)."""
    if verbose:
        return text
    # Lines end at "\n" only, as the builder splits them (not at "\r" and its kin).
    *lines, rest = text.split("\n")
    kept = "".join(line + "\n" for line in lines if line_kind(line) != LineKind.DETAIL)
    return kept + (rest if line_kind(rest) != LineKind.DETAIL else "")


def _latest_version(api: ApiClient, name: str) -> int:
    plugin = call(api.plugin, name)
    if plugin["latest_version"] is None:
        err_console.print(f"[red]error:[/] plugin {escape(name)} has no version yet")
        raise typer.Exit(1)
    return int(plugin["latest_version"])


def build_log(
    name: PluginArg,
    version: Annotated[int | None, typer.Option(help="Version; default: the latest.")] = None,
    follow: Annotated[bool, typer.Option(help="Stream the log until the build ends.")] = False,
    verbose: VerboseOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Print a version's build log (its steps with their times and the commands' output;
    --verbose adds the engine's layer lines) and its resolved dependencies (pip freeze)."""
    api = client()
    number = version if version is not None else _latest_version(api, name)
    if follow and not as_json:
        build = follow_build(api, name, number, echo=True, verbose=verbose)
    else:
        build = call(api.build_log, name, number)
        if not as_json:
            text = terminal_text(shown_lines(build["log"], verbose=verbose))
            # Lines as the build wrote them: a wrapped line would be two lines.
            console.print(text, markup=False, highlight=False, soft_wrap=True, end="")
    if as_json:
        print_json(build)
        return
    if build["pip_freeze"]:
        console.print("Resolved dependencies (pip freeze):", style="bold")
        console.print(terminal_text(build["pip_freeze"]), markup=False, highlight=False, end="")
    console.print(f"{name} v{number}: {build['status']}", markup=False)
    if build["status"] == BuildStatus.FAILED:
        raise typer.Exit(1)


def versions(name: PluginArg, wide: WideOpt = False, as_json: JsonOpt = False) -> None:
    """List a plugin's versions: status, which is current, image kept, dependencies."""
    plugin = call(client().plugin, name)
    if as_json:
        print_json(plugin["versions"])
        return
    rows = (
        [
            v["version"],
            v["status"],
            v["runtime"],
            "*" if v["current"] else "",
            _image(v),
            v["source_sha256"][:12],
            " ".join((v["pip_freeze"] or "").split()),
        ]
        for v in plugin["versions"]
    )
    print_table(
        f"Versions of {name}",
        ["version", "status", "runtime", "current", "image", "source", "dependencies"],
        rows,
        keep=("version",),
        wide=wide,
    )


def _image(version: dict[str, Any]) -> str:
    """Whether the version has an image that can run: none when its build made none."""
    if version["status"] != BuildStatus.ACTIVE:
        return "none"
    return "removed" if version["image_removed"] else "kept"


def runtimes(as_json: JsonOpt = False) -> None:
    """List the runtime flavors a plugin can build FROM, with their package versions."""
    flavors = call(client().request, "GET", "/v1/runtimes")
    if as_json:
        print_json(flavors)
        return
    rows = (
        [
            f["name"] + (" (default)" if f["default"] else ""),
            f["image"] if f["available"] else f"{f['image']} (not built)",
            " ".join(f"{name}=={version}" for name, version in f["packages"].items()),
        ]
        for f in flavors
    )
    print_table("Runtime flavors", ["runtime", "image", "packages"], rows)


ToOpt = Annotated[
    int | None, typer.Option("--to", help="The ACTIVE version to serve (older or newer).")
]


def rollback(name: PluginArg, to: ToOpt = None, as_json: JsonOpt = False) -> None:
    """Serve an older ACTIVE version (default: the one before the current one), or with
    --to any ACTIVE version; warns when most of its latest runs failed."""
    _serve(name, to, as_json)


def roll_forward(name: PluginArg, to: ToOpt = None, as_json: JsonOpt = False) -> None:
    """Serve a newer ACTIVE version (default: the newest, which new uploads then replace)."""
    if to is None:
        to = _newest_runnable(call(client().plugin, name))
    _serve(name, to, as_json)


def _newest_runnable(plugin: dict[str, Any]) -> int:
    current = plugin["current_version"] or 0
    newer = [
        v["version"]
        for v in plugin["versions"]
        if v["status"] == BuildStatus.ACTIVE and not v["image_removed"] and v["version"] > current
    ]
    if not newer:
        err_console.print(
            f"[red]error:[/] {escape(plugin['name'])} already serves its newest ACTIVE version"
            f" (v{current}): nothing to roll forward to"
        )
        raise typer.Exit(1)
    return int(max(newer))


def _serve(name: str, to: int | None, as_json: bool) -> None:
    body = {"to": to} if to is not None else None
    result = call(client().request, "POST", f"/v1/plugins/{segment(name)}/rollback", json=body)
    if result["warning"]:
        err_console.print(f"[yellow]warning:[/] {escape(result['warning'])}")
    if as_json:
        print_json(result)
        return
    before, after = result["previous_version"], result["current_version"]
    direction = "forward" if after > before else "back"
    console.print(f"{name}: rolled {direction} from v{before} to v{after}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("build-log")(build_log)
    app.command()(versions)
    app.command()(runtimes)
    app.command()(rollback)
    app.command("roll-forward")(roll_forward)
