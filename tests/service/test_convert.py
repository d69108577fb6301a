"""The converter's generated fast path gives exactly what the schema's own checking path gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl.decision import Benefit, Decision, Reason
from dsl.schema import Schema
from service import client
from service.convert import Converter, decision_message
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from tests.service.conftest import POLICIES

CONVERTER = Converter(Schema.for_directory(POLICIES))

dates = st.dates(min_value=datetime(1950, 1, 1).date(), max_value=datetime(2030, 12, 31).date())
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2035, 1, 1),
                     timezones=st.just(UTC))
money = st.decimals(min_value=0, max_value=100000, places=2).map(str)
counts = st.integers(min_value=0, max_value=10**7)
airports = st.sampled_from(["JFK", "LHR", "SFO", "NRT", "SYD", "CDG", "GRU"])
maybe = st.one_of


@st.composite
def customers(draw: st.DrawFn) -> pb.Customer:
    attributes = draw(st.sampled_from([None, {"home_store": "s-1"}]))
    return client.customer(
        draw(st.text("abc123-", min_size=1, max_size=8)),
        member_since=draw(dates), tier=draw(st.sampled_from([None, "MVP", "GOLD", "PLATINUM", "75K"])),
        birthday=draw(maybe(st.none(), dates)), miles=draw(counts), flights=draw(counts),
        spend=draw(maybe(st.none(), money)), visits=draw(counts), appointments=draw(counts),
        donations=draw(maybe(st.none(), money)), donation_years=draw(st.integers(0, 80)),
        attributes=attributes,
    )


@st.composite
def events(draw: st.DrawFn) -> pb.Event:
    kind = draw(st.sampled_from(["flight", "purchase", "visit", "appointment", "donation"]))
    when = draw(times)
    if draw(st.booleans()):
        when = when.replace(microsecond=0)
    if kind == "flight":
        return client.flight(
            "e", time=when, origin=draw(airports), destination=draw(airports), fare=draw(money),
            distance_miles=draw(maybe(st.none(), counts)), currency=draw(st.sampled_from(["", "USD", "EUR"])),
            cabin=draw(st.sampled_from(["", "economy", "premium_economy", "business", "first"])),
            partner=draw(st.booleans()), carrier=draw(st.sampled_from(["", "BA"])),
        )
    if kind == "purchase":
        items = draw(st.lists(st.fixed_dictionaries({
            "sku": st.just("sku-1"), "category": st.sampled_from(["coffee", "garden"]), "amount": money,
            "quantity": maybe(st.none(), st.integers(0, 20))}), max_size=3))
        return client.purchase("e", time=when, amount=draw(money), channel=draw(st.sampled_from(
            ["", "store", "online", "app"])), items=items)
    if kind == "visit":
        return client.visit("e", time=when, venue=draw(st.sampled_from(["", "v1"])),
                            party_size=draw(maybe(st.none(), st.integers(0, 12))),
                            spend=draw(maybe(st.none(), money)))
    if kind == "appointment":
        scheduled = draw(times)
        arrived = draw(maybe(st.none(), st.just(scheduled + timedelta(minutes=7))))
        return client.appointment("e", time=when, service="grooming", scheduled_at=scheduled,
                                  arrived_at=arrived)
    return client.donation("e", time=when, amount=draw(money), campaign=draw(st.sampled_from(["", "x"])),
                           recurring=draw(st.booleans()))


@settings(max_examples=300, deadline=None)
@given(customers())
def test_fast_customer_equals_the_schema_checked_customer(message):
    """For any valid customer the generated converter returns the schema's own prepared dict."""
    assert CONVERTER._fast_customer(message) == CONVERTER.check_customer(message)


@settings(max_examples=300, deadline=None)
@given(events())
def test_fast_event_equals_the_schema_checked_event(message):
    """For any valid event of every kind the generated converter returns the schema's prepared dict."""
    kind = message.WhichOneof("details")
    fast = CONVERTER._fast_events[(kind, kind)](message, getattr(message, kind), message.attributes)
    checked = CONVERTER.check_event(message)
    assert fast == checked
    assert list(fast) == list(checked)  # the same keys, in the same order


