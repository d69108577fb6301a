"""The state store's write path: ``apply_many`` of 1,000 events against a bare executemany.

A figure for the report, not a gate. The baseline, measured in the same run on the same
database, inserts the same rows (customers, events, entries) with executemany in one
transaction: no lock, no lookup of applied ids, no reads for decide(). The candidate is the
store's ``apply_many`` (one transaction for the batch), whose decide() reads two windows and
appends two entries, as a capped award would. Rounds alternate between the two so that a
shared machine's noise falls on both.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from benchmarks.conftest import Mode, Results
from service.state import ApplyItem, NewEntry, Outcome, Window, open_store
from service.state.api import StateStore
from tests.service.state.pg_server import PostgresServer, running_postgres

BATCH = 1_000
CUSTOMERS = 100
AT = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
QUARTER = Window("spend", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 4, 1, tzinfo=dt.UTC))
DAY = Window("bonuses", dt.datetime(2026, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
_rounds = itertools.count()


def decide(reader: Any) -> Outcome:
    """A capped award: reads the quarter's spend and today's bonuses, appends both."""
    spent, bonuses = reader.sums([QUARTER, DAY])
    counted = max(Decimal(0), min(Decimal("25.00"), Decimal("1500.00") - spent))
    bonus = 1 if bonuses < 3 else 0  # two entries either way, as the baseline writes
    return Outcome(b'{"stars": 5}', [NewEntry("spend", AT, counted), NewEntry("bonuses", AT, bonus)])


def batch() -> list[ApplyItem]:
    """1,000 new events over 100 customers (ids fresh every round, so nothing replays)."""
    n = next(_rounds)
    return [ApplyItem(f"c-{i % CUSTOMERS}", f"r{n}-e-{i}", "sha256:00", decide) for i in range(BATCH)]


def rows(n: int) -> tuple[list[tuple[str]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows an apply_many of a batch writes, for the bare baseline."""
    customers = [(f"base-c-{i}",) for i in range(CUSTOMERS)]
    events = [(f"b{n}-e-{i}", f"base-c-{i % CUSTOMERS}", "sha256:00", b'{"stars": 5}') for i in range(BATCH)]
    entries = [row for i in range(BATCH) for row in (
        (f"b{n}-e-{i}", "", 0, f"base-c-{i % CUSTOMERS}", "spend", "AT", "25.00", "apply"),
        (f"b{n}-e-{i}", "", 1, f"base-c-{i % CUSTOMERS}", "bonuses", "AT", "1", "apply"))]
    return customers, events, entries


CUSTOMER_SQL = "INSERT INTO customers (customer_id) VALUES (?) ON CONFLICT DO NOTHING"
EVENT_SQL = "INSERT INTO events (event_id, customer_id, body_digest, decision) VALUES (?, ?, ?, ?)"
ENTRY_SQL = ("INSERT INTO entries (event_id, reversal_id, line, customer_id, counter, at, amount, kind) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def sqlite_baseline(path: Path) -> Callable[[], None]:
    """One bare transaction of executemany on the store's file, with the store's pragmas."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    micros = (AT - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)

    def run() -> None:
        customers, events, entries = rows(next(_rounds))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(CUSTOMER_SQL, customers)
        conn.executemany(EVENT_SQL, events)
        conn.executemany(ENTRY_SQL, [(*e[:5], micros, *e[6:]) for e in entries])
        conn.execute("COMMIT")

    return run


def postgres_baseline(url: str) -> Callable[[], None]:
    """One bare transaction of executemany (psycopg pipelines it) on the same database."""
    import psycopg

    conn = psycopg.connect(url)

    def run() -> None:
        customers, events, entries = rows(next(_rounds))
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(CUSTOMER_SQL.replace("?", "%s"), customers)
            cur.executemany(EVENT_SQL.replace("?", "%s"), events)
            cur.executemany(ENTRY_SQL.replace("?", "%s"),
                            [(*e[:5], AT, Decimal(e[6]), e[7]) for e in entries])

    return run


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this module, stopped at its end."""
    with running_postgres() as server:
        yield server


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_apply_many_of_1000(benchmark: Any, backend: str, mode: Mode, results: Results,
                            tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """applies/s of apply_many(1,000) beside a bare executemany of the same rows, same run."""
    if backend == "sqlite":
        url = str(tmp_path / "state.sqlite3")
        store: StateStore = open_store(url)
        baseline = sqlite_baseline(Path(url))
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.url()
        store = open_store(url)
        baseline = postgres_baseline(url)
    try:
        rounds = mode.bench_rounds
        base_times, store_times = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            baseline()
            base_times.append(time.perf_counter() - started)
            items = batch()
            started = time.perf_counter()
            out = store.apply_many(items)
            store_times.append(time.perf_counter() - started)
            assert all(r.result is not None and not r.result.replayed for r in out)
        benchmark.pedantic(store.apply_many, setup=lambda: ((batch(),), {}), rounds=rounds)
        store_per_s = BATCH / statistics.median(store_times)
        base_per_s = BATCH / statistics.median(base_times)
        results.figure(f"state_apply_many_{backend}", {
            "applies_per_s": round(store_per_s), "baseline_rows_per_s": round(base_per_s),
            "ratio_to_baseline": round(store_per_s / base_per_s, 3), "batch": BATCH,
            "customers": CUSTOMERS, "rounds": rounds,
        })
        print(f"\n{backend}: apply_many {store_per_s:,.0f} applies/s; bare executemany "
              f"{base_per_s:,.0f} events/s; ratio {store_per_s / base_per_s:.2f}")
    finally:
        store.close()
