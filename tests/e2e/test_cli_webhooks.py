"""``plugin-executor webhook create|update`` as a user runs them (a subprocess), with the
webhook then activated and an event delivered to a receiver on loopback."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.cli_runner import run_cli
from tests.conftest import OPERATOR_KEY, RunningServer, ServerFactory
from tests.integration.webhook_receiver import Receiver, serve_receiver

pytestmark = pytest.mark.docker

HEADER = "Bearer cli-secret-header-0123456789"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as serving:
        yield serving


@pytest.fixture(scope="module")
def hooks(server_factory: ServerFactory, receiver: Receiver) -> RunningServer:
    return server_factory(webhook_allowed_hosts=[f"127.0.0.1:{receiver.port}"])


def cli(server: RunningServer, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {"EXECUTOR_URL": server.url, "EXECUTOR_API_KEY": OPERATOR_KEY}
    return run_cli(args, env | {"COLUMNS": "200", "NO_COLOR": "1"}, stdin=stdin)


def test_create_activate_deliver_update(hooks: RunningServer, receiver: Receiver) -> None:
    url = f"http://127.0.0.1:{receiver.port}/ok"
    made = cli(hooks, "webhook", "create", "cli-hook", url, "--header", "-", stdin=HEADER + "\n")
    assert made.returncode == 0, made.stderr
    assert f"Webhook cli-hook v1 created: {url}" in made.stdout
    assert "called for: onSubmit, onReview" in made.stdout
    assert "signing secret (shown once" in made.stdout and "whsec_" in made.stdout
    assert HEADER not in made.stdout
    listed = cli(hooks, "list")
    [row] = [line for line in listed.stdout.splitlines() if "cli-hook" in line]
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[:4] == ["cli-hook", "webhook", "1", "ACTIVE"], row
    assert cli(hooks, "activate", "cli-hook", "--project", "cli-project").returncode == 0
    sent = cli(
        hooks, "event", "--project", "cli-project", "--asset", "a1", "--label", "{}", "--wait"
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    [got] = receiver.hits("/ok")
    assert got.headers["Authorization"] == HEADER
    assert json.loads(got.body)["logPayload"]["pluginName"] == "cli-hook"

    changed = cli(hooks, "webhook", "update", "cli-hook", "--event-matcher", "asset.*", "--json")
    assert changed.returncode == 0, changed.stderr
    answer = json.loads(changed.stdout)
    assert (answer["version"], answer["event_matcher"]) == (2, ["asset.*"])
    assert answer["signing_secret"] is None


def test_refused_address_is_an_error_naming_it(hooks: RunningServer) -> None:
    refused = cli(hooks, "webhook", "create", "metadata", "http://169.254.169.254/latest")
    assert refused.returncode == 1
    assert "169.254.169.254, a link-local address" in refused.stderr
    assert "metadata" not in cli(hooks, "list").stdout
