"""Schemathesis against the OpenAPI schema of a real executor, with a valid key: no 5xx,
and every response matches the schema. Bounded in examples per operation and in time."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.conftest import OPERATOR_KEY, RunningServer, ServerFactory

pytestmark = pytest.mark.docker

MAX_EXAMPLES = 15
REQUEST_TIMEOUT_S = 10
# Server-Sent Events streams never end by themselves (they follow new records), so a
# generated request would hang; test_logs_follow and test_cli_builds cover them.
STREAMS = r"/stream$"

Operation = schemathesis.APIOperation[Any, Any, Any, Any]
Case = schemathesis.Case[Operation]


@pytest.fixture(scope="module")
def fuzzed_server(server_factory: ServerFactory) -> RunningServer:
    return server_factory()


def _check(case: Case, url: str) -> None:
    if case.query and str(case.query.get("follow")).lower() in ("true", "1"):
        case.query["follow"] = "false"  # follow=true is the log stream again (see STREAMS)
    case.call_and_validate(
        base_url=url,
        headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
        timeout=REQUEST_TIMEOUT_S,
    )


def test_api_conforms_to_its_schema(fuzzed_server: RunningServer) -> None:
    url = fuzzed_server.url
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json").exclude(path_regex=STREAMS)
    operations: list[Operation] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # an operation the schema cannot describe
        operations.append(result.ok())
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Case) -> None:
            _check(case, url)

        run()
