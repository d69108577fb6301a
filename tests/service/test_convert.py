"""The converter's generated fast path gives exactly what the schema's own checking path gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl.errors import InputError
from dsl.input.scalars import Slow as _Slow
from dsl.schema.schema import BASE_SCHEMA_PATH, Schema
from service import client
from service.convert import Converter
from service.errors import InvalidArgument
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from tests.dsl.input.reference import prepare_customer, prepare_event
from tests.service.conftest import POLICIES

CONVERTER = Converter(Schema.for_directory(POLICIES))
SCHEMA = CONVERTER.schema

dates = st.dates(min_value=datetime(1950, 1, 1).date(), max_value=datetime(2030, 12, 31).date())
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2035, 1, 1),
                     timezones=st.just(UTC))
#: Mostly valid amounts, sometimes negative (the schema's ``min = 0``), once in a while -0.
money = st.one_of(st.decimals(min_value=0, max_value=100000, places=2),
                  st.decimals(min_value=-1000, max_value=0, places=2)).map(str)
#: Counters: mostly valid, sometimes negative.
counts = st.one_of(st.integers(min_value=0, max_value=10**7), st.integers(min_value=-3, max_value=1))
#: Currency codes: valid, odd but valid (the schema upper-cases), and not ISO 4217 at all.
currencies = st.sampled_from(["", "USD", "EUR", "JPY", "usd", " eur ", "XYZ", "ABC", "XTS", "US"])
ODD_BUT_VALID = ("usd", " eur ")
airports = st.sampled_from(["JFK", "LHR", "SFO", "NRT", "SYD", "CDG", "GRU"])
maybe = st.one_of


@st.composite
def customers(draw: st.DrawFn) -> dict[str, Any]:
    """A customer as loose values (what the builders in service.client take)."""
    return {
        "id": draw(st.text("abc123-", min_size=1, max_size=8)),
        "member_since": draw(dates),
        "tier": draw(st.sampled_from([None, "MVP", "GOLD", "PLATINUM", "75K", "gold"])),
        "birthday": draw(maybe(st.none(), dates)),
        "miles": draw(counts), "flights": draw(counts), "spend": draw(maybe(st.none(), money)),
        "visits": draw(counts), "appointments": draw(counts),
        "donations": draw(maybe(st.none(), money)), "donation_years": draw(st.integers(-2, 80)),
        "attributes": draw(st.sampled_from([None, {"home_store": "s-1"}])),
    }


@st.composite
def events(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(kind, the event as loose keyword arguments for that kind's builder in service.client)."""
    kind = draw(st.sampled_from(["flight", "purchase", "visit", "appointment", "donation"]))
    when = draw(times)
    if draw(st.booleans()):
        when = when.replace(microsecond=0)
    common = {"time": when}
    if kind == "flight":
        return kind, common | {
            "origin": draw(airports), "destination": draw(airports), "fare": draw(money),
            "distance_miles": draw(maybe(st.none(), counts)), "currency": draw(currencies),
            "cabin": draw(st.sampled_from(["", "economy", "premium_economy", "business", "first"])),
            "partner": draw(st.booleans()), "carrier": draw(st.sampled_from(["", "BA"])),
        }
    if kind == "purchase":
        items = draw(st.lists(st.fixed_dictionaries({
            "sku": st.just("sku-1"), "category": st.sampled_from(["coffee", "garden"]), "amount": money,
            "quantity": maybe(st.none(), st.integers(-2, 20))}), max_size=3))
        return kind, common | {"amount": draw(money), "currency": draw(currencies),
                               "channel": draw(st.sampled_from(["", "store", "online", "app"])),
                               "items": items}
    if kind == "visit":
        return kind, common | {"venue": draw(st.sampled_from(["", "v1"])),
                               "party_size": draw(maybe(st.none(), st.integers(-2, 12))),
                               "spend": draw(maybe(st.none(), money))}
    if kind == "appointment":
        scheduled = draw(times)
        arrived = draw(maybe(st.none(), st.just(scheduled + timedelta(minutes=7))))
        return kind, common | {"service": "grooming", "scheduled_at": scheduled, "arrived_at": arrived}
    return kind, common | {"amount": draw(money), "currency": draw(currencies),
                           "campaign": draw(st.sampled_from(["", "x"])), "recurring": draw(st.booleans())}


