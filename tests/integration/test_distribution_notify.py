"""On PostgreSQL a build's push is announced (``NOTIFY executor_versions``, the version id)
when it commits, so another process's pre-puller pulls it at once; a pushed version is
waited on by the live nodes' records of holding it (``executor.store.distribution``)."""

from __future__ import annotations

import queue

import pytest

from executor.statuses import BuildStatus
from executor.store import distribution
from executor.store import nodes as node_store
from executor.store.db import Database
from executor.store.listen import VERSION_CHANNEL, StoreListener
from tests.store_rows import add_version

DEADLINE_S = 60
DIGEST = "registry.test:5000/pe/p@sha256:" + "c" * 64


@pytest.fixture
def db(postgres_db: Database) -> Database:
    return postgres_db


def test_a_push_is_announced_at_its_commit_with_the_version_id(
    db: Database, postgres_url: str
) -> None:
    version_id = add_version(db, "announced")
    with db.session() as session:
        node_store.register(session, node_store.NodeInfo("n1", "i1", "20.10", ["runc"], 2, 0))
    heard: queue.Queue[str | None] = queue.Queue()
    listener = StoreListener(postgres_url, {VERSION_CHANNEL: heard.put})
    listener.start()
    try:
        assert heard.get(timeout=DEADLINE_S) is None  # connected
        with db.session() as session:
            distribution.pushed(session, version_id, DIGEST)
            assert heard.empty()  # nothing before the commit
        payload = heard.get(timeout=DEADLINE_S)
    finally:
        listener.stop()

    assert payload == version_id
    with db.session() as session:
        waiting = distribution.distributing(session)
        assert [(v.id, v.status, v.image_digest) for v in waiting] == [
            (version_id, BuildStatus.DEPLOYING, DIGEST)
        ]
        assert distribution.live_nodes(session, 30.0) == ["n1"]
        distribution.record_held(session, version_id, "n1")
        distribution.record_held(session, version_id, "n1")  # once
    with db.session() as session:
        assert distribution.held_by(session, version_id) == {"n1"}
