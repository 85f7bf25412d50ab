"""The GraphQL API's parts: the depth check before parsing, error shapes (upload tickets:
test_shared_api_state)."""

from __future__ import annotations

import pytest
from graphql import GraphQLError

from executor.api.graphql.guard import nesting_depth
from executor.api.graphql.route import format_error
from executor.errors import PluginRejected


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
