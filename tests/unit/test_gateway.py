"""The gateway itself, without Docker: its Unix socket, a real SQLite store and a real
platform stand-in on loopback. Requests are sent raw (``http.client`` over the socket) so
path tricks reach the gateway exactly as written.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update

from executor.gateway import recording
from executor.gateway.live import LiveTokens
from executor.gateway.server import Gateway
from executor.settings import PlatformTarget, Settings
from executor.store import gateway as gateway_store
from executor.store.db import Database
from executor.store.tables import Event, GatewayCall, Invocation, Plugin, PluginVersion
from executor.tokens import hash_token, mint_token
from tests.conftest import free_port
from tests.platform_standin import PlatformStandIn, UnixHTTPConnection, platform_standin
from tests.unit.test_runtime import TOKEN, make_envelope, run_runtime, write_plugin

MAX_CALLS = 4
MAX_REQUEST = 2048
MAX_RESPONSE = 4096
CREDENTIAL = "operator-credential-7f3a"


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Rig:
    gateway: Gateway
    db: Database
    platform: PlatformStandIn

    def new_run(
        self, project: str = "p1", expires_in_s: float = 60, token: str | None = None
    ) -> tuple[str, str]:
        """A running invocation on ``project`` and its live token."""
        token = token or mint_token()
        with self.db.session() as session:
            plugin = session.query(Plugin).one()
            version = session.query(PluginVersion).filter_by(plugin_id=plugin.id).one()
            event = Event(type="onSubmit", project_id=project)
            session.add(event)
            session.flush()
            invocation = Invocation(
                event_id=event.id,
                plugin_id=plugin.id,
                version_id=version.id,
                plugin_name=plugin.name,
                version_number=1,
                project_id=project,
                event_type="onSubmit",
                status="running",
            )
            session.add(invocation)
            session.flush()
            expires = datetime.now(UTC) + timedelta(seconds=expires_in_s)
            gateway_store.add_token(session, hash_token(token), invocation.id, project, expires)
            return invocation.id, token

    def held_run(self, lease_s: float = 60) -> tuple[str, str]:
        """A running invocation of this process (its runner minted the token, its dispatcher
        holds the lease for ``lease_s`` more seconds) and its live token."""
        invocation_id, token = self.new_run()
        with self.db.session() as session:
            row = gateway_store.find_token(session, hash_token(token))
            assert row is not None
            expires = row.expires_at.replace(tzinfo=UTC)
        self.gateway.live.grant(hash_token(token), invocation_id, "p1", 0, expires)
        self.gateway.live.lease([invocation_id], time.monotonic() + lease_s)
        return invocation_id, token

    def send(
        self,
        method: str,
        target: str,
        token: str | None = None,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        connection = UnixHTTPConnection(str(self.gateway.socket_path))
        all_headers = dict(headers or {})
        if token is not None:
            all_headers.setdefault("Authorization", f"Bearer {token}")
        try:
            connection.request(method, target, body=body, headers=all_headers)
            response = connection.getresponse()
            return Answer(response.status, response.read(), dict(response.getheaders()))
        finally:
            connection.close()

    def calls(self, invocation_id: str) -> list[GatewayCall]:
        with self.db.session() as session:
            return list(
                session.query(GatewayCall)
                .filter_by(invocation_id=invocation_id)
                .order_by(GatewayCall.id)
            )


@contextmanager
def gateway_rig(tmp_path: Path, upstream_timeout_s: float = 30) -> Iterator[Rig]:
    """A started gateway on a migrated SQLite store, in front of a platform stand-in.
    ``upstream_timeout_s``: only a test whose platform call is held until the test releases
    it sets a short one (it is then certain to fire); a call answered at once never waits
    for it."""
    with platform_standin() as platform:
        settings = Settings(
            data_dir=tmp_path,
            platform_api_url=platform.url + "/api/projects/{project_id}",
            platform_credential=CREDENTIAL,
            platform_projects={
                "down": PlatformTarget(url=f"http://127.0.0.1:{free_port()}/api"),
            },
            gateway_max_calls=MAX_CALLS,
            gateway_max_request_bytes=MAX_REQUEST,
            gateway_max_response_bytes=MAX_RESPONSE,
            gateway_upstream_timeout_s=upstream_timeout_s,
        )
        db = Database(settings.resolved_database_url)
        db.migrate()
        with db.session() as session:
            plugin = Plugin(name="qa")
            plugin.versions.append(PluginVersion(number=1, source_sha256="0" * 64, source=b""))
            session.add(plugin)
        gateway = Gateway(db, settings)
        gateway.start()
        try:
            yield Rig(gateway, db, platform)
        finally:
            gateway.stop()
            db.dispose()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with gateway_rig(tmp_path) as started:
        yield started


def test_socket_is_reachable_by_the_plugin_user(rig: Rig) -> None:
    assert rig.gateway.socket_path.stat().st_mode & 0o777 == 0o666
    assert rig.gateway.socket_dir.stat().st_mode & 0o777 == 0o755


def test_call_is_forwarded_with_the_operator_credential_and_recorded(rig: Rig) -> None:
    invocation_id, token = rig.new_run()
    answer = rig.send(
        "POST",
        "/api/projects/p1/assets/a1/issues?kind=QA",
        token,
        body=b'{"text": "bad IBAN"}',
        headers={"Content-Type": "application/json", "Cookie": "c=1", "X-Forwarded-For": "1.2.3.4"},
    )

    assert answer.status == 201
    assert answer.json()["received"] == {"text": "bad IBAN"}
    assert "Set-Cookie" not in answer.headers  # platform cookies stay at the gateway
    (seen,) = rig.platform.requests
    assert (seen.method, seen.path) == ("POST", "/api/projects/p1/assets/a1/issues?kind=QA")
    assert seen.headers["authorization"] == f"X-API-Key: {CREDENTIAL}"
    assert seen.headers["x-plugin-invocation"] == invocation_id
    assert "cookie" not in seen.headers and "x-forwarded-for" not in seen.headers
    assert token not in json.dumps(seen.headers) and token.encode() not in seen.body
    (call,) = rig.calls(invocation_id)
    assert (call.method, call.path, call.status) == (
        "POST",
        "/api/projects/p1/assets/a1/issues",
        201,
    )
    assert call.request_bytes == len(b'{"text": "bad IBAN"}')
    assert call.response_bytes == len(answer.body)
    assert call.duration_ms >= 0 and call.error is None


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer {t}"},
        {"Authorization": "X-API-Key: {t}"},
        {"X-API-Key": "{t}"},
    ],
)
def test_every_token_form_is_accepted(rig: Rig, headers: dict[str, str]) -> None:
    _, token = rig.new_run()
    filled = {k: v.format(t=token) for k, v in headers.items()}
    assert rig.send("GET", "/api/projects/p1/assets", headers=filled).status == 200


@pytest.mark.parametrize("revoked", [False, True])
def test_a_token_of_an_attempt_that_lost_its_run_is_refused_and_not_recorded(
    rig: Rig, revoked: bool
) -> None:
    """Another node took the run over (a new lease generation): the old attempt's token
    reaches nothing, and its call is not written on the run. Lease expiry revokes it too
    (``revoked``): still refused as superseded, not as a finished run's."""
    invocation_id, token = rig.new_run()
    with rig.db.session() as session:
        if revoked:
            gateway_store.revoke_for(session, invocation_id)
        session.execute(
            update(Invocation)
            .where(Invocation.id == invocation_id)
            .values(lease_generation=Invocation.lease_generation + 1)
        )

    answer = rig.send("GET", "/api/projects/p1/assets", token)

    assert answer.status == 401
    assert answer.json()["code"] == "token_superseded"
    assert "lost its run (its lease expired" in answer.json()["message"]
    assert rig.platform.requests == []
    assert rig.calls(invocation_id) == []


