"""Network attacks: the container has only ``lo``; DNS and every outside address fail."""

from __future__ import annotations

import ipaddress

import docker
import pytest

from tests.security.attacks import Attacker

NO_ROUTE = ("ENETUNREACH", "EHOSTUNREACH")
CONNECT = """
def attack(plugin, label, emit):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(3)
    try:
        sock.connect((label["host"], label["port"]))
        emit("error", None)
    except OSError as exc:
        emit("error", errno.errorcode.get(exc.errno, "timeout"))
"""


def bridge_gateway() -> str:
    """The Docker bridge's gateway address (the host, seen from bridged containers)."""
    client = docker.from_env()
    try:
        config = client.api.inspect_network("bridge")["IPAM"]["Config"][0]
    finally:
        client.close()
    if config.get("Gateway"):
        return str(config["Gateway"])
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def test_only_loopback(attacker: Attacker) -> None:
    """Attack: look for a network interface to use. Only ``lo`` exists."""
    result = attacker.run(
        "interfaces",
        """
        def attack(plugin, label, emit):
            emit("interfaces", sorted(name for _, name in socket.if_nameindex()))
        """,
    )
    assert result.run["status"] == "succeeded", result.text
    assert result.report["interfaces"] == ["lo"]


def test_dns_resolution(attacker: Attacker) -> None:
    """Attack: resolve a public name (DNS). It fails."""
    result = attacker.run(
        "dns",
        """
        def attack(plugin, label, emit):
            try:
                emit("resolved", socket.getaddrinfo("pypi.org", 443))
            except socket.gaierror as exc:
                emit("error", exc.errno)
        """,
    )
    assert result.run["status"] == "succeeded", result.text
    assert "resolved" not in result.report
    assert result.report["error"] in (socket_eai("EAI_NONAME"), socket_eai("EAI_AGAIN"))


def socket_eai(name: str) -> int:
    import socket

    return int(getattr(socket, name))


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("public", NO_ROUTE),
        ("metadata", NO_ROUTE),
        ("bridge_gateway", NO_ROUTE),
        ("executor_api_on_gateway", NO_ROUTE),
        ("executor_api_on_loopback", ("ECONNREFUSED",)),
    ],
)
def test_tcp_out(attacker: Attacker, target: str, expected: tuple[str, ...]) -> None:
    """Attack: TCP to a public address (192.0.2.1, TEST-NET), the cloud metadata address
    169.254.169.254, the Docker bridge gateway, and the executor's API port (on the gateway
    and on 127.0.0.1). No route out (runc: ENETUNREACH, gVisor: EHOSTUNREACH); the
    container's own loopback has nothing listening."""
    port = attacker.server.settings.port
    host, dest_port = {
        "public": ("192.0.2.1", 80),
        "metadata": ("169.254.169.254", 80),
        "bridge_gateway": (bridge_gateway(), 80),
        "executor_api_on_gateway": (bridge_gateway(), port),
        "executor_api_on_loopback": ("127.0.0.1", port),
    }[target]
    result = attacker.run("tcp-out", CONNECT, label={"host": host, "port": dest_port})
    assert result.run["status"] == "succeeded", result.text
    assert result.report["error"] in expected
