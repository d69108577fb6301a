"""Every RPC against a real in-process server on 127.0.0.1 through a real channel."""

from __future__ import annotations

import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from service.client import field_violations, visit
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from tests.service.conftest import gold_customer, jfk_lhr, request


def test_evaluate_returns_the_airline_decision_with_its_revision(stub):
    """A GOLD decade member flying JFK-LHR in business earns distance, cabin, elite and tenure miles."""
    response = stub.Evaluate(request(), timeout=5)
    d = response.decision
    assert d.revision.startswith("r") and len(d.revision) == 13
    assert d.awards["miles"] == "8949"
    assert [(f.policy, f.rule) for f in d.fired] == [
        ("earn_miles_by_distance", "flown_miles"),
        ("earn_miles_by_distance", "business_cabin"),
        ("earn_miles_by_distance", "elite"),
        ("earn_miles_by_distance", "loyal_for_a_decade"),
    ]
    assert list(d.tags) == ["decade-member"]
    assert [b.name for b in d.benefits] == ["priority-rebooking"]
    assert list(d.policies) == ["earn_miles_by_distance"]
    assert not d.reasons


def test_explain_adds_reasons_that_sum_up(stub):
    """With explain, every fired rule has a reason line, with the policy file line and readable text."""
    d = stub.Evaluate(request(explain=True), timeout=5).decision
    fired = [r for r in d.reasons if r.kind == "fired"]
    assert {r.rule for r in fired} == {f.rule for f in d.fired}
    # A rule's reason names policy.rule; the policy's own (its total rounded once) the policy.
    assert all(r.line > 0 and r.text.startswith("earn_miles_by_distance." if r.rule
                                                 else "earn_miles_by_distance: ")
               for r in d.reasons)
    assert any(r.kind == "rounded" and not r.rule for r in d.reasons)
    assert any(r.kind == "not_fired" and r.rule == "first_cabin" for r in d.reasons)


def test_only_policies_restricts_evaluation(stub):
    """only_policies naming a loaded policy that does not apply to the event gives an empty
    decision with the revision."""
    d = stub.Evaluate(request(only_policies=["spring_garden_points"]), timeout=5).decision
    assert not d.awards and not d.fired and d.revision


def test_only_policies_naming_a_policy_not_loaded_is_invalid_argument(stub):
    """An unknown name in only_policies is refused, naming its place and the closest policy,
    instead of limiting the decision to nothing."""
    names = ["earn_miles_by_distance", "earn_mile_by_distance", "x"]
    with pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(request(only_policies=names), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(info.value) == [
        ("only_policies[1]", 'no policy is named "earn_mile_by_distance"; '
                             "did you mean `earn_miles_by_distance`?"),
        ("only_policies[2]", 'no policy is named "x"'),
    ]


def test_only_policies_refusal_is_bounded(stub):
    """Thousands of unknown long names: ten are reported, each cut to 64 characters."""
    names = [f"{i:05d}" + "y" * 500 for i in range(2000)]
    with pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(request(only_policies=names), timeout=5)
    violations = field_violations(info.value)
    assert len(violations) == 11
    assert violations[0] == ("only_policies[0]", 'no policy is named "00000' + "y" * 59 + '"')
    assert violations[-1] == ("only_policies", "1990 more names are not policies")


def test_benefit_parameters_are_typed(stub):
    """A duration parameter travels as a google.protobuf.Duration."""
    from service.client import appointment, customer

    c = customer("c-2", member_since="2015-01-01", appointments=60)
    e = appointment("e-2", time="2026-04-01T10:10:00Z", service="grooming",
                    scheduled_at="2026-04-01T10:00:00Z", arrived_at="2026-04-01T10:10:00Z")
    d = stub.Evaluate(pb.EvaluateRequest(customer=c, event=e), timeout=5).decision
    grace = {b.name: b for b in d.benefits}["late-arrival-grace"]
    assert grace.params["grace"].WhichOneof("kind") == "duration_value"
    assert grace.params["grace"].duration_value.seconds == 15 * 60
    assert "late-within-grace" in d.tags


def test_extension_attribute_is_accepted(stub):
    """A customer attribute the policy directory's schema declares (home_store) is accepted."""
    c = gold_customer()
    c.attributes["home_store"].string_value = "store-12"
    assert stub.Evaluate(pb.EvaluateRequest(customer=c, event=jfk_lhr()), timeout=5).decision.revision


def test_kind_may_be_left_to_the_details(stub):
    """An event with kind left empty takes the kind of its details."""
    e = jfk_lhr()
    e.kind = ""
    assert stub.Evaluate(pb.EvaluateRequest(customer=gold_customer(), event=e), timeout=5).decision.fired


def test_batch_gives_each_item_its_own_result(stub):
    """One bad item in a batch fails alone; the others get decisions, in request order."""
    bad = jfk_lhr(origin="XXX")
    items = [
        pb.BatchItem(correlation_id="a", customer=gold_customer(), event=jfk_lhr()),
        pb.BatchItem(correlation_id="b", customer=gold_customer(), event=bad),
        pb.BatchItem(correlation_id="c", customer=gold_customer("c-3"), event=jfk_lhr("e-3")),
    ]
    response = stub.EvaluateBatch(pb.EvaluateBatchRequest(items=items), timeout=5)
    assert [r.correlation_id for r in response.results] == ["a", "b", "c"]
    assert [r.WhichOneof("outcome") for r in response.results] == ["decision", "error", "decision"]
    assert response.failed == 1
    error = response.results[1].error
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert field_violations(error) == [("event.flight.origin", 'unknown airport code "XXX"')]
    assert response.revision == response.results[0].decision.revision


def test_batch_item_without_event_is_its_own_error(stub):
    """A batch item with no event says so, at the field path 'event'."""
    items = [pb.BatchItem(correlation_id="x", customer=gold_customer())]
    response = stub.EvaluateBatch(pb.EvaluateBatchRequest(items=items), timeout=5)
    assert field_violations(response.results[0].error) == [("event", "is required")]


def test_batch_larger_than_the_limit_is_refused(stub):
    """More items than --max-batch is INVALID_ARGUMENT on 'items', with the limit in the reason."""
    item = pb.BatchItem(customer=gold_customer(), event=jfk_lhr())
    with pytest.raises(grpc.RpcError) as info:
        stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[item] * 2001), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(info.value) == [("items", "a batch holds at most 2000 items, not 2001")]