def test_prepared_shape_matches_the_documented_python_api():
    """A flight converted from protobuf equals Schema.prepare_event of the same loose mapping."""
    schema = CONVERTER.schema
    message = client.flight("e1", time="2026-03-01T09:30:00Z", origin="JFK", destination="LHR",
                            fare="420.00", cabin="business")
    expected = schema.prepare_event({"id": "e1", "kind": "flight", "time": "2026-03-01T09:30:00Z",
                                     "origin": "JFK", "destination": "LHR", "fare": "420.00",
                                     "cabin": "business"})
    assert CONVERTER.event(message) == expected
    assert expected["fare"] == Decimal("420.00") and expected["time"].tzinfo is UTC


@pytest.mark.parametrize(("origin", "expected"), [("jfk", "JFK"), (" lhr ", "LHR")])
def test_odd_but_valid_input_takes_the_checking_path(origin, expected):
    """Lower-case airport codes are not the fast path's business; the schema normalises them."""
    message = client.flight("e", time="2026-03-01T09:30:00Z", origin=origin, destination="LHR", fare="1")
    assert CONVERTER.event(message)["origin"] == expected


def test_decision_message_keeps_amounts_exact_and_params_typed():
    """Awards are decimal strings (never exponent form); benefit parameters keep their types."""
    decision = Decision(
        revision="r0123456789ab",
        awards={"miles": 1250, "credit": Decimal("1.25E+1")},
        benefits=[Benefit("late-arrival-grace", {"grace": timedelta(minutes=15)}, "p", "r"),
                  Benefit("donor-recognition", {"level": "gold"}, "p", "s")],
        tier="GOLD", tags=["a", "b"], policies=["p"], fired=[("p", "r"), ("p", "s")],
        reasons=[Reason("p", "r", "fired", "", {"miles": 1250}, 3)],
    )
    message = decision_message(decision)
    assert dict(message.awards) == {"miles": "1250", "credit": "12.5"}
    assert message.benefits[0].params["grace"].duration_value.seconds == 900
    assert message.benefits[1].params["level"].string_value == "gold"
    assert message.tier == "GOLD" and list(message.tags) == ["a", "b"]
    assert [(f.policy, f.rule) for f in message.fired] == [("p", "r"), ("p", "s")]
    assert message.reasons[0].text == "p.r: fired +1250 miles" and message.reasons[0].line == 3


@pytest.mark.parametrize("awards", [{}, {"miles": 8949}, {"miles": 300, "credit": Decimal("12.50")},
                                    {"points": 10**12}], ids=["none", "miles", "two", "large"])
def test_decision_bytes_equal_the_message_built_field_by_field(awards):
    """The template-and-appended-awards encoding parses to exactly decision_message's message."""
    decision = Decision("r0123456789ab", awards,
                        [Benefit("priority-rebooking", {}, "p", "r")], "GOLD", ["t"], ["p"], [("p", "r")])
    for _ in range(2):  # the second time from the cached template
        assert pb.Decision.FromString(CONVERTER.decision_bytes(decision)) == decision_message(decision)


def test_decimal_awards_keep_their_decimals_after_an_equal_amount():
    """Decimal("12.5") equals Decimal("12.50"): the encoding must not reuse one for the other."""
    for amount, text in ((Decimal("12.5"), "12.5"), (Decimal("12.50"), "12.50"), (12, "12")):
        decision = Decision("r0123456789ab", {"credit": amount}, [], None, [], ["p"], [("p", "r")])
        assert pb.Decision.FromString(CONVERTER.decision_bytes(decision)).awards["credit"] == text


def test_zero_is_a_value_and_unset_is_missing():
    """distance_miles set to 0 is 0; left unset it is None; the epoch instant is an instant."""
    zero = client.flight("e", time="1970-01-01T00:00:00Z", origin="JFK", destination="LHR", fare="1",
                         distance_miles=0)
    unset = client.flight("e", time="2026-01-01T00:00:00Z", origin="JFK", destination="LHR", fare="1")
    assert CONVERTER.event(zero)["distance_miles"] == 0
    assert CONVERTER.event(zero)["time"] == datetime(1970, 1, 1, tzinfo=UTC)
    assert CONVERTER.event(unset)["distance_miles"] is None
