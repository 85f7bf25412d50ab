"""The platform API under ``/api/v1``: users, projects, assets, labels, issues, events.

Every route needs an API key (see ``auth``). Admins create users, projects and assets;
labelers and reviewers submit and review labels; the executor's gateway (service key) acts
for plugins: reads, issues, metadata and status, send back to queue, extra labels.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from examples.labeling_platform import auth, labeling, presenters, schemas
from examples.labeling_platform.auth import ADMIN, REVIEWER, SERVICE, CallerDep
from examples.labeling_platform.db import Database
from examples.labeling_platform.errors import PlatformError, not_found
from examples.labeling_platform.interface import InterfaceError, check_interface
from examples.labeling_platform.tables import Asset, Issue, Label, OutgoingEvent, Project, User

router = APIRouter(prefix="/api/v1")
P = "/projects/{project_id}"
A = P + "/assets/{asset_id}"


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


@router.post("/users", status_code=201, response_model=schemas.UserOut)
def create_user(body: schemas.UserIn, caller: CallerDep, request: Request) -> schemas.UserOut:
    """Create a labeler or reviewer; the answer carries its API key, shown only once."""
    caller.require(ADMIN)
    key = f"plat_{secrets.token_urlsafe(24)}"
    try:
        with _db(request).session() as session:
            session.add(User(email=body.email, role=body.role, key_sha256=auth.key_digest(key)))
    except IntegrityError:
        raise PlatformError(409, "conflict", f"user {body.email} exists already") from None
    return schemas.UserOut(email=body.email, role=body.role, api_key=key)


@router.post("/projects", status_code=201, response_model=schemas.ProjectOut)
def create_project(body: schemas.ProjectIn, caller: CallerDep, request: Request) -> Project:
    caller.require(ADMIN)
    try:
        check_interface(body.json_interface)
    except InterfaceError as exc:
        raise PlatformError(422, "invalid_interface", str(exc)) from None
    with _db(request).session() as session:
        if session.get(Project, body.id) is not None:
            raise PlatformError(409, "conflict", f"project {body.id} exists already")
        project = Project(id=body.id, title=body.title, json_interface=body.json_interface)
        session.add(project)
        session.flush()
        return project


@router.get(P, response_model=schemas.ProjectOut)
def get_project(project_id: str, _caller: CallerDep, request: Request) -> Project:
    with _db(request).session() as session:
        return labeling.get_project(session, project_id)


@router.post(P + "/assets", status_code=201, response_model=schemas.AssetOut)
def create_asset(
    project_id: str, body: schemas.AssetIn, caller: CallerDep, request: Request
) -> schemas.AssetOut:
    caller.require(ADMIN)
    with _db(request).session() as session:
        labeling.get_project(session, project_id)
        unknown = [e for e in body.consensus_assignees if session.get(User, e) is None]
        if unknown:
            raise PlatformError(422, "invalid_asset", f"unknown assignees {unknown}: create them")
        asset = Asset(
            id=labeling.new_id("ast"),
            project_id=project_id,
            external_id=body.external_id,
            content=body.content,
            json_metadata=body.json_metadata,
            consensus_assignees=body.consensus_assignees,
        )
        session.add(asset)
        session.flush()
        return presenters.asset_out(asset)


@router.get(P + "/assets", response_model=list[schemas.AssetOut])
def list_assets(
    project_id: str,
    _caller: CallerDep,
    request: Request,
    status: Annotated[schemas.AssetStatus | None, Query()] = None,
) -> list[schemas.AssetOut]:
    with _db(request).session() as session:
        labeling.get_project(session, project_id)
        query = select(Asset).where(Asset.project_id == project_id)
        if status is not None:
            query = query.where(Asset.status == status)
        return [presenters.asset_out(a) for a in session.scalars(query.order_by(Asset.created_at))]


@router.get(P + "/review-queue", response_model=list[schemas.AssetOut])
def review_queue(project_id: str, _caller: CallerDep, request: Request) -> list[schemas.AssetOut]:
    """Assets waiting for a reviewer: ``TO_REVIEW`` first, then ``LABELED``, oldest first."""
    with _db(request).session() as session:
        labeling.get_project(session, project_id)
        assets = session.scalars(
            select(Asset)
            .where(Asset.project_id == project_id, Asset.status.in_(labeling.REVIEWABLE))
            .order_by(Asset.status.desc(), Asset.updated_at)
        )
        return [presenters.asset_out(a) for a in assets]


@router.get(A, response_model=schemas.AssetOut)
def get_asset(
    project_id: str, asset_id: str, _caller: CallerDep, request: Request
) -> schemas.AssetOut:
    with _db(request).session() as session:
        return presenters.asset_out(labeling.get_asset(session, project_id, asset_id))


@router.patch(A, response_model=schemas.AssetOut)
def patch_asset(
    project_id: str, asset_id: str, body: schemas.AssetPatch, caller: CallerDep, request: Request
) -> schemas.AssetOut:
    """Merge ``jsonMetadata`` (``null`` deletes a key) and/or set ``status``."""
    caller.require(ADMIN, SERVICE)
    with _db(request).session() as session:
        asset = labeling.get_asset(session, project_id, asset_id)
        labeling.patch_asset(asset, body)
        return presenters.asset_out(asset)


@router.post(A + "/send-back-to-queue", response_model=schemas.AssetOut)
def send_back_to_queue(
    project_id: str, asset_id: str, caller: CallerDep, request: Request
) -> schemas.AssetOut:
    caller.require(ADMIN, SERVICE, REVIEWER)
    with _db(request).session() as session:
        asset = labeling.get_asset(session, project_id, asset_id)
        labeling.send_back_to_queue(asset)
        return presenters.asset_out(asset)


@router.post(A + "/labels", status_code=201, response_model=schemas.LabelOut)
def submit_label(
    project_id: str, asset_id: str, body: schemas.LabelIn, caller: CallerDep, request: Request
) -> schemas.LabelOut:
    """Submit (``DEFAULT``) or review (``REVIEW``) a label; see ``labeling`` for the rules."""
    with _db(request).session() as session:
        asset = labeling.get_asset(session, project_id, asset_id)
        label = labeling.submit_label(session, caller, asset, body)
    if label.event_id is not None:
        request.app.state.deliverer.wake()
    return label


@router.get(A + "/labels", response_model=list[schemas.LabelOut])
def list_labels(
    project_id: str,
    asset_id: str,
    _caller: CallerDep,
    request: Request,
    label_type: Annotated[schemas.LabelType | None, Query(alias="labelType")] = None,
) -> list[schemas.LabelOut]:
    """The asset's labels, oldest first."""
    with _db(request).session() as session:
        labeling.get_asset(session, project_id, asset_id)
        query = select(Label).where(Label.asset_id == asset_id)
        if label_type is not None:
            query = query.where(Label.label_type == label_type)
        return [presenters.label_out(lab) for lab in session.scalars(query.order_by(Label.seq))]


