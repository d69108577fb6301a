"""Apply through the real server (``loyalty serve --workers 2``), beside the pure call, same run.

Figures for the report, not gates: the machine is shared, so each figure comes with its
same-run baseline and the ratio is the number to read.

- ``ApplyBatch`` of 1,000 purchases over 100 customers (fresh ids each round), two callers at
  once so both workers work, on a SQLite file and on PostgreSQL; baseline: ``EvaluateBatch``
  of the same items on a server with the same policies and no periods (pure, no store).
- Unary ``Apply`` paced at 500 calls/s (8 callers, one call each per 16 ms): p50 and p99;
  baseline: unary ``Evaluate`` paced the same on the pure server.
- Both on SQLite twice: commits flushed to the disk (the default) and ``synchronous=normal``
  (``sqlite:///path?synchronous=normal``: flushed at checkpoints; docs/state.md, "Durability").
- Unary ``Evaluate`` that reads two stored windows (a quote) against the pure ``Evaluate``,
  one caller, the same requests: mean latency ratio (issue 18 asks at most 1.5x).

The periods are the tests' stand-in (:mod:`tests.service.state.stand_in`: a daily bonus and a
quarterly cap, two windows read and up to two entries written per event) until the language's
own land.
"""

from __future__ import annotations

import itertools
import os
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from benchmarks.conftest import Mode, Results
from service.client import customer, purchase
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from tests.service.conftest import ROOT, ServerProcess, start_server
from tests.service.state.pg_server import PostgresServer, running_postgres

STATE_TESTS = ROOT / "tests" / "service" / "state"
ENV = {"PYTHONPATH": f"{ROOT}{os.pathsep}{STATE_TESTS}"}
BATCH = 1_000
CUSTOMERS = 100
RATE = 500  # unary calls per second
CALLERS = 8
_ids = itertools.count()


def customers() -> list[pb.Customer]:
    """The batch's 100 customers."""
    return [customer(f"c-{i}", member_since="2015-01-01", tier="GOLD") for i in range(CUSTOMERS)]


def event(i: int) -> pb.Event:
    """A purchase with a fresh id, in March 2026."""
    n = next(_ids)
    return purchase(f"b-{n}", time=f"2026-03-{1 + i % 28:02d}T12:00:00Z", amount="25.00")


def items(people: list[pb.Customer]) -> list[pb.BatchItem]:
    """1,000 new purchases over the customers."""
    return [pb.BatchItem(customer=people[i % CUSTOMERS], event=event(i)) for i in range(BATCH)]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this module."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store for the parametrised backend."""
    if request.param == "sqlite":
        return str(tmp_path / "state.sqlite3")
    if request.param == "sqlite-normal":  # commits flushed at checkpoints (docs/state.md)
        return f"sqlite://{tmp_path / 'state.sqlite3'}?synchronous=normal"
    server: PostgresServer = request.getfixturevalue("postgres")
    schema = f"bench{next(_ids)}"
    server.sql(f"CREATE SCHEMA {schema}")
    return server.url(schema)


def _backend(state_url: str) -> str:
    """The figure's name for a store: sqlite, sqlite_normal (synchronous=normal) or postgresql."""
    if state_url.startswith("postgresql"):
        return "postgresql"
    return "sqlite_normal" if "synchronous=normal" in state_url else "sqlite"


def _server(stateful: bool, state: str, *extra: str) -> ServerProcess:
    if stateful:
        return start_server("--log-level", "warning", "--state", state, *extra, module="stand_in_serve",
                            env=ENV)
    return start_server("--log-level", "warning", "--state", state, *extra)


def _stub(server: ServerProcess) -> tuple[grpc.Channel, pb_grpc.LoyaltyRulesStub]:
    channel = server.channel(**{"grpc.max_receive_message_length": 64 << 20,
                                "grpc.max_send_message_length": 64 << 20})
    return channel, pb_grpc.LoyaltyRulesStub(channel)