def test_message_larger_than_the_limit_is_resource_exhausted(stub):
    """A request over --max-message-bytes is refused by gRPC with RESOURCE_EXHAUSTED."""
    c = gold_customer()
    c.attributes["home_store"].string_value = "x" * (5 * 1024 * 1024)
    with pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(pb.EvaluateRequest(customer=c, event=jfk_lhr()), timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_stream_echoes_correlation_ids_and_survives_a_bad_message(stub):
    """Each stream response carries its request's correlation id; a bad message gets an error only."""
    messages = [
        pb.EvaluateStreamRequest(correlation_id="1", customer=gold_customer(), event=jfk_lhr()),
        pb.EvaluateStreamRequest(correlation_id="2", customer=gold_customer(),
                                 event=jfk_lhr(fare="-1")),
        pb.EvaluateStreamRequest(correlation_id="3", customer=gold_customer(), event=jfk_lhr(),
                                 explain=True),
    ]
    responses = list(stub.EvaluateStream(iter(messages), timeout=10))
    assert [r.correlation_id for r in responses] == ["1", "2", "3"]
    assert [r.WhichOneof("outcome") for r in responses] == ["decision", "error", "decision"]
    assert field_violations(responses[1].error) == [("event.flight.fare", "must not be negative, not -1")]
    assert responses[2].decision.reasons


def test_list_policies_names_every_policy_and_the_revision(stub):
    """ListPolicies lists name, version, window, kinds and digest of each policy, and the status."""
    response = stub.ListPolicies(pb.ListPoliciesRequest(), timeout=5)
    by_name = {p.name: p for p in response.policies}
    airline = by_name["earn_miles_by_distance"]
    assert airline.version == 4
    assert airline.effective_from == "2026-01-01" and airline.effective_until == ""
    assert list(airline.kinds) == ["flight"]
    assert len(airline.digest) == 16
    assert "flown_miles" in airline.rules
    assert response.revision == stub.Evaluate(request(), timeout=5).decision.revision
    assert response.status.reloads_succeeded >= 1 and not response.status.last_attempt_failed
    assert response.status.loaded_at.seconds > 0
    assert "/" in response.status.instance


def test_health_reports_serving(inproc):
    """Standard health checking answers SERVING for the server and for loyalty.v1.LoyaltyRules."""
    health = health_pb2_grpc.HealthStub(inproc[1])
    for service in ("", "loyalty.v1.LoyaltyRules"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_service(inproc):
    """Server reflection lists loyalty.v1.LoyaltyRules, so grpcurl works without the protos."""
    reflection = reflection_pb2_grpc.ServerReflectionStub(inproc[1])
    req = reflection_pb2.ServerReflectionRequest(list_services="")
    reply = next(iter(reflection.ServerReflectionInfo(iter([req]), timeout=5)))
    names = {s.name for s in reply.list_services_response.service}
    assert {"loyalty.v1.LoyaltyRules", "grpc.health.v1.Health"} <= names


def test_reflection_describes_the_state_rpcs(inproc):
    """The service's file, as reflection serves it, declares Apply, ApplyBatch and Reverse."""
    from google.protobuf import descriptor_pb2

    reflection = reflection_pb2_grpc.ServerReflectionStub(inproc[1])
    req = reflection_pb2.ServerReflectionRequest(file_containing_symbol="loyalty.v1.LoyaltyRules")
    reply = next(iter(reflection.ServerReflectionInfo(iter([req]), timeout=5)))
    files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
             for raw in reply.file_descriptor_response.file_descriptor_proto]
    methods = {m.name: (m.input_type, m.output_type) for f in files for s in f.service for m in s.method}
    assert methods["Apply"] == (".loyalty.v1.ApplyRequest", ".loyalty.v1.ApplyResponse")
    assert methods["ApplyBatch"] == (".loyalty.v1.ApplyBatchRequest", ".loyalty.v1.ApplyBatchResponse")
    assert methods["Reverse"] == (".loyalty.v1.ReverseRequest", ".loyalty.v1.ReverseResponse")


def test_deadline_is_honoured_for_a_large_batch(stub):
    """A batch that cannot finish within its deadline ends DEADLINE_EXCEEDED, promptly."""
    item = pb.BatchItem(customer=gold_customer(), event=jfk_lhr())
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[item] * 2000, explain=True), timeout=0.005)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2
    assert stub.Evaluate(request(), timeout=5).decision.fired  # and the server is fine


