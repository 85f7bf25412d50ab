"""``GET /v1/stats`` on a real executor over HTTP, on SQLite and on PostgreSQL, against
figures computed by hand from runs written with known times (tests/stats_seed.py).

Percentiles are continuous (linear interpolation, as PostgreSQL's percentile_cont): of
n ordered values the p-th sits at rank 1 + p (n - 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import pytest

from executor.statuses import InvocationStatus
from tests.conftest import RunningServer, make_settings, start_server, stop_server
from tests.integration.tenancy import create_tenant
from tests.stats_seed import add_queued, add_run, add_version

pytestmark = pytest.mark.docker

S = InvocationStatus
# Two days ago, at midnight UTC: well inside retention, whole hours from the epoch.
DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
SINCE = DAY + timedelta(hours=10)
UNTIL = DAY + timedelta(hours=14)
EMPTY_RUNS = {s.value: 0 for s in sorted(S) if s not in (S.QUEUED, S.RUNNING)}
NO_FIGURES = {"p50": None, "p95": None}


def at(hour: int, minute: int = 0, second: float = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute, seconds=second)


@pytest.fixture(params=["sqlite", "postgresql"])
def stats_server(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    runtime_image: str,
) -> Iterator[RunningServer]:
    """A real executor on SQLite, or on a fresh PostgreSQL database dropped after."""
    overrides: dict[str, Any] = {}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    entry = start_server(make_settings(tmp_path, **overrides), docker_client)
    try:
        yield entry[0]
    finally:
        stop_server(*entry)
        entry[0].service.db.dispose()


def seed(server: RunningServer) -> None:
    """acme's runs (and one of another tenant, beta, under the same plugin name)."""
    db = server.service.db
    create_tenant(server, "acme")
    create_tenant(server, "beta")
    alpha1 = add_version(
        db, "acme", "alpha", built_at=at(13, 0, 12.5), build_ms=12_500, failed=False
    )
    alpha2 = add_version(db, "acme", "alpha", built_at=at(13, 5), build_ms=2_500, failed=True)
    gamma = add_version(db, "acme", "gamma", built_at=at(9), build_ms=1_000, failed=False)
    # 10:00-11:00 stays empty. 11:00-12:00: three runs of alpha v1, two gateway calls.
    add_run(
        db,
        alpha1,
        "acme",
        status=S.SUCCEEDED,
        finished_at=at(11, 10),
        duration_ms=100,
        latency_ms=10,
        gateway_statuses=(200,),
    )
    add_run(
        db,
        alpha1,
        "acme",
        status=S.SUCCEEDED,
        finished_at=at(11, 20),
        duration_ms=200,
        latency_ms=20,
        cold=False,
        gateway_statuses=(502,),
    )
    add_run(
        db, alpha1, "acme", status=S.FAILED, finished_at=at(11, 30), duration_ms=400, latency_ms=50
    )
    # 12:00-13:00: one run of alpha v1 and one of gamma (the bucket with one run of alpha).
    add_run(
        db,
        alpha1,
        "acme",
        status=S.TIMED_OUT,
        finished_at=at(12, 0),
        duration_ms=60_000,
        latency_ms=7,
    )
    add_run(
        db,
        gamma,
        "acme",
        status=S.CRASHED,
        finished_at=at(12, 59, 59.5),
        duration_ms=5,
        latency_ms=1,
        project="other-proj",
    )
    # 13:00-14:00: alpha v2 (its build failed above; this run came from a replay, say).
    add_run(
        db,
        alpha2,
        "acme",
        status=S.SUCCEEDED,
        finished_at=at(13, 30),
        duration_ms=300,
        latency_ms=30,
    )
    # Outside the range: the end is exclusive.
    add_run(db, alpha1, "acme", status=S.FAILED, finished_at=UNTIL, duration_ms=1, latency_ms=1)
    add_run(
        db,
        alpha1,
        "acme",
        status=S.FAILED,
        finished_at=SINCE - timedelta(seconds=1),
        duration_ms=1,
        latency_ms=1,
    )
    # Another tenant's plugin of the same name, in the same hours.
    beta = add_version(db, "beta", "alpha", built_at=at(11), build_ms=900, failed=True)
    add_run(
        db,
        beta,
        "beta",
        status=S.FAILED,
        finished_at=at(11, 15),
        duration_ms=9_999,
        latency_ms=999,
        gateway_statuses=(500, 500),
    )
    add_queued(db, beta, "beta", queued_at=at(9))
    add_queued(db, alpha1, "acme", queued_at=at(10, 45))