def _two_callers(server: ServerProcess, call: Any, batches: list[list[pb.BatchItem]],
                 warm: list[pb.BatchItem]) -> float:
    """Items per second with two callers sharing ``batches`` (each on its own connection)."""
    stubs = [_stub(server) for _ in range(2)]
    for k, (_, stub) in enumerate(stubs):  # connect and warm both
        call(stub, warm[k::2])
    work = [batches[k::2] for k in range(2)]

    def run(k: int) -> None:
        for batch in work[k]:
            call(stubs[k][1], batch)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    elapsed = time.perf_counter() - started
    for channel, _ in stubs:
        channel.close()
    return sum(len(b) for b in batches) / elapsed


def _apply_batch(stub: pb_grpc.LoyaltyRulesStub, batch: list[pb.BatchItem]) -> None:
    response = stub.ApplyBatch(pb.ApplyBatchRequest(items=batch), timeout=120)
    assert response.failed == 0, response.results[0]


def _evaluate_batch(stub: pb_grpc.LoyaltyRulesStub, batch: list[pb.BatchItem]) -> None:
    response = stub.EvaluateBatch(pb.EvaluateBatchRequest(items=batch), timeout=120)
    assert response.failed == 0


@pytest.mark.parametrize("state_url", ["sqlite", "sqlite-normal", "postgresql"], indirect=True)
def test_apply_batch_of_1000_with_two_workers(state_url: str, mode: Mode, results: Results,
                                              tmp_path: Path) -> None:
    """applies/s of ApplyBatch(1,000) with --workers 2, beside EvaluateBatch of the same items."""
    backend = _backend(state_url)
    rounds = 2 * mode.bench_rounds
    people = customers()
    batches = [items(people) for _ in range(rounds)]
    warm = items(people)[:20]
    pure = _server(False, str(tmp_path / "pure.sqlite3"), "--workers", "2")
    try:
        base = _two_callers(pure, _evaluate_batch, batches, warm)
    finally:
        pure.stop()
    applying = _server(True, state_url, "--workers", "2")
    try:
        rate = _two_callers(applying, _apply_batch, batches, warm)
    finally:
        applying.stop()
    store_rate = _store_alone(state_url, rounds)
    results.figure(f"apply_batch_{backend}", {
        "applies_per_s": round(rate), "evaluate_batch_per_s": round(base),
        "ratio_to_evaluate_batch": round(rate / base, 3), "store_apply_many_per_s": round(store_rate),
        "ratio_to_store_alone": round(rate / store_rate, 3), "batch": BATCH, "batches": rounds,
        "workers": 2, "target_per_s": 10_000 if backend == "postgresql" else 20_000,
    })
    print(f"\nApplyBatch({BATCH}) on {backend}, --workers 2: {rate:,.0f} applies/s; "
          f"EvaluateBatch of the same items {base:,.0f}/s (ratio {rate / base:.2f}); the store's own "
          f"apply_many, one process, {store_rate:,.0f}/s (ratio {rate / store_rate:.2f})")


def _store_alone(url: str, rounds: int) -> float:
    """applies/s of the store's apply_many(1,000) in this process on the same database, each
    decide() reading two windows and appending two entries (benchmarks/test_state.py's)."""
    from benchmarks.test_state import batch as store_batch
    from service.state import open_store

    store = open_store(url)
    try:
        store.apply_many(store_batch())
        started = time.perf_counter()
        for _ in range(rounds):
            store.apply_many(store_batch())
        return rounds * BATCH / (time.perf_counter() - started)
    finally:
        store.close()


