"""Rows to wire models."""

from __future__ import annotations

from examples.labeling_platform import schemas, tables

__all__ = ["asset_out", "issue_out", "label_out"]


def asset_out(asset: tables.Asset) -> schemas.AssetOut:
    return schemas.AssetOut(
        id=asset.id,
        project_id=asset.project_id,
        external_id=asset.external_id,
        content=asset.content,
        json_metadata=asset.json_metadata,
        status=asset.status,
        consensus_assignees=asset.consensus_assignees,
        created_at=asset.created_at,
        updated_at=asset.updated_at,
    )


def label_out(label: tables.Label, event_id: str | None = None) -> schemas.LabelOut:
    return schemas.LabelOut(
        id=label.id,
        asset_id=label.asset_id,
        label_type=label.label_type,
        json_response=label.json_response,
        author=schemas.Author(id=label.author, email=label.author),
        created_at=label.created_at,
        event_id=event_id,
    )


def issue_out(issue: tables.Issue) -> schemas.IssueOut:
    return schemas.IssueOut(
        id=issue.id,
        asset_id=issue.asset_id,
        label_id=issue.label_id,
        author=issue.author,
        text=issue.text,
        status=issue.status,
        created_at=issue.created_at,
    )
