"""Identifiers: what each kind may be, checked in one place by REST, GraphQL and the CLI.

An identifier is matched whole (``fullmatch``): ``re.match`` with ``$`` let ``'qa_bot\\n'``
through, since ``$`` also matches before a final newline. Each kind's rule is here only, so
changing one (plugin names may become free text) changes it everywhere.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from executor.bounds import MAX_INT64

__all__ = [
    "EventId",
    "IdKind",
    "IdentifierError",
    "InvocationId",
    "KeyId",
    "NodeId",
    "PluginName",
    "ProjectId",
    "RuntimeName",
    "TenantName",
    "VersionNumber",
    "WebhookName",
    "check_identifier",
    "identifier_problem",
]

# What a refusal shows of a long value: enough to recognise it, never the whole of it.
SHOWN_CHARS = 60


@dataclass(frozen=True)
class _Rule:
    pattern: str
    allowed: str

    def matches(self, value: str) -> bool:
        return re.fullmatch(self.pattern, value) is not None  # re caches compiled patterns


_PLUGIN = _Rule(
    r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
    "use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit",
)
# The ids the store makes (``executor.store.tables.new_id``).
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ID = _Rule(
    r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}",
    "use 1 to 200 letters, digits, '_', '.', ':', '@' or '-', starting with a letter or digit",
)


class IdKind(enum.Enum):
    """A kind of identifier; its value names it in messages."""

    PLUGIN = "plugin name"
    WEBHOOK = "webhook name"
    PROJECT = "project id"
    EVENT = "event id"
    TENANT = "tenant name"
    KEY = "key id"
    INVOCATION = "invocation id"
    NODE = "node id"
    RUNTIME = "runtime"
    VERSION = "version number"

    @property
    def rule(self) -> _Rule:
        return _RULES[self]


_RULES: dict[IdKind, _Rule] = {
    IdKind.PLUGIN: _PLUGIN,
    # A webhook is a plugin of another kind: same names.
    IdKind.WEBHOOK: _PLUGIN,
    IdKind.PROJECT: _ID,
    IdKind.EVENT: _ID,
    IdKind.TENANT: _Rule(
        r"[a-z0-9][a-z0-9_-]{0,63}",
        "use 1 to 64 lower-case letters, digits, '_' or '-', starting with a letter or digit",
    ),
    IdKind.KEY: _Rule(_UUID, "use the id of the key as its key list shows it (a lower-case UUID)"),
    # Runs' ids are UUIDs; the general rule is enough to bound what a lookup is given.
    IdKind.INVOCATION: _ID,
    IdKind.NODE: _Rule(
        r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}",
        "use 1 to 200 letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
    ),
    # Digits only: int() would take ' 1', '1\n' or '1_0'.
    IdKind.VERSION: _Rule(r"[1-9][0-9]{0,18}", "use the version's number: 1, 2, 3, ..."),
    IdKind.RUNTIME: _Rule(
        r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}",
        "use 1 to 40 letters, digits, '_', '.' or '-', starting with a letter or digit",
    ),
}


class IdentifierError(ValueError):
    """An identifier its kind does not allow; the message says what is."""

    def __init__(self, kind: IdKind, value: str) -> None:
        self.kind = kind
        self.message = f"{kind.value} {_shown(value)} is not allowed: {kind.rule.allowed}"
        super().__init__(self.message)


def _shown(value: str) -> str:
    if len(value) <= SHOWN_CHARS:
        return repr(value)
    return f"{value[:SHOWN_CHARS]!r}... ({len(value)} characters)"


def identifier_problem(kind: IdKind, value: str) -> str | None:
    """Why ``value`` is not a ``kind``, or None if it is one."""
    if kind.rule.matches(value):
        return None
    return IdentifierError(kind, value).message


def check_identifier(kind: IdKind, value: str) -> str:
    """``value`` if it is a whole ``kind``, else IdentifierError saying what is allowed."""
    if not kind.rule.matches(value):
        raise IdentifierError(kind, value)
    return value


def _pydantic_check(kind: IdKind) -> AfterValidator:
    def check(value: str) -> str:
        problem = identifier_problem(kind, value)
        if problem is not None:
            # Its own error type: the API answers it with the code ``invalid_identifier``.
            raise PydanticCustomError("invalid_identifier", problem)
        return value

    return AfterValidator(check)


def _schema(kind: IdKind) -> WithJsonSchema:
    """The rule in the OpenAPI schema, anchored (JSON Schema patterns are searches)."""
    return WithJsonSchema({"type": "string", "pattern": f"^{kind.rule.pattern}$"})


# ``str`` checked as one kind, for pydantic models and FastAPI parameters.
PluginName = Annotated[str, _pydantic_check(IdKind.PLUGIN), _schema(IdKind.PLUGIN)]
WebhookName = Annotated[str, _pydantic_check(IdKind.WEBHOOK), _schema(IdKind.WEBHOOK)]
ProjectId = Annotated[str, _pydantic_check(IdKind.PROJECT), _schema(IdKind.PROJECT)]
EventId = Annotated[str, _pydantic_check(IdKind.EVENT), _schema(IdKind.EVENT)]
TenantName = Annotated[str, _pydantic_check(IdKind.TENANT), _schema(IdKind.TENANT)]
InvocationId = Annotated[str, _pydantic_check(IdKind.INVOCATION), _schema(IdKind.INVOCATION)]
KeyId = Annotated[str, _pydantic_check(IdKind.KEY), _schema(IdKind.KEY)]
NodeId = Annotated[str, _pydantic_check(IdKind.NODE), _schema(IdKind.NODE)]
RuntimeName = Annotated[str, _pydantic_check(IdKind.RUNTIME), _schema(IdKind.RUNTIME)]


def _version_text(value: object) -> object:
    """A version number sent as text (a path, a query) must be its digits and nothing else."""
    if isinstance(value, str):
        problem = identifier_problem(IdKind.VERSION, value)
        if problem is not None:
            raise PydanticCustomError("invalid_identifier", problem)
    return value


# A version number: from a path or a query (text) or a JSON number, 1 to MAX_INT64.
VersionNumber = Annotated[int, BeforeValidator(_version_text), Field(ge=1, le=MAX_INT64)]
