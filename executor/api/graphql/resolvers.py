"""Resolvers of the Kili plugin operations: each calls the service as the REST routes do.

Results are shaped as Kili's (camelCase fields); errors are the executor's own
(NotFound, MissingScope, PluginRejected, ...), formatted by ``route.format_error``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from graphql import GraphQLResolveInfo

from executor.api.graphql.context import RequestContext
from executor.errors import Conflict, checked_identifier
from executor.identifiers import IdKind
from executor.schemas.plugins import ActivationIn
from executor.service import reads
from executor.statuses import Scope
from executor.store import logs as log_store
from executor.store.tables import LogRecord

__all__ = ["MUTATIONS", "QUERIES", "kili_log"]

Resolver = Callable[..., Any]
Info = GraphQLResolveInfo[RequestContext]
DEFAULT_PAGE = 100
MAX_PAGE = 1000
# Kili's upload_plugin prints a hint to call update_plugin when the message has this text.
KILI_DUPLICATE_TEXT = "an entity Plugin already exists with value"
UPLOAD_FILENAME = "plugin.zip"  # the SDK always PUTs a zip


def _context(info: Info) -> RequestContext:
    return info.context


def _page(data: dict[str, Any]) -> tuple[int, int]:
    """(limit, skip) from Kili's paging fields, held to the REST API's bounds."""
    limit = data.get("limit") or DEFAULT_PAGE
    return max(1, min(int(limit), MAX_PAGE)), max(0, int(data.get("skip") or 0))


def _plugin_name(args: dict[str, Any], key: str = "pluginName") -> str:
    """The plugin name in ``args[key]``, checked as REST checks it (InvalidIdentifier)."""
    return checked_identifier(IdKind.PLUGIN, args[key], key)


def _project_id(args: dict[str, Any]) -> str:
    return checked_identifier(IdKind.PROJECT, args["projectId"], "projectId")


def kili_log(record: LogRecord) -> dict[str, Any]:
    """A log record with the fields of Kili's ``getPluginLogs``."""
    return {
        "content": record.content,
        "createdAt": record.created_at,
        "logType": record.log_type,
        "metadata": {"assetId": record.asset_id, "labelId": record.label_id},
        "pluginName": record.plugin_name,
        "projectId": record.project_id,
        "runId": record.run_id,
    }


def create_plugin(_obj: None, info: Info, data: dict[str, Any]) -> str:
    """An upload URL for a new plugin (the name must be free)."""
    context = _context(info)
    caller = context.caller(Scope.PLUGINS_WRITE)
    name = _plugin_name(data)
    if reads.plugin_exists(context.service.db, caller, name):
        raise Conflict(
            f"{KILI_DUPLICATE_TEXT} {name!r}: upload a new version with "
            "kili.update_plugin (generateUpdateUrl)"
        )
    reads.check_name_free(context.service.db, caller, name)  # NameTaken: 'QA_bot' for 'qa_bot'
    return context.upload_url + context.desk.issue(caller, name, update=False)


def generate_update_url(_obj: None, info: Info, data: dict[str, Any]) -> str:
    """An upload URL for a new version of an existing plugin."""
    context = _context(info)
    caller = context.caller(Scope.PLUGINS_WRITE)
    name = _plugin_name(data)
    reads.plugin_status(context.service.db, caller, name)  # NotFound for no such plugin
    return context.upload_url + context.desk.issue(caller, name, update=True)


def _runner(info: Info, data: dict[str, Any], *, update: bool) -> str:
    """The uploaded archive becomes the plugin's next version; its build starts."""
    context = _context(info)
    service = context.service
    caller = context.caller(Scope.PLUGINS_WRITE)
    name = _plugin_name(data)
    archive = context.desk.take(caller, name, update=update)
    version = service.uploads.upload(caller, name, UPLOAD_FILENAME, archive)
    return str(version.status)


def create_plugin_runner(_obj: None, info: Info, data: dict[str, Any]) -> str:
    return _runner(info, data, update=False)


def update_plugin_runner(_obj: None, info: Info, data: dict[str, Any]) -> str:
    return _runner(info, data, update=True)


def get_plugin_runner_status(_obj: None, info: Info, name: str) -> str:
    context = _context(info)
    caller = context.caller(Scope.PLUGINS_READ)
    name = checked_identifier(IdKind.PLUGIN, name, "name")
    return str(reads.plugin_status(context.service.db, caller, name))


def activate_plugin_on_project(_obj: None, info: Info, where: dict[str, Any]) -> str:
    """Activate on the handler types the plugin defines, following its current version."""
    context = _context(info)
    caller = context.caller(Scope.PLUGINS_WRITE)
    name, project_id = _plugin_name(where), _project_id(where)
    context.service.catalog.activate(caller, name, project_id, ActivationIn())
    return name


