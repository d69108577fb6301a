"""What operators' stock tools read: the standard gRPC metric names, W3C trace context in the
canonical and decision lines, and one type per log field (awards are decimal strings)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from prometheus_client import CollectorRegistry

from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from service.metrics import Metrics
from tests.service.conftest import POLICIES, gold_customer, jfk_lhr
from tests.service.test_logs import Captured, captured  # noqa: F401 - the fixture

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def served(captured: Captured) -> Iterator[tuple[pb_grpc.LoyaltyRulesStub, CollectorRegistry]]:  # noqa: F811
    from service.server import create_server

    registry = CollectorRegistry()
    server, port = create_server("127.0.0.1:0", policies=POLICIES, metrics=Metrics(registry),
                                 log_decisions=True)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield pb_grpc.LoyaltyRulesStub(channel), registry
    finally:
        server.stop(None).wait()


def test_standard_grpc_metric_names_count_calls_by_code(served):
    """grpc_server_handled_total and grpc_server_handling_seconds, labelled as go-grpc-prometheus
    labels them, beside loyalty_rpc_duration_seconds."""
    stub, registry = served
    stub.Evaluate(pb.EvaluateRequest(customer=gold_customer(), event=jfk_lhr()), timeout=5)
    with pytest.raises(grpc.RpcError):
        stub.Evaluate(pb.EvaluateRequest(), timeout=5)
    labels = {"grpc_type": "unary", "grpc_service": "loyalty.v1.LoyaltyRules", "grpc_method": "Evaluate"}
    assert registry.get_sample_value("grpc_server_handled_total", {**labels, "grpc_code": "OK"}) == 1
    assert registry.get_sample_value(
        "grpc_server_handled_total", {**labels, "grpc_code": "INVALID_ARGUMENT"}) == 1
    assert registry.get_sample_value("grpc_server_handling_seconds_count", labels) == 2
    assert registry.get_sample_value(
        "loyalty_rpc_duration_seconds_count", {"method": "Evaluate", "code": "OK"}) == 1


def test_traceparent_is_written_in_the_canonical_and_the_decision_line(served, captured):  # noqa: F811
    """A W3C traceparent in the metadata puts its trace id and parent span id on the call's lines;
    a malformed one adds nothing."""
    stub, _ = served
    request = pb.EvaluateRequest(customer=gold_customer(), event=jfk_lhr())
    stub.Evaluate(request, timeout=5, metadata=[("traceparent", f"00-{TRACE_ID}-{PARENT}-01")])
    stub.Evaluate(request, timeout=5, metadata=[("traceparent", "00-nothex-00f067aa0ba902b7-01")])
    lines = [e for e in captured.lines() if e.get("event") in ("rpc", "decision")]
    assert [(e["event"], e.get("trace_id"), e.get("parent_span_id")) for e in lines] == [
        ("decision", TRACE_ID, PARENT), ("rpc", TRACE_ID, PARENT),
        ("decision", None, None), ("rpc", None, None)]


def test_awards_are_decimal_strings_in_the_decision_line(served, captured):  # noqa: F811
    """One type per log field: awards map currencies to decimal strings."""
    stub, _ = served
    stub.Evaluate(pb.EvaluateRequest(customer=gold_customer(), event=jfk_lhr()), timeout=5)
    decision = next(e for e in captured.lines() if e.get("event") == "decision")
    assert decision["awards"] and all(isinstance(v, str) for v in decision["awards"].values())
