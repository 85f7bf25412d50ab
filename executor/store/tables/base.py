"""What every table shares: the declarative base, its column types, row ids, the clock and
the default tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "DEFAULT_TENANT",
    "Base",
    "UTCDateTime",
    "new_id",
    "tenant_column",
    "utcnow",
]


# Rows made before tenants existed belong to this one; the operator key acts on it by default.
DEFAULT_TENANT = "default"


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new random row id (UUID4 as text)."""
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and gives them back aware (SQLite drops the zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
        list[dict[str, Any]]: JSON,
    }


def tenant_column() -> Mapped[str]:
    return mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), default=DEFAULT_TENANT, index=True
    )
