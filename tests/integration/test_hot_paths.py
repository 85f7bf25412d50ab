"""Hot paths load only what they use: no SELECT of a plugin's source or build log while
events are ingested, activations listed, the warm pool's versions read or the build log
polled (the source can be 10 MiB and the log long; these run per event or every second)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
from sqlalchemy import Connection, event, func, select

from executor.store import images as image_store
from executor.store import ingest as ingest_store
from executor.store.db import Database
from executor.store.tables import Event, Invocation
from tests.conftest import RunningServer, ServerFactory, make_settings, start_server, stop_server

SOURCE = re.compile(r"\bplugin_versions\.source\b")
BUILD_LOG = re.compile(r"\bplugin_versions\.build_log\b")


@contextmanager
def statements(server: RunningServer, *, transactions: bool = False) -> Iterator[list[str]]:
    """The SQL statements the server's store runs (in any thread) inside the block; with
    ``transactions``, "BEGIN" and "COMMIT" where a transaction of its own starts and ends
    (an autocommitted statement has neither)."""
    seen: list[str] = []
    lock = threading.Lock()

    def record(*args: Any) -> None:
        with lock:
            seen.append(str(args[2]))  # (conn, cursor, statement, parameters, ...)

    def marker(name: str) -> Any:
        def mark(connection: Connection) -> None:
            # SQLAlchemy begins and ends a logical transaction on an autocommit connection
            # too: the server sees no BEGIN or COMMIT there.
            if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                return
            with lock:
                seen.append(name)

        return mark

    engine = server.service.db.engine
    listeners = [("before_cursor_execute", record)]
    if transactions:
        listeners += [("begin", marker("BEGIN")), ("commit", marker("COMMIT"))]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield seen
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


def naming(pattern: re.Pattern[str], seen: list[str]) -> list[str]:
    return [s for s in seen if pattern.search(s)]


def verb_and_table(statement: str) -> tuple[str, str]:
    """("SELECT", the first table it reads) or ("INSERT", the table it writes)."""
    words = statement.split()
    if words[0] == "INSERT":
        return "INSERT", words[2]
    return words[0], words[words.index("FROM") + 1]


def test_ingest_listing_and_warm_pool_sync_never_select_source_or_build_log(
    server: RunningServer,
) -> None:
    server.push("counter", name="hot")
    server.activate("hot", "hot-project")
    with statements(server) as seen:
        accepted = server.post_event(
            type="onSubmit", project_id="hot-project", asset_id="a", label={}
        )
        listed = server.api.get("/v1/projects/hot-project/plugins")
        with server.service.db.session() as session:  # the warm pool's sync query
            wanted = [v.number for v in image_store.active_versions(session)]
    assert len(accepted["invocations"]) == 1
    assert [a["plugin"] for a in listed.json()] == ["hot"] and wanted == [1]
    versions_read = [s for s in seen if "FROM plugin_versions" in s]
    assert versions_read, "no version was loaded: the test watched nothing"
    assert naming(SOURCE, seen) == [] and naming(BUILD_LOG, seen) == []
    assert server.wait_run(accepted["invocations"][0])["status"] == "succeeded"


def test_build_log_reads_the_log_but_never_the_source(server: RunningServer) -> None:
    server.push("counter", name="logged")
    with statements(server) as seen:
        build = server.api.get("/v1/plugins/logged/versions/1/build-log").json()
        streamed = server.api.get("/v1/plugins/logged/versions/1/build-log/stream").text
    assert build["status"] == "ACTIVE" and "Built plugin-executor/" in build["log"]
    assert "event: end" in streamed and "Built plugin-executor/" in streamed
    assert naming(BUILD_LOG, seen) and naming(SOURCE, seen) == []


def test_an_event_is_stored_in_three_statements_however_many_plugins_it_runs(
    server_factory: ServerFactory,
) -> None:
    """One transaction: the project's tenant with its activations and their runnable
    versions (one query), the event, and every invocation in one INSERT."""
    quiet = server_factory(dispatch=False)  # no claim polls among the statements watched
    for name in ("first", "second"):
        quiet.push("counter", name=name)
        quiet.activate(name, "busy-project")
    with statements(quiet) as seen:
        accepted = quiet.post_event(
            type="onSubmit", project_id="busy-project", asset_id="a", label={}
        )
    assert [verb_and_table(s) for s in seen] == [
        ("SELECT", "projects"),
        ("INSERT", "events"),
        ("INSERT", "invocations"),
    ], seen
    for table in ("activations", "plugins", "plugin_versions"):  # all read in that one query
        assert f"{table}.id" in seen[0], seen[0]
    runs = quiet.api.get("/v1/invocations", params={"project_id": "busy-project"}).json()
    assert sorted(r["id"] for r in runs) == sorted(accepted["invocations"])
    assert sorted((r["plugin"], r["version"], r["status"]) for r in runs) == [
        ("first", 1, "queued"),
        ("second", 1, "queued"),
    ]


def test_on_postgres_an_event_and_its_invocations_are_one_statement(
    postgres_url: str, docker_client: docker.DockerClient, runtime_image: str, tmp_path: Path
) -> None:
    """Each statement is a round trip to the server: the project's state (autocommitted),
    then one statement, its own transaction, inserting the event and every invocation,
    whose rows carry the same defaults as rows inserted one by one, with the NOTIFY that
    wakes the dispatchers of the processes that may run them; an event that runs nothing
    is that statement too, notifying nobody."""
    entry = start_server(
        make_settings(tmp_path, database_url=postgres_url, dispatch=False), docker_client
    )
    quiet = entry[0]
    try:
        for name in ("first", "second"):
            quiet.push("counter", name=name)
            quiet.activate(name, "busy-project")
        with statements(quiet, transactions=True) as seen:
            accepted = quiet.post_event(
                type="onSubmit", project_id="busy-project", asset_id="a", label={"k": 1}
            )
        assert len(seen) == 2 and verb_and_table(seen[0]) == ("SELECT", "projects"), seen
        assert re.findall(r"INSERT INTO (\w+)", seen[1]) == ["events", "invocations"]
        assert "SELECT pg_notify('executor_queue', CAST(%(payload)s AS text))" in seen[1]
        with quiet.service.db.session() as session:
            stored = session.scalars(select(Event)).one()
            runs = session.scalars(select(Invocation).order_by(Invocation.plugin_name)).all()
        assert (stored.id, stored.label, stored.asset_id) == (accepted["event_id"], {"k": 1}, "a")
        assert sorted(accepted["invocations"]) == sorted(r.id for r in runs)
        assert [
            (r.plugin_name, r.version_number, r.event_id, r.event_type, r.project_id, r.asset_id)
            for r in runs
        ] == [(name, 1, stored.id, "onSubmit", "busy-project", "a") for name in ("first", "second")]
        for run in runs:
            assert (run.status, run.attempt, run.attempts, run.cold_start) == (
                "queued",
                0,
                [],
                True,
            )
            assert (run.queued_at, run.tenant_id) == (stored.received_at, stored.tenant_id)
            assert run.image_id and run.image_id.startswith("sha256:")
        with quiet.service.db.session() as session:
            before = session.scalar(select(func.count()).select_from(Invocation))
        with statements(quiet, transactions=True) as seen:
            alone = quiet.post_event(
                type="onReview", project_id="busy-project", asset_id="b", label={}
            )
        assert len(seen) == 2 and re.findall(r"INSERT INTO (\w+)", seen[1]) == [
            "events",
            "invocations",
        ]
        with quiet.service.db.session() as session:
            assert session.get(Event, alone["event_id"]) is not None
            assert session.scalar(select(func.count()).select_from(Invocation)) == before
    finally:
        stop_server(*entry)


def test_ingest_reads_a_project_through_indexes_not_every_activation(tmp_path: Path) -> None:
    """SQLite's plan for ingest's one read searches each table by index: a scan of
    activations would read every project's activations for each event."""
    db = Database(f"sqlite:///{tmp_path / 'plan.db'}")
    db.migrate()
    try:
        with db.autocommit_connection() as connection:
            statement = ingest_store.PROJECT_STATE.compile(dialect=connection.dialect)
            bound = [statement.params[name] for name in statement.positiontup or []]
            plan = [
                row[3]
                for row in connection.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {statement}", tuple(bound)
                )
            ]
    finally:
        db.dispose()
    tables = ("projects", "activations", "plugins", "plugin_versions")
    assert [step.split()[:2] for step in plan if "B-TREE" not in step] == [
        ["SEARCH", table] for table in tables
    ], plan
