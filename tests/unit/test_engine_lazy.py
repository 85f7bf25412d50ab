"""The Engine connects on first use: a service is built without a Docker Engine, and the
first call that needs one says the engine could not be reached. Its labels come from the
constructor's scope and node id."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import pytest

from executor.engine import MANAGED_LABEL, NODE_LABEL, Engine
from executor.errors import SandboxError
from executor.service.wiring import ExecutorService
from executor.settings import Settings

DEAD = "unix:///nonexistent/plugin-executor-lazy-engine/docker.sock"


# docker-py does not close the socket of a connection that failed: collected here, in the
# test, where its warning is expected.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_service_is_built_without_a_docker_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD)
    service = ExecutorService(
        Settings(data_dir=tmp_path, operator_key="pe_op_lazy-engine-test-0123456789")
    )
    try:
        answered = service.engine.ping()
        message = _error_of(service.engine.info)
    finally:
        service.stop()
    gc.collect()

    assert answered is False
    assert message.startswith("Docker Engine error while connecting: ")
    assert message.endswith("Check that dockerd is running.")


def _error_of(call: Callable[[], object]) -> str:
    """The message of the ``SandboxError`` ``call`` raises (the exception, which holds the
    failed connection, is let go)."""
    try:
        call()
    except SandboxError as exc:
        return exc.message
    raise AssertionError("no SandboxError")


def test_labels_name_the_scope_and_node_given_to_the_constructor() -> None:
    engine = Engine(scope="store-1", node_id="node-a")

    assert engine.labels(extra="x") == {
        MANAGED_LABEL: "store-1",
        NODE_LABEL: "node-a",
        "extra": "x",
    }
    assert Engine(scope="store-1").labels() == {MANAGED_LABEL: "store-1"}
