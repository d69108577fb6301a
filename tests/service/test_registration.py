"""The server registers every RPC of the service descriptor, or refuses to start."""

from __future__ import annotations

import io
from collections.abc import Iterator

import grpc
import pytest

from service import logs
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from service.server import SERVICE, bytes_variant_name, create_server, method_handlers
from service.servicer import LoyaltyRulesServicer
from service.store import PolicyStore
from service.testing import FIXED_DECISION, TrivialServicer
from tests.service.conftest import POLICIES

METHODS = [method.name for method in SERVICE.methods]


@pytest.mark.parametrize(("method", "expected"), [
    ("Evaluate", "evaluate_bytes"), ("EvaluateBatch", "evaluate_batch_bytes"),
    ("EvaluateStream", "evaluate_stream_bytes"), ("ListPolicies", "list_policies_bytes"),
    ("Apply", "apply_bytes"), ("ApplyBatch", "apply_batch_bytes"), ("Reverse", "reverse_bytes"),
    ("GetBalance", "get_balance_bytes"),
])
def test_bytes_variant_names(method, expected):
    """A method's serialised face is its name in snake_case plus ``_bytes``."""
    assert bytes_variant_name(method) == expected


def test_the_descriptor_lists_the_ten_rpcs():
    """The handler table is built from these; a new RPC in loyalty.proto shows up here."""
    assert METHODS == ["Evaluate", "EvaluateBatch", "EvaluateStream", "ListPolicies", "Apply",
                       "ApplyBatch", "Reverse", "Redeem", "GetBalance", "GetStatement"]


def test_the_real_servicer_answers_with_its_bytes_variants():
    """Every method gets a handler of its streaming kind; the evaluating ones use the bytes variants."""
    store = PolicyStore(POLICIES)
    assert store.load()
    servicer = LoyaltyRulesServicer(store)
    handlers = method_handlers(servicer)
    assert list(handlers) == METHODS
    # Each behind the check that refuses a request that does not parse (INVALID_ARGUMENT).
    assert handlers["Evaluate"].unary_unary.__wrapped__ == servicer.evaluate_bytes
    assert handlers["EvaluateBatch"].unary_unary.__wrapped__ == servicer.evaluate_batch_bytes
    assert handlers["EvaluateStream"].stream_stream.__wrapped__ == servicer.evaluate_stream_bytes
    assert handlers["ListPolicies"].unary_unary.__wrapped__ == servicer.ListPolicies
    assert handlers["Apply"].unary_unary.__wrapped__ == servicer.apply_bytes
    assert handlers["ApplyBatch"].unary_unary.__wrapped__ == servicer.apply_batch_bytes
    assert handlers["Reverse"].unary_unary.__wrapped__ == servicer.reverse_bytes
    assert handlers["Redeem"].unary_unary.__wrapped__ == servicer.Redeem
    assert handlers["GetBalance"].unary_unary.__wrapped__ == servicer.GetBalance
    assert handlers["GetStatement"].unary_unary.__wrapped__ == servicer.GetStatement
    for method in SERVICE.methods:
        handler = handlers[method.name]
        assert (handler.request_streaming, handler.response_streaming) == (
            method.client_streaming, method.server_streaming)
        assert handler.request_deserializer.message_class is getattr(pb, method.input_type.name)


@pytest.mark.parametrize("missing", METHODS)
def test_a_servicer_missing_a_method_fails_at_startup(missing):
    """A servicer that leaves one RPC to the generated UNIMPLEMENTED stub makes create_server
    raise, naming the method, instead of serving a silent UNIMPLEMENTED."""
    incomplete = type("Incomplete", (TrivialServicer,),
                      {missing: getattr(pb_grpc.LoyaltyRulesServicer, missing)})
    with pytest.raises(TypeError) as raised:
        create_server("127.0.0.1:0", servicer=incomplete())
    assert str(raised.value) == (
        f"Incomplete does not implement loyalty.v1.LoyaltyRules/{missing}: "
        f"define {missing} (or {bytes_variant_name(missing)})")


def test_every_missing_method_is_named():
    """The bare generated servicer is refused with all ten methods in one message."""
    with pytest.raises(TypeError, match=r"Evaluate.*EvaluateBatch.*EvaluateStream.*ListPolicies.*Apply"
                                        r".*ApplyBatch.*Reverse.*Redeem.*GetBalance.*GetStatement"):
        method_handlers(pb_grpc.LoyaltyRulesServicer())


def test_a_bytes_variant_alone_implements_a_method():
    """A servicer may answer a method with its bytes variant only."""

    class BytesOnly(TrivialServicer):
        ListPolicies = pb_grpc.LoyaltyRulesServicer.ListPolicies

        def list_policies_bytes(self, request: pb.ListPoliciesRequest, context: object) -> bytes:
            """No policies, serialised."""
            return pb.ListPoliciesResponse(revision="r-bytes").SerializeToString()

    assert method_handlers(BytesOnly())["ListPolicies"].unary_unary.__name__ == "list_policies_bytes"


@pytest.fixture(scope="module")
def trivial() -> Iterator[pb_grpc.LoyaltyRulesStub]:
    """The benchmarks' trivial servicer, served by create_server as the benchmarks serve it."""
    logs.configure("info", "json", stream=io.StringIO())
    server, port = create_server("127.0.0.1:0", servicer=TrivialServicer())
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.LoyaltyRulesStub(channel)
    finally:
        channel.close()
        server.stop(0).wait(5)


def test_the_trivial_servicer_answers_all_four_rpcs(trivial):
    """Registered from the descriptor, the trivial servicer (message faces only) answers every RPC."""
    assert trivial.Evaluate(pb.EvaluateRequest(), timeout=10).decision == FIXED_DECISION
    batch = trivial.EvaluateBatch(pb.EvaluateBatchRequest(items=[pb.BatchItem(correlation_id="a")]),
                                  timeout=10)
    assert [(r.correlation_id, r.decision) for r in batch.results] == [("a", FIXED_DECISION)]
    stream = trivial.EvaluateStream(iter([pb.EvaluateStreamRequest(correlation_id="s")]), timeout=10)
    assert [r.correlation_id for r in stream] == ["s"]
    assert trivial.ListPolicies(pb.ListPoliciesRequest(), timeout=10).revision == FIXED_DECISION.revision
