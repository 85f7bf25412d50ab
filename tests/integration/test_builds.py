"""Builds on a real engine: cache sharing, pip freeze, non-root pip, offline wheelhouse,
wall-time limit, log cap, restart mid-build.

All build tests live in this one module so that (with ``--dist loadfile``) no other build
of this suite runs at the same time, which the leftover-container checks rely on.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from executor.build.image_checks import PROBE_LABEL
from executor.intake.upload import pack_directory
from tests.conftest import RunningServer, ServerFactory, make_settings, start_server, stop_server

MAIN = "class PluginHandler:\n    def on_submit(self, label, asset_id):\n        print({!r})\n"
PIP_STEP = "/opt/build/requirements.txt"  # in the Cmd of every pip step container


def make_plugin(root: Path, name: str, requirements: str = "", says: str = "hi") -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(MAIN.format(says))
    if requirements:
        (folder / "requirements.txt").write_text(requirements)
    return folder


def make_sdist(wheelhouse: Path, name: str, setup_body: str) -> None:
    """A source distribution ``name-1.0.tar.gz`` whose setup.py runs ``setup_body`` first."""
    setup = f"import sys, time\n{setup_body}\nfrom setuptools import setup\n"
    setup += f"setup(name={name!r}, version='1.0', py_modules=[])\n"
    files = {
        f"{name}-1.0/setup.py": setup.encode(),
        f"{name}-1.0/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
    }
    with tarfile.open(wheelhouse / f"{name}-1.0.tar.gz", "w:gz") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


def pip_step_containers(client: docker.DockerClient) -> list[str]:
    """Containers of our pip steps still present (a stopped build must leave none)."""
    # The low-level list: no inspect per container, which races with removals.
    return [c["Id"] for c in client.api.containers(all=True) if PIP_STEP in c["Command"]]


def wait_no_pip_step(client: docker.DockerClient, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while pip_step_containers(client):
        assert time.monotonic() < deadline, "a pip step container was left behind"
        time.sleep(0.5)


def probed_images(client: docker.DockerClient, since: float) -> set[str]:
    """The images the builds read a freeze from (a probe container each) since ``since``,
    as the Engine's events tell them."""
    created = client.events(
        filters={"type": "container", "event": "create", "label": f"{PROBE_LABEL}=true"},
        since=int(since),
        until=int(time.time()) + 1,
        decode=True,
    )
    return {event["Actor"]["Attributes"]["image"] for event in created}


def test_same_requirements_share_the_layer_and_freeze_is_stored(
    server: RunningServer, tmp_path: Path
) -> None:
    requirements = f"six==1.16.0  # shared-layer test {uuid.uuid4()}\n"
    started = time.time()
    first = server.push(make_plugin(tmp_path, "req_first", requirements))
    second = server.push(make_plugin(tmp_path, "req_second", requirements, says="other"))
    assert "Successfully installed six-1.16.0" in first["log"]
    assert "Successfully installed six" not in second["log"]  # pip did not run again
    pip_step = second["log"].split("python3 -m pip install", 1)[1]
    assert pip_step.lstrip().split("\n", 2)[1].strip() == "---> Using cache"
    assert first["pip_freeze"] == second["pip_freeze"] == "six==1.16.0\n"
    # Built on one parent (the requirements' cached layers): the freeze and the installed
    # modules were read from the first image's probe container only.
    images = [
        server.docker_client.images.get(f"plugin-executor/p-{plugin_id(server, name)}:v1")
        for name in ("req_first", "req_second")
    ]
    assert images[0].attrs["Parent"] == images[1].attrs["Parent"] != ""
    probed = probed_images(server.docker_client, started)
    assert images[0].id in probed and images[1].id not in probed
    plugin = server.api.get("/v1/plugins/req_second").json()
    assert plugin["versions"][0]["pip_freeze"] == "six==1.16.0\n"
    assert plugin["versions"][0]["current"] is True and plugin["current_version"] == 1
    # pip ran as the build user, not root: it owns what it installed.
    owner = server.docker_client.containers.run(
        f"plugin-executor/p-{plugin_id(server, 'req_second')}:v1",
        entrypoint=["stat", "-c", "%u", "/opt/venv/lib/python3.11/site-packages/six.py"],
        remove=True,
        network_disabled=True,
    )
    assert owner.decode().strip() == "10001"
    image = server.docker_client.images.get(
        f"plugin-executor/p-{plugin_id(server, 'req_second')}:v1"
    )
    assert image.labels["io.plugin-executor.plugin-image"] == "true"
    assert image.attrs["Config"]["User"] == "10000:10000"


