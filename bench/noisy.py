"""Noisy neighbour: tenant B's latencies while tenant A attacks, next to a quiet round.

    .venv/bin/python -m bench --section noisy [--short]

One executor on loopback, two tenants, each with a trivial code plugin active on its project.
B (the neighbour) posts an event every ``event_interval_s`` and reads ``GET /v1/plugins``
every ``api_interval_s``, with its own key; measured are each event's event→handler
latency (its invocation's ``start_latency_ms``, recorded by the executor) and each read's
latency. The quiet round is B alone; the noisy round is the same workload for B while A,
with a key per attack, sends:

- upload bombs: a small zip whose ``main.py`` is ``bomb_bytes`` of one list literal, at
  most ``BOMBS_IN_FLIGHT`` in flight and ``bombs`` in all (kept modest: on an executor that
  parses uploads in its own process, each costs it about 0.5 GB and seconds of CPU per MiB);
- costly GraphQL: one document of ``GRAPHQL_ALIASES`` aliases of ``listPlugins``, one in
  flight, ``graphql`` in all;
- an event flood: events paced at A's key rate limit (``KEY_REQUESTS_PER_MINUTE``) to A's
  project where its code plugin is active;
- slow webhooks: ``LORIS_HOOKS`` webhooks of A to slow-loris receivers on loopback (the
  answer's head never ends: one byte every ``LORIS_BYTE_S``), active on another project of
  A's that gets an event every ``HOOK_EVENT_INTERVAL_S``.

Every attack loop is bounded (a count and the round's end), every request has a time limit,
and the round ends by itself. The noisy round starts once A's slow receivers hold
connections (read from the receiver, not assumed). A run of B that has not started
``SETTLE_TIMEOUT_S`` after the round counts with that latency (a lower bound), so a starved
neighbour shows in the p99 instead of dropping out of it.
"""

from __future__ import annotations

import contextlib
import io
import select
import subprocess
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from bench.ingest import TERMINAL, push_plugin

__all__ = [
    "ATTACKS",
    "FULL",
    "SHORT",
    "LorisServer",
    "NoisySizes",
    "Round",
    "Rounds",
    "executor_settings",
    "measure",
]

QUIET, NOISY = "quiet", "noisy"
ATTACKS = ("bombs", "graphql", "flood", "webhooks")
KEY_REQUESTS_PER_MINUTE = 1200  # each key's budget; A's flood is paced at it
BOMBS_IN_FLIGHT = 2
GRAPHQL_ALIASES = 1000
LORIS_HOOKS = 6  # more than one tenant's default share of the webhook pool (4 of 16)
LORIS_BYTE_S = 5.0
CLOSED_POLL_S = 0.2
HOOK_EVENT_INTERVAL_S = 10.0  # the default delivery time limit: A's receivers stay busy
REQUEST_TIMEOUT_S = 60.0
SETTLE_TIMEOUT_S = 120.0  # B's last runs may still wait for a slot after its last event
ALL_SCOPES = ["plugins:write", "plugins:read", "logs:read", "events:write"]


@dataclass(frozen=True)
class NoisySizes:
    events: int  # B's events per round
    event_interval_s: float
    api_interval_s: float  # between B's reads (B's reads alone stay far below its budget)
    bombs: int
    bomb_bytes: int
    graphql: int


# B's events come slower than its runs end on a quiet machine, so the quiet round measures
# starts, not B's own queue.
FULL = NoisySizes(30, 2.0, 0.2, 6, 1024 * 1024, 20)
SHORT = NoisySizes(6, 1.0, 0.2, 2, 256 * 1024, 2)


@dataclass
class Round:
    """B's figures of one round (ms): event→handler, of it event→claimed (the wait for a
    slot), and API reads; and how many of B's runs did not start in time."""

    handler_ms: list[float]
    claim_ms: list[float]
    api_ms: list[float]
    unstarted: int
    run_ms: list[float]  # duration_ms of B's runs: how much slower the machine ran them