def test_each_call_carries_its_idempotency_key_and_a_plugins_own_is_replaced(rig: Rig) -> None:
    """The key is the invocation and the call's ordinal in the attempt: a second attempt
    (a new token) making the same calls sends the same keys; a key the plugin sends
    never reaches the platform."""
    invocation_id, token = rig.new_run()
    forged = {"Idempotency-Key": "other-run:1", "idempotency-key": "x"}
    for i in range(3):
        assert rig.send("POST", f"/api/projects/p1/n/{i}", token, headers=forged).status == 200
    with rig.db.session() as session:  # the run's next attempt: a token of its own
        again = mint_token()
        expires = datetime.now(UTC) + timedelta(seconds=60)
        gateway_store.add_token(session, hash_token(again), invocation_id, "p1", expires)
    assert rig.send("POST", "/api/projects/p1/n/0", again, headers=forged).status == 200
    _, other = rig.new_run()
    assert rig.send("POST", "/api/projects/p1/n/0", other).status == 200

    keys = [r.headers.get("idempotency-key") for r in rig.platform.requests]
    assert keys[:4] == [f"{invocation_id}:{n}" for n in (1, 2, 3, 1)]
    assert keys[4] != keys[0] and keys[4] is not None and keys[4].endswith(":1")
    for seen, key in zip(rig.platform.requests, keys, strict=True):
        assert [v for k, v in seen.header_lines if k.lower() == "idempotency-key"] == [key]


