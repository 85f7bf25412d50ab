"""A pushed version becomes ACTIVE once the live nodes hold its image
(``executor.build.distribute``, ``executor.store.distribution``, ``executor.run.prepull``):
its first run on a node starts it instead of pulling it on the event's path.

Each node here is a fake engine with its own pre-puller; the registry is a shelf that
hands the fake engines the image (or refuses). The store is SQLite, migrated."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from executor.build.distribute import Distribution
from executor.engine import BuildInterrupted, Engine
from executor.engine.fake import FakeEngine
from executor.registry import Registry, RegistryError
from executor.run.prepull import Prepuller
from executor.settings import ImageSettings
from executor.statuses import BuildStatus, NodeState
from executor.store import distribution
from executor.store import nodes as node_store
from executor.store.db import Database
from executor.store.tables import Node, PluginVersion
from executor.store.tables.base import utcnow
from tests.store_rows import add_version

DIGEST = "registry.test:5000/pe/p@sha256:" + "a" * 64
LEASE_S = 30.0


class Shelf(Registry):
    """A registry stand-in: a pull puts the image on the fake engine, or fails for the
    references in ``refused``."""

    def __init__(self) -> None:
        super().__init__(ImageSettings(registry="registry.test:5000"))
        self.refused: set[str] = set()
        self.pulls: list[str] = []

    def pull(self, engine: Engine, reference: str) -> None:
        self.pulls.append(reference)
        if reference in self.refused:
            raise RegistryError(f"pulling {reference}: the registry is down")
        assert isinstance(engine, FakeEngine)
        engine.images.add(reference)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate()
    yield database
    database.dispose()


def node(db: Database, node_id: str) -> FakeEngine:
    """A registered, ready node on a fake engine of its own."""
    engine = FakeEngine()
    engine.identify("store", node_id)
    with db.session() as session:
        info = node_store.NodeInfo(node_id, "i-" + node_id, "fake", ["runc"], 4, 0)
        node_store.register(session, info)
    return engine


def distribute(
    db: Database, builder: FakeEngine, timeout_s: float = 60.0, stopping: bool = False
) -> Distribution:
    stop = threading.Event()
    if stopping:
        stop.set()
    return Distribution(db, builder, timeout_s, LEASE_S, stop)


def test_the_build_returns_once_every_live_node_holds_the_image(db: Database) -> None:
    builder = node(db, "n1")
    builder.images.add(DIGEST)  # it built and pushed it
    other = node(db, "n2")
    shelf = Shelf()
    version_id = add_version(db)
    notes: list[str] = []

    # n2's pre-puller hears the push (here: called by the build's hook, after the commit).
    distribute(db, builder).wait(
        version_id, DIGEST, notes.append, Prepuller(db, other, shelf).prepull
    )

    assert shelf.pulls == [DIGEST]  # n2 pulled it; n1 had it
    assert other.images.exists(DIGEST)
    with db.session() as session:
        assert distribution.held_by(session, version_id) == {"n1", "n2"}
        version = session.get(PluginVersion, version_id)
        assert version is not None
        assert (version.status, version.image_digest) == (BuildStatus.DEPLOYING, DIGEST)
    text = "".join(notes)
    assert "Waiting for 2 node(s) to pull it: n1, n2" in text
    assert "  n1 holds it (" in text and "  n2 holds it (" in text
    assert "Every node holds it after " in text


def test_a_node_that_cannot_pull_is_named_and_the_build_goes_on_at_the_bound(
    db: Database,
) -> None:
    builder = node(db, "n1")
    builder.images.add(DIGEST)
    other = node(db, "n2")
    shelf = Shelf()
    shelf.refused.add(DIGEST)
    version_id = add_version(db)
    notes: list[str] = []

    distribute(db, builder, timeout_s=0.2).wait(
        version_id, DIGEST, notes.append, Prepuller(db, other, shelf).prepull
    )

    assert shelf.pulls == [DIGEST]
    assert not other.images.exists(DIGEST)
    with db.session() as session:
        assert distribution.held_by(session, version_id) == {"n1"}  # nothing claimed for n2
    text = "".join(notes)
    assert "Not pulled within 0.2 s by n2: their first run of this version pulls it" in text
    assert "Every node holds it" not in text


def test_draining_lost_and_silent_nodes_are_not_waited_for(db: Database) -> None:
    builder = node(db, "n1")
    builder.images.add(DIGEST)
    for silent in ("draining", "lost", "silent"):
        node(db, silent)
    with db.session() as session:
        session.execute(update(Node).where(Node.id == "draining").values(state=NodeState.DRAINING))
        session.execute(update(Node).where(Node.id == "lost").values(state=NodeState.LOST))
        stale = utcnow().replace(year=2000)
        session.execute(update(Node).where(Node.id == "silent").values(heartbeat_at=stale))
    version_id = add_version(db)
    notes: list[str] = []

    distribute(db, builder).wait(version_id, DIGEST, notes.append)

    text = "".join(notes)
    assert "Waiting for 1 node(s) to pull it: n1\n" in text
    assert "Every node holds it after " in text


def test_a_node_records_only_what_its_own_engine_holds(db: Database) -> None:
    builder = node(db, "n1")  # its engine lacks the image: it does not record itself
    version_id = add_version(db)
    notes: list[str] = []

    distribute(db, builder, timeout_s=0.1).wait(version_id, DIGEST, notes.append)

    with db.session() as session:
        assert distribution.held_by(session, version_id) == set()
    assert "Not pulled within 0.1 s by n1" in "".join(notes)


def test_stopping_the_executor_interrupts_the_wait(db: Database) -> None:
    builder = node(db, "n1")
    node(db, "n2")
    version_id = add_version(db)

    with pytest.raises(BuildInterrupted):
        distribute(db, builder, stopping=True).wait(version_id, DIGEST, lambda _: None)


def test_no_wait_without_live_nodes_or_with_the_bound_at_zero(db: Database) -> None:
    builder = FakeEngine()  # an API process that runs nothing: not a node
    builder.identify("store", "api")
    version_id = add_version(db)
    notes: list[str] = []

    distribute(db, builder).wait(version_id, DIGEST, notes.append)
    node(db, "n1")
    distribute(db, builder, timeout_s=0).wait(version_id, DIGEST, notes.append)

    assert notes == []
    with db.session() as session:
        assert [v.id for v in distribution.distributing(session)] == [version_id]


def test_the_pre_puller_records_waiting_versions_only(db: Database) -> None:
    engine = node(db, "n1")
    shelf = Shelf()
    waiting = add_version(db)
    with db.session() as session:
        distribution.pushed(session, waiting, DIGEST)
        active = PluginVersion(
            plugin_id=session.get(PluginVersion, waiting).plugin_id,  # type: ignore[union-attr]
            number=2,
            source_sha256="y",
            source=b"",
            status=BuildStatus.ACTIVE.value,
            image_tag="p:2",
            image_digest=DIGEST.replace("a" * 64, "b" * 64),
        )
        session.add(active)
        session.flush()
        active_id = active.id

    assert Prepuller(db, engine, shelf).prepull() == [DIGEST]  # no activation runs v2
    assert Prepuller(db, engine, shelf).prepull() == []  # held now: not pulled again

    with db.session() as session:
        assert distribution.held_by(session, waiting) == {"n1"}
        assert distribution.held_by(session, active_id) == set()
