"""Plugin commands: push (with its build log), activate, deactivate, list, limits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from executor.cli import builds, common
from executor.cli.client import segment
from executor.cli.common import JsonOpt, PluginArg, ProjectOpt, checks
from executor.cli.render import console, err_console, print_json, print_table, terminal_text
from executor.identifiers import IdKind
from executor.statuses import BuildStatus

__all__ = ["activate", "deactivate", "limits", "list_plugins", "push"]


def push(
    path: Annotated[Path, typer.Argument(help="Plugin folder, archive, or one .py file.")],
    name: Annotated[
        str | None,
        typer.Option(
            help="Plugin name; default: the folder/file name.", callback=checks(IdKind.PLUGIN)
        ),
    ] = None,
    runtime: Annotated[
        str | None,
        typer.Option(
            help="Runtime flavor (plugin-executor runtimes); default: plugin.toml's, else the "
            "server's."
        ),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the build to end.")] = True,
    verbose: builds.VerboseOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Upload a plugin as a new version and stream its build log: its steps with their
    times and the commands' output, --verbose adds the engine's layer lines (exit 1 if it
    FAILED)."""
    from executor.intake.upload import pack_directory

    if path.is_dir():
        data, filename = pack_directory(path), f"{path.resolve().name}.tar.gz"
    elif path.is_file():
        data, filename = path.read_bytes(), path.name
    else:
        err_console.print(f"[red]error:[/] {path} is neither a folder nor a file")
        raise typer.Exit(2)
    plugin_name = name or path.resolve().name.split(".")[0]
    client = common.client()
    created = common.call(client.upload, plugin_name, filename, data, runtime)
    plugin_name = str(created["plugin"])  # as stored (Unicode NFC)
    if created["reused"] and not as_json:
        console.print(
            f"{plugin_name}: same source and runtime as v{created['version']}, reused "
            "(no new version, no build)",
            markup=False,
        )
    if not wait:
        print_json(created) if as_json else console.print(
            f"{plugin_name} v{created['version']} ({created['runtime']}): {created['status']}",
            markup=False,  # a name is free text: '[' is no markup
        )
        return
    # A reused ACTIVE version's build log was shown when it was built.
    echo = not as_json and (not created["reused"] or created["status"] == BuildStatus.DEPLOYING)
    build = builds.follow_build(
        client, plugin_name, int(created["version"]), echo=echo, verbose=verbose
    )
    if as_json:
        print_json(build)
    if build["status"] == BuildStatus.FAILED:
        if not as_json:
            err_console.print(f"[red]build FAILED:[/] {escape(terminal_text(build['error']))}")
        raise typer.Exit(1)
    if not as_json:
        console.print(f"[green]{escape(plugin_name)} v{build['version']} is ACTIVE[/]")


def activate(
    name: PluginArg,
    project: ProjectOpt,
    event: Annotated[
        list[str] | None, typer.Option("--event", "-e", help="Event type or glob (repeatable).")
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="Pin this ACTIVE version; default: follow the current.")
    ] = None,
    runtime: Annotated[
        str | None, typer.Option(help="OCI runtime the runs need (runc, runsc).")
    ] = None,
    node_label: Annotated[
        list[str] | None,
        typer.Option("--node-label", help="KEY=VALUE a node must carry (repeatable)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Activate a plugin on a project (default events: its handler types); --runtime and
    --node-label say which nodes may run it (docs/scaling.md)."""
    selector = _node_selector(node_label or [])
    body: dict[str, Any] | None = {
        "events": event or None,
        "version": version,
        "runtime": runtime,
        "node_selector": selector or None,
    }
    if not event and version is None and runtime is None and not selector:
        body = None
    result = common.call(
        common.client().request, "PUT", f"/v1/projects/{project}/plugins/{segment(name)}", json=body
    )
    if as_json:
        print_json(result)
    else:
        pin = f" (pinned to v{result['pinned_version']})" if result["pinned_version"] else ""
        console.print(
            f"{name} active on {project} for {', '.join(result['events'])}{pin}", markup=False
        )


def _node_selector(labels: list[str]) -> dict[str, str]:
    selector: dict[str, str] = {}
    for label in labels:
        key, equals, value = label.partition("=")
        if not key or not equals:
            err_console.print(f"[red]error:[/] --node-label {escape(label)!r}: write KEY=VALUE")
            raise typer.Exit(2)
        selector[key] = value
    return selector


def deactivate(name: PluginArg, project: ProjectOpt) -> None:
    """Deactivate a plugin on a project."""
    common.call(
        common.client().request, "DELETE", f"/v1/projects/{project}/plugins/{segment(name)}"
    )
    console.print(f"{name} no longer active on {project}", markup=False)


def list_plugins(
    tenant: common.ActAsOpt = None, wide: common.WideOpt = False, as_json: JsonOpt = False
) -> None:
    """List plugins with the version serving (what activations run), a newer version that
    does not serve (e.g. a FAILED build), and their projects."""
    plugins = common.call(common.client(tenant).request, "GET", "/v1/plugins")
    if as_json:
        print_json(plugins)
        return
    print_table(
        "Plugins",
        ["name", "kind", "version", "status", "newer", "projects"],
        ([p["name"], p["kind"], *_serving(p), ", ".join(p["projects"])] for p in plugins),
        keep=("name",),
        wide=wide,
    )


def _serving(plugin: dict[str, Any]) -> list[Any]:
    """The version serving and its status, then the latest one if it is not that one."""
    current, latest = plugin["current_version"], plugin["latest_version"]
    if current is None:
        return [latest, plugin["status"], ""]
    newer = f"v{latest} {plugin['status']}" if latest != current else ""
    return [current, "ACTIVE", newer]


def limits(
    name: PluginArg,
    memory_mib: Annotated[int | None, typer.Option(help="Memory (no swap), MiB.")] = None,
    cpus: Annotated[float | None, typer.Option(help="CPU quota, cores.")] = None,
    pids: Annotated[int | None, typer.Option(help="Processes and threads.")] = None,
    timeout_s: Annotated[float | None, typer.Option(help="Wall time, seconds.")] = None,
    tmpfs_mib: Annotated[int | None, typer.Option(help="/tmp size, MiB.")] = None,
    nofile: Annotated[int | None, typer.Option(help="Open files.")] = None,
    log_cap_bytes: Annotated[int | None, typer.Option(help="Log bytes per run.")] = None,
    envelope_cap_bytes: Annotated[int | None, typer.Option(help="Envelope bytes.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Drop every override.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a plugin's sandbox limits, or set overrides (at most the operator's maxima).

    Setting replaces all overrides: name every limit you want tightened.
    """
    wanted = {
        "memory_mib": memory_mib,
        "cpus": cpus,
        "pids": pids,
        "timeout_s": timeout_s,
        "tmpfs_mib": tmpfs_mib,
        "nofile": nofile,
        "log_cap_bytes": log_cap_bytes,
        "envelope_cap_bytes": envelope_cap_bytes,
    }
    body = {k: v for k, v in wanted.items() if v is not None}
    path = f"/v1/plugins/{segment(name)}/limits"
    if body or clear:
        result = common.call(common.client().request, "PUT", path, json=body)
    else:
        result = common.call(common.client().request, "GET", path)
    if as_json:
        print_json(result)
        return
    print_table(
        f"Sandbox limits of {name}",
        ["limit", "effective", "override", "maximum"],
        (
            [field, value, result["overrides"].get(field), result["maxima"][field]]
            for field, value in result["effective"].items()
        ),
    )
