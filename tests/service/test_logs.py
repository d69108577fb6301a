"""The canonical line per RPC: its fields for every RPC, the fast JSON path equal to structlog's, and
the outcome the client saw for a call that ended before its handler did."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from service import logs
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from service.metrics import Metrics
from tests.service.conftest import POLICIES, gold_customer, jfk_lhr
from tests.service.stuck_server import StuckServicer


class Captured:
    """JSON log lines written to a binary buffer, as on stderr (the fast path's case)."""

    def __init__(self) -> None:
        self.raw = io.BytesIO()
        self.stream = io.TextIOWrapper(self.raw, encoding="utf-8", write_through=True)

    def lines(self) -> list[dict[str, Any]]:
        logs.flush()  # the writer thread writes the queued lines
        self.stream.flush()
        self.stream.buffer.flush()
        return [json.loads(line) for line in self.raw.getvalue().decode().splitlines()]

    def rpc(self) -> list[dict[str, Any]]:
        return [e for e in self.lines() if e.get("event") == "rpc"]


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Logs configured as deployed (JSON to a buffered binary stream), restored afterwards."""
    out = Captured()
    logs.configure("info", "json", out.stream)
    try:
        yield out
    finally:
        logs.configure("info", "json", stream=io.StringIO())


def test_the_fast_line_is_the_line_structlog_renders(captured):
    """In JSON mode the canonical line skips structlog's chain; it must not change a byte but the time."""
    fields = {"customer_id": "c-1", "event_id": "e-1", "revision": "r0123456789ab"}
    logs.rpc_line("info", "Evaluate", "OK", 0.412, fields)
    fast = logs._fast
    logs._fast = None  # the same configuration, through structlog's processors
    try:
        logs.rpc_line("info", "Evaluate", "OK", 0.412, fields)
        logs.rpc_line("warning", "Evaluate", "INTERNAL", 1.5, {})
    finally:
        logs._fast = fast
    logs.rpc_line("warning", "Evaluate", "INTERNAL", 1.5, {})
    logs.rpc_line("debug", "Check", "OK", 0.1, {})  # below the level: no line either way
    lines = captured.lines()
    assert len(lines) == 4
    for a, b in ((lines[0], lines[1]), (lines[3], lines[2])):
        assert a.pop("timestamp").endswith("Z") and b.pop("timestamp").endswith("Z")
        assert list(a.items()) == list(b.items())  # same keys, values and order
    assert lines[0]["level"] == "info" and lines[2]["level"] == "warning"


def test_every_rpc_has_its_canonical_line(captured):
    """Ids and revision for Evaluate (also when the request is refused), items and failed for a
    batch, messages and failed for a stream, the revision for ListPolicies."""
    from service.server import create_server

    server, port = create_server("127.0.0.1:0", policies=POLICIES)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.LoyaltyRulesStub(channel)
            revision = stub.Evaluate(pb.EvaluateRequest(customer=gold_customer("c-7"),
                                                        event=jfk_lhr("e-7")), timeout=5).decision.revision
            with pytest.raises(grpc.RpcError):
                stub.Evaluate(pb.EvaluateRequest(customer=gold_customer("c-8"),
                                                 event=jfk_lhr("e-8", origin="XXX")), timeout=5)
            with pytest.raises(grpc.RpcError):  # a 200,000-character id: logged cut to 128
                stub.Evaluate(pb.EvaluateRequest(customer=gold_customer("x" * 200_000),
                                                 event=jfk_lhr("e-9")), timeout=5)
            items = [pb.BatchItem(correlation_id=str(i), customer=gold_customer(), event=jfk_lhr())
                     for i in range(3)]
            items[1].event.flight.fare = "-1"
            stub.EvaluateBatch(pb.EvaluateBatchRequest(items=items), timeout=5)
            messages = [pb.EvaluateStreamRequest(correlation_id="a", customer=gold_customer(),
                                                 event=jfk_lhr()),
                        pb.EvaluateStreamRequest(correlation_id="b", customer=gold_customer())]
            list(stub.EvaluateStream(iter(messages), timeout=5))
            stub.ListPolicies(pb.ListPoliciesRequest(), timeout=5)
    finally:
        server.stop(0).wait(5)
    long_id = [e for e in captured.rpc() if e.get("event_id") == "e-9"]
    assert [len(e["customer_id"]) for e in long_id] == [128]
    lines = {(e["method"], e["code"]): e for e in captured.rpc() if e.get("event_id") != "e-9"}
    ok = lines[("Evaluate", "OK")]
    assert (ok["customer_id"], ok["event_id"], ok["revision"]) == ("c-7", "e-7", revision)
    assert ok["level"] == "info" and isinstance(ok["ms"], float) and isinstance(ok["pid"], int)
    refused = lines[("Evaluate", "INVALID_ARGUMENT")]
    assert (refused["customer_id"], refused["event_id"], refused["revision"]) == ("c-8", "e-8", revision)
    batch = lines[("EvaluateBatch", "OK")]
    assert (batch["items"], batch["failed"], batch["revision"]) == (3, 1, revision)
    stream = lines[("EvaluateStream", "OK")]
    assert (stream["messages"], stream["failed"]) == (2, 1)
    assert lines[("ListPolicies", "OK")]["revision"] == revision


def test_a_call_whose_handler_outlives_it_is_logged_as_the_client_saw_it(captured):
    """A handler that returns after the deadline, or after the client cancelled, answered nobody:
    its line and its metrics say DEADLINE_EXCEEDED or CANCELLED, not OK (unary and stream)."""
    from service.server import create_server

    registry = CollectorRegistry()
    server, port = create_server("127.0.0.1:0", servicer=StuckServicer(), metrics=Metrics(registry))
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.LoyaltyRulesStub(channel)
            sleepy = pb.EvaluateRequest(customer=pb.Customer(id="sleep:0.6"))
            with pytest.raises(grpc.RpcError) as info:
                stub.Evaluate(sleepy, timeout=0.2)
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            cancelled = stub.Evaluate.future(sleepy)  # no deadline: only the cancel ends it
            time.sleep(0.2)
            cancelled.cancel()
            messages = [pb.EvaluateStreamRequest(correlation_id="sleep:0.6")]
            with pytest.raises(grpc.RpcError) as info:
                list(stub.EvaluateStream(iter(messages), timeout=0.2))
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert stub.Evaluate(pb.EvaluateRequest(customer=pb.Customer(id="c-1")), timeout=5)
            deadline = time.monotonic() + 10
            while len(captured.rpc()) < 4 and time.monotonic() < deadline:  # the handlers finish late
                time.sleep(0.05)
    finally:
        server.stop(0).wait(5)
    lines = [(e["method"], e["code"]) for e in captured.rpc()]
    assert sorted(lines) == [("Evaluate", "CANCELLED"), ("Evaluate", "DEADLINE_EXCEEDED"),
                             ("Evaluate", "OK"), ("EvaluateStream", "DEADLINE_EXCEEDED")]
    late = [e for e in captured.rpc() if e["code"] == "DEADLINE_EXCEEDED"]
    assert all(e["ms"] >= 600 for e in late) and all(e["level"] == "info" for e in late)

    def calls(code: str) -> float:
        return registry.get_sample_value("loyalty_rpc_duration_seconds_count",
                                         {"method": "Evaluate", "code": code}) or 0.0

    assert (calls("OK"), calls("DEADLINE_EXCEEDED"), calls("CANCELLED")) == (1, 1, 1)