def _customer_message(raw: dict[str, Any]) -> pb.Customer:
    return client.customer(**raw)


def _event_message(kind: str, raw: dict[str, Any]) -> pb.Event:
    return getattr(client, kind)("e", **raw)


def _loose(raw: dict[str, Any]) -> dict[str, Any]:
    """What a backend would send as JSON: empty strings and Nones left out (not given)."""
    return {k: v for k, v in raw.items() if v is not None and v != ""}


def _customer_loose(raw: dict[str, Any]) -> dict[str, Any]:
    lifetime = ("miles", "flights", "spend", "visits", "appointments", "donations", "donation_years")
    out = _loose({k: v for k, v in raw.items() if k not in lifetime and k != "attributes"})
    out["lifetime"] = _loose({k: raw[k] for k in lifetime})
    out.update(raw["attributes"] or {})
    return out


def _event_loose(kind: str, raw: dict[str, Any]) -> dict[str, Any]:
    out = {"id": "e", "kind": kind} | _loose(raw)
    if "items" in out:
        out["items"] = [_loose(i) for i in out["items"]]
    return out


def _request_path(path: str, kind: str) -> str:
    """A schema path as the request path (an event's own fields live in its details message)."""
    head, _, rest = path.partition(".")
    name = rest.split(".")[0].split("[")[0]
    if head == "event" and name not in ("id", "kind", "time"):
        return f"event.{kind}.{rest}"
    return path


def _outcome(convert: Any, message: Any) -> Any:
    try:
        return convert(message)
    except InvalidArgument as exc:
        return [(v.field, v.description) for v in exc.violations]


def _schema_outcome(prepare: Any, loose: dict[str, Any], kind: str) -> Any:
    try:
        return prepare(loose)
    except InputError as exc:
        return [(_request_path(e.path, kind), e.reason) for e in exc.errors]


@settings(max_examples=400, deadline=None)
@given(customers())
def test_fast_customer_equals_the_schema_checked_customer(raw):
    """For any customer the generated converter returns the schema's own prepared dict, or gives up."""
    message = _customer_message(raw)
    try:
        fast = CONVERTER.fast.customer(message)
    except _Slow:  # only for input the schema refuses
        with pytest.raises(InvalidArgument):
            CONVERTER.check_customer(message)
        return
    assert fast == CONVERTER.check_customer(message)


@settings(max_examples=400, deadline=None)
@given(events())
def test_fast_event_equals_the_schema_checked_event(kind_raw):
    """For any event of every kind the generated converter returns the schema's prepared dict, or
    gives up (then the checking path decides)."""
    message = _event_message(*kind_raw)
    kind = message.WhichOneof("details")
    try:
        fast = CONVERTER.fast.by_details[kind](message)
    except _Slow:  # only for input the schema refuses or normalises ("usd" is USD)
        if kind_raw[1].get("currency") not in ODD_BUT_VALID:
            with pytest.raises(InvalidArgument):
                CONVERTER.check_event(message)
        return
    checked = CONVERTER.check_event(message)
    assert fast == checked
    assert list(fast) == list(checked)  # the same keys, in the same order


@settings(max_examples=400, deadline=None)
@given(customers(), events())
def test_the_service_and_the_schema_give_the_same_result_and_errors(raw_customer, kind_raw):
    """Negative counters and amounts, minimums above zero, bad and lower-case currency codes:
    the converter's result (or its violations, at request paths) is the reference's
    (tests/dsl/input/reference.py)."""
    kind, raw_event = kind_raw
    assert _outcome(CONVERTER.customer, _customer_message(raw_customer)) == _schema_outcome(
        partial(prepare_customer, SCHEMA), _customer_loose(raw_customer), kind)
    assert _outcome(CONVERTER.event, _event_message(kind, raw_event)) == _schema_outcome(
        partial(prepare_event, SCHEMA), _event_loose(kind, raw_event), kind)


