"""A GraphQL document pays for what it asks (docs/kili.md, "What a query costs"): priced
before it runs, refused over the budget, charged to its key's rate by cost; introspection
is the operator's. The documents are sent over HTTP on loopback to a real executor."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query

from executor.service import reads
from executor.tenancy.ratelimit import KeyLimiter
from tests.conftest import OPERATOR_KEY, RunningServer, ServerFactory
from tests.integration.tenancy import ALL_SCOPES, create_key, create_tenant

pytestmark = pytest.mark.docker

BUDGET = 50_000  # EXECUTOR_GRAPHQL_MAX_COST's default
# The Kili SDK's count_plugins and list_plugins documents (its fields for the list).
KILI_COUNT = "query countPlugins($where: PluginWhere!) { data: countPlugins(where: $where) }"
KILI_LIST = "query listPlugins { data: listPlugins { id name projectIds createdAt updatedAt } }"


def aliases(count: int, field: str) -> str:
    return "{ " + " ".join(f"a{n}: {field}" for n in range(count)) + " }"


ATTACKS = {  # what the attack is called: (document, its cost)
    "1,000 aliases of listPlugins": (aliases(1000, "listPlugins { id name }"), 1_200_000),
    "3,000 aliases of countPlugins": (aliases(3000, "countPlugins"), 3_000_000),
    "500 aliases of getPluginLogs(limit: 1000)": (
        aliases(
            500,
            'getPluginLogs(data: {projectId: "p", pluginName: "x", limit: 1000}) '
            "{ content createdAt }",
        ),
        500 * (1000 + 1000 * 2),
    ),
}


RATE = 12  # request tokens a key has, on a clock that stands still: none come back


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    running: RunningServer = server_factory()
    return running


@pytest.fixture(autouse=True)
def still_limiter(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys get RATE tokens that never refill, so what each request took is exact."""
    limiter = KeyLimiter(RATE, server.settings.tenancy.key_upload_bytes_per_hour, clock=lambda: 0.0)
    monkeypatch.setattr(server.service, "limiter", limiter)


@pytest.fixture
def store_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often the resolvers read plugins and logs from the store (the server runs in
    this process): a refused document reads nothing."""
    calls: Counter[str] = Counter()

    def counted(name: str) -> Callable[..., Any]:
        real = getattr(reads, name)

        def read(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)

        return read

    for name in ("plugin_overviews", "log_page"):
        monkeypatch.setattr(reads, name, counted(name))
    return calls


def tenant_key(server: RunningServer, tenant: str) -> tuple[str, str]:
    """A new tenant's key with every scope, and its id."""
    create_tenant(server, tenant)
    created = create_key(server, tenant, ALL_SCOPES)
    return str(created["key"]), str(created["id"])


def post(
    server: RunningServer, key: str, query: str, variables: dict[str, Any] | None = None
) -> httpx.Response:
    return httpx.post(
        f"{server.url}{server.settings.api.graphql_path}",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"X-API-Key: {key}"},
        timeout=120,
    )


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_the_reported_attacks_are_refused_before_they_run(
    server: RunningServer, store_reads: Counter[str], attack: str
) -> None:
    key, _ = tenant_key(server, f"attacker-{list(ATTACKS).index(attack)}")
    document, cost = ATTACKS[attack]
    response = post(server, key, document)
    assert response.status_code == 400, response.text
    assert response.json() == {
        "errors": [
            {
                "message": f"the query costs {cost:,}, over the budget of 50,000 (1,000 a root "
                "field, 1 a field per list item; docs/kili.md): ask for fewer aliases, fields "
                "or items (limit), or split it into several requests",
                "extensions": {"code": "query_too_costly", "cost": cost, "budget": BUDGET},
            }
        ]
    }
    assert store_reads == Counter()
    # The refusal took one request token of the 12: eleven Kili calls still pass, not twelve.
    statuses = [post(server, key, KILI_COUNT, {"where": {}}).status_code for _ in range(12)]
    assert statuses == [200] * 11 + [429]
    assert store_reads == Counter(plugin_overviews=11)


