"""The executor's exception tree.

Every error a caller can meet is an ``ExecutorError``; each subclass carries a stable
``code`` (the ``code`` field of HTTP error bodies) and the HTTP status the API maps it to.
The class docstring is the default message; messages say what was wrong, where, and what
to do next::

    ExecutorError
    ├── NotAuthenticated          401 not_authenticated
    ├── MissingScope              403 missing_scope     (the key lacks a scope: 'scope')
    ├── NotFound                  404 not_found
    ├── Conflict                  409 conflict
    │   ├── QuotaExceeded         409 quota_exceeded    (per-tenant quota: 'quota', 'limit')
    │   └── NameTaken             409 name_taken        (same name but for case/form: 'existing')
    ├── RateLimited               429 rate_limited      (per-key rate: 'retry_after_s')
    │   └── UploadCheckBusy       429 upload_check_busy (the tenant's upload checks are queued)
    ├── InvalidQuery              400 invalid_query     (contradictory filters)
    │   ├── InvalidCursor         400 invalid_cursor    (log paging)
    │   ├── RangeTooLong          400 range_too_long    (stats range: 'field', 'maximum_days')
    │   └── TooManyBuckets        400 too_many_buckets  (stats range: 'field', 'maximum')
    ├── PluginRejected            422 plugin_rejected   (upload checks: file, line)
    │   ├── UploadTooLarge        413 upload_too_large  (file, limit: bytes)
    │   ├── UploadCheckLimit      422 upload_check_limit (check stopped: file, limit, maximum)
    │   ├── UnknownRuntime        422 unknown_runtime   (no such flavor: field, allowed)
    │   └── RequirementsForbidden 422 requirements_forbidden (file)
    ├── InvalidIdentifier         422 invalid_identifier (a name or id: field)
    ├── LimitExceeded             422 limit_exceeded    (per-plugin limits: field, maximum)
    ├── EventTooDeep              422 event_too_deep    (nesting of an event: field, maximum)
    ├── InvalidUnicode            422 invalid_unicode   (a string no plugin could get: field)
    ├── WebhookRejected           422 webhook_rejected  (a webhook setting: field)
    │   └── AddressRefused        422 address_refused   (receiver not allowed: field, address)
    ├── StoreUnavailable          503 store_unavailable (the store is out of reach: 'retry_after_s')
    ├── BuildFailed               build of a plugin version failed
    └── SandboxError              the engine could not run a container (infrastructure)
"""

from __future__ import annotations

from typing import Any

from executor.identifiers import IdentifierError, IdKind, check_identifier

__all__ = [
    "AddressRefused",
    "BuildFailed",
    "Conflict",
    "EventTooDeep",
    "ExecutorError",
    "InvalidCursor",
    "InvalidIdentifier",
    "InvalidQuery",
    "InvalidUnicode",
    "LimitExceeded",
    "MissingScope",
    "NameTaken",
    "NotAuthenticated",
    "NotFound",
    "PluginRejected",
    "QuotaExceeded",
    "RangeTooLong",
    "RateLimited",
    "RequirementsForbidden",
    "SandboxError",
    "StoreUnavailable",
    "TooManyBuckets",
    "UnknownRuntime",
    "UploadCheckBusy",
    "UploadCheckLimit",
    "UploadTooLarge",
    "WebhookRejected",
    "checked_identifier",
]


class ExecutorError(Exception):
    """The executor failed; see the message."""

    code = "executor_error"
    status_code = 500

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = {k: v for k, v in details.items() if v is not None}
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of the HTTP error."""
        return {"code": self.code, "message": self.message, **self.details}


class NotAuthenticated(ExecutorError):
    """Missing or unknown API key: send 'Authorization: Bearer <key>'."""

    code = "not_authenticated"
    status_code = 401


class MissingScope(ExecutorError):
    """The API key lacks the scope this request needs: ask for a key that has it."""

    code = "missing_scope"
    status_code = 403

    def __init__(self, scope: str, message: str | None = None) -> None:
        super().__init__(
            message or f"this API key lacks the scope '{scope}': ask for a key with it",
            scope=str(scope),  # a Scope is a StrEnum: its value, never its repr
        )
        self.scope = str(scope)


class NotFound(ExecutorError):
    """No such resource: check the name or id."""

    code = "not_found"
    status_code = 404


class Conflict(ExecutorError):
    """The resource is not in a state that allows this request."""

    code = "conflict"
    status_code = 409


class QuotaExceeded(Conflict):
    """A tenant quota is used up: remove something first, or ask the operator for more."""

    code = "quota_exceeded"
    status_code = 409

    def __init__(self, message: str, *, quota: str, limit: int) -> None:
        super().__init__(message, quota=quota, limit=limit)


class NameTaken(Conflict):
    """The tenant has a plugin whose name differs from this one only in case or Unicode
    form: use that name ('existing'), or choose one that differs in letters."""

    code = "name_taken"
    status_code = 409

    def __init__(self, name: str, existing: str) -> None:
        super().__init__(
            f"plugin name {name!r} is taken by the plugin {existing!r}: names that differ only "
            f"in case or Unicode form are one name; use {existing!r} to act on that plugin, "
            "or choose another name",
            existing=existing,
        )
        self.existing = existing


class RateLimited(ExecutorError):
    """Too many requests (or upload bytes) for this API key: retry after 'retry_after_s'."""

    code = "rate_limited"
    status_code = 429

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s


class UploadCheckBusy(RateLimited):
    """This tenant's uploads already fill its share of the upload checkers: retry after
    'retry_after_s'."""

    code = "upload_check_busy"


class InvalidQuery(ExecutorError):
    """The query's filters contradict each other: fix them and ask again."""

    code = "invalid_query"
    status_code = 400


