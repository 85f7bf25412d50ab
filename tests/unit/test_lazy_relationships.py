"""No relationship loads itself (SQL only in the store, at run time too): code outside the
store that touches one the store did not load gets an error at once, never a query. The
store's reads load what they return for presenting."""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import InvalidRequestError

from executor.statuses import BuildStatus
from executor.store import images as image_store
from executor.store import plugins as plugin_store
from executor.store import queries as query_store
from executor.store import versions as version_store
from executor.store.db import Database
from executor.store.tables import (
    DEFAULT_TENANT,
    Activation,
    Event,
    GatewayCall,
    Invocation,
    Plugin,
    PluginVersion,
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate()
    with database.session() as session:
        plugin = Plugin(name="qa_bot", tenant_id=DEFAULT_TENANT)
        session.add(plugin)
        session.flush()
        version = PluginVersion(
            plugin_id=plugin.id,
            number=1,
            source_sha256="x",
            source=b"",
            status=BuildStatus.ACTIVE,
            image_tag="qa_bot:1",
        )
        event_row = Event(type="onSubmit", project_id="p1")
        session.add_all([version, event_row, Activation(plugin_id=plugin.id, project_id="p1")])
        session.flush()
        invocation = Invocation(
            event_id=event_row.id,
            plugin_id=plugin.id,
            version_id=version.id,
            plugin_name="qa_bot",
            version_number=1,
            project_id="p1",
            event_type="onSubmit",
        )
        session.add(invocation)
        session.flush()
        session.add(GatewayCall(invocation_id=invocation.id, method="GET", path="/x", status=200))
    yield database
    database.dispose()


def ids(db: Database) -> tuple[str, str, str]:
    with db.session() as session:
        plugin = session.scalars(select(Plugin.id)).one()
        version = session.scalars(select(PluginVersion.id)).one()
        invocation = session.scalars(select(Invocation.id)).one()
    return plugin, version, invocation


def no_sql(db: Database) -> list[str]:
    seen: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    return seen


def test_a_plugins_versions_not_loaded_raise_inside_a_session(db: Database) -> None:
    with db.session() as session:
        plugin = plugin_store.same_name(session, DEFAULT_TENANT, "QA_Bot")  # versions not read
        assert plugin is not None
        seen = no_sql(db)
        with pytest.raises(
            InvalidRequestError, match=re.escape("'Plugin.versions' is not available")
        ):
            _ = plugin.versions
        assert seen == []


def test_an_invocations_gateway_calls_not_loaded_raise(db: Database) -> None:
    _, _, invocation_id = ids(db)
    with db.session() as session:
        invocation = query_store.find_invocation(session, invocation_id)
        assert invocation is not None
        seen = no_sql(db)
        with pytest.raises(
            InvalidRequestError, match=re.escape("'Invocation.gateway_calls' is not")
        ):
            _ = invocation.gateway_calls
        assert seen == []


def test_a_versions_plugin_not_in_the_session_raises_rather_than_query(db: Database) -> None:
    _, version_id, _ = ids(db)
    with db.session() as session:
        version = version_store.get_version(session, version_id)
        seen = no_sql(db)
        with pytest.raises(
            InvalidRequestError, match=re.escape("'PluginVersion.plugin' is not available")
        ):
            _ = version.plugin
        assert seen == []
        activation = session.scalars(select(Activation)).one()
        with pytest.raises(
            InvalidRequestError, match=re.escape("'Activation.plugin' is not available")
        ):
            _ = activation.plugin


def test_the_stores_reads_load_what_they_present(db: Database) -> None:
    plugin_id, _, invocation_id = ids(db)
    with db.session() as session:
        plugin = plugin_store.get_plugin(session, DEFAULT_TENANT, "qa_bot")
        found = plugin_store.find_plugin(session, plugin_id)
        listed = query_store.list_invocations(session, tenant_id=DEFAULT_TENANT)
        one = query_store.get_invocation(session, invocation_id, calls=True)
    # Read after the session ended: everything presented was loaded by the store.
    assert [v.number for v in plugin.versions] == [1]
    assert found is not None and [v.number for v in found.versions] == [1]
    assert [c.path for c in listed[0].gateway_calls] == ["/x"]
    assert [c.status for c in one.gateway_calls] == [200]


def test_active_versions_come_with_their_plugin(db: Database) -> None:
    """The warm pool reads each active version's plugin (its limits), in the session, once
    the activations it was found through are gone: the session holds rows only weakly."""
    with db.session() as session:
        active = image_store.active_versions(session)
        gc.collect()
        assert [version.plugin.name for version in active] == ["qa_bot"]
