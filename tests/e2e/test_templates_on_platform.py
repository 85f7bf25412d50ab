"""The qa and consensus templates, run with ``plugin-executor run --api-url`` against the
reference platform (examples/labeling_platform): the Kili SDK's GraphQL operations go
through the local gateway to the platform, and the platform's state shows their effect."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.e2e.test_cli_builds import local
from tests.e2e.test_scaffold import author_env
from tests.labeling_platform import SERVICE_KEY, RunningPlatform, start_platform

CLASSES = {"CAT": {"name": "CAT"}, "DOG": {"name": "DOG"}}


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[RunningPlatform]:
    with start_platform(tmp_path / "platform-data", None) as running:
        yield running


@pytest.fixture
def folders(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[list[Path]]:
    """Unique plugin folder names (the local image tags are made of them), images removed."""
    made: list[Path] = []
    yield made
    for folder in made:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(f"plugin-executor/p-local-{folder.name}:v0", force=True)


def run_on_platform(
    folders: list[Path], tmp_path: Path, template: str, platform: RunningPlatform, event: Any
) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / f"{template}-{uuid.uuid4().hex[:8]}"
    folders.append(folder)
    assert local("init", str(folder), "--template", template).returncode == 0
    event_file = tmp_path / f"{folder.name}.json"
    event_file.write_text(json.dumps(event))
    api_url = f"{platform.url}/api/v1/projects/{{project_id}}"
    return subprocess.run(
        [
            *(sys.executable, "-m", "executor.cli", "run", str(folder)),
            *("--event", str(event_file), "--api-url", api_url),
        ],
        env={**author_env(), "EXECUTOR_PLATFORM_CREDENTIAL": SERVICE_KEY},
        capture_output=True,
        text=True,
        timeout=600,
    )


def on_submit(project_id: str, label: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "onSubmit",
        "project_id": project_id,
        "asset_id": label["assetId"],
        "label": label,
    }


def test_the_qa_template_creates_an_issue_on_the_platform(
    platform: RunningPlatform, folders: list[Path], tmp_path: Path, runtime_image: str
) -> None:
    platform.project("invoices", {"PAYMENT_JOB": {"mlTask": "TRANSCRIPTION"}})
    asset = platform.asset("invoices", "inv-1")
    labeler = platform.user("labeler@example.com")
    answer = {"PAYMENT_JOB": {"text": "invoice 1", "CURRENCY": {"text": "GBP"}}}
    label = platform.submit(labeler, "invoices", asset["id"], answer)

    ran = run_on_platform(folders, tmp_path, "qa", platform, on_submit("invoices", label))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    problem = "CURRENCY is 'GBP': expected one of EUR, USD"
    warning, *progress = ran.stdout.splitlines()
    assert warning == f"WARNING  asset {asset['id']}: {problem}"
    # The SDK's own progress bar (tqdm, on stderr), its last state.
    assert [line.split("|")[0] for line in progress] == ["INFO     Creating issues: 100%"]
    assert "1 platform API call(s) through the gateway" in ran.stderr
    (issue,) = platform.issues("invoices", asset["id"])
    assert (issue["labelId"], issue["text"], issue["author"]) == (
        label["id"],
        problem,
        "executor-plugins",
    )


def test_the_consensus_template_sends_a_disputed_asset_back_to_the_queue(
    platform: RunningPlatform, folders: list[Path], tmp_path: Path, runtime_image: str
) -> None:
    platform.project(
        "animals",
        {"CLASSIFICATION_JOB": {"mlTask": "CLASSIFICATION", "content": {"categories": CLASSES}}},
    )
    alice, bob = platform.user("alice@example.com"), platform.user("bob@example.com")
    asset = platform.asset(
        "animals", "img-1", consensusAssignees=["alice@example.com", "bob@example.com"]
    )
    platform.submit(
        alice, "animals", asset["id"], {"CLASSIFICATION_JOB": {"categories": [{"name": "CAT"}]}}
    )
    label = platform.submit(
        bob, "animals", asset["id"], {"CLASSIFICATION_JOB": {"categories": [{"name": "DOG"}]}}
    )
    assert platform.get_asset("animals", asset["id"])["status"] == "LABELED"

    ran = run_on_platform(folders, tmp_path, "consensus", platform, on_submit("animals", label))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.splitlines() == [
        f"WARNING  asset {asset['id']}: alice@example.com disagree with ['DOG']: sent back to queue"
    ]
    assert platform.get_asset("animals", asset["id"])["status"] == "TODO"
    assert len(platform.labels("animals", asset["id"])) == 2  # read, not changed
