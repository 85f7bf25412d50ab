"""What the request bodies share."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Strict"]


class Strict(BaseModel):
    """A request body: a field it does not declare is an error (422), not ignored."""

    model_config = ConfigDict(extra="forbid")
