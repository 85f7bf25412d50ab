"""Test helpers: the reference labeling platform (examples/labeling_platform) on loopback.

``start_platform`` serves it with uvicorn in a thread; ``RunningPlatform`` holds an admin
client and makes users, projects, assets and labels, and waits for event delivery.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from examples.labeling_platform import PlatformSettings, create_app

ADMIN_KEY = "plat_admin-test-key-0123456789"
SERVICE_KEY = "plat_service-test-key-0123456789"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningPlatform:
    url: str
    admin: httpx.Client
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, key: str) -> httpx.Client:
        client = httpx.Client(base_url=self.url, headers={"X-API-Key": key}, timeout=30)
        self.clients.append(client)
        return client

    def user(self, email: str, role: str = "LABELER") -> httpx.Client:
        response = self.admin.post("/api/v1/users", json={"email": email, "role": role})
        assert response.status_code == 201, response.text
        return self.client(response.json()["apiKey"])

    def project(self, project_id: str, jobs: dict[str, Any]) -> dict[str, Any]:
        body = {"id": project_id, "title": project_id, "jsonInterface": {"jobs": jobs}}
        response = self.admin.post("/api/v1/projects", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def asset(self, project_id: str, external_id: str, **fields: Any) -> dict[str, Any]:
        response = self.admin.post(
            f"/api/v1/projects/{project_id}/assets", json={"externalId": external_id, **fields}
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def get_asset(self, project_id: str, asset_id: str) -> dict[str, Any]:
        response = self.admin.get(f"/api/v1/projects/{project_id}/assets/{asset_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def labels(self, project_id: str, asset_id: str) -> list[dict[str, Any]]:
        response = self.admin.get(f"/api/v1/projects/{project_id}/assets/{asset_id}/labels")
        assert response.status_code == 200, response.text
        return list(response.json())

    def issues(self, project_id: str, asset_id: str) -> list[dict[str, Any]]:
        response = self.admin.get(f"/api/v1/projects/{project_id}/assets/{asset_id}/issues")
        assert response.status_code == 200, response.text
        return list(response.json())

    def submit(
        self,
        client: httpx.Client,
        project_id: str,
        asset_id: str,
        json_response: dict[str, Any],
        label_type: str = "DEFAULT",
    ) -> dict[str, Any]:
        response = client.post(
            f"/api/v1/projects/{project_id}/assets/{asset_id}/labels",
            json={"jsonResponse": json_response, "labelType": label_type},
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def event(self, project_id: str, event_id: str) -> dict[str, Any]:
        response = self.admin.get(f"/api/v1/projects/{project_id}/events/{event_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_delivered(self, project_id: str, event_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self.event(project_id, event_id)
            if event["status"] != "pending":
                return event
            time.sleep(0.1)
        raise AssertionError(f"event {event_id} not delivered in {timeout} s: {event}")


@contextmanager
def start_platform(
    data_dir: Path,
    executor_url: str | None,
    executor_api_key: str | None = None,
    port: int | None = None,
) -> Iterator[RunningPlatform]:
    """Serve the platform on loopback (``port``, default a free one) until the block ends."""
    port = port or free_port()
    settings = PlatformSettings(
        port=port,
        database_path=data_dir / "platform.db",
        admin_key=ADMIN_KEY,
        service_key=SERVICE_KEY,
        executor_url=executor_url,
        executor_api_key=executor_api_key,
        delivery_timeout_s=5,
        delivery_retry_max_s=2,
    )
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "platform did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    platform = RunningPlatform(url, admin)
    try:
        yield platform
    finally:
        for client in [admin, *platform.clients]:
            client.close()
        server.should_exit = True
        thread.join(30)