def test_prepared_shape_matches_the_documented_python_api():
    """A flight converted from protobuf equals the reference prepare_event of the same loose mapping."""
    schema = CONVERTER.schema
    message = client.flight("e1", time="2026-03-01T09:30:00Z", origin="JFK", destination="LHR",
                            fare="420.00", cabin="business")
    expected = prepare_event(schema, {"id": "e1", "kind": "flight", "time": "2026-03-01T09:30:00Z",
                                     "origin": "JFK", "destination": "LHR", "fare": "420.00",
                                     "cabin": "business"})
    assert CONVERTER.event(message) == expected
    assert expected["fare"] == Decimal("420.00") and expected["time"].tzinfo is UTC


@pytest.mark.parametrize(("origin", "expected"), [("jfk", "JFK"), (" lhr ", "LHR")])
def test_odd_but_valid_input_takes_the_checking_path(origin, expected):
    """Lower-case airport codes are not the fast path's business; the schema normalises them."""
    message = client.flight("e", time="2026-03-01T09:30:00Z", origin=origin, destination="LHR", fare="1")
    assert CONVERTER.event(message)["origin"] == expected


@pytest.mark.parametrize(("currency", "expected"), [("", "USD"), ("EUR", "EUR"), ("eur", "EUR"),
                                                    (" jpy ", "JPY")])
def test_currency_codes_are_the_schemas(currency, expected):
    """Currency fields are the schema's currency_code: upper-cased, defaulting to USD."""
    for message in (client.flight("e", time="2026-03-01T09:30:00Z", origin="JFK", destination="LHR",
                                  fare="1", currency=currency),
                    client.donation("e", time="2026-03-01T09:30:00Z", amount="1", currency=currency)):
        assert CONVERTER.event(message)["currency"] == expected


def test_well_formed_flights_take_the_fast_path():
    """The benchmark's flights never fall back to the checking path (it is far slower)."""
    from benchmarks.data import raw_airline_pairs
    from benchmarks.messages import evaluate_requests

    for request in evaluate_requests(raw_airline_pairs(200)):
        event = request.event
        CONVERTER.fast.customer(request.customer)
        CONVERTER.fast.by_details["flight"](event)


def test_zero_is_a_value_and_unset_is_missing():
    """distance_miles set to 0 is 0; left unset it is None; the epoch instant is an instant."""
    zero = client.flight("e", time="1970-01-01T00:00:00Z", origin="JFK", destination="LHR", fare="1",
                         distance_miles=0)
    unset = client.flight("e", time="2026-01-01T00:00:00Z", origin="JFK", destination="LHR", fare="1")
    assert CONVERTER.event(zero)["distance_miles"] == 0
    assert CONVERTER.event(zero)["time"] == datetime(1970, 1, 1, tzinfo=UTC)
    assert CONVERTER.event(unset)["distance_miles"] is None


EXTENDED = Converter(Schema.from_texts([
    ("dsl/schema/schema.toml", BASE_SCHEMA_PATH.read_text()),
    ("extra.toml", """
[customer]
deposit = { type = "decimal?", min = 0 }
[events.refund]
amount = { type = "decimal", min = "0.01" }
currency = { type = "currency_code", default = "EUR" }
nights = { type = "int", default = 1, min = 1 }
zone = { type = "timezone", default = "Europe/London" }
"""),
]))


def _refund(**attributes: Any) -> pb.Event:
    event = pb.Event(id="r", kind="refund", time=client.timestamp("2026-03-01T09:30:00Z"))
    for name, value in attributes.items():
        event.attributes[name].CopyFrom(client.python_to_value(value))
    return event


