"""The few Kili GraphQL operations the plugin templates and examples use, so the Kili SDK
(``self.kili``) works against this platform: ``POST /api/v1/projects/{p}/graphql``.

Where the SDK looks: ``Kili(api_endpoint=<api.url>/graphql)``, and a plugin's ``api.url`` is
its project's base (``.../api/v1/projects/{p}``), so the endpoint is per project and every
operation is confined to that project. Each SDK query names its root field ``data:
<operation>(...)``; that operation name is what is matched (no GraphQL parser: the answers
carry every field the SDK asks for). Errors come back as GraphQL errors (HTTP 200,
``{"errors": [{"message", "extensions": {"code", "context"}}]}``), as Kili's API does.

| SDK method | operation | effect |
|---|---|---|
| ``create_issues`` | ``createIssues`` | an issue on each label (labels of this project) |
| ``labels`` | ``projects``, ``countLabels``, ``labels`` | the project's labels, by asset / id |
| ``send_back_to_queue`` | ``sendAssetsBackToQueue`` | the assets go back to ``TODO`` |
| ``update_properties_in_assets`` | ``updatePropertiesInAssets`` | ``jsonMetadata`` replaced |
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from examples.labeling_platform import auth, labeling, schemas
from examples.labeling_platform.auth import ADMIN, SERVICE, CallerDep, Principal
from examples.labeling_platform.errors import PlatformError
from examples.labeling_platform.tables import Asset, Label

__all__ = ["OPERATIONS", "router"]

router = APIRouter(prefix="/api/v1")
OPERATION = re.compile(r"data\s*:\s*(\w+)")
QUERY_SCAN_CHARS = 4096  # the root field is near the start of every SDK query
MAX_PAGE = 500


class GraphQLRequest(BaseModel):
    query: str = Field(max_length=100_000)
    variables: dict[str, Any] | None = None


class GraphQLFailure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _where_project(variables: dict[str, Any], project_id: str) -> None:
    """Refuse an operation that names another project than the endpoint's."""
    named = (variables.get("where") or {}).get("project", {}).get("id")
    if named is not None and named != project_id:
        raise GraphQLFailure(
            "FORBIDDEN", f"this endpoint serves project {project_id!r}, not {named!r}"
        )


def _asset(session: Session, project_id: str, asset_id: str) -> Asset | None:
    asset = session.get(Asset, asset_id)
    return asset if asset is not None and asset.project_id == project_id else None


def _projects(session: Session, project_id: str, variables: dict[str, Any], _: Principal) -> Any:
    project = labeling.get_project(session, project_id)
    wanted = (variables.get("where") or {}).get("id", project_id)
    if wanted != project_id:
        return []
    return [
        {
            "id": project.id,
            "title": project.title,
            "inputType": "TEXT",
            "jsonInterface": project.json_interface,
        }
    ]


def _label_query(project_id: str, variables: dict[str, Any]) -> Any:
    where = variables.get("where") or {}
    query = select(Label).join(Asset, Label.asset_id == Asset.id)
    query = query.where(Asset.project_id == project_id)
    asset_id = (where.get("asset") or {}).get("id")
    if asset_id is not None:
        query = query.where(Label.asset_id == asset_id)
    if where.get("id") is not None:
        query = query.where(Label.id == where["id"])
    if where.get("typeIn"):
        query = query.where(Label.label_type.in_(where["typeIn"]))
    return query


def _count_labels(
    session: Session, project_id: str, variables: dict[str, Any], _: Principal
) -> Any:
    _where_project(variables, project_id)
    query = _label_query(project_id, variables).with_only_columns(func.count())
    return session.scalar(query) or 0


def _labels(session: Session, project_id: str, variables: dict[str, Any], _: Principal) -> Any:
    _where_project(variables, project_id)
    first = min(int(variables.get("first") or MAX_PAGE), MAX_PAGE)
    skip = max(int(variables.get("skip") or 0), 0)
    query = _label_query(project_id, variables).order_by(Label.created_at, Label.seq)
    return [
        {
            "id": label.id,
            "author": {"id": label.author, "email": label.author},
            "labelType": label.label_type,
            # Kili's API sends jsonResponse as a JSON string, which the SDK parses.
            "jsonResponse": json.dumps(label.json_response),
            "jsonResponseUrl": None,
            "createdAt": label.created_at.isoformat(),
            "labelOf": {"id": label.asset_id},
        }
        for label in session.scalars(query.offset(skip).limit(first))
    ]


