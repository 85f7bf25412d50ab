"""Plugin names are free text, as Kili's are (issue 26): ``"My first kili plugin"`` goes
through REST (percent-encoded in paths), the CLI and GraphQL; names that differ only in case
or Unicode form are one name (409 ``name_taken`` naming the plugin that has it); control
characters, a name too long, empty, or with a word mixing scripts (a Greek omicron among
Latin letters) are refused with 422 ``invalid_identifier``, and nothing is created.
"""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import OPERATOR_KEY, PLUGINS, RunningServer
from tests.e2e.test_cli import cli

pytestmark = pytest.mark.docker

COUNTER = (PLUGINS / "counter" / "main.py").read_bytes()
FREE = "My first kili plugin"
RULE = (
    "use 1 to 64 printable characters (letters, digits, punctuation, single spaces between "
    "words), no '/', and no word mixing scripts"
)
OMICRON = "qa_b\u03bft"  # a Greek small omicron between Latin letters
# Each bad name and what the refusal says is wrong with it.
BAD = [
    ("qa\tbot", "character 3 is U+0009, a control character"),
    ("qa_bot\x7f", "character 7 is U+007F, a control character"),
    ("qa\u200bbot", "character 3 is U+200B, an invisible format character"),
    ("qa\u202ebot", "character 3 is U+202E, an invisible format character"),
    ("qa\ue000bot", "character 3 is U+E000, a private-use character"),
    ("qa\u0378bot", "character 3 is U+0378, an unassigned code point"),
    ("qa\u2028bot", "character 3 is U+2028, a line separator"),
    ("qa\u2029bot", "character 3 is U+2029, a paragraph separator"),
    ("qa\u00a0bot", "character 3 is U+00A0, a space other than ' '"),
    ("x" * 65, "it has more than 64 characters"),
    (" qa_bot", "it has a space at either end or two spaces in a row"),
    ("qa  bot", "it has a space at either end or two spaces in a row"),
    ("qa/bot", "it contains '/'"),
    ("..", "it is '.' or '..'"),
    (
        OMICRON,
        f"the word {OMICRON!r} mixes Latin and Greek letters ('\u03bf' is U+03BF GREEK SMALL "
        "LETTER OMICRON), so it may pass for another name: write each word in one script",
    ),
]
BAD_IDS = [
    "tab", "del", "zero-width", "bidi-override", "private-use", "unassigned", "line-sep",
    "para-sep", "nbsp", "65-chars", "leading-space", "two-spaces", "slash", "dot-dot", "omicron",
]  # fmt: skip


def refusal(value: str, flaw: str) -> str:
    shown = repr(value) if len(value) <= 60 else f"{value[:60]!r}... ({len(value)} characters)"
    return f"plugin name {shown} is not allowed: {flaw}; {RULE}"


def flat(text: str) -> str:
    """CLI output with rich's box and the terminal's line wrapping undone."""
    return " ".join(text.replace("\u2502", " ").split())


def upload(server: RunningServer, name: str) -> httpx.Response:
    return server.api.post("/v1/plugins", data={"name": name}, files={"file": ("main.py", COUNTER)})


def path(name: str) -> str:
    return f"/v1/plugins/{quote(name, safe='')}"


def state(server: RunningServer) -> list[Any]:
    """What a refused request must leave as it was."""
    return [server.api.get(p).json() for p in ("/v1/plugins", "/v1/audit")]


def graphql(server: RunningServer, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}{server.settings.api.graphql_path}",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


CREATE = "mutation($v: String!) { createPlugin(data: {pluginName: $v}) }"


@pytest.mark.parametrize(("value", "flaw"), BAD, ids=BAD_IDS)
def test_a_bad_name_is_refused_everywhere_and_creates_nothing(
    server: RunningServer, value: str, flaw: str
) -> None:
    before = state(server)
    response = upload(server, value)
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["code"], body["field"], body["message"]) == (
        "invalid_identifier",
        "name",
        refusal(value, flaw),
    )
    answer = graphql(server, CREATE, {"v": value})
    (error,) = answer["errors"]
    assert error["message"] == refusal(value, flaw)
    assert error["extensions"] == {
        "code": "invalid_identifier",
        "status": 422,
        "field": "pluginName",
    }
    done = cli(server, "push", str(PLUGINS / "counter"), "--name", value, ok=False)
    assert done.returncode == 2
    assert flat(refusal(value, flaw)) in flat(done.stderr), done.stderr
    assert state(server) == before