def plugin_id(server: RunningServer, name: str) -> str:
    from sqlalchemy import select

    from executor.store.tables import Plugin

    with server.service.db.session() as session:
        return str(session.scalar(select(Plugin.id).where(Plugin.name == name)))


def test_the_same_code_in_two_plugins_builds_an_image_for_each(
    server: RunningServer, tmp_path: Path
) -> None:
    """One image per version: its id is in the code's step, so the same code and
    requirements uploaded as two plugins (of any tenants) are two images on one parent,
    and removing one by its id leaves the other."""
    folder = make_plugin(tmp_path, "twin", says=f"twin {uuid.uuid4()}")
    for name in ("twin_a", "twin_b"):
        server.push(folder, name=name)
    images = {
        name: server.docker_client.images.get(f"plugin-executor/p-{plugin_id(server, name)}:v1")
        for name in ("twin_a", "twin_b")
    }
    assert images["twin_a"].id != images["twin_b"].id
    assert images["twin_a"].attrs["Parent"] == images["twin_b"].attrs["Parent"]
    for name, image in images.items():
        written = server.docker_client.containers.run(
            str(image.id),
            entrypoint=["cat", "/opt/plugin/plugin_code/__pycache__/plugin-executor-version"],
            remove=True,
            network_disabled=True,
        )
        assert written.decode() == f"{version_id(server, name)}\n"


def version_id(server: RunningServer, name: str) -> str:
    from sqlalchemy import select

    from executor.store.tables import PluginVersion

    with server.service.db.session() as session:
        found = select(PluginVersion.id).where(PluginVersion.plugin_id == plugin_id(server, name))
        return str(session.scalar(found))


def test_plugin_without_requirements_has_an_empty_freeze(server: RunningServer) -> None:
    build = server.push("sleeper", name="no_reqs")
    assert build["pip_freeze"] == ""
    assert "pip install" not in build["log"]


