"""A real executor (API, dispatcher, SQLite store) served by uvicorn on loopback over the
in-memory ``FakeEngine``: REST and CLI tests of runs without a Docker Engine. Each plugin
is a list of scripts its containers run in turn (``executor.engine.fake.Script``)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from executor.api.app import create_app
from executor.engine.fake import FakeEngine, Script
from executor.service.wiring import ExecutorService
from executor.statuses import TERMINAL_STATUSES, BuildStatus, RuntimeFlavor
from executor.store import plugins as plugin_store
from executor.store.tables import DEFAULT_TENANT
from tests.cli_runner import run_cli
from tests.conftest import free_port
from tests.fake_world import SETTLE_S, fake_settings

START_S = 30.0


@dataclass
class FakeServer:
    """The served executor, its API client (with the operator's key) and its fake engine."""

    url: str
    key: str  # the operator's
    api: httpx.Client
    service: ExecutorService
    engine: FakeEngine

    def add_plugin(self, name: str, *scripts: Script) -> None:
        """An ACTIVE version 1 of plugin ``name`` (default tenant, handles onSubmit) whose
        containers run ``scripts`` in turn."""
        image = f"{name}:1"
        self.engine.images.add(image, *scripts)
        with self.service.db.session() as session:
            version = plugin_store.add_version(
                session,
                DEFAULT_TENANT,
                name,
                max_plugins=10,
                max_versions=10,
                handlers=["onSubmit"],
                requirements="",
                source_sha256="0" * 64,
                source=b"",
                runtime=RuntimeFlavor.MINIMAL,
            )
            version.status = BuildStatus.ACTIVE
            version.image_tag = image

    def activate(self, name: str, project: str) -> None:
        response = self.api.put(f"/v1/projects/{project}/plugins/{name}")
        assert response.status_code == 200, response.text

    def run_event(self, project: str) -> dict[str, Any]:
        """Post an onSubmit event that starts one run; the run once it ended (polled)."""
        response = self.api.post(
            "/v1/events", json={"type": "onSubmit", "project_id": project, "label": {}}
        )
        assert response.status_code in (200, 202), response.text
        (run_id,) = response.json()["invocations"]
        give_up = time.monotonic() + SETTLE_S
        while True:
            run: dict[str, Any] = self.api.get(f"/v1/invocations/{run_id}").json()
            if run["status"] in TERMINAL_STATUSES:
                return run
            assert time.monotonic() < give_up, f"run {run_id} still {run['status']}"
            time.sleep(0.05)

    def logs(self, run_id: str) -> list[dict[str, Any]]:
        response = self.api.get("/v1/logs", params={"run_id": run_id, "limit": 1000})
        assert response.status_code == 200, response.text
        return list(response.json())

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``plugin-executor ARGS`` against this server (``tests/cli_runner.py``)."""
        env = {"EXECUTOR_URL": self.url, "EXECUTOR_API_KEY": self.key}
        return run_cli(args, env | {"COLUMNS": "200", "NO_COLOR": "1"})


@contextmanager
def fake_server(tmp_path: Path) -> Iterator[FakeServer]:
    """A started executor on a ``FakeEngine`` and a fresh SQLite store; stopped on the way
    out."""
    settings = fake_settings(tmp_path).model_copy(update={"port": free_port()})
    assert settings.operator_key is not None
    key = settings.operator_key.get_secret_value()
    engine = FakeEngine()
    service = ExecutorService(settings, engine)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service), host="127.0.0.1", port=settings.port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    give_up = time.monotonic() + START_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < give_up, "executor did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{settings.port}"
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})
    try:
        yield FakeServer(url, key, api, service, engine)
    finally:
        api.close()
        server.should_exit = True
        thread.join(START_S)
        assert not thread.is_alive(), "the executor server did not stop"
