"""Attack: keep calling the platform after the handler returned (a non-daemon thread, a
``setsid`` grandchild, an ``atexit`` hook, a plugin that keeps the runtime from exiting).

The run ends when its handler returns: the runtime exits at once (no thread join, no
``atexit``), the init kills every other process, and the executor revokes the run's token as
soon as it reads the runtime's ``handler_finished`` line. A late caller waits until its
token is refused (a probe outside the project's base path answers 403 while the token
lives, 401 once it is revoked) and only then calls the platform: that call must never reach
it, and the run must end ``succeeded`` (not ``timed_out`` at its wall time).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import ServerFactory
from tests.platform_standin import PlatformStandIn, platform_standin
from tests.security.attacks import RUNTIMES, Attacker, AttackRun
from tests.security.test_resources import assert_nothing_left

PROBE = "/outside-the-project"
# Far above what a run needs even on loaded cores: a run that ends ``timed_out`` here was
# kept alive by what it left behind, not slowed down.
WALL_TIME_S = 60.0

# Helpers put before each attack: raw HTTP over the gateway socket (what any process of
# the plugin can do without the runtime), and the late caller.
LATE_CALLER = """
import http.client

GATEWAY_SOCKET = "/run/executor/gateway.sock"
PROBE = PROBE_PATH


class GatewayConnection(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("gateway", timeout=30)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(GATEWAY_SOCKET)


def call(token, method, path, body=None):
    connection = GatewayConnection()
    try:
        headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
        connection.request(method, path, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def late_call(plugin, token, who):
    while call(token, "GET", PROBE) != 401:  # 403: the token still lives
        time.sleep(0.05)
    path = "/api/projects/" + plugin.project_id + "/late"
    return call(token, "POST", path, json.dumps({"who": who}).encode())


def begin(plugin, emit):
    emit("hostname", socket.gethostname())
    plugin.api.post("during", json={"in": "handler"})  # the live token reaches the platform
    return plugin.api._ApiClient__token
"""


@dataclass
class Afterlife:
    attacker: Attacker
    platform: PlatformStandIn

    def run(self, name: str, attack: str) -> AttackRun:
        helpers = LATE_CALLER.replace("PROBE_PATH", repr(PROBE))
        return self.attacker.run(name, helpers + textwrap.dedent(attack))

    def reached(self, name: str) -> list[str]:
        """The paths of the requests from project ``name`` that reached the platform."""
        with self.platform.lock:
            paths = [r.path for r in self.platform.requests]
        return [p for p in paths if p.startswith(f"/api/projects/{name}/")]


@pytest.fixture(scope="module", params=RUNTIMES)
def afterlife(
    request: pytest.FixtureRequest,
    server_factory: ServerFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Afterlife]:
    """An executor per OCI runtime whose gateway forwards to its own platform stand-in."""
    with platform_standin() as platform:
        server = server_factory(
            sandbox={"oci_runtime": request.param, "timeout_s": WALL_TIME_S},
            platform_api_url=platform.url + "/api/projects/{project_id}",
            platform_credential="operator-credential-afterlife",
            max_concurrent_runs=2,
        )
        workdir = tmp_path_factory.mktemp(f"afterlife-{request.param}")
        yield Afterlife(Attacker(server, workdir), platform)


def late_calls(result: AttackRun) -> list[tuple[str, int, str | None]]:
    """The run's gateway calls after the handler's own one: (path, status, error)."""
    calls = result.run["gateway_calls"]
    assert calls[0]["path"].endswith("/during") and calls[0]["status"] == 200, calls
    return [(c["path"], c["status"], c["error"]) for c in calls[1:]]


def assert_ended_with_its_handler(afterlife: Afterlife, name: str, result: AttackRun) -> None:
    """Succeeded (no wait for the wall time), only the handler's call reached the platform,
    every later call was refused, and nothing of the run is left."""
    assert result.run["status"] == "succeeded", result.text
    assert afterlife.reached(name) == [f"/api/projects/{name}/during"]
    for path, status, _ in late_calls(result):
        assert (path, status) in {(PROBE, 403), (PROBE, 401), (f"/api/projects/{name}/late", 401)}
    assert_nothing_left(afterlife.attacker, result)


def test_non_daemon_thread(afterlife: Afterlife) -> None:
    """A non-daemon thread the handler leaves running: the runtime does not wait for it."""
    result = afterlife.run(
        "afterlife-thread",
        """
        import threading

        def attack(plugin, label, emit):
            token = begin(plugin, emit)
            threading.Thread(target=late_call, args=(plugin, token, "thread")).start()
        """,
    )
    assert_ended_with_its_handler(afterlife, "afterlife-thread", result)


def test_setsid_grandchild(afterlife: Afterlife) -> None:
    """A double-forked, ``setsid`` grandchild: killed by the init with the runtime's end."""
    result = afterlife.run(
        "afterlife-daemon",
        """
        def attack(plugin, label, emit):
            token = begin(plugin, emit)
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    late_call(plugin, token, "grandchild")
                    while True:
                        time.sleep(1)
                os._exit(0)
            os.wait()
        """,
    )
    assert_ended_with_its_handler(afterlife, "afterlife-daemon", result)


def test_atexit_hook(afterlife: Afterlife) -> None:
    """An ``atexit`` hook calling the platform straight away: it never runs."""
    name = "afterlife-atexit"
    result = afterlife.run(
        name,
        """
        import atexit

        def attack(plugin, label, emit):
            token = begin(plugin, emit)
            path = "/api/projects/" + plugin.project_id + "/late"
            atexit.register(call, token, "POST", path, b'{"who": "atexit"}')
        """,
    )
    assert_ended_with_its_handler(afterlife, name, result)
    assert late_calls(result) == []


def test_runtime_kept_from_exiting(afterlife: Afterlife) -> None:
    """The runtime runs in the plugin's process, so a plugin can keep it from exiting (here
    by wrapping the writer of the ``handler_finished`` line) and its grandchild alive. The
    token is revoked anyway when the handler returns: the grandchild's call gets 401,
    recorded as refused on the run."""
    name = "afterlife-held"
    result = afterlife.run(
        name,
        """
        from plugin_runtime import protocol

        def attack(plugin, label, emit):
            token = begin(plugin, emit)
            done_r, done_w = os.pipe()
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    status = late_call(plugin, token, "held")
                    os.write(done_w, str(status).encode())
                    while True:
                        time.sleep(1)
                os._exit(0)
            os.wait()
            real_control = protocol.ProtocolWriter.control

            def held_control(self, name, **fields):
                real_control(self, name, **fields)
                if name == "handler_finished":
                    os.read(done_r, 3)  # until the grandchild made its late call

            protocol.ProtocolWriter.control = held_control
        """,
    )
    assert result.run["status"] == "succeeded", result.text
    late = [c for c in late_calls(result) if c[0] != PROBE]
    assert late == [
        (
            f"/api/projects/{name}/late",
            401,
            "the run this token was issued to has finished (its handler returned or its "
            "container ended): a run token is good only while its handler runs",
        )
    ], (late_calls(result), result.text)
    assert afterlife.reached(name) == [f"/api/projects/{name}/during"]
    assert_nothing_left(afterlife.attacker, result)
