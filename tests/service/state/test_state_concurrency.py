"""Exactly once under concurrency: many threads and two processes, one customer, two limits."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from state_worker import DAY, MAX_BONUSES, QUARTER, SPEND_CAP, limited_decide

from service.state import ApplyResult, StateStore
from service.state.migrate import latest
from service.state.sqlite import SqliteStore

WORKER = Path(__file__).with_name("state_worker.py")
THREADS = 16
EVENTS_PER_THREAD = 3


def check_exactly_once(store: StateStore, results: list[tuple[str, bool, bytes]], events: int) -> None:
    """Every event applied once (the others replays of it), and both limits hold exactly."""
    applied = [event_id for event_id, replayed, _ in results if not replayed]
    assert sorted(applied) == sorted(set(applied))
    assert len(applied) == events
    stored = store.events("c-1")
    assert len(stored) == events
    bonuses = [e for e in stored if json.loads(e.decision)["bonus"]]
    assert len(bonuses) == MAX_BONUSES
    assert store.sums("c-1", [DAY, QUARTER]) == [MAX_BONUSES, SPEND_CAP]
    counted = sum(Decimal(json.loads(e.decision)["counted"]) for e in stored)
    assert counted == SPEND_CAP


def test_sixteen_threads_on_one_customer_award_exactly_the_allowed(store: StateStore) -> None:
    """16 threads, each applying its events and its neighbour's: 3 bonuses, spend at the cap."""
    barrier = threading.Barrier(THREADS)
    results: list[tuple[str, bool, bytes]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        try:
            barrier.wait(timeout=30)
            for k in range(EVENTS_PER_THREAD):
                for owner in (t, (t + 1) % THREADS):
                    r: ApplyResult = store.apply("c-1", f"e-{owner}-{k}", "digest", limited_decide())
                    with lock:
                        results.append((r.event_id, r.replayed, r.decision))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert len(results) == THREADS * EVENTS_PER_THREAD * 2
    check_exactly_once(store, results, THREADS * EVENTS_PER_THREAD)
    # A replay returns the decision the first apply stored, byte for byte.
    first = {event_id: decision for event_id, replayed, decision in results if not replayed}
    assert all(first[event_id] == decision for event_id, _, decision in results)


def test_two_processes_on_one_customer_award_exactly_the_allowed(store: StateStore, store_url: str) -> None:
    """Two processes apply the same 24 events in opposite orders: each applied once, limits exact."""
    ids = [f"e-{i}" for i in range(24)]
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), store_url, "apply", "c-1", *order],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for order in (ids, ids[::-1])
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results += [(r["event_id"], r["replayed"], r["decision"].encode())
                    for r in map(json.loads, out.splitlines())]
    assert len(results) == 48
    check_exactly_once(store, results, 24)


def _open_and_report(path: str, start: Any, errors: Any) -> None:
    start.wait(timeout=30)
    try:
        SqliteStore(path).close()
    except Exception as exc:  # reported in the test's process
        errors.put(repr(exc))


def test_processes_opening_one_new_sqlite_file_together_all_open_it(tmp_path: Path) -> None:
    """The workers of ``serve --workers N`` open one new state file at the same moment.

    Turning a new file to WAL needs it alone, and SQLite answers "database is locked" at once
    (no busy wait) to the second process trying: before the fix, about one round in four here
    failed, and a server's worker exited at start. 40 rounds of three processes.
    """
    context = multiprocessing.get_context("fork")
    errors = context.Queue()
    for k in range(40):
        path = str(tmp_path / f"state-{k}.sqlite3")
        start = context.Barrier(3)
        procs = [context.Process(target=_open_and_report, args=(path, start, errors)) for _ in range(3)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=60)
            assert proc.exitcode == 0
        assert errors.empty(), errors.get()
        store = SqliteStore(path)
        try:
            assert store.schema_version() == latest("sqlite")
        finally:
            store.close()
