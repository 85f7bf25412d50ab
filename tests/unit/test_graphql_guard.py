"""The GraphQL API's parts: the depth check before parsing, upload tickets, error shapes."""

from __future__ import annotations

import pytest
from graphql import GraphQLError

from executor.api.graphql.guard import nesting_depth
from executor.api.graphql.route import format_error
from executor.api.graphql.uploads import MAX_TICKETS_PER_TENANT, UploadDesk
from executor.errors import Conflict, NotFound, PluginRejected
from executor.tenancy.access import operator_caller


@pytest.mark.parametrize(
    ("document", "depth"),
    [
        ("query { listPlugins { id } }", 2),
        ('query { getPluginRunnerStatus(name: "{{{[[[(((") }', 2),
        ('query { a(b: """ {{{{ \\""" {{{{ """) }', 2),
        ("query { a # {{{{{{ a comment\n b }", 1),
        ("{" * 1000 + "}" * 1000, 1000),
        ("query { a(b: [[[[1]]]]) }", 6),
        ('{ a(b: "unterminated', 2),
    ],
)
def test_nesting_depth_counts_outside_strings_and_comments(document: str, depth: int) -> None:
    assert nesting_depth(document) == depth


def test_an_upload_ticket_is_used_once_by_its_tenant() -> None:
    desk = UploadDesk()
    acme = operator_caller("acme")
    token = desk.issue(acme, "p", update=False)
    with pytest.raises(NotFound, match="unknown or expired"):
        desk.receive(operator_caller("globex"), token, b"zip")
    desk.receive(acme, token, b"zip")
    with pytest.raises(Conflict, match="no archive was uploaded for plugin 'p'"):
        desk.take(operator_caller("globex"), "p", update=False)
    with pytest.raises(Conflict, match="call generateUpdateUrl"):
        desk.take(operator_caller("acme"), "p", update=True)
    assert desk.take(acme, "p", update=False) == b"zip"
    with pytest.raises(NotFound, match="unknown or expired"):
        desk.receive(acme, token, b"again")


def test_a_tenants_oldest_tickets_are_dropped_past_the_cap() -> None:
    desk = UploadDesk()
    acme = operator_caller("acme")
    tokens = [desk.issue(acme, f"p{n}", update=False) for n in range(MAX_TICKETS_PER_TENANT + 1)]
    globex = operator_caller("globex")
    other = desk.issue(globex, "p0", update=False)
    with pytest.raises(NotFound):
        desk.receive(acme, tokens[0], b"zip")
    for token in tokens[1:]:
        desk.receive(acme, token, b"zip")
    desk.receive(globex, other, b"zip")


def test_errors_carry_the_executors_code_and_never_a_bugs_text() -> None:
    rejected = PluginRejected("main.py, line 3: bad", file="main.py", line=3)
    shown = format_error(GraphQLError("x", original_error=rejected))
    assert shown["message"] == "main.py, line 3: bad"
    assert shown["extensions"] == {
        "code": "plugin_rejected",
        "status": 422,
        "file": "main.py",
        "line": 3,
    }
    bug = format_error(GraphQLError("x", original_error=RuntimeError("/srv/secret/path")))
    assert "secret" not in bug["message"]
    assert bug["extensions"] == {"code": "internal_error"}
