"""The labeling workflow: submitting and reviewing labels, asset status, events, issues.

Status rules: a submitted (``DEFAULT``) label makes an asset ``LABELED``; a consensus asset
stays ``ONGOING`` until every assignee has submitted. A ``REVIEW`` label (reviewers only,
on a ``LABELED`` or ``TO_REVIEW`` asset) makes it ``REVIEWED``. "Send back to queue" makes
it ``TODO``. Labels submitted or reviewed by people queue an ``onSubmit``/``onReview`` event
for the executor; labels written by plugins (the service credential) never do, so a plugin
cannot trigger itself.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from examples.labeling_platform import auth, presenters, schemas
from examples.labeling_platform.errors import PlatformError, not_found
from examples.labeling_platform.interface import InterfaceError, check_json_response
from examples.labeling_platform.tables import Asset, Issue, Label, OutgoingEvent, Project

__all__ = ["add_issue", "get_asset", "patch_asset", "send_back_to_queue", "submit_label"]

REVIEWABLE = ("LABELED", "TO_REVIEW")
EVENT_OF_LABEL_TYPE = {"DEFAULT": "onSubmit", "REVIEW": "onReview"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def get_project(session: Session, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise not_found("project", project_id)
    return project


def get_asset(session: Session, project_id: str, asset_id: str) -> Asset:
    asset = session.get(Asset, asset_id)
    if asset is None or asset.project_id != project_id:
        raise not_found(f"asset in project {project_id!r}:", asset_id)
    return asset


def _touch(asset: Asset, status: str | None = None) -> None:
    if status is not None:
        asset.status = status
    asset.updated_at = datetime.now(UTC)


def _check_may_write(principal: auth.Principal, asset: Asset, label_type: str) -> None:
    if label_type == "REVIEW":
        principal.require(auth.REVIEWER, auth.ADMIN)
        if asset.status not in REVIEWABLE:
            raise PlatformError(
                409,
                "not_reviewable",
                f"asset {asset.id} is {asset.status}; only {list(REVIEWABLE)} assets are reviewed",
            )
    elif (
        label_type == "DEFAULT"
        and principal.role in (auth.LABELER, auth.REVIEWER)
        and asset.consensus_assignees
        and principal.name not in asset.consensus_assignees
    ):
        raise PlatformError(
            403,
            "not_assigned",
            f"{principal.name} is not among the labelers of consensus asset {asset.id}",
        )


def _submitted_by(session: Session, asset: Asset) -> set[str]:
    authors = session.scalars(
        select(Label.author).where(Label.asset_id == asset.id, Label.label_type == "DEFAULT")
    )
    return set(authors)


def _status_after_submit(session: Session, asset: Asset) -> str:
    if not asset.consensus_assignees:
        return "LABELED"
    missing = set(asset.consensus_assignees) - _submitted_by(session, asset)
    return "ONGOING" if missing else "LABELED"


def submit_label(
    session: Session, principal: auth.Principal, asset: Asset, body: schemas.LabelIn
) -> schemas.LabelOut:
    """Store a label, move the asset's status and queue the event; see the module doc."""
    project = get_project(session, asset.project_id)
    try:
        check_json_response(project.json_interface, body.json_response)
    except InterfaceError as exc:
        raise PlatformError(422, "invalid_label", str(exc)) from None
    if principal.role == auth.SERVICE and body.label_type == "REVIEW":
        raise PlatformError(403, "forbidden", "plugins may add labels but not review them")
    _check_may_write(principal, asset, body.label_type)
    seq = session.scalar(select(func.count()).where(Label.asset_id == asset.id)) or 0
    label = Label(
        id=new_id("lbl"),
        asset_id=asset.id,
        author=principal.name,
        label_type=body.label_type,
        json_response=body.json_response,
        seq=seq + 1,
        created_at=datetime.now(UTC),
    )
    session.add(label)
    session.flush()
    event_type = EVENT_OF_LABEL_TYPE.get(body.label_type)
    if principal.role == auth.SERVICE or event_type is None:
        return presenters.label_out(label)
    if body.label_type == "REVIEW":
        _touch(asset, "REVIEWED")
    else:
        _touch(asset, _status_after_submit(session, asset))
    event = _queue_event(session, asset, event_type, presenters.label_out(label))
    return presenters.label_out(label, event.id)


def _queue_event(
    session: Session, asset: Asset, event_type: str, label: schemas.LabelOut
) -> OutgoingEvent:
    event_id = new_id("evt")
    body: dict[str, Any] = {
        "id": f"platform-{event_id}",
        "type": event_type,
        "project_id": asset.project_id,
        "asset_id": asset.id,
        "label": label.model_dump(mode="json", by_alias=True, exclude={"event_id"}),
    }
    event = OutgoingEvent(id=event_id, project_id=asset.project_id, body=body, invocations=[])
    session.add(event)
    return event


def patch_asset(asset: Asset, body: schemas.AssetPatch) -> None:
    """Merge ``jsonMetadata`` key by key (``null`` deletes a key) and set the status."""
    if body.json_metadata is not None:
        merged = dict(asset.json_metadata)
        for key, value in body.json_metadata.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        asset.json_metadata = merged
    _touch(asset, body.status)


def send_back_to_queue(asset: Asset) -> None:
    """Put the asset back in the labeling queue (``TODO``); repeating it changes nothing."""
    _touch(asset, "TODO")


def add_issue(
    session: Session, principal: auth.Principal, asset: Asset, body: schemas.IssueIn
) -> Issue:
    """Open an issue on the asset, optionally on one of its labels."""
    if body.label_id is not None:
        label = session.get(Label, body.label_id)
        if label is None or label.asset_id != asset.id:
            raise PlatformError(
                422, "invalid_issue", f"label {body.label_id!r} is not a label of asset {asset.id}"
            )
    issue = Issue(
        id=new_id("iss"),
        asset_id=asset.id,
        label_id=body.label_id,
        author=principal.name,
        text=body.text,
        created_at=datetime.now(UTC),
    )
    session.add(issue)
    session.flush()
    return issue
