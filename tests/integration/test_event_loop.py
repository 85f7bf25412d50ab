"""Blocking work of a request runs on a worker thread, never on the server's event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import RunningServer


def test_an_upload_is_unpacked_checked_and_stored_off_the_event_loop(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    where: list[str] = []
    upload = server.service.uploads.upload_or_reuse  # what POST /v1/plugins calls

    def recording_upload(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
            where.append("event loop")
        except RuntimeError:  # no loop runs in this thread
            where.append("worker thread")
        return upload(*args, **kwargs)

    monkeypatch.setattr(server.service.uploads, "upload_or_reuse", recording_upload)
    server.push("counter", name="off-the-loop")
    assert where == ["worker thread"]
