"""A TCP relay on loopback that a test can cut, as a network partition cuts a link.

A process given the relay's address instead of its server's reaches the server through it.
``partition()`` stops it forwarding bytes in either direction without closing a socket (as
a partition does: each side's data waits, unsent, and each side still believes the other
is there), and a new connection is accepted but not carried further (as a SYN nobody
answers: the connect waits). ``heal()`` forwards again, what waited first; a connection
made during the partition is then carried to the server. Only the process behind the
relay is cut off: everything else reaches the server directly.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator

POLL_S = 0.1  # how often an idle pump looks at the stop and partition switches
CHUNK = 64 * 1024


class TcpRelay:
    """Listens on ``127.0.0.1:port``; each connection is relayed to ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL_S)
        self.port: int = self._listener.getsockname()[1]
        self._open = threading.Event()  # set while bytes flow
        self._open.set()
        self._stopping = threading.Event()
        self._busy = 0  # pumps between reading a chunk and handing all of it on
        self._idle = threading.Condition()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._upstream_ports: list[int] = []
        self._lock = threading.Lock()
        self._spawn(self._accept)

    def upstream_ports(self) -> list[int]:
        """The local ports of the relay's connections to the server (the server sees them
        as the clients' ports)."""
        with self._lock:
            return list(self._upstream_ports)

    def partition(self) -> None:
        """Stop forwarding; returns once no byte is on its way through the relay any more."""
        self._open.clear()
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0)

    def heal(self) -> None:
        self._open.set()

    @contextlib.contextmanager
    def partitioned(self) -> Iterator[None]:
        """Partitioned for the block, healed after (whatever happens in it)."""
        self.partition()
        try:
            yield
        finally:
            self.heal()

    def close(self) -> None:
        """Close every socket and wait for every thread of the relay."""
        self._stopping.set()
        self._open.set()  # a waiting connection wakes up to see the stop
        while True:  # the accept thread may start one more before it sees the stop
            with self._lock:
                running = [thread for thread in self._threads if thread.is_alive()]
            if not running:
                break
            for thread in running:
                thread.join()
        with self._lock:
            for sock in self._sockets:
                sock.close()
        self._listener.close()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _keep(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._spawn(self._connect, self._keep(client))

    def _connect(self, client: socket.socket) -> None:
        """Carry ``client`` to the server once the relay is open (at once unless cut off)."""
        self._open.wait()
        if self._stopping.is_set():
            return
        try:
            upstream = self._keep(socket.create_connection(self.target))
        except OSError:
            client.close()
            return
        with self._lock:
            self._upstream_ports.append(upstream.getsockname()[1])
        self._spawn(self._pump, client, upstream)
        self._spawn(self._pump, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Forward ``source``'s bytes to ``sink`` while open; its end as a half close."""
        while not self._stopping.is_set():
            if not self._open.wait(POLL_S):
                continue
            try:
                readable, _, _ = select.select([source], [], [], POLL_S)
            except (OSError, ValueError):  # closed at stop
                return
            if not readable:
                continue
            with self._idle:
                if not self._open.is_set():  # cut off since: the bytes stay unread
                    continue
                self._busy += 1
            try:
                if not self._forward(source, sink):
                    return
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    @staticmethod
    def _forward(source: socket.socket, sink: socket.socket) -> bool:
        """One chunk on; False once ``source`` ended or either side is gone."""
        try:
            data = source.recv(CHUNK)
            if data:
                sink.sendall(data)
                return True
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return False


@contextlib.contextmanager
def tcp_relay(host: str, port: int) -> Iterator[TcpRelay]:
    """A relay to ``host:port`` for the block; every socket and thread of it ends after."""
    relay = TcpRelay((host, port))
    try:
        yield relay
    finally:
        relay.close()
