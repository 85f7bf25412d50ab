"""``POST <graphql_path>`` (the Kili SDK's ``api_endpoint``) and the upload URL its zip is
PUT to (``PUT <graphql_path>/upload?ticket=...``)."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any

from ariadne import graphql_sync
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from executor.api.deps import ServiceDep
from executor.api.errors import STORE_RETRY_AFTER_S
from executor.api.graphql.context import RequestContext, graphql_caller
from executor.api.graphql.cost import (
    ROOT_FIELD_COST,
    CostRefused,
    asks_introspection,
    document_cost,
)
from executor.api.graphql.guard import MAX_QUERY_DEPTH, nesting_depth
from executor.api.graphql.schema import KnownOperationsRule, build_schema
from executor.api.graphql.uploads import UploadDesk
from executor.errors import ExecutorError, StoreUnavailable
from executor.settings import Settings
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


class _HideTickets(logging.Filter):
    """An upload URL's ticket is a credential: the access log line (whose arguments are
    client, method, path with query, HTTP version, status) shows ``ticket=...`` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > 2 and isinstance(args[2], str):
            record.args = (*args[:2], _TICKET_VALUE.sub(r"\1...", args[2]), *args[3:])
        return True


_TICKET_VALUE = re.compile(r"([?&]ticket=)[^&#]*")
logging.getLogger("uvicorn.access").addFilter(_HideTickets())

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


def get_document_caller(
    service: ServiceDep,
    authorization: Annotated[
        str | None, Header(description="'X-API-Key: <key>' (the Kili SDK) or 'Bearer <key>'")
    ] = None,
) -> Caller:
    return graphql_caller(service, authorization, counted=False)


GraphQLCaller = Annotated[Caller, Depends(get_graphql_caller)]
# A document is charged against its key's rate by its cost, once it is read (``_screen``).
DocumentCaller = Annotated[Caller, Depends(get_document_caller)]


def _store_unavailable(result: dict[str, Any]) -> bool:
    codes = {e.get("extensions", {}).get("code") for e in result.get("errors") or []}
    return StoreUnavailable.code in codes


def _refused(message: str, code: str, status: int = 400, **details: int) -> JSONResponse:
    error = {"message": message, "extensions": {"code": code, **details}}
    return JSONResponse({"errors": [error]}, status)


@dataclass(frozen=True)
class Screened:
    """What a document passed: its parse (None: left to graphql_sync, which answers the
    syntax error), the request tokens it takes, or the answer refusing it."""

    document: DocumentNode | None
    tokens: int = 1
    refusal: JSONResponse | None = None


def _screen(
    schema: GraphQLSchema, body: GraphQLRequest, caller: Caller, settings: Settings
) -> Screened:
    """The document's checks before it runs: nesting, introspection, cost (see cost.py).
    A refused document takes one token, as any request."""
    depth = nesting_depth(body.query)
    if depth > MAX_QUERY_DEPTH:
        message = f"the query is nested {depth} levels deep; at most {MAX_QUERY_DEPTH} are "
        return Screened(
            None, refusal=_refused(message + "allowed: send a flatter query", "query_too_deep")
        )
    try:
        document = parse(body.query)
    except GraphQLError:
        return Screened(None)
    if asks_introspection(document) and not caller.is_operator:
        return Screened(
            None,
            refusal=_refused(
                "schema introspection (__schema, __type) is for the operator key only; the Kili "
                "SDK does not introspect with KILI_SDK_SKIP_CHECKS=1 set (docs/kili.md)",
                "introspection_forbidden",
                403,
            ),
        )
    try:
        cost = document_cost(schema, document, body.variables, body.operationName)
    except CostRefused as refused:
        return Screened(None, refusal=_refused(refused.message, refused.code))
    budget = settings.api.graphql_max_cost
    if cost > budget:
        return Screened(
            None,
            refusal=_refused(
                f"the query costs {cost:,}, over the budget of {budget:,} ({ROOT_FIELD_COST:,} "
                "a root field, 1 a field per list item; docs/kili.md): ask for fewer aliases, "
                "fields or items (limit), or split it into several requests",
                "query_too_costly",
                cost=cost,
                budget=budget,
            ),
        )
    return Screened(document, max(1, math.ceil(cost / settings.api.graphql_cost_per_token)))


def graphql_router(path: str) -> APIRouter:
    """The GraphQL route at ``path`` and its upload route, with one schema."""
    router = APIRouter(tags=["kili"])
    schema: GraphQLSchema = build_schema()

    @router.post(path, summary="The Kili plugin API (GraphQL)")
    def graphql(
        caller: DocumentCaller, body: GraphQLRequest, request: Request, service: ServiceDep
    ) -> JSONResponse:
        """Kili's plugin operations (see docs/kili.md); errors come back as GraphQL errors."""
        screened = _screen(schema, body, caller, service.settings)
        if caller.key_id is not None:
            service.limiter.request(caller.key_id, screened.tokens)
        if screened.refusal is not None:
            return screened.refusal
        # On the configured URL: one from the Host header would hand out a forged host.
        upload_path = request.app.url_path_for("kili_upload")
        upload_url = f"{service.settings.resolved_public_url}{upload_path}?ticket="
        context = RequestContext(service, UploadDesk(service.db), caller, upload_url)
        success, result = graphql_sync(
            schema,
            body.model_dump(),
            context_value=context,
            query_document=screened.document,
            error_formatter=format_error,
            validation_rules=[KnownOperationsRule],
            introspection=caller.is_operator,
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
        caller: GraphQLCaller,
        ticket: Annotated[str, Query(max_length=64)],
        request: Request,
        service: ServiceDep,
    ) -> Received:
        """The archive of a plugin upload (the URL ``createPlugin`` returned; the SDK sends
        its key here too)."""
        data = await request.body()
        await run_in_threadpool(UploadDesk(service.db).receive, caller, ticket, data)
        return Received(received_bytes=len(data))

    return router