def test_an_empty_name_is_refused_by_graphql_and_the_cli(server: RunningServer) -> None:
    before = state(server)
    (error,) = graphql(server, CREATE, {"v": ""})["errors"]
    assert error["message"] == refusal("", "it is empty")
    assert error["extensions"]["code"] == "invalid_identifier"
    done = cli(server, "push", str(PLUGINS / "counter"), "--name", "", ok=False)
    assert done.returncode == 2
    assert flat(refusal("", "it is empty")) in flat(done.stderr), done.stderr
    assert state(server) == before


def test_a_free_text_name_through_rest_end_to_end(server: RunningServer) -> None:
    """Upload, read, activate, run, list, delete "My first kili plugin" over REST."""
    created = upload(server, FREE)
    assert created.status_code == 202, created.text
    assert created.json()["plugin"] == FREE
    build = server.wait_build(FREE, created.json()["version"])
    assert build["status"] == "ACTIVE", build["log"]
    read = server.api.get(path(FREE))
    assert read.status_code == 200 and read.json()["name"] == FREE
    assert server.api.get("/v1/plugins/My%20first%20kili%20plugin").json()["name"] == FREE
    server.activate(FREE, "names-rest")
    run = server.run_event(type="onSubmit", project_id="names-rest", asset_id="a1", label={})
    assert (run["status"], run["plugin"]) == ("succeeded", FREE)
    runs = server.api.get("/v1/invocations", params={"plugin_name": FREE}).json()
    assert [r["id"] for r in runs] == [run["id"]]
    logs = server.logs(plugin_name=FREE, project_id="names-rest")
    assert "ran a1" in [entry["content"] for entry in logs]
    assert FREE in [p["name"] for p in server.api.get("/v1/plugins").json()]
    assert server.api.delete(path(FREE)).status_code == 204
    assert server.api.get(path(FREE)).status_code == 404


def test_names_equal_but_for_case_or_form_are_one_name(server: RunningServer) -> None:
    """'QA Bot' next to 'qa bot', a fullwidth or a decomposed twin: 409 naming the plugin
    that has the name, through REST, GraphQL and the CLI; nothing is created."""
    taken = upload(server, "Caf\u00e9 bot")  # é precomposed
    assert taken.status_code == 202, taken.text
    server.wait_build("Caf\u00e9 bot", 1)
    before = state(server)
    for twin in ("CAF\u00c9 BOT", "cafe\u0301 BOT", "\uff23af\u00e9 bot"):
        response = upload(server, twin)
        assert response.status_code == 409, response.text
        body = response.json()
        stored = unicodedata.normalize("NFC", twin)
        assert (body["code"], body["existing"]) == ("name_taken", "Caf\u00e9 bot")
        assert body["message"] == (
            f"plugin name {stored!r} is taken by the plugin 'Café bot': names that differ "
            "only in case or Unicode form are one name; use 'Café bot' to act on that "
            "plugin, or choose another name"
        )
        (error,) = graphql(server, CREATE, {"v": twin})["errors"]
        assert error["message"] == body["message"]
        assert error["extensions"]["code"] == "name_taken"
        done = cli(server, "push", str(PLUGINS / "counter"), "--name", twin, ok=False)
        assert done.returncode == 1
        said = flat(done.stderr)
        assert flat(body["message"]) in said and "name_taken, HTTP 409" in said, said
    assert state(server) == before
    # The decomposed spelling of the same name is that name: a new version of it.
    again = upload(server, "Cafe\u0301 bot")
    assert again.status_code == 202, again.text
    assert again.json()["plugin"] == "Caf\u00e9 bot"
    # Names are exact in paths: a twin is not found, with a hint.
    missing = server.api.get(path("CAFÉ BOT")).json()
    assert missing["message"] == "no plugin named 'CAFÉ BOT'; did you mean 'Café bot'?"


def test_the_cli_pushes_and_activates_a_free_text_name(server: RunningServer) -> None:
    name = "CLI [beta] plugin #1 50%?"  # markup, and what a URL path would take apart
    pushed = cli(server, "push", str(PLUGINS / "counter" / "main.py"), "--name", name)
    assert f"{name} v1 is ACTIVE" in pushed.stdout
    activated = cli(server, "activate", name, "--project", "names-cli")
    assert f"{name} active on names-cli for onSubmit" in activated.stdout
    shown = cli(server, "versions", name)
    assert "ACTIVE" in shown.stdout
    cli(server, "deactivate", name, "--project", "names-cli")
    assert server.api.get("/v1/projects/names-cli/plugins").json() == []
