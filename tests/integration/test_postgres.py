"""Several executor processes sharing one PostgreSQL store."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import docker
import pytest

from executor.store.db import Database
from tests.flavor_migration import check_old_versions_ran_on_the_minimal_flavor
from tests.integration.processes import (
    ExecutorProcess,
    built_images,
    executor_process,
    remove_images,
)
from tests.name_key_migration import check_old_names_get_keys_and_case_twins_keep_working
from tests.output_migration import check_old_rows_gain_the_output_columns
from tests.run_error_migration import check_old_runs_have_no_error_summary
from tests.runs_migration import check_runs_outlive_their_plugin
from tests.tenant_migration import check_old_rows_move_to_the_default_tenant
from tests.webhook_migration import check_old_plugins_are_code_and_webhooks_come_and_go

# Both nodes claim from one queue, two runs at a time each, for the whole test: every claim
# races the other node's, so 100 events show exactly-once as 500 did, in a fifth of the time.
EVENTS = 100


# 100 container runs: under a minute on two quiet cores, a few on loaded ones; the
# suite's 600 s default guards against a hang (not a deadline).
def test_two_executors_on_one_postgres_run_each_of_100_events_exactly_once(
    postgres_url: str, docker_client: docker.DockerClient, runtime_image: str, tmp_path: Path
) -> None:
    settings: dict[str, Any] = {
        "database_url": postgres_url,
        "max_concurrent_runs": 2,
        "lease_s": 10,
    }
    # Two nodes on one engine: each needs its own id (docs/scaling.md).
    first = executor_process(tmp_path / "a", docker_client, node_id="a", **settings).start()
    second = executor_process(tmp_path / "b", docker_client, node_id="b", **settings)
    executors: list[ExecutorProcess] = [first]
    try:
        executors.append(second.start())
        first.push("counter")
        first.activate("counter", "shared")
        ids = [
            executors[i % 2].post_event(
                type="onSubmit", project_id="shared", asset_id=f"e{i}", label={}
            )["invocations"][0]
            for i in range(EVENTS)
        ]
        deadline = time.monotonic() + 900
        while True:
            runs = [
                r
                for skip in range(0, EVENTS, 500)
                for r in first.api.get(
                    "/v1/invocations", params={"project_id": "shared", "limit": 500, "skip": skip}
                ).json()
            ]
            if all(r["status"] not in ("queued", "running") for r in runs):
                break
            assert time.monotonic() < deadline, Counter(r["status"] for r in runs)
            time.sleep(0.5)
        assert sorted(r["id"] for r in runs) == sorted(ids)
        assert Counter(r["status"] for r in runs) == {"succeeded": EVENTS}
        ran = Counter(
            record["content"]
            for skip in range(0, EVENTS + 100, 1000)
            for record in second.logs(project_id="shared", skip=skip)
            if record["log_type"] != "SYSTEM"
        )
        assert ran == {f"ran e{i}": 1 for i in range(EVENTS)}  # no invocation ran twice
        owners = Counter(r["executor"].rsplit(":", 1)[0] for r in runs)
        assert len(owners) == 2, owners  # both processes took work from the one queue
    finally:
        images = built_images(first)
        for executor in executors:
            executor.stop()
        remove_images(docker_client, images)


def test_tenants_migration_keeps_old_rows_on_postgres(empty_postgres_url: str) -> None:
    database = Database(empty_postgres_url)
    try:
        check_old_rows_move_to_the_default_tenant(database)
    finally:
        database.dispose()


def test_runs_outlive_their_plugin_on_postgres(empty_postgres_url: str) -> None:
    database = Database(empty_postgres_url)
    try:
        check_runs_outlive_their_plugin(database)
    finally:
        database.dispose()


def test_output_migration_keeps_old_rows_on_postgres(empty_postgres_url: str) -> None:
    database = Database(empty_postgres_url)
    try:
        check_old_rows_gain_the_output_columns(database)
    finally:
        database.dispose()


def test_webhook_migration_keeps_old_rows_on_postgres(empty_postgres_url: str) -> None:
    database = Database(empty_postgres_url)
    try:
        check_old_plugins_are_code_and_webhooks_come_and_go(database)
    finally:
        database.dispose()


def test_flavor_migration_keeps_old_versions_on_postgres(empty_postgres_url: str) -> None:
    database = Database(empty_postgres_url)
    try:
        check_old_versions_ran_on_the_minimal_flavor(database)
    finally:
        database.dispose()


def test_name_key_migration_keeps_old_plugins_on_postgres(
    empty_postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(empty_postgres_url)
    try:
        check_old_names_get_keys_and_case_twins_keep_working(database, caplog)
    finally:
        database.dispose()


def test_run_error_migration_keeps_old_runs_on_postgres(empty_postgres_url: str) -> None:
    database = Database(empty_postgres_url)
    try:
        check_old_runs_have_no_error_summary(database)
    finally:
        database.dispose()


def test_processes_starting_together_migrate_an_empty_database_once(
    empty_postgres_url: str,
) -> None:
    """Several executors started at once on an empty database (a compose file, a fleet of
    workers): each waits for the one migrating, none fails on the schema another made."""
    databases = [Database(empty_postgres_url) for _ in range(3)]
    ready = threading.Barrier(len(databases))
    failures: list[BaseException] = []

    def start(database: Database) -> None:
        ready.wait()
        try:
            database.migrate()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(d,)) for d in databases]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert failures == []
        assert databases[0].ping()
    finally:
        for database in databases:
            database.dispose()