def _paced(stubs: list[Any], seconds: float, call: Any) -> list[float]:
    """Latencies (s) of calls sent at RATE per second by CALLERS threads for ``seconds``."""
    interval = CALLERS / RATE
    latencies: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.2

    def run(k: int) -> None:
        _, stub = stubs[k]
        mine = []
        n = 0
        while True:
            due = start + k * interval / CALLERS + n * interval
            if due - start > seconds:
                break
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            began = time.perf_counter()
            call(stub, k, n)
            mine.append(time.perf_counter() - began)
            n += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(CALLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    return latencies


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


@pytest.mark.parametrize("state_url", ["sqlite", "sqlite-normal", "postgresql"], indirect=True)
def test_unary_apply_at_500_calls_per_second(state_url: str, mode: Mode, results: Results,
                                              tmp_path: Path) -> None:
    """p50 and p99 of unary Apply paced at 500/s, beside unary Evaluate paced the same."""
    backend = _backend(state_url)
    seconds = 3.0 if mode.name == "quick" else 10.0
    people = customers()

    def evaluate(stub: pb_grpc.LoyaltyRulesStub, k: int, n: int) -> None:
        request = pb.EvaluateRequest(customer=people[(k * 7 + n) % CUSTOMERS], event=event(n))
        stub.Evaluate(request, timeout=10)

    def apply(stub: pb_grpc.LoyaltyRulesStub, k: int, n: int) -> None:
        stub.Apply(pb.ApplyRequest(customer=people[(k * 7 + n) % CUSTOMERS], event=event(n)), timeout=10)

    figures = {}
    for name, stateful, state, call in (("evaluate", False, str(tmp_path / "pure.sqlite3"), evaluate),
                                        ("apply", True, state_url, apply)):
        server = _server(stateful, state, "--workers", "2")
        try:
            stubs = [_stub(server) for _ in range(CALLERS)]
            for k, (_, stub) in enumerate(stubs):
                call(stub, k, -1)  # connected and warm
            latencies = _paced(stubs, seconds, call)
            for channel, _ in stubs:
                channel.close()
        finally:
            server.stop()
        figures[name] = (_percentile(latencies, 0.5) * 1000, _percentile(latencies, 0.99) * 1000,
                         len(latencies) / seconds)
    (e50, e99, erate), (a50, a99, arate) = figures["evaluate"], figures["apply"]
    results.figure(f"unary_apply_{backend}", {
        "rate_per_s": round(arate), "p50_ms": round(a50, 2), "p99_ms": round(a99, 2),
        "evaluate_p50_ms": round(e50, 2), "evaluate_p99_ms": round(e99, 2),
        "p99_ratio_to_evaluate": round(a99 / e99, 2), "target_p99_ms": 10, "workers": 2,
    })
    print(f"\nunary Apply on {backend} at {arate:.0f}/s: p50 {a50:.2f} ms, p99 {a99:.2f} ms; "
          f"Evaluate at {erate:.0f}/s: p50 {e50:.2f} ms, p99 {e99:.2f} ms")


def test_evaluate_with_state_reads_against_the_pure_call(mode: Mode, results: Results,
                                                         tmp_path: Path) -> None:
    """Mean latency of a quote reading two stored windows over the pure Evaluate, one caller."""
    calls = 500 if mode.name == "quick" else 2000
    people = customers()
    requests = [pb.EvaluateRequest(customer=people[i % CUSTOMERS], event=event(i)) for i in range(calls)]
    state = str(tmp_path / "state.sqlite3")
    seeding = _server(True, state)
    try:  # counters to read: a month of purchases for every customer
        _, stub = _stub(seeding)
        stub.ApplyBatch(pb.ApplyBatchRequest(items=items(people)), timeout=120)
    finally:
        seeding.stop()
    means = {}
    for name, stateful in (("pure", False), ("quote", True), ("pure_again", False), ("quote_again", True)):
        server = _server(stateful, state)
        try:
            channel, stub = _stub(server)
            for r in requests[:50]:
                stub.Evaluate(r, timeout=10)
            started = time.perf_counter()
            for r in requests:
                stub.Evaluate(r, timeout=10)
            means[name] = (time.perf_counter() - started) / calls
            channel.close()
        finally:
            server.stop()
    pure = statistics.mean([means["pure"], means["pure_again"]])
    quote = statistics.mean([means["quote"], means["quote_again"]])
    results.figure("evaluate_with_state_reads", {
        "pure_us": round(pure * 1e6), "quote_us": round(quote * 1e6), "ratio": round(quote / pure, 3),
        "windows_read": 2, "calls": calls, "target_ratio": 1.5,
    })
    print(f"\nEvaluate, one caller: pure {pure * 1e6:.0f} us, reading two stored windows "
          f"{quote * 1e6:.0f} us; ratio {quote / pure:.2f}")