def _create_issues(
    session: Session, project_id: str, variables: dict[str, Any], principal: Principal
) -> Any:
    principal.require(ADMIN, SERVICE)
    _where_project(variables, project_id)
    created = []
    for issue in variables.get("issues") or []:
        label = session.get(Label, issue.get("labelID") or "")
        asset = _asset(session, project_id, label.asset_id) if label is not None else None
        if label is None or asset is None:
            raise GraphQLFailure(
                "NOT_FOUND", f"no label {issue.get('labelID')!r} in project {project_id!r}"
            )
        body = schemas.IssueIn.model_validate(
            {"text": issue.get("text") or "(no text)", "labelId": label.id}
        )
        created.append({"id": labeling.add_issue(session, principal, asset, body).id})
    return created


def _send_back_to_queue(
    session: Session, project_id: str, variables: dict[str, Any], principal: Principal
) -> Any:
    principal.require(ADMIN, SERVICE, auth.REVIEWER)
    outcome: dict[str, list[dict[str, Any]]] = {"succeeded": [], "declined": [], "failed": []}
    for asset_id in (variables.get("where") or {}).get("idIn") or []:
        asset = _asset(session, project_id, asset_id)
        if asset is None:
            outcome["declined"].append({"assetId": asset_id, "externalId": None})
            continue
        labeling.send_back_to_queue(asset)
        outcome["succeeded"].append({"assetId": asset.id, "externalId": asset.external_id})
    return outcome


def _update_properties(
    session: Session, project_id: str, variables: dict[str, Any], principal: Principal
) -> Any:
    principal.require(ADMIN, SERVICE)
    wheres, data = variables.get("whereArray") or [], variables.get("dataArray") or []
    if len(wheres) != len(data):
        raise GraphQLFailure("BAD_REQUEST", "whereArray and dataArray differ in length")
    updated = []
    for where, values in zip(wheres, data, strict=True):
        unsupported = sorted(set(values) - {"jsonMetadata"})
        if unsupported:
            raise GraphQLFailure(
                "NOT_SUPPORTED",
                f"the reference platform updates jsonMetadata only, not {unsupported}",
            )
        asset = _asset(session, project_id, where.get("id") or "")
        if asset is None:
            raise GraphQLFailure("NOT_FOUND", f"no asset {where.get('id')!r} in {project_id!r}")
        if "jsonMetadata" in values:
            metadata = values["jsonMetadata"]
            asset.json_metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
            labeling.patch_asset(asset, schemas.AssetPatch())  # touches updated_at
        updated.append({"id": asset.id})
    return updated


Operation = Callable[[Session, str, dict[str, Any], Principal], Any]
OPERATIONS: dict[str, Operation] = {
    "projects": _projects,
    "countLabels": _count_labels,
    "labels": _labels,
    "createIssues": _create_issues,
    "sendAssetsBackToQueue": _send_back_to_queue,
    "updatePropertiesInAssets": _update_properties,
}


def _error(code: str, message: str) -> dict[str, Any]:
    return {
        "data": None,
        "errors": [{"message": message, "extensions": {"code": code, "context": {}}}],
    }


@router.post("/projects/{project_id}/graphql")
def graphql(
    project_id: str, body: GraphQLRequest, caller: CallerDep, request: Request
) -> dict[str, Any]:
    """One Kili SDK operation on this project (see the module doc for which)."""
    match = OPERATION.search(body.query[:QUERY_SCAN_CHARS])
    operation = OPERATIONS.get(match.group(1)) if match else None
    if operation is None:
        name = match.group(1) if match else "(none found)"
        known = ", ".join(OPERATIONS)
        return _error(
            "NOT_SUPPORTED", f"operation {name} is not one the reference platform plays: {known}"
        )
    try:
        with request.app.state.db.session() as session:
            labeling.get_project(session, project_id)
            return {"data": {"data": operation(session, project_id, body.variables or {}, caller)}}
    except GraphQLFailure as exc:
        return _error(exc.code, exc.message)
    except PlatformError as exc:
        return _error(exc.code.upper(), exc.message)
