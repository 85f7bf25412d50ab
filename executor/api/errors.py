"""Every HTTP error is JSON ``{"code", "message", ...}``; mapped here, in one place."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from executor.errors import ExecutorError, InvalidIdentifier, RateLimited, StoreUnavailable

__all__ = ["STORE_RETRY_AFTER_S", "install_error_handlers", "internal_error", "store_unavailable"]

# What a 503 store_unavailable asks callers to wait: a restarting PostgreSQL or a failover
# takes seconds; a caller retrying sooner only adds load.
STORE_RETRY_AFTER_S = 5

INVALID_IDENTIFIER = InvalidIdentifier.code
HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
}


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def _executor_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ExecutorError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    if isinstance(exc, RateLimited | StoreUnavailable):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_validation_entry(e, exc.body) for e in exc.errors()]
    return _invalid_request(errors)


def _validation_entry(error: Any, body: Any) -> dict[str, Any]:
    if error["type"] == "json_invalid" and isinstance(body, str):
        # FastAPI gives the character offset of a JSON syntax error in the decoded body.
        return _json_syntax_entry(error["ctx"]["error"], body[: error["loc"][-1]])
    entry = {"field": _field_path(tuple(error["loc"])), "message": error["msg"]}
    if error["type"] == INVALID_IDENTIFIER:
        entry["code"] = INVALID_IDENTIFIER
    return entry


def _not_utf8_entry(exc: UnicodeDecodeError) -> dict[str, Any]:
    bad = exc.object[exc.start]
    before = exc.object[: exc.start].decode("utf-8", "replace")
    return _json_syntax_entry(f"byte 0x{bad:02x} is not UTF-8; send the body as UTF-8", before)


def _json_syntax_entry(problem: str, before: str) -> dict[str, Any]:
    """The error at the end of ``before`` (the body up to it), by line and column from 1."""
    line = before.count("\n") + 1
    column = len(before) - before.rfind("\n")
    return {
        "field": "body",
        "message": f"invalid JSON at line {line}, column {column}: {problem}",
        "line": line,
        "column": column,
    }


def _invalid_request(errors: list[dict[str, Any]]) -> JSONResponse:
    first = errors[0] if errors else {"field": "", "message": "invalid request"}
    # A name or id answers as the services' own check does (InvalidIdentifier).
    identifier = first.get("code") == INVALID_IDENTIFIER
    return JSONResponse(
        {
            "code": INVALID_IDENTIFIER if identifier else "invalid_request",
            "message": f"{first['field']}: {first['message']}; fix the request and send it again",
            **({"field": first["field"]} if identifier else {}),
            "errors": errors,
        },
        status_code=422,
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # FastAPI answers a JSON body that is not UTF-8 with a bare 400 "There was an error
    # parsing the body", raised from the UnicodeDecodeError: that is a syntax error too.
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        return _invalid_request([_not_utf8_entry(exc.__cause__)])
    code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return JSONResponse(
        {"code": code, "message": str(exc.detail)},
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def internal_error(request_id: str) -> JSONResponse:
    """The answer to an exception no handler took (``executor.api.request_ids``)."""
    return JSONResponse(
        {
            "code": "internal_error",
            "message": "the executor failed on this request: retry it, and if it fails again "
            f"give the operator the request id {request_id}",
            "request_id": request_id,
        },
        status_code=500,
    )


def store_unavailable(request_id: str) -> JSONResponse:
    """The answer when the store cannot be reached (``executor.store.db.unreachable``)."""
    error = StoreUnavailable(retry_after_s=STORE_RETRY_AFTER_S)
    return JSONResponse(
        {**error.to_dict(), "request_id": request_id},
        status_code=error.status_code,
        headers={"Retry-After": str(error.retry_after_s)},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ExecutorError, _executor_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