class InvalidCursor(InvalidQuery):
    """The paging cursor is not one this server issued: pass 'next_cursor' back unchanged."""

    code = "invalid_cursor"
    status_code = 400


class RangeTooLong(InvalidQuery):
    """The time range reaches past what retention keeps: ask for a shorter range."""

    code = "range_too_long"
    status_code = 400


class TooManyBuckets(InvalidQuery):
    """The range holds too many buckets: pick a wider bucket or a shorter range."""

    code = "too_many_buckets"
    status_code = 400


class PluginRejected(ExecutorError):
    """The plugin was refused at upload: fix the file named in 'file' and 'line'."""

    code = "plugin_rejected"
    status_code = 422

    def __init__(
        self, message: str | None = None, *, file: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message, file=file, line=line)
        self.file = file
        self.line = line


class UploadTooLarge(PluginRejected):
    """The upload is larger than allowed: make the archive smaller."""

    code = "upload_too_large"
    status_code = 413

    def __init__(
        self,
        message: str | None = None,
        *,
        file: str | None = None,
        line: int | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(message, file=file, line=line)
        if limit is not None:
            self.details["limit"] = limit
        self.limit = limit


class UploadCheckLimit(PluginRejected):
    """Checking the upload needed more memory or time than allowed: make it smaller."""

    code = "upload_check_limit"

    def __init__(self, message: str, *, file: str, limit: str, maximum: float) -> None:
        super().__init__(message, file=file)
        self.details.update(limit=limit, maximum=maximum)
        self.limit = limit
        self.maximum = maximum


class UnknownRuntime(PluginRejected):
    """The plugin names a runtime flavor that does not exist: use one of 'allowed'."""

    code = "unknown_runtime"

    def __init__(
        self,
        message: str,
        *,
        field: str,
        allowed: list[str],
        file: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message, file=file, line=line)
        self.details.update(field=field, allowed=allowed)


class RequirementsForbidden(PluginRejected):
    """The operator allows no requirements.txt: use the flavor's packages only."""

    code = "requirements_forbidden"


class InvalidIdentifier(ExecutorError):
    """A name or id its kind does not allow: the message says what is allowed."""

    code = "invalid_identifier"
    status_code = 422

    def __init__(self, message: str | None = None, *, field: str) -> None:
        super().__init__(message, field=field)
        self.field = field


def checked_identifier(kind: IdKind, value: str, field: str) -> str:
    """``value`` if it is a whole ``kind``, else InvalidIdentifier naming ``field``."""
    try:
        return check_identifier(kind, value)
    except IdentifierError as error:
        raise InvalidIdentifier(error.message, field=field) from None


class LimitExceeded(ExecutorError):
    """A per-plugin limit is above the operator's maximum: ask for at most the maximum."""

    code = "limit_exceeded"
    status_code = 422

    def __init__(self, message: str | None = None, *, field: str, maximum: float) -> None:
        super().__init__(message, field=field, maximum=maximum)
        self.field = field
        self.maximum = maximum


class EventTooDeep(ExecutorError):
    """The event nests objects and arrays too deep to be delivered: send a flatter one."""

    code = "event_too_deep"
    status_code = 422

    def __init__(self, message: str | None = None, *, field: str, maximum: int) -> None:
        super().__init__(message, field=field, maximum=maximum)
        self.field = field
        self.maximum = maximum


class InvalidUnicode(ExecutorError):
    """A string of the event is not valid Unicode: send UTF-8 text without lone surrogates."""

    code = "invalid_unicode"
    status_code = 422

    def __init__(self, message: str | None = None, *, field: str) -> None:
        super().__init__(message, field=field)
        self.field = field


class WebhookRejected(ExecutorError):
    """A webhook setting is not valid: fix the field named."""

    code = "webhook_rejected"
    status_code = 422

    def __init__(self, message: str | None = None, *, field: str) -> None:
        super().__init__(message, field=field)
        self.field = field


class AddressRefused(WebhookRejected):
    """The receiver's address is not one the executor may send to: use a public address, or
    ask the operator to list the host in EXECUTOR_WEBHOOK_ALLOWED_HOSTS."""

    code = "address_refused"

    def __init__(
        self, message: str | None = None, *, field: str = "webhook_url", address: str | None = None
    ) -> None:
        super().__init__(message, field=field)
        if address is not None:
            self.details["address"] = address
        self.address = address


class BuildFailed(ExecutorError):
    """The plugin image could not be built: read the build log."""

    code = "build_failed"


class SandboxError(ExecutorError):
    """The Docker Engine could not run the plugin container: check that dockerd is up."""

    code = "sandbox_error"
    status_code = 503


class StoreUnavailable(ExecutorError):
    """The database is out of reach: nothing was stored; retry after 'retry_after_s' seconds."""

    code = "store_unavailable"
    status_code = 503

    def __init__(self, message: str | None = None, *, retry_after_s: int) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s
