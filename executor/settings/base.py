"""What every settings group shares, and the name of each group's variables.

A group reads the variables of one prefix (``EXECUTOR_BUILD_``: ``BuildSettings``), or, for
the groups whose variables share none (runs, retention, tenancy), ``EXECUTOR_`` and the
field's whole name. The few variables a prefixed group holds under another name say so with a
``validation_alias`` (``EXECUTOR_MAX_CONCURRENT_BUILDS`` is ``build.max_concurrent``).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MIB", "Group", "group_config", "variable"]

MIB = 1024 * 1024


def group_config(prefix: str) -> SettingsConfigDict:
    """A group's config: frozen, its variables' prefix, constructible by field name."""
    return SettingsConfigDict(
        env_prefix=prefix, frozen=True, validate_by_name=True, validate_by_alias=True
    )


class Group(BaseSettings):
    """One group of settings (``Settings.<name>``), read from its own variables."""

    model_config = group_config("EXECUTOR_")
    # The group's attribute on Settings (settings.build); set by each subclass.
    name: ClassVar[str] = ""


def variable(model: type[BaseSettings], field_name: str, field: FieldInfo | None = None) -> str:
    """The environment variable of ``model``'s field (``EXECUTOR_BUILD_TIMEOUT_S``)."""
    alias = (field or model.model_fields[field_name]).validation_alias
    if isinstance(alias, str):  # a variable outside the group's prefix
        return alias.upper()
    return f"{model.model_config.get('env_prefix', '')}{field_name}".upper()
