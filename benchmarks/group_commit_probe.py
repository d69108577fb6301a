"""Unary Apply with and without group commit (service/state/group.py), in one process.

``python -m benchmarks.group_commit_probe STATE_URL on|off``: an in-process server on
127.0.0.1 with the bundled policies and the tests' stand-in periods, 8 callers sending 150
unary Applies each (1,200 in all) as fast as answered, over 100 customers. Prints Applies/s
and p50/p99 latency. ``off`` runs each Apply in its own transaction (the store's ``apply``).
Run ``off`` and ``on`` alternately on a fresh file; the machine's load moves both.
"""

from __future__ import annotations

import io
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "service" / "state")]

import grpc  # noqa: E402
from stand_in_serve import build_with_periods  # noqa: E402

import service.store  # noqa: E402
from service import logs  # noqa: E402
from service.client import customer, purchase  # noqa: E402
from service.gen.loyalty.v1 import loyalty_pb2 as pb  # noqa: E402
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc  # noqa: E402
from service.server import create_server  # noqa: E402
from service.state import open_store  # noqa: E402
from service.state.group import GroupCommit  # noqa: E402
from service.store import PolicyStore  # noqa: E402
from tests.service.conftest import POLICIES  # noqa: E402

CALLERS, CALLS = 8, 150


def main(url: str, mode: str) -> None:
    """Run the probe and print one line."""
    logs.configure("warning", "json", stream=io.StringIO())
    if mode == "off":
        GroupCommit.apply = lambda self, *args: self.store.apply(*args)  # type: ignore[method-assign]
    policies = PolicyStore(POLICIES)
    service.store.build_snapshot = build_with_periods  # type: ignore[assignment]
    assert policies.load()
    state = open_store(url)
    server, port = create_server(store=policies, state=state)
    server.start()
    people = [customer(f"c-{i}", member_since="2015-01-01", tier="GOLD") for i in range(100)]
    latencies: list[float] = []
    lock = threading.Lock()

    def caller(k: int) -> None:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pb_grpc.LoyaltyRulesStub(channel)
        mine = []
        for i in range(CALLS):
            event = purchase(f"b-{k}-{i}", time=f"2026-03-{1 + i % 28:02d}T12:00:00Z", amount="25.00")
            started = time.perf_counter()
            stub.Apply(pb.ApplyRequest(customer=people[(k * 7 + i) % 100], event=event), timeout=60)
            mine.append(time.perf_counter() - started)
        channel.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(CALLERS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    elapsed = time.perf_counter() - started
    server.stop(0).wait(5)
    state.close()
    latencies.sort()
    print(f"group commit {mode}: {len(latencies) / elapsed:.0f} Applies/s, "
          f"p50 {latencies[len(latencies) // 2] * 1000:.2f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
