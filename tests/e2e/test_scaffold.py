"""``plugin-executor init`` as an author uses it: each template's generated tests pass with
``pytest`` in the new folder (``plugin_runtime.testing`` from the installed package), and the
same code runs in the real sandbox with ``plugin-executor run`` on its sample event."""

from __future__ import annotations

import contextlib
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
from tests.platform_standin import platform_standin

SANDBOX_OUTPUT = {
    "blank": ["INFO     label label-001 submitted on asset asset-001"],
    "qa": ["INFO     asset asset-001 ACCEPTED"],
    "consensus": ["WARNING  consensus not checked: self.kili is None (the minimal flavor)"],
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

    event = plugin_folder / "events" / "onSubmit.json"
    if template == "consensus":
        # kili.labels() first reads the project and the labels' storage: more platform than
        # the stand-in plays. On the minimal flavor self.kili is None, which the plugin says.
        (plugin_folder / "plugin.toml").write_text('runtime = "minimal"\n')
    # The default flavor has the Kili SDK: self.kili calls the platform (a stand-in here).
    with platform_standin() as platform:
        ran = subprocess.run(
            [
                *(sys.executable, "-m", "executor.cli", "run", str(plugin_folder)),
                *("--event", str(event), "--api-url", platform.url + "/api/label/v2"),
            ],
            env=author_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.splitlines() == SANDBOX_OUTPUT[template]
    assert ran.stderr.rstrip().endswith("run succeeded")


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