@pytest.mark.parametrize("change", ["revoked", "superseded"])
def test_a_token_revoked_or_superseded_between_check_and_count_is_refused(
    rig: Rig, change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run ends (or goes to another attempt) after the gateway read the token and
    before it counted the call: the count refuses it, nothing reaches the platform."""
    invocation_id, token = rig.new_run()
    admission = rig.gateway.calls.admission
    authenticate = admission.authenticate

    def then_change(headers: Any) -> Any:
        checked = authenticate(headers)
        with rig.db.session() as session:
            if change == "revoked":
                gateway_store.revoke_for(session, invocation_id)
            else:
                session.execute(
                    update(Invocation)
                    .where(Invocation.id == invocation_id)
                    .values(lease_generation=Invocation.lease_generation + 1)
                )
        return checked

    monkeypatch.setattr(admission, "authenticate", then_change)
    answer = rig.send("GET", "/api/projects/p1/assets", token)

    expected = {
        "revoked": "the run this token was issued to has finished (its handler returned or "
        "its container ended): a run token is good only while its handler runs",
        "superseded": "the attempt this token was issued to lost its run (its lease expired, "
        "so another node may run it now, or the run was queued again): only the attempt "
        "holding the run may call",
    }
    assert (answer.status, answer.json()) == (
        401,
        {"code": f"token_{change}", "message": expected[change]},
    )
    assert rig.platform.requests == []
    with rig.db.session() as session:
        row = gateway_store.find_token(session, hash_token(token))
        assert row is not None and row.calls == 0
    recorded = [(c.status, c.error) for c in rig.calls(invocation_id)]
    # A superseded attempt's call is not written on the run (it lost it).
    assert recorded == ([(401, expected[change])] if change == "revoked" else [])


def test_missing_unknown_expired_and_revoked_tokens_get_401(rig: Rig) -> None:
    invocation_id, token = rig.new_run()
    expired_id, expired = rig.new_run(expires_in_s=-1)
    with rig.db.session() as session:
        gateway_store.revoke_for(session, invocation_id)

    cases = {
        None: "token_missing",
        mint_token(): "token_unknown",
        expired: "token_expired",
        token: "token_revoked",
    }
    for sent, code in cases.items():
        answer = rig.send("GET", "/api/projects/p1/assets", sent)
        assert answer.status == 401, code
        assert answer.json()["code"] == code
        assert answer.headers["Content-Type"] == "application/json"
    assert rig.platform.requests == []
    # A known token's refused call is on its run's record (a late call after the handler
    # returned shows there); a missing or unknown token has no run to record it on.
    ((revoked_call,), (expired_call,)) = rig.calls(invocation_id), rig.calls(expired_id)
    for call, error in [
        (revoked_call, "the run this token was issued to has finished (its handler returned"),
        (expired_call, "the run token expired at the run's deadline"),
    ]:
        assert (call.method, call.path, call.status) == ("GET", "/api/projects/p1/assets", 401)
        assert call.error is not None and call.error.startswith(error)


@pytest.mark.parametrize(
    "target",
    [
        "/api/projects/p2/assets",
        "/api/projects/p1/../p2/assets",
        "/api/projects/p1/%2e%2e/p2/assets",
        "/api/projects/p1/%252e%252e/p2",
        "/admin/users",
        "http://evil.example/api/projects/p1/assets",
        "//evil.example/api/projects/p1",
    ],
)
def test_paths_outside_the_project_base_get_403(rig: Rig, target: str) -> None:
    invocation_id, token = rig.new_run()
    answer = rig.send("GET", target, token)

    assert answer.status == 403
    assert answer.json()["code"] == "path_forbidden"
    assert rig.platform.requests == []
    (call,) = rig.calls(invocation_id)
    # http.server collapses a leading '//' (CVE-2021-28861); still refused.
    assert call.status == 403
    assert call.path in (target, "/" + target.lstrip("/"))


def test_request_body_over_the_cap_gets_413(rig: Rig) -> None:
    invocation_id, token = rig.new_run()
    answer = rig.send("POST", "/api/projects/p1/x", token, body=b"x" * (MAX_REQUEST + 1))

    assert answer.status == 413
    assert answer.json() == {
        "code": "request_too_large",
        "message": f"request body of {MAX_REQUEST + 1} bytes is over the cap of "
        f"{MAX_REQUEST} bytes",
    }
    assert rig.platform.requests == []
    assert [c.status for c in rig.calls(invocation_id)] == [413]


def test_calls_past_the_cap_get_429(rig: Rig) -> None:
    invocation_id, token = rig.new_run()
    _, other = rig.new_run()
    statuses = [rig.send("GET", f"/api/projects/p1/n/{i}", token).status for i in range(6)]

    assert statuses == [200] * MAX_CALLS + [429, 429]
    answer = rig.send("GET", "/api/projects/p1/again", token)
    assert answer.json()["code"] == "too_many_calls"
    assert len(rig.platform.requests) == MAX_CALLS
    assert [c.status for c in rig.calls(invocation_id)] == [200] * MAX_CALLS + [429] * 3
    assert rig.send("GET", "/api/projects/p1/n/0", other).status == 200  # per invocation


def test_response_over_the_cap_gets_502(rig: Rig) -> None:
    invocation_id, token = rig.new_run()
    assert rig.send("GET", f"/api/projects/p1/big?bytes={MAX_RESPONSE}", token).status == 200
    answer = rig.send("GET", f"/api/projects/p1/big?bytes={MAX_RESPONSE + 1}", token)

    assert answer.status == 502
    assert answer.json()["code"] == "response_too_large"
    assert [c.status for c in rig.calls(invocation_id)] == [200, 502]


def test_platform_down_gets_a_clear_502(rig: Rig) -> None:
    invocation_id, token = rig.new_run(project="down")
    answer = rig.send("GET", "/api/assets", token)

    assert answer.status == 502
    body = answer.json()
    assert body["code"] == "platform_unavailable"
    assert body["message"].startswith("the platform API could not be reached for GET /api/assets")
    (call,) = rig.calls(invocation_id)
    assert call.status == 502 and call.error == body["message"]


def test_chunked_or_malformed_bodies_are_refused(rig: Rig) -> None:
    invocation_id, token = rig.new_run()
    # One write, so the gateway's early answer cannot race the body (a broken pipe).
    request = (
        "POST /api/projects/p1/x HTTP/1.1\r\nHost: gateway\r\n"
        f"X-API-Key: {token}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.connect(str(rig.gateway.socket_path))
        raw.sendall(request.encode())
        response = http.client.HTTPResponse(raw)
        response.begin()
        assert response.status == 411
        assert json.loads(response.read())["code"] == "length_required"
    answer = rig.send("POST", "/api/projects/p1/x", token, headers={"Content-Length": "-5"})
    assert (answer.status, answer.json()["code"]) == (400, "bad_request")
    assert rig.platform.requests == [] and rig.calls(invocation_id) == []


def test_store_failure_gives_a_500_json_not_a_dropped_connection(rig: Rig) -> None:
    _, token = rig.new_run()
    with rig.db.session() as session:
        session.execute(text("DROP TABLE invocation_tokens"))

    answer = rig.send("GET", "/api/projects/p1/x", token)

    assert answer.status == 500
    assert answer.json() == {
        "code": "gateway_error",
        "message": "the executor's gateway failed; see the executor log",
    }
    assert rig.platform.requests == []


def test_keep_alive_connection_serves_several_requests(rig: Rig) -> None:
    _, token = rig.new_run()
    connection = UnixHTTPConnection(str(rig.gateway.socket_path))
    try:
        for i in range(3):
            connection.request("GET", f"/api/projects/p1/k/{i}", headers={"X-API-Key": token})
            response = connection.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["path"] == f"/api/projects/p1/k/{i}"
    finally:
        connection.close()


def test_runtime_forwarder_relays_any_client_to_the_gateway(rig: Rig, tmp_path: Path) -> None:
    source = """
        import http.client
        import json
        import urllib.error
        import urllib.request
        from plugin_runtime import ApiError, PluginCore

        class PluginHandler(PluginCore):
            def on_submit(self, label, asset_id):
                created = self.api.post(f"assets/{asset_id}/issues", json={"text": "bad IBAN"})
                self.api.patch(f"assets/{asset_id}/metadata", json={"accuracy": 0.5})
                try:
                    urllib.request.urlopen(self.api.base_url + "/assets", timeout=10)
                except urllib.error.HTTPError as exc:
                    anonymous = exc.code
                try:
                    self.api.get("../p2/assets")
                except ApiError as exc:
                    traversal = exc.status
                print(json.dumps({"created": created, "anonymous": anonymous, "up": traversal}))
    """
    invocation_id, _ = rig.new_run(token=TOKEN)
    port = free_port()
    envelope = make_envelope(api_url=f"http://127.0.0.1:{port}/api/projects/p1")
    envelope["api"]["socket"] = str(rig.gateway.socket_path)

    run = run_runtime(write_plugin(tmp_path, source), envelope)

    assert run.returncode == 0, run.lines
    (line,) = run.msgs("stdout")
    out = json.loads(line)
    assert out["created"]["id"] == "issue-1"
    assert (out["anonymous"], out["up"]) == (401, 403)
    assert [(r.method, r.path) for r in rig.platform.requests] == [
        ("POST", "/api/projects/p1/assets/asset-1/issues"),
        ("PATCH", "/api/projects/p1/assets/asset-1/metadata"),
    ]
    assert all(
        r.headers["authorization"] == f"X-API-Key: {CREDENTIAL}" for r in rig.platform.requests
    )
    assert [(c.method, c.status) for c in rig.calls(invocation_id)] == [
        ("POST", 201),
        ("PATCH", 200),
        ("GET", 403),
    ]


def test_a_held_token_is_counted_in_memory_and_its_calls_recorded_before_the_run_settles(
    rig: Rig,
) -> None:
    """A token of a run of this process: forwarded with its ordinal, each call on the run's
    record once the runner settles it, the store's count brought up to the calls made."""
    invocation_id, token = rig.held_run()
    statuses = [rig.send("GET", f"/api/projects/p1/n/{i}", token).status for i in range(6)]

    assert rig.gateway.live.settle(invocation_id)
    assert statuses == [200] * MAX_CALLS + [429, 429]
    keys = [r.headers.get("idempotency-key") for r in rig.platform.requests]
    assert keys == [f"{invocation_id}:{n}" for n in range(1, MAX_CALLS + 1)]
    assert [c.status for c in rig.calls(invocation_id)] == [200] * MAX_CALLS + [429, 429]
    with rig.db.session() as session:
        row = gateway_store.find_token(session, hash_token(token))
        assert row is not None and row.calls == MAX_CALLS


def test_a_held_token_revoked_by_its_runner_is_refused_at_once(rig: Rig) -> None:
    """The handler returned: the runner revokes the token in memory first; the next call
    is refused though the store has not revoked it yet."""
    invocation_id, token = rig.held_run()
    assert rig.send("GET", "/api/projects/p1/before", token).status == 200

    rig.gateway.live.revoke(invocation_id)
    answer = rig.send("GET", "/api/projects/p1/after", token)

    assert (answer.status, answer.json()["code"]) == (401, "token_revoked")
    assert [r.path for r in rig.platform.requests] == ["/api/projects/p1/before"]
    with rig.db.session() as session:  # refused from memory: the store still has it live
        row = gateway_store.find_token(session, hash_token(token))
        assert row is not None and row.revoked_at is None
    assert rig.gateway.live.settle(invocation_id)
    assert [c.status for c in rig.calls(invocation_id)] == [200, 401]
    # Once the store's revocation committed the memory copy goes; the store refuses it.
    with rig.db.session() as session:
        gateway_store.revoke_for(session, invocation_id)
    rig.gateway.live.forget(invocation_id)
    again = rig.send("GET", "/api/projects/p1/later", token)
    assert (again.status, again.json()["code"]) == (401, "token_revoked")
    assert len(rig.platform.requests) == 1


def test_a_held_token_whose_lease_is_not_vouched_for_is_checked_in_the_store(rig: Rig) -> None:
    """The dispatcher could not renew the lease in time (another node may have the run):
    the store decides, and says the attempt lost the run."""
    invocation_id, token = rig.held_run(lease_s=-1)
    with rig.db.session() as session:
        session.execute(
            update(Invocation)
            .where(Invocation.id == invocation_id)
            .values(lease_generation=Invocation.lease_generation + 1)
        )

    answer = rig.send("GET", "/api/projects/p1/assets", token)

    assert (answer.status, answer.json()["code"]) == (401, "token_superseded")
    assert rig.platform.requests == []
    assert rig.calls(invocation_id) == []


def test_a_lease_is_vouched_for_again_only_if_it_was_still_held_when_renewed() -> None:
    live = LiveTokens()
    expires = datetime.now(UTC) + timedelta(seconds=60)
    live.grant("a" * 64, "kept", "p1", 0, expires)
    live.grant("b" * 64, "lapsed", "p1", 0, expires)
    sent_at = time.monotonic()
    live.lease(["kept"], sent_at + 60)
    live.lease(["lapsed"], sent_at - 1)  # expired before the renewal was sent

    live.renewed(["kept", "lapsed"], sent_at, sent_at + 120)

    assert live.admit("a" * 64) is not None
    assert live.admit("b" * 64) is None  # the store decides
    live.release("kept")
    assert live.admit("a" * 64) is None


def test_a_run_end_waiting_for_its_records_does_not_wait_for_the_batch_to_gather(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records' writer gathers calls into one transaction for ``GATHER_S``; a settle
    wakes it. With a gathering longer than the settle's own bound, only the wake-up lets
    the settle succeed."""
    monkeypatch.setattr(recording, "GATHER_S", 3600.0)
    invocation_id, token = rig.held_run()
    statuses = [rig.send("GET", f"/api/projects/p1/n/{i}", token).status for i in range(3)]

    try:
        settled = rig.gateway.live.settle(invocation_id, timeout_s=30)
    finally:
        rig.gateway.live.awaited.set()  # a writer still gathering ends: the rig can stop
    assert settled and statuses == [200] * 3
    assert [c.path for c in rig.calls(invocation_id)] == [
        f"/api/projects/p1/n/{i}" for i in range(3)
    ]


def test_one_batch_records_the_calls_of_a_live_attempt_and_none_of_a_superseded_one(
    rig: Rig,
) -> None:
    """Calls of two runs written in one transaction: the run another attempt took over
    gets no record, its token's count still comes up; the other run gets all of its."""
    kept_id, kept_token = rig.new_run()
    lost_id, lost_token = rig.new_run()
    with rig.db.session() as session:
        session.execute(
            update(Invocation)
            .where(Invocation.id == lost_id)
            .values(lease_generation=Invocation.lease_generation + 1)
        )
    calls = [
        gateway_store.NewCall(
            {"invocation_id": run, "method": "GET", "path": f"/p/{n}", "status": 200},
            0,
            hash_token(token),
            n,
        )
        for n in (1, 2)
        for run, token in ((kept_id, kept_token), (lost_id, lost_token))
    ]

    with rig.db.session() as session:
        recorded = gateway_store.add_calls(session, calls)

    assert recorded == [True, False, True, False]
    assert [c.path for c in rig.calls(kept_id)] == ["/p/1", "/p/2"]
    assert rig.calls(lost_id) == []
    with rig.db.session() as session:
        counts = [
            gateway_store.find_token(session, hash_token(t)) for t in (kept_token, lost_token)
        ]
        assert [row.calls for row in counts if row is not None] == [2, 2]