def test_a_kili_document_passes_at_one_token_each(
    server: RunningServer, store_reads: Counter[str]
) -> None:
    key, _ = tenant_key(server, "kili-user")
    answers = [post(server, key, KILI_LIST) for _ in range(12)]
    assert [a.status_code for a in answers] == [200] * 12
    assert answers[0].json() == {"data": {"data": []}}
    limited = post(server, key, KILI_LIST)
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert store_reads == Counter(plugin_overviews=12)


def test_a_costly_document_takes_its_cost_in_tokens(
    server: RunningServer, store_reads: Counter[str]
) -> None:
    """Eight countPlugins cost 8,000: 4 tokens of the 12 a minute, so three pass."""
    key, key_id = tenant_key(server, "heavy-user")
    document = aliases(8, "countPlugins")
    statuses = [post(server, key, document).status_code for _ in range(3)]
    assert statuses == [200] * 3
    limited = post(server, key, document)
    assert limited.status_code == 429
    body = limited.json()
    assert body["code"] == "rate_limited"
    # 4 tokens short, at 12 a minute
    assert body["message"] == (
        f"API key {key_id} sent more than 12 requests a minute (this one costs 4): retry in 20 s"
    )
    assert store_reads == Counter(plugin_overviews=3 * 8)


def test_introspection_is_the_operators(server: RunningServer) -> None:
    key, _ = tenant_key(server, "curious")
    for document in (
        "{ __schema { types { name } } }",
        '{ listPlugins { id } x: __type(name: "Plugin") { name } }',
        "{ ...F } fragment F on Query { __schema { queryType { name } } }",
    ):
        response = post(server, key, document)
        assert response.status_code == 403, response.text
        assert response.json() == {
            "errors": [
                {
                    "message": "schema introspection (__schema, __type) is for the operator "
                    "key only; the Kili SDK does not introspect with KILI_SDK_SKIP_CHECKS=1 "
                    "set (docs/kili.md)",
                    "extensions": {"code": "introspection_forbidden"},
                }
            ]
        }
    assert post(server, key, "{ __typename }").json() == {"data": {"__typename": "Query"}}
    # The operator may: the full introspection query a GraphQL client sends is in budget.
    response = post(server, OPERATOR_KEY, get_introspection_query(descriptions=True))
    assert response.status_code == 200, response.text
    schema = response.json()["data"]["__schema"]
    assert schema["queryType"]["name"] == "Query"
    assert "PluginLog" in {t["name"] for t in schema["types"]}


@pytest.mark.parametrize(
    ("document", "code", "message"),
    [
        (
            "{ ...A } fragment A on Query { countPlugins ...B } fragment B on Query { ...A }",
            "fragment_cycle",
            "fragment 'A' spreads itself (A -> B -> A): a query must be finite",
        ),
        (
            "query { ...F0 } "
            + "".join(f"fragment F{n} on Query {{ ...F{n + 1} }} " for n in range(40))
            + "fragment F40 on Query { countPlugins }",
            "query_too_deep",
            "the query spreads fragments inside each other more than 32 deep (from 'F0'): "
            "send a flatter query",
        ),
        (
            '{ __type(name: "Plugin") { ...D } } fragment D on __Type { '
            + "ofType { " * 20
            + "...E"
            + " }" * 20
            + " } fragment E on __Type { "
            + "ofType { " * 20
            + "name"
            + " }" * 20
            + " }",
            "query_too_deep",
            "the query selects fields 33 levels deep (counting its fragments); at most 32 are "
            "allowed: send a flatter query",
        ),
    ],
    ids=["fragment cycle", "fragments spread 40 deep", "nested 40 deep through fragments"],
)
def test_fragment_cycles_and_deep_nesting_are_refused_cleanly(
    server: RunningServer, store_reads: Counter[str], document: str, code: str, message: str
) -> None:
    response = post(server, OPERATOR_KEY, document)
    assert response.status_code == 400, response.text
    assert response.json() == {"errors": [{"message": message, "extensions": {"code": code}}]}
    assert store_reads == Counter()
