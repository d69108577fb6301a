"""Bad requests: INVALID_ARGUMENT with the request field path and the reason, never INTERNAL."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from service.client import customer, field_violations, purchase, visit
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from tests.service.conftest import gold_customer, jfk_lhr


def _no_customer_id() -> pb.EvaluateRequest:
    c = gold_customer()
    c.id = ""
    return pb.EvaluateRequest(customer=c, event=jfk_lhr())


def _unknown_kind() -> pb.EvaluateRequest:
    e = pb.Event(id="e", kind="flite", time=jfk_lhr().time)
    return pb.EvaluateRequest(customer=gold_customer(), event=e)


def _kind_mismatch() -> pb.EvaluateRequest:
    e = jfk_lhr()
    e.kind = "visit"
    return pb.EvaluateRequest(customer=gold_customer(), event=e)


def _negative_distance() -> pb.EvaluateRequest:
    return pb.EvaluateRequest(customer=gold_customer(), event=jfk_lhr(distance_miles=-5))


def _impossible_date() -> pb.EvaluateRequest:
    return pb.EvaluateRequest(customer=customer("c", member_since="2026-02-30"), event=jfk_lhr())


def _unknown_currency() -> pb.EvaluateRequest:
    return pb.EvaluateRequest(customer=gold_customer(), event=jfk_lhr(currency="XYZ"))


def _unknown_airport() -> pb.EvaluateRequest:
    return pb.EvaluateRequest(customer=gold_customer(), event=jfk_lhr(destination="QQQ"))


def _unknown_attribute() -> pb.EvaluateRequest:
    c = gold_customer()
    c.attributes["home_stor"].string_value = "s-1"
    return pb.EvaluateRequest(customer=c, event=jfk_lhr())


def _attribute_of_wrong_type() -> pb.EvaluateRequest:
    c = gold_customer()
    c.attributes["home_store"].int_value = 12
    return pb.EvaluateRequest(customer=c, event=jfk_lhr())


def _bad_tier() -> pb.EvaluateRequest:
    return pb.EvaluateRequest(customer=customer("c", member_since="2012-01-01", tier="gold"),
                              event=jfk_lhr())


def _float_like_fare() -> pb.EvaluateRequest:
    return pb.EvaluateRequest(customer=gold_customer(), event=jfk_lhr(fare="4.2e"))


def _no_time() -> pb.EvaluateRequest:
    e = jfk_lhr()
    e.ClearField("time")
    return pb.EvaluateRequest(customer=gold_customer(), event=e)


def _no_event() -> pb.EvaluateRequest:
    return pb.EvaluateRequest(customer=gold_customer())


def _negative_counter() -> pb.EvaluateRequest:
    c = gold_customer()
    c.lifetime.miles = -1
    return pb.EvaluateRequest(customer=c, event=jfk_lhr())


def _bad_item() -> pb.EvaluateRequest:
    e = purchase("p", time="2026-03-01T10:00:00Z", amount="10.00",
                 items=[{"sku": "a", "category": "coffee", "amount": "1.00", "quantity": -1}])
    return pb.EvaluateRequest(customer=gold_customer(), event=e)


def _no_party() -> pb.EvaluateRequest:
    return pb.EvaluateRequest(customer=gold_customer(),
                              event=visit("v", time="2026-03-01T10:00:00Z", party_size=0))


def _unknown_purchase_currency() -> pb.EvaluateRequest:
    e = purchase("p", time="2026-03-01T10:00:00Z", amount="10.00", currency="ABC")
    return pb.EvaluateRequest(customer=gold_customer(), event=e)


def _negative_spend() -> pb.EvaluateRequest:
    c = gold_customer()
    c.lifetime.spend = "-0.01"
    return pb.EvaluateRequest(customer=c, event=jfk_lhr())


def _stay_past_the_max() -> pb.EvaluateRequest:
    # policies/schema.toml: nights = { type = "int", min = 1, max = 365 }
    e = pb.Event(id="s", kind="stay", time=jfk_lhr().time)
    e.attributes["nights"].int_value = 366
    return pb.EvaluateRequest(customer=gold_customer(), event=e)


CASES: list[tuple[str, Callable[[], pb.EvaluateRequest], list[tuple[str, str]]]] = [
    ("missing customer id", _no_customer_id, [("customer.id", "is required")]),
    ("unknown event kind", _unknown_kind, [
        ("event.kind", 'unknown event kind "flite" (known: appointment, donation, flight, fuel, '
                       "order, purchase, stay, visit); did you mean `flight`?")]),
    ("kind does not match the details", _kind_mismatch, [
        ("event.kind", 'is "visit" but the event carries flight details')]),
    ("negative distance", _negative_distance, [
        ("event.flight.distance_miles", "must not be negative, not -5")]),
    ("a date that cannot exist", _impossible_date, [
        ("customer.member_since", '"2026-02-30" is not a date that exists')]),
    ("unknown currency", _unknown_currency, [
        ("event.flight.currency", '"XYZ" is not an ISO 4217 currency code (such as USD or EUR)')]),
    ("unknown airport code", _unknown_airport, [
        ("event.flight.destination", 'unknown airport code "QQQ"')]),
    ("unknown attribute", _unknown_attribute, [
        ("customer.attributes.home_stor", "is not a field in the schema; did you mean `home_store`?")]),
    ("attribute of the wrong type", _attribute_of_wrong_type, [
        ("customer.attributes.home_store", "expects a string value (string_value), not int_value")]),
    ("tier not in the schema", _bad_tier, [
        ("customer.tier", '"gold" is not a tier (one of: MVP, GOLD, PLATINUM, 75K); did you mean `GOLD`?')]),
    ("fare that is not a decimal", _float_like_fare, [
        ("event.flight.fare", '"4.2e" is not a decimal number (write ASCII digits with an optional '
                              'minus sign and point, such as "12.50")')]),
    ("event without time", _no_time, [("event.time", "is required")]),
    ("request without event", _no_event, [("event", "is required")]),
    ("negative lifetime counter", _negative_counter, [
        ("customer.lifetime.miles", "must not be negative, not -1")]),
    ("item quantity below its minimum", _bad_item, [
        ("event.purchase.items[0].quantity", "must be at least 1, not -1")]),
    ("party size below its minimum", _no_party, [("event.visit.party_size", "must be at least 1, not 0")]),
    ("unknown purchase currency", _unknown_purchase_currency, [
        ("event.purchase.currency", '"ABC" is not an ISO 4217 currency code (such as USD or EUR)')]),
    ("negative spend", _negative_spend, [("customer.lifetime.spend", "must not be negative, not -0.01")]),
    ("a number above the schema's max", _stay_past_the_max, [
        ("event.attributes.nights", "must be at most 365, not 366")]),
]


@pytest.mark.parametrize(("make", "expected"), [(m, e) for _, m, e in CASES], ids=[c[0] for c in CASES])
def test_bad_request_is_invalid_argument_with_field_and_reason(stub, make, expected):
    """Each caller mistake is INVALID_ARGUMENT naming the request field and the reason."""
    with pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(make(), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(info.value) == expected
    assert expected[0][0] in info.value.details()


def test_several_problems_are_reported_together(stub):
    """Every bad field of both customer and event is listed, not just the first."""
    c = customer("", member_since="2026-13-01")
    e = jfk_lhr(origin="XXX", currency="usdollar", fare="abc")
    with pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(pb.EvaluateRequest(customer=c, event=e), timeout=5)
    fields = [f for f, _ in field_violations(info.value)]
    assert fields == ["customer.id", "customer.member_since", "event.flight.origin",
                      "event.flight.fare", "event.flight.currency"]


def test_failing_policy_is_failed_precondition_with_its_location(tmp_path):
    """A policy that fails at run time (division by zero) is FAILED_PRECONDITION naming file and line."""
    from service.server import create_server
    from tests.service.conftest import POLICIES, request

    (tmp_path / "schema.toml").write_text((POLICIES / "schema.toml").read_text())
    (tmp_path / "divide.policy").write_text(
        "policy divide_by_flights\n"
        "  version 1\n"
        "  on flight\n"
        '  "Fails for a customer with no flights."\n'
        "\n"
        "  rule per_flight: award 1000 / customer.lifetime.flights points\n"
        "  round points down\n"
    )
    server, port = create_server("127.0.0.1:0", policies=tmp_path)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc

            stub = pb_grpc.LoyaltyRulesStub(channel)
            assert stub.Evaluate(request(), timeout=5).decision.awards["points"] == "25"
            req = request()
            req.customer.lifetime.flights = 0
            with pytest.raises(grpc.RpcError) as info:
                stub.Evaluate(req, timeout=5)
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "divide.policy:6" in info.value.details()
            assert "divide_by_flights" in info.value.details()
            batch = stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[
                pb.BatchItem(correlation_id="0", customer=req.customer, event=req.event)]), timeout=5)
            assert batch.results[0].error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    finally:
        server.stop(0).wait(5)


def test_a_batch_past_the_request_bound_fails_on_items_before_any_item_is_decoded(stub):
    """Eleven purchases of 10,000 lines each (each list within its own bound) are 110,000 list
    elements in one request: the batch fails on `items`, naming the bound."""
    lines = [pb.Item(sku="s", category="c", amount="1")] * 10_000
    item = pb.BatchItem(customer=gold_customer(), event=pb.Event(
        id="e", time=jfk_lhr().time, purchase=pb.Purchase(amount="1", items=lines)))
    with pytest.raises(grpc.RpcError) as info:
        stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[item] * 11), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(info.value) == [
        ("items", "the batch carries 110,000 purchase items in all; "
                  "a request carries at most 100,000 list elements")]
    ten = stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[item] * 10), timeout=10)
    assert ten.failed == 0  # exactly at the bound: every item decided


def test_an_extension_of_a_fixed_message_reaches_the_policy_over_grpc(tmp_path):
    """A counter declared under [customer.lifetime] travels in Lifetime.attributes, so a rule
    that reads it fires over gRPC as it does in `loyalty test` (it was always its default)."""
    from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
    from service.server import create_server
    from tests.service.conftest import POLICIES

    (tmp_path / "schema.toml").write_text((POLICIES / "schema.toml").read_text()
                                          + "\n[customer.lifetime]\nregular_visits = { type = \"int\", "
                                            "default = 0, min = 0 }\n")
    (tmp_path / "regulars.policy").write_text(
        "policy fifth_visit\n"
        "  version 1\n"
        "  on visit\n"
        '  "Recognise a regular on the fifth visit."\n'
        "\n"
        "  rule fifth when customer.lifetime.regular_visits == 4: award 50 points\n")
    server, port = create_server("127.0.0.1:0", policies=tmp_path)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.LoyaltyRulesStub(channel)
            c = gold_customer()
            c.lifetime.attributes["regular_visits"].int_value = 4
            e = pb.Event(id="e", time=jfk_lhr().time, visit=pb.Visit(venue="v"))
            decision = stub.Evaluate(pb.EvaluateRequest(customer=c, event=e), timeout=5).decision
            assert dict(decision.awards) == {"points": "50"}
            c.lifetime.attributes["regular_visits"].int_value = 3
            decision = stub.Evaluate(pb.EvaluateRequest(customer=c, event=e), timeout=5).decision
            assert dict(decision.awards) == {}
            c.lifetime.attributes["regular_visits"].string_value = "4"
            with pytest.raises(grpc.RpcError) as info:
                stub.Evaluate(pb.EvaluateRequest(customer=c, event=e), timeout=5)
            assert field_violations(info.value) == [
                ("customer.lifetime.attributes.regular_visits",
                 "expects an int value (int_value), not string_value")]
    finally:
        server.stop(0).wait(5)


def test_a_correlation_id_past_128_characters_fails_its_item_alone_and_is_not_echoed(stub):
    """Correlation ids are ids: at most 128 characters. A longer one fails that batch item (or
    stream message) with INVALID_ARGUMENT on correlation_id; the rest are decided."""
    from google.rpc import error_details_pb2

    ok = pb.BatchItem(correlation_id="c" * 128, customer=gold_customer(), event=jfk_lhr())
    long = pb.BatchItem(correlation_id="c" * 129, customer=gold_customer(), event=jfk_lhr())
    batch = stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[ok, long, ok]), timeout=5)
    assert batch.failed == 1
    assert [r.WhichOneof("outcome") for r in batch.results] == ["decision", "error", "decision"]
    assert [r.correlation_id for r in batch.results] == ["c" * 128, "", "c" * 128]
    error = batch.results[1].error
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    bad = error_details_pb2.BadRequest()
    error.details[0].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("correlation_id", "is longer than 128 characters")]
    stream = list(stub.EvaluateStream(iter([
        pb.EvaluateStreamRequest(correlation_id=item.correlation_id, customer=item.customer,
                                 event=item.event) for item in (long, ok)]), timeout=5))
    assert [r.WhichOneof("outcome") for r in stream] == ["error", "decision"]
    assert stream[0].correlation_id == "" and stream[1].correlation_id == "c" * 128
