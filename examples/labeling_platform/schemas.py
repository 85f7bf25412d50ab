"""Wire formats of the platform API: camelCase like Kili's, snake_case accepted on input."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "AssetIn",
    "AssetOut",
    "AssetPatch",
    "EventOut",
    "IssueIn",
    "IssueOut",
    "LabelIn",
    "LabelOut",
    "ProjectIn",
    "ProjectOut",
    "UserIn",
    "UserOut",
]

ID = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}$"
AssetStatus = Literal["TODO", "ONGOING", "LABELED", "TO_REVIEW", "REVIEWED"]
LabelType = Literal["DEFAULT", "REVIEW", "PREDICTION", "INFERENCE"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class UserIn(_In):
    email: str = Field(min_length=3, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    role: Literal["LABELER", "REVIEWER"] = "LABELER"


class UserOut(_Out):
    email: str
    role: str
    api_key: str | None = Field(None, description="Shown once, at creation.")


class ProjectIn(_In):
    id: str = Field(pattern=ID)
    title: str = Field(min_length=1, max_length=200)
    json_interface: dict[str, Any]


class ProjectOut(_Out):
    id: str
    title: str
    json_interface: dict[str, Any]
    created_at: datetime


class AssetIn(_In):
    external_id: str = Field(min_length=1, max_length=200)
    content: str = ""
    json_metadata: dict[str, Any] = Field(default_factory=dict)
    consensus_assignees: list[str] = Field(
        default_factory=list, description="Labelers who must all submit (consensus asset)."
    )


class AssetPatch(_In):
    json_metadata: dict[str, Any] | None = Field(
        None, description="Merged into the asset's metadata, key by key (null deletes a key)."
    )
    status: AssetStatus | None = None


class AssetOut(_Out):
    id: str
    project_id: str
    external_id: str
    content: str
    json_metadata: dict[str, Any]
    status: AssetStatus
    consensus_assignees: list[str]
    created_at: datetime
    updated_at: datetime


class LabelIn(_In):
    json_response: dict[str, Any]
    label_type: LabelType = "DEFAULT"


class Author(_Out):
    id: str
    email: str


class LabelOut(_Out):
    """A label as Kili hands it to plugins (``label["jsonResponse"]`` etc.)."""

    id: str
    asset_id: str
    label_type: str
    json_response: dict[str, Any]
    author: Author
    created_at: datetime
    event_id: str | None = Field(None, description="The executor event this label caused.")


class IssueIn(_In):
    text: str = Field(min_length=1, max_length=5000)
    label_id: str | None = None


class IssueOut(_Out):
    id: str
    type: Literal["ISSUE"] = "ISSUE"
    asset_id: str
    label_id: str | None
    author: str
    text: str
    status: str
    created_at: datetime


class EventOut(_Out):
    id: str
    project_id: str
    body: dict[str, Any]
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None
    invocations: list[str]