@dataclass
class Rounds:
    """B's figures by round (``QUIET``, ``NOISY``), and what A sent in the noisy one."""

    of: dict[str, Round] = field(default_factory=dict)
    attacks: dict[str, dict[str, int]] = field(default_factory=dict)
    loris_peak: int = 0


class _Loris(BaseHTTPRequestHandler):
    server: LorisServer

    def do_POST(self) -> None:
        self.rfile.read(min(int(self.headers.get("Content-Length", "0")), 1 << 20))
        self.server.opened(1)
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            self._trickle()
        except OSError:  # the executor cut it off
            pass
        finally:
            self.server.opened(-1)

    def _trickle(self) -> None:
        """One byte every ``LORIS_BYTE_S`` until the server stops or the executor closes
        the connection (noticed within ``CLOSED_POLL_S``, so ``open`` counts what is held)."""
        next_byte = time.monotonic() + LORIS_BYTE_S
        while not self.server.stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], CLOSED_POLL_S)
            if readable and not self.connection.recv(1024):
                return
            if time.monotonic() >= next_byte:
                self.wfile.write(b"z")
                next_byte += LORIS_BYTE_S

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LorisServer(ThreadingHTTPServer):
    """Slow-loris receivers on loopback: every POST gets a status line, then one byte every
    ``LORIS_BYTE_S`` until the server stops; ``open`` counts the connections held now."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Loris)
        self.stopping = threading.Event()
        self.open = self.peak = 0
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def opened(self, change: int) -> None:
        with self._lock:
            self.open += change
            self.peak = max(self.peak, self.open)

    @classmethod
    @contextlib.contextmanager
    def serving(cls) -> Iterator[LorisServer]:
        server = cls()
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.stopping.set()
            server.shutdown()
            server.server_close()


def executor_settings(loris_port: int, run_slots: int) -> dict[str, str]:
    """The executor's settings for the section: every key's request budget, a tenant's runs
    at once capped at half the run slots (the operator's quota that makes run slots
    shareable at all), and A's receivers on loopback allowed."""
    return {
        "key_requests_per_minute": str(KEY_REQUESTS_PER_MINUTE),
        "tenant_max_concurrent_runs": str(max(1, run_slots // 2)),
        "webhook_allowed_hosts": f'["127.0.0.1:{loris_port}"]',
    }


def tenant_client(api: httpx.Client, tenant: str, *projects: str) -> Callable[[], httpx.Client]:
    """Create ``tenant`` owning ``projects``; a factory of clients each with a new key."""
    api.post("/v1/tenants", json={"name": tenant}).raise_for_status()
    for project in projects:
        api.put(f"/v1/tenants/{tenant}/projects/{project}").raise_for_status()

    def client() -> httpx.Client:
        created = api.post(f"/v1/tenants/{tenant}/keys", json={"name": "k", "scopes": ALL_SCOPES})
        created.raise_for_status()
        return httpx.Client(
            base_url=api.base_url,
            headers={"Authorization": f"Bearer {created.json()['key']}"},
            timeout=REQUEST_TIMEOUT_S,
        )

    return client


def bomb_zip(size: int) -> bytes:
    """A zip of a few KiB whose ``main.py`` is ``size`` bytes of one list literal."""
    source = b"x = [" + b"0," * ((size - 6) // 2) + b"]\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("main.py", source)
    return buffer.getvalue()


def costly_graphql() -> str:
    return "{" + " ".join(f"a{n}: listPlugins {{ id name }}" for n in range(GRAPHQL_ALIASES)) + "}"


class Attacker:
    """Tenant A's attacks, each in threads that stop at ``stop`` or their count, whichever
    comes first; ``sent`` counts answers by attack and status (or error)."""

    def __init__(self, new_client: Callable[[], httpx.Client], sizes: NoisySizes) -> None:
        self.new_client = new_client
        self.sizes = sizes
        self.stop = threading.Event()
        self.sent: dict[str, Counter[str]] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._clients: list[httpx.Client] = []

    def start(self, attacks: frozenset[str]) -> None:
        """Start the named ``ATTACKS``, once each has its key (made before any is sent)."""
        for name in ATTACKS:
            if name in attacks:
                getattr(self, f"_{name}")()
        for thread in self._threads:
            thread.start()

    def _round_s(self) -> float:
        """The longest a round may last: no attack's count outlasts it."""
        return self.sizes.events * self.sizes.event_interval_s + 2 * SETTLE_TIMEOUT_S

    def _bombs(self) -> None:
        bomb = bomb_zip(self.sizes.bomb_bytes)
        bombs = iter(range(self.sizes.bombs))  # shared by the bomb threads

        def upload(client: httpx.Client) -> httpx.Response | None:
            if next(bombs, None) is None:
                return None
            files = {"file": ("bomb.zip", bomb)}
            return client.post("/v1/plugins", data={"name": "bomb"}, files=files)

        for _ in range(BOMBS_IN_FLIGHT):
            self._spawn("upload bomb", upload, self.sizes.bombs, 0.0)

    def _graphql(self) -> None:
        query = {"query": costly_graphql()}
        post = lambda c: c.post("/graphql", json=query)  # noqa: E731
        self._spawn("costly graphql", post, self.sizes.graphql, 0.0)

    def _flood(self) -> None:
        interval = 60.0 / KEY_REQUESTS_PER_MINUTE
        event = {"type": "onSubmit", "project_id": "a-work", "asset_id": "a", "label": {}}
        post = lambda c: c.post("/v1/events", json=event)  # noqa: E731
        self._spawn("event flood", post, int(self._round_s() / interval), interval)

    def _webhooks(self) -> None:
        event = {"type": "onSubmit", "project_id": "a-hooks", "asset_id": "a", "label": {}}
        post = lambda c: c.post("/v1/events", json=event)  # noqa: E731
        count = int(self._round_s() / HOOK_EVENT_INTERVAL_S)
        self._spawn("slow webhooks' events", post, count, HOOK_EVENT_INTERVAL_S)

    def _spawn(
        self,
        name: str,
        request: Callable[[httpx.Client], httpx.Response | None],
        count: int,
        interval_s: float,
    ) -> None:
        client = self.new_client()
        self._clients.append(client)
        with self._lock:
            self.sent.setdefault(name, Counter())

        def loop() -> None:
            for _ in range(count):
                if self.stop.is_set():
                    return
                started = time.monotonic()
                try:
                    answer = request(client)
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                else:
                    if answer is None:
                        return
                    outcome = str(answer.status_code)
                with self._lock:
                    self.sent[name][outcome] += 1
                self.stop.wait(max(0.0, interval_s - (time.monotonic() - started)))

        self._threads.append(threading.Thread(target=loop, name=f"attack {name}", daemon=True))

    def finish(self) -> dict[str, dict[str, int]]:
        """Stop every attack; each thread ends at its request's time limit at the latest."""
        self.stop.set()
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join(REQUEST_TIMEOUT_S + 5)
        for client in self._clients:
            client.close()
        with self._lock:
            return {name: dict(outcomes) for name, outcomes in self.sent.items()}


def neighbour_round(client: httpx.Client, sizes: NoisySizes) -> Round:
    """B's workload: events at a steady pace and API reads alongside, both bounded."""
    done = threading.Event()

    def read_loop() -> list[float]:
        latencies = []
        while not done.is_set():
            started = time.perf_counter()
            client.get("/v1/plugins").raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            done.wait(sizes.api_interval_s)
        return latencies

    with ThreadPoolExecutor(1) as reader:
        reads = reader.submit(read_loop)
        try:
            ids = []
            for n in range(sizes.events):
                event = {"type": "onSubmit", "project_id": "b-work", "asset_id": f"b{n}"}
                answer = client.post("/v1/events", json={**event, "label": {}})
                answer.raise_for_status()
                ids.extend(answer.json()["invocations"])
                time.sleep(sizes.event_interval_s)
        finally:
            done.set()
        api_ms = reads.result()
    return started_latencies(client, ids, api_ms)


def _claim_ms(record: dict[str, Any]) -> float:
    queued = datetime.fromisoformat(record["queued_at"])
    return (datetime.fromisoformat(record["started_at"]) - queued).total_seconds() * 1000


def started_latencies(client: httpx.Client, ids: list[str], api_ms: list[float]) -> Round:
    """Each run's ``start_latency_ms`` once it ended (waiting up to ``SETTLE_TIMEOUT_S``),
    ``SETTLE_TIMEOUT_S`` for each that did not start."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    ended: dict[str, dict[str, Any]] = {}
    while len(ended) < len(ids) and time.monotonic() < deadline:
        page = client.get("/v1/invocations", params={"project_id": "b-work", "limit": 1000})
        page.raise_for_status()
        ended.update(
            {r["id"]: r for r in page.json() if r["id"] in ids and r["status"] in TERMINAL}
        )
        time.sleep(0.5)
    started = [ended[i] for i in ids if i in ended and ended[i]["start_latency_ms"] is not None]
    unstarted = [SETTLE_TIMEOUT_S * 1000] * (len(ids) - len(started))
    return Round(
        handler_ms=[float(r["start_latency_ms"]) for r in started] + unstarted,
        claim_ms=[_claim_ms(r) for r in started] + unstarted,
        api_ms=api_ms,
        unstarted=len(unstarted),
        run_ms=[float(r["duration_ms"]) for r in started if r["duration_ms"] is not None],
    )


def wait_held(loris: LorisServer, at_least: int) -> None:
    """Until A's slow receivers hold ``at_least`` connections (the attack is on)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while loris.open < at_least:
        if time.monotonic() > deadline:
            raise SystemExit(f"A's slow receivers held {loris.open} connections, not {at_least}")
        time.sleep(0.1)


def measure(
    api: httpx.Client,
    loris: LorisServer,
    sizes: NoisySizes,
    workdir: Path,
    images: list[str],
    attacks: frozenset[str] = frozenset(ATTACKS),
) -> Rounds:
    """The quiet round, then the noisy round with ``attacks`` (of ``ATTACKS``); ``images``
    gets the plugin images made (for the caller to remove, also when a round fails)."""
    rounds = Rounds()
    neighbour = tenant_client(api, "neighbour", "b-work")()
    attacker_keys = tenant_client(api, "attacker", "a-work", "a-hooks")
    attacker = attacker_keys()
    try:
        for client, name in ((neighbour, "b-work"), (attacker, "a-work")):
            images.append(push_plugin(client, name, workdir / name))
            client.put(f"/v1/projects/{name}/plugins/{name}").raise_for_status()
        for n in range(LORIS_HOOKS):
            url = f"http://127.0.0.1:{loris.port}/{n}"
            hook = {"webhook_url": url, "plugin_name": f"slow{n}"}
            attacker.post("/v1/webhooks", json=hook).raise_for_status()
            attacker.put(f"/v1/projects/a-hooks/plugins/slow{n}").raise_for_status()
        rounds.of[QUIET] = neighbour_round(neighbour, sizes)
        attacker_threads = Attacker(attacker_keys, sizes)
        attacker_threads.start(attacks)
        try:
            if "webhooks" in attacks:
                wait_held(loris, 1)
            rounds.of[NOISY] = neighbour_round(neighbour, sizes)
        finally:
            rounds.attacks = attacker_threads.finish()
        rounds.loris_peak = loris.peak
        return rounds
    finally:
        loris.stopping.set()  # A's deliveries end now, not at the executor's drain limit
        neighbour.close()
        attacker.close()


def remove_images(images: list[str]) -> None:
    if images:
        subprocess.run(["docker", "rmi", "-f", *images], capture_output=True, check=False)
