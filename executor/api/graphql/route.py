"""``POST <graphql_path>`` (the Kili SDK's ``api_endpoint``) and the upload URL its zip is
PUT to (``PUT <graphql_path>/upload?ticket=...``)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from ariadne import graphql_sync
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from graphql import GraphQLError, GraphQLSchema
from pydantic import BaseModel, Field

from executor.api.deps import ServiceDep
from executor.api.errors import STORE_RETRY_AFTER_S
from executor.api.graphql.context import RequestContext, graphql_caller
from executor.api.graphql.guard import MAX_QUERY_DEPTH, nesting_depth
from executor.api.graphql.schema import KnownOperationsRule, build_schema
from executor.api.graphql.uploads import UploadDesk
from executor.errors import ExecutorError, StoreUnavailable
from executor.store.db import unreachable
from executor.tenancy.access import Caller

__all__ = ["UPLOAD_SUFFIX", "format_error", "graphql_router"]


class _UnexpectedOnly(logging.Filter):
    """Keeps only the errors of bugs (a resolver raising something not an ExecutorError),
    with their traceback: a NotFound or a query that does not validate is an answer to
    the caller, not a server problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        original = getattr(error, "original_error", None)
        if original is None or isinstance(original, ExecutorError):
            return False
        return not unreachable(original)  # the store out of reach is no bug either


# ariadne logs every error of a result to this logger.
resolver_log = logging.getLogger(__name__ + ".resolvers")
resolver_log.addFilter(_UnexpectedOnly())

UPLOAD_SUFFIX = "/upload"


class GraphQLRequest(BaseModel):
    query: str = Field(description="The GraphQL document.")
    variables: dict[str, Any] | None = None
    operationName: str | None = None  # the field name GraphQL over HTTP uses


class Received(BaseModel):
    received_bytes: int


def format_error(error: GraphQLError, debug: bool = False) -> dict[str, Any]:
    """A GraphQL error as Kili's SDK shows it (``message``), with the executor's ``code``
    (and ``status``, ``file``, ``line``... where they apply) in ``extensions``."""
    formatted: dict[str, Any] = dict(error.formatted)
    original = error.original_error
    if original is not None and unreachable(original):  # not a bug: the caller may retry
        original = StoreUnavailable(retry_after_s=STORE_RETRY_AFTER_S)
    if isinstance(original, ExecutorError):
        formatted["message"] = original.message
        formatted["extensions"] = {
            "code": original.code,
            "status": original.status_code,
            **original.details,
        }
    elif original is not None:  # a bug: resolver_log has its traceback; never shown
        formatted["message"] = "the executor failed on this operation: retry it, and if it "
        formatted["message"] += "fails again give the operator the time of the request"
        formatted["extensions"] = {"code": "internal_error"}
    return formatted


def get_graphql_caller(
    service: ServiceDep,
    authorization: Annotated[
        str | None, Header(description="'X-API-Key: <key>' (the Kili SDK) or 'Bearer <key>'")
    ] = None,
) -> Caller:
    return graphql_caller(service, authorization)


GraphQLCaller = Annotated[Caller, Depends(get_graphql_caller)]


def _store_unavailable(result: dict[str, Any]) -> bool:
    codes = {e.get("extensions", {}).get("code") for e in result.get("errors") or []}
    return StoreUnavailable.code in codes


def _refused(message: str, code: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, 400)


def graphql_router(path: str) -> APIRouter:
    """The GraphQL route at ``path`` and its upload route; one schema and upload desk."""
    router = APIRouter(tags=["kili"])
    schema: GraphQLSchema = build_schema()
    desk = UploadDesk()

    @router.post(path, summary="The Kili plugin API (GraphQL)")
    def graphql(
        caller: GraphQLCaller, body: GraphQLRequest, request: Request, service: ServiceDep
    ) -> JSONResponse:
        """Kili's plugin operations (see docs/kili.md); errors come back as GraphQL errors."""
        depth = nesting_depth(body.query)
        if depth > MAX_QUERY_DEPTH:
            return _refused(
                f"the query is nested {depth} levels deep; at most {MAX_QUERY_DEPTH} are "
                "allowed: send a flatter query",
                "query_too_deep",
            )
        # On the configured URL: one from the Host header would hand out a forged host.
        upload_path = request.app.url_path_for("kili_upload")
        upload_url = f"{service.settings.resolved_public_url}{upload_path}?ticket="
        context = RequestContext(service, desk, caller, upload_url)
        success, result = graphql_sync(
            schema,
            body.model_dump(),
            context_value=context,
            error_formatter=format_error,
            validation_rules=[KnownOperationsRule],
            introspection=True,
            logger=resolver_log,
        )
        # GraphQL over HTTP: a document that could not run (syntax, validation) is a 400;
        # one that ran answers 200, errors of its operations in "errors" beside "data".
        ran = success or "data" in result
        if _store_unavailable(result):  # never a 200 for what was not done
            headers = {"Retry-After": str(STORE_RETRY_AFTER_S)}
            return JSONResponse(result, status_code=StoreUnavailable.status_code, headers=headers)
        return JSONResponse(result, status_code=200 if ran else 400)

    @router.put(path + UPLOAD_SUFFIX, name="kili_upload", response_model=Received)
    async def upload(
        caller: GraphQLCaller, ticket: Annotated[str, Query(max_length=64)], request: Request
    ) -> Received:
        """The archive of a plugin upload (the URL ``createPlugin`` returned; the SDK sends
        its key here too)."""
        data = await request.body()
        desk.receive(caller, ticket, data)
        return Received(received_bytes=len(data))

    return router
