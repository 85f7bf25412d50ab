"""``plugin-executor init`` as an author uses it: each template's generated tests pass with
``pytest`` in the new folder (``plugin_runtime.testing`` from the installed package), and the
same code runs in the real sandbox with ``plugin-executor run`` on its sample event."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import RUNTIME_IMAGE
from tests.e2e.test_cli_builds import local, local_env

QA_PROBLEM = "CURRENCY is 'GBP': expected one of EUR, USD"
LABELS_CALL = (
    "CALL     kili.labels(project_id='local-project', asset_id='asset-001', "
    "fields=['id', 'author.email', 'jsonResponse'], disable_tqdm=True)"
)
# Record mode (no --api-url): each template on each of its sample events, what it prints:
# its log lines and the self.kili calls it made, in order.
SANDBOX_OUTPUT = {
    "blank": {"onSubmit.json": ["INFO     label label-001 submitted on asset asset-001"]},
    "qa": {
        "onSubmit.json": ["INFO     asset asset-001 ACCEPTED"],
        "onSubmit_wrong_currency.json": [
            f"WARNING  asset asset-003: {QA_PROBLEM}",
            "CALL     kili.create_issues(project_id='local-project', label_id_array=['label-003'], "
            f'text_array=["{QA_PROBLEM}"])',
        ],
    },
    "consensus": {
        # No --answers: kili.labels() answers [] (no other labeler yet).
        "onSubmit.json": [
            LABELS_CALL,
            "INFO     asset asset-001: 0 other label(s) agree on ['CAT']",
        ],
    },
}


def author_env() -> dict[str, str]:
    """The author's environment: no PYTHONPATH, so plugin_runtime comes from the install."""
    env = {**local_env(), "EXECUTOR_RUNTIME_IMAGE": RUNTIME_IMAGE}
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture
def plugin_folder(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Path]:
    """A unique folder name (the local image tag is made of it); that image is removed."""
    folder = tmp_path / f"scaffold-{uuid.uuid4().hex[:8]}"
    yield folder
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(f"plugin-executor/p-local-{folder.name}:v0", force=True)


@pytest.mark.parametrize("template", ["blank", "qa", "consensus"])
def test_init_writes_a_plugin_whose_tests_pass_and_that_runs_in_the_sandbox(
    template: str, plugin_folder: Path, runtime_image: str
) -> None:
    made = local("init", str(plugin_folder), "--template", template)
    assert made.returncode == 0, made.stderr
    files = sorted(str(p.relative_to(plugin_folder)) for p in plugin_folder.rglob("*"))
    assert {"main.py", "requirements.txt", "test_plugin.py", "events/onSubmit.json"} <= set(files)
    assert f"created from template {template}" in made.stderr

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=plugin_folder,
        env=author_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout

    # Record mode, the default without --api-url: no network, no platform, the calls shown.
    for event, expected in SANDBOX_OUTPUT[template].items():
        ran = run_locally(plugin_folder, plugin_folder / "events" / event)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert ran.stdout.splitlines() == expected, ran.stderr
        calls = sum(line.startswith("CALL") for line in expected)
        assert ran.stderr.rstrip().endswith(
            f"record mode: {calls} call(s) recorded, none reached a platform\nrun succeeded"
        )


def run_locally(folder: Path, event: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "executor.cli", "run", str(folder), "--event", str(event), *options],
        env=author_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_record_mode_answers_from_a_file_and_reports_a_failing_handler(
    plugin_folder: Path, tmp_path: Path, runtime_image: str
) -> None:
    assert local("init", str(plugin_folder), "--template", "consensus").returncode == 0
    bob = {"id": "l2", "author": {"email": "bob@example.com"}}
    answers = tmp_path / "answers.json"
    answers.write_text(
        json.dumps(
            {
                "kili": {
                    "labels": [
                        {
                            **bob,
                            "jsonResponse": {
                                "CLASSIFICATION_JOB": {"categories": [{"name": "DOG"}]}
                            },
                        }
                    ]
                }
            }
        )
    )
    event = plugin_folder / "events" / "onSubmit.json"
    ran = run_locally(plugin_folder, event, "--answers", str(answers))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.splitlines() == [
        LABELS_CALL,
        "WARNING  asset asset-001: bob@example.com disagree with ['CAT']: sent back to queue",
        "CALL     kili.send_back_to_queue(asset_ids=['asset-001'])",
    ]

    # An answer the plugin does not expect: its handler fails, and run exits 1 saying so.
    answers.write_text(json.dumps({"kili": {"labels": [{"id": "l2"}]}}))
    failed = run_locally(plugin_folder, event, "--answers", str(answers))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert failed.stdout.splitlines()[0] == LABELS_CALL
    assert "KeyError: 'author'" in failed.stdout  # the plugin's own traceback, as an ERROR
    assert failed.stderr.rstrip().endswith("run failed: plugin exited with code 1")


def test_run_refuses_bad_answers_and_mixed_modes_before_building(
    plugin_folder: Path, tmp_path: Path
) -> None:
    assert local("init", str(plugin_folder), "--template", "qa").returncode == 0
    event = str(plugin_folder / "events" / "onSubmit.json")
    answers = tmp_path / "answers.json"
    answers.write_text('{"api": {"assets/a1": 1}}')
    cases = {
        ("--answers", str(answers)): f"error: {answers} is not an answers file: api: Value "
        "error, key 'assets/a1' is not 'METHOD path' (e.g. 'GET assets/a1')",
        ("--answers", str(tmp_path / "nope.json")): f"error: cannot read {tmp_path / 'nope.json'}"
        ": No such file or directory",
        ("--record", "--api-url", "http://127.0.0.1:9/x"): "error: --record and --api-url "
        "exclude each other: choose one",
        ("--no-record", "--answers", str(answers)): "error: --answers is for record mode: drop "
        "--no-record/--api-url",
    }
    for options, message in cases.items():
        refused = local("run", str(plugin_folder), "--event", event, *options)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.replace("\n", "").strip() == message
        assert "building" not in refused.stderr


def test_init_refuses_a_folder_that_is_not_empty_and_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "main.py").write_text("# my work\n")
    refused = local("init", str(folder), "--template", "qa")
    assert refused.returncode == 2
    assert refused.stderr.replace("\n", "") == (
        f"error: {folder} is not empty (1 entries: main.py): nothing was written; choose a new "
        "folder name or empty that one"
    )
    assert [p.name for p in folder.iterdir()] == ["main.py"]
    assert (folder / "main.py").read_text() == "# my work\n"

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert local("init", str(a_file)).returncode == 2
    assert a_file.read_text() == "x"


def test_init_into_an_empty_folder_and_an_unknown_template(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert local("init", str(empty)).returncode == 0
    assert (empty / "main.py").is_file()
    unknown = local("init", str(tmp_path / "new"), "--template", "weekly")
    assert unknown.returncode == 2
    assert "'weekly' is not one of 'blank', 'qa', 'consensus'" in unknown.stderr
    assert not (tmp_path / "new").exists()
    assert os.listdir(tmp_path) == ["empty"]