@router.post(A + "/issues", status_code=201, response_model=schemas.IssueOut)
def create_issue(
    project_id: str, asset_id: str, body: schemas.IssueIn, caller: CallerDep, request: Request
) -> schemas.IssueOut:
    with _db(request).session() as session:
        asset = labeling.get_asset(session, project_id, asset_id)
        return presenters.issue_out(labeling.add_issue(session, caller, asset, body))


@router.get(A + "/issues", response_model=list[schemas.IssueOut])
def list_issues(
    project_id: str, asset_id: str, _caller: CallerDep, request: Request
) -> list[schemas.IssueOut]:
    with _db(request).session() as session:
        labeling.get_asset(session, project_id, asset_id)
        issues = session.scalars(
            select(Issue).where(Issue.asset_id == asset_id).order_by(Issue.created_at)
        )
        return [presenters.issue_out(i) for i in issues]


@router.get(P + "/events/{event_id}", response_model=schemas.EventOut)
def get_event(
    project_id: str, event_id: str, _caller: CallerDep, request: Request
) -> OutgoingEvent:
    """One event sent to the executor: delivery status and the invocations it started."""
    with _db(request).session() as session:
        event = session.get(OutgoingEvent, event_id)
        if event is None or event.project_id != project_id:
            raise not_found("event", event_id)
        return event