def test_a_code_only_build_adds_the_code_and_its_bytecode_and_runs_load_the_bytecode(
    server: RunningServer, tmp_path: Path
) -> None:
    """The code and the .pyc files the build compiled in a check worker are one ADD: no
    step runs a container. A run's interpreter loads main's code from its .pyc, and the
    code stays root's, read-only to runs."""
    folder = make_plugin(tmp_path, "compiled", says=f"compiled {uuid.uuid4()}")
    (folder / "lib").mkdir()
    (folder / "lib" / "helpers.py").write_text("def helper():\n    return 1\n")
    build = server.push(folder)
    steps = [line for line in build["log"].splitlines() if line.startswith("Step ")]
    assert [step.split(" : ")[1].split(" ")[0] for step in steps] == [
        "FROM",
        "USER",
        "LABEL",
        "ADD",
    ]
    assert steps[3] == "Step 4/4 : ADD source.tar.gz bytecode.tar /opt/plugin/plugin_code/"
    image = f"plugin-executor/p-{plugin_id(server, 'compiled')}:v1"
    code = "/opt/plugin/plugin_code"
    listing = server.docker_client.containers.run(
        image,
        entrypoint=["stat", "-c", "%U %a %n", code, f"{code}/main.py", f"{code}/lib",
                    f"{code}/__pycache__/main.cpython-311.pyc"],
        remove=True,
        network_disabled=True,
    )  # fmt: skip
    assert listing.decode().splitlines() == [
        f"root 755 {code}",
        f"root 644 {code}/main.py",
        f"root 755 {code}/lib",
        f"root 644 {code}/__pycache__/main.cpython-311.pyc",
    ]
    load = f"import sys; sys.path.insert(0, {code!r}); import main; import lib.helpers"
    verbose = server.docker_client.containers.run(
        image,
        entrypoint=["python3", "-I", "-v", "-c", load],
        user="10000:10000",
        read_only=True,
        remove=True,
        network_disabled=True,
        stdout=False,
        stderr=True,
    ).decode()
    assert f"# code object from '{code}/__pycache__/main.cpython-311.pyc'" in verbose
    assert f"# code object from '{code}/lib/__pycache__/helpers.cpython-311.pyc'" in verbose
    server.activate("compiled", "compiled-p")
    run = server.run_event(type="onSubmit", project_id="compiled-p", asset_id="a", label={})
    assert run["status"] == "succeeded", run


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """six's wheel from the index (pip download), and four hand-made sdists."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--dest",
            str(folder),
            "six==1.16.0",
        ],
        check=True,
        timeout=300,
    )
    make_sdist(folder, "sleepy", "time.sleep(600)")
    make_sdist(folder, "slowish", "time.sleep(3)")
    make_sdist(folder, "hungry", "hog = b'x' * (1024 * 1024 * 1024)")  # writes 1 GiB
    make_sdist(
        folder,
        "chatty",
        "print('x' * 100 + '\\n', end='' ) or None\n"
        "for i in range(4000): print('chatty line', i, 'x' * 60)\nsys.exit(1)",
    )
    return folder


@pytest.fixture(scope="module")
def offline(server_factory: ServerFactory, wheelhouse: Path) -> RunningServer:
    return server_factory(
        build_wheelhouse=wheelhouse,
        build_index_url="https://127.0.0.1:9/unreachable",  # offline builds never use it
        build_log_cap_bytes=16 * 1024,
    )


@pytest.fixture(scope="module")
def lean(server_factory: ServerFactory, wheelhouse: Path) -> RunningServer:
    return server_factory(build_wheelhouse=wheelhouse, build_memory_mib=128)


@pytest.fixture(scope="module")
def hasty(server_factory: ServerFactory, wheelhouse: Path) -> RunningServer:
    return server_factory(build_wheelhouse=wheelhouse, build_timeout_s=8)


def test_offline_build_installs_from_the_wheelhouse(offline: RunningServer, tmp_path: Path) -> None:
    build = offline.push(make_plugin(tmp_path, "offline_six", f"six==1.16.0 # {uuid.uuid4()}\n"))
    assert "--no-index --find-links /opt/build/wheelhouse" in build["log"]
    assert "Successfully installed six-1.16.0" in build["log"]
    assert build["pip_freeze"] == "six==1.16.0\n"
    offline.activate("offline_six", "offline")
    run = offline.run_event(type="onSubmit", project_id="offline", asset_id="a", label={})
    assert run["status"] == "succeeded"


def test_offline_build_cannot_reach_the_index(offline: RunningServer, tmp_path: Path) -> None:
    build = offline.push(make_plugin(tmp_path, "offline_miss", "attrs==23.2.0\n"), expect="FAILED")
    assert "No matching distribution found for attrs==23.2.0" in build["log"]
    assert build["error"].startswith("The command '/bin/sh -c PIP_CONFIG_FILE=/dev/null")


def test_build_past_its_wall_time_is_stopped_and_failed(
    hasty: RunningServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    build = hasty.push(
        make_plugin(tmp_path, "too_slow", f"sleepy # {uuid.uuid4()}\n"), expect="FAILED"
    )
    elapsed = time.monotonic() - started
    reason = (
        "the build ran past its wall time of 8 s and was stopped: trim requirements.txt, or "
        "ask the operator to raise EXECUTOR_BUILD_TIMEOUT_S"
    )
    assert build["error"] == reason
    assert build["log"].endswith(f"\nBUILD FAILED: {reason}\n")
    assert elapsed >= 8  # stopped at its wall time, not before (its step sleeps far longer)
    wait_no_pip_step(hasty.docker_client)


def test_a_build_step_past_its_memory_limit_names_the_limit_and_the_setting(
    lean: RunningServer, tmp_path: Path
) -> None:
    build = lean.push(
        make_plugin(tmp_path, "hungry_p", f"hungry # {uuid.uuid4()}\n"), expect="FAILED"
    )

    reason = (
        "the build step ran out of memory: its memory limit of 128 MiB "
        "(EXECUTOR_BUILD_MEMORY_MIB) was exceeded while running pip install (exit "
    )
    assert build["error"].startswith(reason), build["error"]
    code = build["error"].removeprefix(reason).partition(")")[0]
    assert code in ("1", "137")  # pip itself, or the setup.py it ran, was killed
    assert build["error"].endswith(
        "): trim requirements.txt, or ask the operator to raise EXECUTOR_BUILD_MEMORY_MIB"
    )
    assert build["log"].endswith(f"\nBUILD FAILED: {build['error']}\n")
    wait_no_pip_step(lean.docker_client)


def test_chatty_build_log_is_capped(offline: RunningServer, tmp_path: Path) -> None:
    build = offline.push(
        make_plugin(tmp_path, "chatty_p", f"chatty # {uuid.uuid4()}\n"), expect="FAILED"
    )
    note = "\n[build log truncated: over 16384 bytes; the build goes on]\n"
    assert note in build["log"]
    before_note = build["log"].split(note)[0]
    assert len(before_note) <= 16 * 1024
    assert build["log"].endswith(f"\nBUILD FAILED: {build['error']}\n")
    assert "returned a non-zero code: 1" in build["error"]


def test_restart_during_a_build_resumes_it(
    docker_client: docker.DockerClient, wheelhouse: Path, tmp_path: Path, runtime_image: str
) -> None:
    data_dir = tmp_path / "data"
    first = start_server(make_settings(data_dir, build_wheelhouse=wheelhouse), docker_client)
    server = first[0]
    folder = make_plugin(tmp_path, "restarted", f"slowish\nsix==1.16.0 # {uuid.uuid4()}\n")

    response = server.api.post(
        "/v1/plugins",
        data={"name": "restarted"},
        files={"file": ("restarted.tar.gz", pack_directory(folder))},
    )
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 120
    while "Processing /opt/build/wheelhouse/slowish" not in build_log(server)["log"]:
        assert time.monotonic() < deadline, build_log(server)
        time.sleep(0.2)
    stop_server(*first)  # mid-build: the build is stopped, the version stays DEPLOYING
    wait_no_pip_step(docker_client)
    second = start_server(make_settings(data_dir, build_wheelhouse=wheelhouse), docker_client)
    try:
        interrupted_then_resumed = second[0].wait_build("restarted", 1)
        assert interrupted_then_resumed["status"] == "ACTIVE", interrupted_then_resumed["log"]
        log = interrupted_then_resumed["log"]
        assert "--- build stopped: the executor is shutting down; it resumes at start" in log
        assert "--- build restarted after an executor restart" in log
        assert interrupted_then_resumed["pip_freeze"] == "six==1.16.0\nslowish==1.0\n"
    finally:
        stop_server(*second)


def build_log(server: RunningServer) -> dict[str, Any]:
    return dict(server.api.get("/v1/plugins/restarted/versions/1/build-log").json())


def test_concurrent_builds_are_limited_by_the_setting(
    server_factory: ServerFactory, wheelhouse: Path, tmp_path: Path
) -> None:
    """With max_concurrent_builds=1 two uploads build one after the other, as the builder's
    own record of builds in progress shows, and both end ACTIVE. (Posted back to back, they
    would overlap without the limit: each build takes seconds, so no step needs to sleep.)"""
    single = server_factory(build_wheelhouse=wheelhouse, max_concurrent_builds=1)
    names = ["first_build", "second_build"]
    for name in names:
        folder = make_plugin(tmp_path, name, f"six==1.16.0 # {uuid.uuid4()}\n")
        data = pack_directory(folder)
        response = single.api.post(
            "/v1/plugins", data={"name": name}, files={"file": (f"{name}.tar.gz", data)}
        )
        assert response.status_code == 202, response.text
    deadline = time.monotonic() + 300
    while True:
        builds = [single.api.get(f"/v1/plugins/{n}/versions/1/build-log").json() for n in names]
        if all(b["status"] != "DEPLOYING" for b in builds):
            break
        assert time.monotonic() < deadline, "builds did not end"
        time.sleep(0.1)
    assert [b["status"] for b in builds] == ["ACTIVE", "ACTIVE"]
    # The builder's own count of builds in progress, not what two polls happened to see.
    assert single.service.builder.peak_running == 1