def test_rich_status_details_are_google_rpc_bad_request(stub):
    """The status details are a google.rpc.BadRequest a client can unpack without our client module."""
    event = visit("v", time="2026-01-01T00:00:00Z", party_size=-2)
    with pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(pb.EvaluateRequest(customer=gold_customer(), event=event), timeout=5)
    status = rpc_status.from_call(info.value)
    assert status is not None and status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("event.visit.party_size", "must be at least 1, not -2")
    ]


def test_a_bug_fails_only_its_own_batch_item():
    """An unexpected exception while evaluating one item makes that item INTERNAL, not the batch."""
    import dsl
    from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
    from service.server import create_server
    from service.store import PolicyStore
    from tests.service.conftest import POLICIES

    class Faulty:
        def __init__(self, inner):
            self.inner, self.schema, self.revision = inner, inner.schema, inner.revision
            self.policies = inner.policies
            self.reads_state = False  # evaluates as the pure call does, no stored counters

        def evaluate(self, customer, event, *args):
            if customer["id"] == "boom":
                raise RuntimeError("a bug")
            return self.inner.evaluate(customer, event, *args)

    store = PolicyStore(POLICIES, loader=lambda path: Faulty(dsl.load_directory(path)))
    assert store.load()
    server, port = create_server("127.0.0.1:0", store=store)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.LoyaltyRulesStub(channel)
            items = [pb.BatchItem(correlation_id=c, customer=gold_customer(c), event=jfk_lhr())
                     for c in ("a", "boom", "c")]
            response = stub.EvaluateBatch(pb.EvaluateBatchRequest(items=items), timeout=5)
            assert [r.WhichOneof("outcome") for r in response.results] == ["decision", "error", "decision"]
            assert response.results[1].error.code == grpc.StatusCode.INTERNAL.value[0]
            with pytest.raises(grpc.RpcError) as info:
                stub.Evaluate(pb.EvaluateRequest(customer=gold_customer("boom"), event=jfk_lhr()), timeout=5)
            assert info.value.code() == grpc.StatusCode.INTERNAL
            assert "a bug" not in info.value.details()  # no internals leak to the caller
    finally:
        server.stop(0).wait(5)


def test_python_client_covers_every_rpc(inproc):
    """The client module's helpers reach every RPC and read errors from batch items."""
    from service.client import LoyaltyClient, customer, donation, purchase

    port = inproc[2]
    with LoyaltyClient(f"127.0.0.1:{port}", timeout=5) as client:
        assert client.healthy()
        member = customer("c-9", member_since="2010-01-01", donations="5000", donation_years=12)
        gift = donation("d-1", time="2026-12-01T12:00:00Z", amount="250.00", recurring=True)
        assert client.evaluate(member, gift).policies
        shop = purchase("p-1", time="2026-05-01T12:00:00Z", amount="10.00",
                        items=[{"sku": "s", "category": "coffee", "amount": "10.00"}])
        batch = client.evaluate_batch([(member, shop), (member, jfk_lhr(origin="XXX"))])
        assert [r.correlation_id for r in batch.results] == ["0", "1"]
        assert field_violations(batch.results[1].error) == [
            ("event.flight.origin", 'unknown airport code "XXX"')]
        replies = list(client.stream(pb.EvaluateStreamRequest(correlation_id=str(i), customer=member,
                                                              event=gift) for i in range(3)))
        assert [r.correlation_id for r in replies] == ["0", "1", "2"]
        assert client.list_policies().revision == replies[0].decision.revision


def test_list_policies_returns_award_bounds(stub):
    """Each policy's award bounds travel in PolicyInfo.award_bounds: the most, or why unbounded."""
    response = stub.ListPolicies(pb.ListPoliciesRequest(), timeout=5)
    bounds = {p.name: [(b.currency, b.max, b.unbounded_reason[:25]) for b in p.award_bounds]
              for p in response.policies}
    assert bounds["earn_miles_by_distance"] == [("miles", "25000", "")]
    assert bounds["giving_season_credit"] == [("credit", "25.00", "")]
    assert bounds["know_our_regulars"] == [("points", "", "rule regular at line 18: ")]
    assert bounds["donor_recognition"] == []
