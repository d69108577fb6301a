"""The benchmarks' alternating load: complete rounds, turns in A B / B A order, same payloads."""

from __future__ import annotations

import io
from collections.abc import Iterator

import grpc
import pytest

from benchmarks.load import alternating_closed_loop
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.testing import TrivialServicer
from tests.service.conftest import request


@pytest.fixture(scope="module")
def trivial_port() -> Iterator[int]:
    """An in-process server with the trivial servicer."""
    from service import logs
    from service.server import create_server

    logs.configure("info", "json", stream=io.StringIO())
    server, port = create_server("127.0.0.1:0", servicer=TrivialServicer())
    server.start()
    try:
        yield port
    finally:
        server.stop(0).wait(5)


def test_turns_alternate_and_every_round_is_complete(inproc: tuple[object, grpc.Channel, int],
                                                     trivial_port: int) -> None:
    payloads = [request().SerializeToString(), pb.EvaluateRequest().SerializeToString()]
    reads: list[str] = []

    def reader(name: str) -> object:
        def read() -> float:
            reads.append(name)
            return float(len(reads))
        return read

    targets = {"trivial": f"127.0.0.1:{trivial_port}", "real": f"127.0.0.1:{inproc[2]}"}
    turns = alternating_closed_loop(targets, "Evaluate", payloads, calls_per_turn=6, rounds=3,
                                    concurrency=2, cpu={n: reader(n) for n in targets},
                                    warmup_calls=2)
    # Each turn reads its server's CPU before and after; the order flips every round.
    assert reads == ["trivial", "trivial", "real", "real", "real", "real", "trivial", "trivial",
                     "trivial", "trivial", "real", "real"]
    assert [r.calls + r.errors for r in turns["trivial"].runs] == [6, 6, 6]
    assert [r.errors for r in turns["trivial"].runs] == [0, 0, 0]
    # The real servicer refuses the empty request: half of each turn's calls, like the other arm's.
    assert [(r.calls, r.errors) for r in turns["real"].runs] == [(3, 3)] * 3
    assert turns["real"].cpu_s == turns["trivial"].cpu_s == 3.0  # one read apart, three turns


def test_a_passed_deadline_leaves_no_round(inproc: tuple[object, grpc.Channel, int],
                                           trivial_port: int) -> None:
    targets = {"trivial": f"127.0.0.1:{trivial_port}", "real": f"127.0.0.1:{inproc[2]}"}
    turns = alternating_closed_loop(targets, "Evaluate", [request().SerializeToString()], 4, 5, 2,
                                    warmup_calls=1, deadline_s=0.0)
    assert turns["real"].runs == turns["trivial"].runs == []
