"""The in-container forwarder: ``127.0.0.1:<port>`` relayed byte for byte to the gateway socket.

Plugin containers have no network; the executor bind-mounts the gateway's Unix socket into
the container. Any HTTP client (``self.api``, ``requests``, ``httpx``, the Kili SDK) talks
plain HTTP to the forwarder, which opens one socket connection per TCP connection and copies
bytes both ways until both sides are done. Standard library only.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

BUFFER_BYTES = 64 * 1024
LISTEN_BACKLOG = 64


class ForwarderError(RuntimeError):
    """The forwarder could not start; the message says why."""


def listen_address(api_url: str) -> tuple[str, int]:
    """The loopback host and port of ``api_url`` the forwarder must listen on. Read by hand:
    ``urllib.parse`` (and ``ipaddress``) would be two more imports before every handler."""
    _, _, rest = api_url.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    host, _, port = authority.rpartition(":")
    if (
        host.lower() not in ("127.0.0.1", "localhost")
        or not (port.isascii() and port.isdigit())
        or not 0 < int(port) < 65536
    ):
        raise ForwarderError("api.url must be http://127.0.0.1:<port>/... to use the gateway")
    return "127.0.0.1", int(port)


def _pump(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways; half-close each direction when its source ends."""
    peers = {client: upstream, upstream: client}
    open_sources = [client, upstream]
    try:
        while open_sources:
            readable, _, _ = select.select(open_sources, [], [])
            for source in readable:
                data = source.recv(BUFFER_BYTES)
                if data:
                    peers[source].sendall(data)
                    continue
                open_sources.remove(source)
                with contextlib.suppress(OSError):
                    peers[source].shutdown(socket.SHUT_WR)
    except OSError:
        pass  # a side reset the connection: close both
    finally:
        client.close()
        upstream.close()


def _serve(listener: socket.socket, socket_path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(socket_path)
        except OSError:
            # Nothing listens: the client sees the connection closed without an answer.
            upstream.close()
            client.close()
            continue
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()


def start_forwarder(api_url: str, socket_path: str) -> socket.socket:
    """Listen on ``api_url``'s loopback port and relay to ``socket_path`` in the background.

    Returns the listening socket (closing it stops accepting). Raises
    :class:`ForwarderError` when the URL is not loopback or the port cannot be bound.
    """
    host, port = listen_address(api_url)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(LISTEN_BACKLOG)
    except OSError as exc:
        listener.close()
        raise ForwarderError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    thread = threading.Thread(
        target=_serve, args=(listener, socket_path), name="gateway-forwarder", daemon=True
    )
    thread.start()
    return listener
