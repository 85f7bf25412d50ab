"""The cost of a GraphQL document (executor/api/graphql/cost.py), as a table."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse

from executor.api.graphql.cost import (
    COST_CEILING,
    CostRefused,
    asks_introspection,
    document_cost,
)
from executor.api.graphql.schema import build_schema

SCHEMA = build_schema()
ROOT = 1000  # a root field: a store read
# The Kili SDK's own documents (kili/core/graphql/operations/plugin/queries.py).
KILI_LOGS = """
query getPluginLogs($projectId: ID!, $pluginName: String!, $createdAt: DateTime,
                    $limit: Int, $skip: Int) {
  data: getPluginLogs(data: {projectId: $projectId, pluginName: $pluginName,
                             createdAt: $createdAt, limit: $limit, skip: $skip}) {
    content createdAt logType metadata { assetId labelId } pluginName projectId runId
  }
}"""
LOG_ITEM = 9  # 6 scalars + metadata (1 + its 2)
KILI_LIST = "query listPlugins { data: listPlugins { id name projectIds createdAt updatedAt } }"
TYPE_OF = "fragment T on __Type { name kind }"


def fan_out(levels: int, spreads: int) -> str:
    """Fragments each spreading the next ``spreads`` times: spreads**levels countPlugins."""
    chain = "".join(
        f"fragment F{n} on Query {{ {f'...F{n + 1} ' * spreads}}} " for n in range(levels)
    )
    return "query { ...F0 } " + chain + f"fragment F{levels} on Query {{ countPlugins }}"


def of_types(levels: int, inner: str = "name") -> str:
    return "ofType { " * levels + inner + " }" * levels


COSTS: list[tuple[str, str, dict[str, Any] | None, int]] = [
    ("a scalar root field", "{ countPlugins }", None, ROOT),
    ("a mutation", 'mutation { deletePlugin(where: {pluginName: "p"}) }', None, ROOT),
    ("aliases count", "{ a: countPlugins b: countPlugins c: countPlugins }", None, 3 * ROOT),
    ("a field repeated counts", "{ countPlugins countPlugins }", None, 2 * ROOT),
    ("a list without limit: 100", "{ listPlugins { id name } }", None, ROOT + 100 * 2),
    ("a list of scalars costs 1", "{ listPlugins { projectIds } }", None, ROOT + 100),
    ("Kili's list_plugins", KILI_LIST, None, ROOT + 100 * 5),
    ("Kili's logs, its default 100", KILI_LOGS, {"limit": 100}, ROOT + 100 * LOG_ITEM),
    ("Kili's logs, no limit: 100", KILI_LOGS, {}, ROOT + 100 * LOG_ITEM),
    ("Kili's logs, limit 1000", KILI_LOGS, {"limit": 1000, "skip": 5}, ROOT + 1000 * LOG_ITEM),
    ("limit past the page: 1000", KILI_LOGS, {"limit": 10**9}, ROOT + 1000 * LOG_ITEM),
    ("limit 0: the default page", KILI_LOGS, {"limit": 0}, ROOT + 100 * LOG_ITEM),
    ("a negative limit: 1", KILI_LOGS, {"limit": -5}, ROOT + LOG_ITEM),
    ("a limit not a number: 100", KILI_LOGS, {"limit": "7"}, ROOT + 100 * LOG_ITEM),
    (
        "a literal limit",
        '{ getPluginBuildErrors(data: {pluginName: "p", limit: 7}) { content } }',
        None,
        ROOT + 7,
    ),
    (
        "an input object in a variable",
        "query($d: PluginLogsInput!) { getPluginLogs(data: $d) { runId } }",
        {"d": {"projectId": "p", "pluginName": "x", "limit": 30}},
        ROOT + 30,
    ),
    (
        "a fragment costs each spread",
        "{ ...Q ...Q } fragment Q on Query { countPlugins listPlugins { id } }",
        None,
        2 * (ROOT + ROOT + 100),
    ),
    (
        "a fragment in a list",
        "{ listPlugins { ...P } } fragment P on Plugin { id name }",
        None,
        ROOT + 100 * 2,
    ),
    (
        "an inline fragment",
        "{ ... on Query { countPlugins } listPlugins { ... on Plugin { id } } }",
        None,
        ROOT + ROOT + 100,
    ),
    ("__typename is a plain field", "{ __typename }", None, 1),
    ("an unknown field (validation names it)", "{ nothing { at all } }", None, ROOT + 2),
    ("an unknown fragment (validation names it)", "{ ...Nowhere }", None, 0),
    ("introspection: every type", "{ __schema { types { name } } }", None, 1 + 1 + 27),
    (
        "introspection: fields of a type",
        '{ __type(name: "Plugin") { fields { name args { name } } } }',
        None,
        1 + 1 + 11 * (1 + 1 + 1),
    ),
    ("fragments fanned out are multiplied", fan_out(20, 2), None, 2**20 * ROOT),
    ("costs saturate", fan_out(30, 10), None, COST_CEILING),
    (
        "operationName: that operation's cost",
        "query A { countPlugins } query B { a: countPlugins b: countPlugins }",
        {"operationName": "A"},
        ROOT,
    ),
    (
        "no operationName: the dearest",
        "query A { countPlugins } query B { a: countPlugins b: countPlugins }",
        None,
        2 * ROOT,
    ),
]


@pytest.mark.parametrize(
    ("document", "variables", "cost"),
    [case[1:] for case in COSTS],
    ids=[case[0] for case in COSTS],
)
def test_document_cost(document: str, variables: dict[str, Any] | None, cost: int) -> None:
    variables = dict(variables or {})
    operation = variables.pop("operationName", None)
    assert document_cost(SCHEMA, parse(document), variables, operation) == cost


def test_the_reported_attacks_cost_far_over_the_default_budget() -> None:
    aliases = " ".join(f"a{n}: listPlugins {{ id name }}" for n in range(1000))
    assert document_cost(SCHEMA, parse("{" + aliases + "}")) == 1000 * (ROOT + 200)
    counts = " ".join(f"a{n}: countPlugins" for n in range(3000))
    assert document_cost(SCHEMA, parse("{" + counts + "}")) == 3000 * ROOT
    logs = " ".join(
        f'a{n}: getPluginLogs(data: {{projectId: "p", pluginName: "x", limit: 1000}}) {{ content }}'
        for n in range(500)
    )
    assert document_cost(SCHEMA, parse("{" + logs + "}")) == 500 * (ROOT + 1000)


REFUSED: list[tuple[str, str, str, str]] = [
    (
        "a fragment cycle",
        "{ ...A } fragment A on Query { countPlugins ...B } fragment B on Query { ...A }",
        "fragment_cycle",
        "fragment 'A' spreads itself (A -> B -> A): a query must be finite",
    ),
    (
        "a fragment spreading itself",
        "{ listPlugins { ...P } } fragment P on Plugin { id ...P }",
        "fragment_cycle",
        "fragment 'P' spreads itself (P -> P): a query must be finite",
    ),
    (
        "fragments spread 40 deep",
        fan_out(40, 1),
        "query_too_deep",
        "the query spreads fragments inside each other more than 32 deep (from 'F0'): send a "
        "flatter query",
    ),
    (
        "nesting through fragments",
        '{ __type(name: "Plugin") { ...D } } fragment D on __Type { '
        + of_types(20, "...E")
        + " } fragment E on __Type { "
        + of_types(20)
        + " }",
        "query_too_deep",
        "the query selects fields 33 levels deep (counting its fragments); at most 32 are "
        "allowed: send a flatter query",
    ),
    (
        "a fragment priced shallow, spread deep",
        '{ a: __type(name: "Plugin") { ...E } b: __type(name: "Plugin") { '
        + of_types(20, "...E")
        + " } } fragment E on __Type { "
        + of_types(20)
        + " }",
        "query_too_deep",
        "the query selects fields 42 levels deep (counting its fragments); at most 32 are "
        "allowed: send a flatter query",
    ),
]


@pytest.mark.parametrize(
    ("document", "code", "message"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_a_document_that_cannot_be_priced_is_refused(
    document: str, code: str, message: str
) -> None:
    with pytest.raises(CostRefused) as refused:
        document_cost(SCHEMA, parse(document))
    assert (refused.value.code, refused.value.message) == (code, message)


@pytest.mark.parametrize(
    ("document", "introspects"),
    [
        ("{ __schema { queryType { name } } }", True),
        ('{ listPlugins { id } } query B { x: __type(name: "Plugin") { name } }', True),
        ("{ ...F } fragment F on Query { ... on Query { __schema { types { name } } } }", True),
        ("{ __typename listPlugins { __typename id } }", False),
        (KILI_LOGS, False),
    ],
)
def test_asks_introspection_anywhere_in_the_document(document: str, introspects: bool) -> None:
    assert asks_introspection(parse(document)) is introspects