@pytest.mark.parametrize(("attributes", "expected"), [
    ({"amount": Decimal("5")}, {"amount": Decimal("5"), "currency": "EUR", "nights": 1,
                                "zone": "Europe/London"}),
    ({"amount": Decimal("5"), "zone": "Asia/Tokyo"}, {"zone": "Asia/Tokyo"}),
    ({"amount": Decimal("0.01"), "currency": "gbp", "nights": 3},
     {"amount": Decimal("0.01"), "currency": "GBP", "nights": 3}),
    ({"amount": Decimal("0")}, [("event.attributes.amount", "must be at least 0.01, not 0")]),
    ({"amount": Decimal("1"), "nights": 0}, [("event.attributes.nights", "must be at least 1, not 0")]),
    ({"amount": Decimal("1"), "currency": "XYZ"},
     [("event.attributes.currency", '"XYZ" is not an ISO 4217 currency code (such as USD or EUR)')]),
    ({"amount": Decimal("1"), "zone": "Asia/Tokio"},
     [("event.attributes.zone", '"Asia/Tokio" is not an IANA time zone name (such as Europe/London); '
                                "did you mean `Asia/Tokyo`?")]),
    ({"amount": Decimal("1"), "zone": "/etc/localtime"},
     [("event.attributes.zone", '"/etc/localtime" is not an IANA time zone name (such as Europe/London)')]),
], ids=["defaults", "normalised", "zone", "amount-below-minimum", "nights-below-minimum", "bad-currency",
        "misspelt-zone", "zone-path"])
def test_extension_kinds_and_attributes_keep_the_schemas_minimums_and_codes(attributes, expected):
    """Fields sent as attributes (an extension event kind) are held to the same schema checks."""
    message = _refund(**attributes)
    outcome = _outcome(EXTENDED.event, message)
    if isinstance(expected, list):
        assert outcome == expected
        with pytest.raises(Exception):  # noqa: B017 - the fast path gives up in its own way
            EXTENDED.fast_event(message)
        return
    assert {k: outcome[k] for k in expected} == expected
    assert outcome == EXTENDED.check_event(message)


@pytest.mark.parametrize(("deposit", "expected"), [
    (None, None), (Decimal("0"), Decimal("0")), (Decimal("-1"), "must not be negative, not -1")])
def test_customer_attribute_with_a_minimum(deposit, expected):
    """A customer extension field with ``min = 0``: missing, zero, and negative."""
    message = client.customer("c", member_since="2012-05-01",
                              attributes={"deposit": deposit} if deposit is not None else None)
    outcome = _outcome(EXTENDED.customer, message)
    if isinstance(expected, str):
        assert outcome == [("customer.attributes.deposit", expected)]
    else:
        assert outcome["deposit"] == expected == EXTENDED.fast.customer(message)["deposit"]


KINDS = ["flight", "purchase", "visit", "appointment", "donation"]


@pytest.mark.parametrize("details", KINDS)
@pytest.mark.parametrize("kind", ["", *KINDS])
def test_the_kind_and_the_details_must_agree(kind, details):
    """An event's kind may be empty (the details say it) or must name the details set; the
    fast path dispatches on the kind alone only where that cannot let other details pass."""
    message = {
        "flight": client.flight("e", time="2026-03-01T09:30:00Z", origin="JFK", destination="LHR", fare="1"),
        "purchase": client.purchase("e", time="2026-03-01T09:30:00Z", amount="1"),
        "visit": client.visit("e", time="2026-03-01T09:30:00Z"),
        "appointment": client.appointment("e", time="2026-03-01T09:30:00Z", service="cut",
                                          scheduled_at="2026-03-01T09:30:00Z"),
        "donation": client.donation("e", time="2026-03-01T09:30:00Z", amount="1"),
    }[details]
    message.kind = kind
    outcome = _outcome(CONVERTER.event, message)
    if kind in ("", details):
        assert outcome == CONVERTER.check_event(message)
        assert outcome["kind"] == details
    else:
        assert outcome == [("event.kind", f'is "{kind}" but the event carries {details} details')]
        with pytest.raises(Exception):  # noqa: B017 - the fast path gives up in its own way
            CONVERTER.fast_event(message)
