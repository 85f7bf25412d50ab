"""Docker Engine restarts mid-run: the affected invocations are retried and succeed.

The restart happens on a private ``dockerd`` the test starts (own socket, data root and
containerd, no bridge network) in a network namespace of its own, so other tests on the
shared engine are not disturbed: a dockerd without a bridge deletes any ``docker0`` it
finds, which must be the private namespace's (there is none), never the host's.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from executor.settings import Settings
from executor.statuses import RuntimeFlavor
from tests.conftest import OPERATOR_KEY, RUNTIME_IMAGE
from tests.integration.engines import (
    PrivateEngine,
    load_images,
    network_namespace,
    private_engine,
)
from tests.integration.processes import executor_process


@pytest.fixture(scope="module")
def engine(runtime_image: str) -> Iterator[PrivateEngine]:
    name = f"pe-engine-{secrets.token_hex(3)}"
    with network_namespace(name), private_engine(name, name) as started:
        # Plugins build FROM the default flavor (kili) of the runtime image.
        kili = Settings(operator_key=OPERATOR_KEY, runtime_image=RUNTIME_IMAGE).images.flavor_image(
            RuntimeFlavor.KILI
        )
        load_images(started, [RUNTIME_IMAGE, kili])
        yield started


def test_dockerd_restart_mid_run_is_retried_and_succeeds(
    engine: PrivateEngine, tmp_path: Path
) -> None:
    client = docker.DockerClient(base_url=engine.host, timeout=120)
    executor = executor_process(
        tmp_path / "data",
        client,
        docker_host=engine.host,
        retry_base_s=1,
        retry_max_s=4,
        retry_max_attempts=12,
    ).start()
    try:
        executor.push("interval")
        executor.activate("interval", "engine")
        ids = [
            executor.post_event(
                type="onSubmit", project_id="engine", asset_id=f"r{i}", label={"sleep": 6}
            )["invocations"][0]
            for i in range(3)
        ]
        deadline = time.monotonic() + 120
        while (
            sum(any(r["content"].startswith("start") for r in executor.logs(run_id=i)) for i in ids)
            < 3
        ):
            assert time.monotonic() < deadline, "runs did not start"
            time.sleep(0.3)
        engine.stop()
        engine.start()
        runs = [executor.wait_run(i, timeout=240) for i in ids]
        assert [r["status"] for r in runs] == ["succeeded"] * 3, runs
        for run in runs:
            assert run["attempt"] >= 2
            assert all(a["reason"].startswith("infrastructure: ") for a in run["attempts"])
            logs = executor.logs(run_id=run["id"])
            assert [r["content"] for r in logs if r["log_type"] != "SYSTEM"][-2:] == [
                f"start {run['asset_id']}",
                f"end {run['asset_id']}",
            ]
        # Containers that could not be removed while the engine was down are swept later.
        deadline = time.monotonic() + 30
        while client.api.containers(all=True, filters={"label": "io.plugin-executor.managed"}):
            assert time.monotonic() < deadline, "leftover containers were not swept"
            time.sleep(0.5)
    finally:
        executor.stop()
        client.close()
    assert os.path.exists(engine.root)