def get_stats(server: RunningServer, tenant: str, **params: Any) -> Any:
    response = server.api.get(
        "/v1/stats",
        params={"since": SINCE.isoformat(), "until": UNTIL.isoformat(), **params},
        headers={"X-Tenant": tenant},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_stats_by_hour_match_hand_computed_figures(stats_server: RunningServer) -> None:
    seed(stats_server)
    stats = get_stats(stats_server, "acme", bucket="hour")
    assert [b["start"] for b in stats["buckets"]] == [
        at(h).isoformat().replace("+00:00", "Z") for h in (10, 11, 12, 13)
    ]
    empty, eleven, twelve, thirteen = stats["buckets"]
    assert empty == {
        "start": empty["start"], "runs": EMPTY_RUNS, "total": 0,
        "duration_ms": NO_FIGURES, "start_latency_ms": NO_FIGURES,
        "warm": 0, "cold": 0, "warm_share": None,
        "gateway_calls": 0, "gateway_errors": 0, "gateway_error_share": None,
        "builds": 0, "builds_failed": 0, "build_ms": NO_FIGURES,
    }  # fmt: skip
    # 100, 200, 400: p50 the middle one; p95 at rank 2.9: 200 + 0.9 * 200.
    assert eleven["runs"] == {**EMPTY_RUNS, "succeeded": 2, "failed": 1}
    assert eleven["total"] == 3
    assert eleven["duration_ms"] == {"p50": 200.0, "p95": 380.0}
    assert eleven["start_latency_ms"] == {"p50": 20.0, "p95": 47.0}  # 10, 20, 50
    assert (eleven["warm"], eleven["cold"], eleven["warm_share"]) == (1, 2, 0.3333)
    assert (eleven["gateway_calls"], eleven["gateway_errors"]) == (2, 1)
    assert eleven["gateway_error_share"] == 0.5
    # Two runs: 5 and 60000; p95 at rank 1.95: 5 + 0.95 * 59995.
    assert twelve["runs"] == {**EMPTY_RUNS, "timed_out": 1, "crashed": 1}
    assert twelve["duration_ms"] == {"p50": 30_002.5, "p95": 57_000.2}
    assert twelve["start_latency_ms"] == {"p50": 4.0, "p95": 6.7}  # 1, 7
    # Builds of 12.5 s and 2.5 s ended here; one run.
    assert (thirteen["builds"], thirteen["builds_failed"]) == (2, 1)
    assert thirteen["build_ms"] == {"p50": 7_500.0, "p95": 12_000.0}
    assert thirteen["runs"] == {**EMPTY_RUNS, "succeeded": 1}
    assert thirteen["duration_ms"] == {"p50": 300.0, "p95": 300.0}
    assert stats["versions"] == [
        # 100, 200, 400, 60000: p50 at rank 2.5, p95 at rank 3.85: 400 + 0.85 * 59600.
        {"plugin": "alpha", "version": 1, "runs": 4,
         "duration_ms": {"p50": 300.0, "p95": 51_060.0}},
        {"plugin": "alpha", "version": 2, "runs": 1, "duration_ms": {"p50": 300.0, "p95": 300.0}},
        {"plugin": "gamma", "version": 1, "runs": 1, "duration_ms": {"p50": 5.0, "p95": 5.0}},
    ]  # fmt: skip
    assert stats["top_failing"] == [
        {"plugin": "alpha", "failures": 2, "runs": 5},
        {"plugin": "gamma", "failures": 1, "runs": 1},
    ]
    assert stats["queue"]["depth"] == 1
    assert stats["queue"]["oldest_queued_at"] == at(10, 45).isoformat().replace("+00:00", "Z")
    assert stats["queue"]["oldest_queued_age_s"] > 2 * 24 * 3600 - 14 * 3600


def test_stats_by_minute_filtered_by_plugin_and_project(stats_server: RunningServer) -> None:
    seed(stats_server)
    gamma = get_stats(
        stats_server, "acme", bucket="minute", plugin="gamma",
        since=at(12, 58).isoformat(), until=at(13, 1).isoformat(),
    )  # fmt: skip
    assert [b["total"] for b in gamma["buckets"]] == [0, 1, 0]
    assert gamma["buckets"][1]["runs"]["crashed"] == 1
    assert gamma["buckets"][1]["duration_ms"] == {"p50": 5.0, "p95": 5.0}
    assert gamma["top_failing"] == [{"plugin": "gamma", "failures": 1, "runs": 1}]
    assert gamma["queue"]["depth"] == 0
    project = get_stats(stats_server, "acme", bucket="day", project="other-proj")
    assert [b["total"] for b in project["buckets"]] == [1]
    assert project["versions"] == [
        {"plugin": "gamma", "version": 1, "runs": 1, "duration_ms": {"p50": 5.0, "p95": 5.0}}
    ]
    # Builds are a plugin's, not a project's: the project does not narrow them.
    assert project["buckets"][0]["builds"] == 2
    # beta sees its own run only, though its plugin has the same name.
    beta = get_stats(stats_server, "beta", bucket="day")
    assert beta["buckets"][0]["runs"]["failed"] == 1
    assert beta["buckets"][0]["gateway_calls"] == 2
    assert beta["versions"][0]["duration_ms"] == {"p50": 9_999.0, "p95": 9_999.0}
    assert beta["queue"]["oldest_queued_at"] == at(9).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def tenants(server: RunningServer) -> RunningServer:
    """acme, and beta with a plugin of its own."""
    create_tenant(server, "acme")
    create_tenant(server, "beta")
    add_version(server.service.db, "beta", "beta-only", built_at=at(9), build_ms=1, failed=False)
    return server


@pytest.mark.parametrize(
    ("params", "status", "code", "field", "said"),
    [
        ({"bucket": "week"}, 422, "invalid_request", "query.bucket", "'minute', 'hour' or 'day'"),
        (
            {"since": UNTIL.isoformat(), "until": SINCE.isoformat()},
            400,
            "invalid_query",
            "since",
            "must be earlier than until",
        ),
        (
            {"since": (UNTIL - timedelta(days=31)).isoformat(), "until": UNTIL.isoformat()},
            400,
            "range_too_long",
            "since",
            "longer than the 30 days finished runs are kept",
        ),
        (
            {
                "bucket": "minute",
                "since": (DAY - timedelta(days=1)).isoformat(),
                "until": UNTIL.isoformat(),
            },
            400,
            "too_many_buckets",
            "bucket",
            "2280 minute buckets from",
        ),
        ({"plugin": "beta-only"}, 404, "not_found", None, "no plugin named 'beta-only'"),
        ({"until": "0001-01-01T00:00:00"}, 400, "invalid_query", "until", "is out of range"),
    ],
    ids=[
        "bucket-week",
        "since-after-until",
        "longer-than-retention",
        "too-many",
        "other-tenant",
        "year-1",
    ],
)
def test_bad_stats_queries_are_refused_naming_the_parameter(
    tenants: RunningServer,
    params: dict[str, str],
    status: int,
    code: str,
    field: str | None,
    said: str,
) -> None:
    server = tenants
    audit_before = server.api.get("/v1/audit").json()
    response = server.api.get("/v1/stats", params=params, headers={"X-Tenant": "acme"})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert said in body["message"]
    if code == "invalid_request":
        assert body["errors"][0]["field"] == field
    elif field is not None:
        assert body["field"] == field
        assert body["message"].startswith(field)
    assert server.api.get("/v1/audit").json() == audit_before
    # The same plugin is there for its own tenant.
    ok = server.api.get("/v1/stats", params={"plugin": "beta-only"}, headers={"X-Tenant": "beta"})
    assert ok.status_code == 200, ok.text