def deactivate_plugin_on_project(_obj: None, info: Info, where: dict[str, Any]) -> str:
    context = _context(info)
    caller = context.caller(Scope.PLUGINS_WRITE)
    name, project_id = _plugin_name(where), _project_id(where)
    context.service.catalog.deactivate(caller, name, project_id)
    return name


def delete_plugin(_obj: None, info: Info, where: dict[str, Any]) -> str:
    context = _context(info)
    caller = context.caller(Scope.PLUGINS_WRITE)
    name = _plugin_name(where)
    context.service.catalog.delete(caller, name)
    return name


def get_plugin_logs(_obj: None, info: Info, data: dict[str, Any]) -> list[dict[str, Any]]:
    """A page of the plugin's logs on the project, oldest first."""
    context = _context(info)
    caller = context.caller(Scope.LOGS_READ)
    where = log_store.LogFilter(
        tenant_id=caller.tenant_id,
        project_id=_project_id(data),
        plugin_name=_plugin_name(data),
        start_date=data.get("createdAt"),
    )
    limit, skip = _page(data)
    return [kili_log(r) for r in reads.log_page(context.service.db, where, limit, skip)]


def get_plugin_build_errors(_obj: None, info: Info, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The log lines of the plugin's failed builds (each failed version's error last)."""
    context = _context(info)
    caller = context.caller(Scope.PLUGINS_READ)
    name = _plugin_name(data)
    since: datetime | None = data.get("createdAt")
    limit, skip = _page(data)
    lines = reads.build_errors(context.service.db, caller, name, since)[skip : skip + limit]
    return [
        {"content": e.content, "createdAt": e.created_at, "logType": "ERROR", "pluginName": name}
        for e in lines
    ]


def list_plugins(_obj: None, info: Info) -> list[dict[str, Any]]:
    context = _context(info)
    caller = context.caller(Scope.PLUGINS_READ)
    return [
        {
            "id": p.id,
            "name": p.name,
            "projectIds": p.project_ids,
            "createdAt": p.created_at,
            "updatedAt": p.updated_at,
            "status": p.status,
        }
        for p in reads.plugin_overviews(context.service.db, caller)
    ]


def count_plugins(_obj: None, info: Info, where: dict[str, Any] | None = None) -> int:
    context = _context(info)
    caller = context.caller(Scope.PLUGINS_READ)
    name = (where or {}).get("name")
    plugins = reads.plugin_overviews(context.service.db, caller)
    return sum(1 for p in plugins if name is None or p.name == name)


def create_webhook(_obj: None, info: Info, data: dict[str, Any]) -> str:
    """A webhook plugin (executor.service.webhooks); the answer carries its signing secret,
    shown this once."""
    context = _context(info)
    caller = context.caller(Scope.PLUGINS_WRITE)
    saved = context.service.webhooks.create_webhook(
        caller,
        data["webhookUrl"],
        _plugin_name(data),
        header=data.get("header"),
        handler_types=data.get("handlerTypes"),
        event_matcher=data.get("eventMatcher"),
    )
    return (
        f"webhook {saved.name!r} created (v{saved.version}); verify deliveries with the "
        f"signing secret {saved.signing_secret} (shown once; see docs/webhooks.md)"
    )


def update_webhook(_obj: None, info: Info, data: dict[str, Any]) -> str:
    """A new version of the webhook: Kili sends every field, so each replaces the old one."""
    context = _context(info)
    caller = context.caller(Scope.PLUGINS_WRITE)
    saved = context.service.webhooks.update_webhook(
        caller,
        data["webhookUrl"],
        _plugin_name(data),
        new_header=data.get("header") or "",
        handler_types=data.get("handlerTypes"),
        event_matcher=data.get("eventMatcher"),
    )
    return f"webhook {saved.name!r} updated (v{saved.version})"


QUERIES: dict[str, Resolver] = {
    "getPluginRunnerStatus": get_plugin_runner_status,
    "getPluginLogs": get_plugin_logs,
    "getPluginBuildErrors": get_plugin_build_errors,
    "listPlugins": list_plugins,
    "countPlugins": count_plugins,
}
MUTATIONS: dict[str, Resolver] = {
    "createPlugin": create_plugin,
    "generateUpdateUrl": generate_update_url,
    "createPluginRunner": create_plugin_runner,
    "updatePluginRunner": update_plugin_runner,
    "activatePluginOnProject": activate_plugin_on_project,
    "deactivatePluginOnProject": deactivate_plugin_on_project,
    "deletePlugin": delete_plugin,
    "createWebhook": create_webhook,
    "updateWebhook": update_webhook,
}
