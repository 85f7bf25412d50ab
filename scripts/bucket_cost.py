#!/usr/bin/env python3
"""What a key's rate limit costs per request: the in-memory bucket (SQLite, one process)
against the shared bucket in PostgreSQL (one upsert), UNLOGGED as migrated and LOGGED.

Usage: .venv/bin/python scripts/bucket_cost.py [ADMIN_DSN]
Makes a scratch database on the PostgreSQL of ADMIN_DSN (default: the local one that
deploy/setup.sh made), prints each figure, and drops the database. docs/scaling.md
("Several API processes") quotes its output.
"""

from __future__ import annotations

import secrets
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
from sqlalchemy import text

from executor.store.db import Database
from executor.tenancy.ratelimit import KeyLimiter, Limiter, StoreLimiter

ADMIN_DSN = "host=127.0.0.1 port=5432 user=executor password=executor dbname=postgres"
TAKES = 3000
KEYS = 50
THREADS = 8
NO_LIMIT = 10**9  # every take granted: what is measured is the take itself


def timed(call: Callable[[], object], times: int) -> list[float]:
    """The seconds each of ``times`` calls took, sorted."""
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        spent.append(time.perf_counter() - start)
    return sorted(spent)


def show(line: str) -> None:
    sys.stdout.write(line + "\n")


def show_times(label: str, spent: list[float]) -> None:
    p50, p99 = spent[len(spent) // 2], spent[int(len(spent) * 0.99)]
    mean = statistics.mean(spent)
    show(f"{label:28s} mean {mean * 1e6:8.1f} µs  p50 {p50 * 1e6:8.1f} µs  p99 {p99 * 1e6:8.1f} µs")


def takes_per_second_on_one_key(limiter: Limiter) -> float:
    def work() -> None:
        for _ in range(TAKES // THREADS):
            limiter.request("hot")

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return (TAKES // THREADS * THREADS) / (time.perf_counter() - start)


def measure(db: Database) -> None:
    with db.autocommit_connection() as connection:
        show_times(
            "SELECT 1 (the round trip)", timed(lambda: connection.execute(text("SELECT 1")), TAKES)
        )
    memory = KeyLimiter(NO_LIMIT, NO_LIMIT)
    show_times("in memory", timed(lambda: memory.request("k"), TAKES))
    shared = StoreLimiter(db, NO_LIMIT, NO_LIMIT)
    for persistence in ("UNLOGGED", "LOGGED"):
        with db.autocommit_connection() as connection:
            connection.execute(text(f"ALTER TABLE key_buckets SET {persistence}"))
        keys = iter(range(10**9))

        def take(keys: Iterator[int] = keys) -> None:
            shared.request(f"k{next(keys) % KEYS}")

        show_times(f"PostgreSQL, {persistence}", timed(take, TAKES))
        rate = takes_per_second_on_one_key(shared)
        show(f"{'':28s} one key from {THREADS} threads: {rate:.0f} takes/s")


def main() -> None:
    admin = sys.argv[1] if len(sys.argv) > 1 else ADMIN_DSN
    name = f"pe_bucket_cost_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    try:
        params = psycopg.conninfo.conninfo_to_dict(admin)
        url = (
            f"postgresql+psycopg://{params['user']}:{params.get('password', '')}@"
            f"{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}/{name}"
        )
        db = Database(url)
        db.migrate()
        try:
            measure(db)
        finally:
            db.dispose()
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
