"""The request decoder (dsl/input/request.py) as the command line and policy tests rely on it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from dsl import InputError, Schema
from dsl.input.request import MappingDecoder

DECODER = MappingDecoder(Schema.load())
CUSTOMER = {"id": "c1", "memberSince": "2012-02-29"}


def problems(event: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as exc:
        DECODER.request({"customer": CUSTOMER, "event": event})
    return [(e.path, e.reason) for e in exc.value.errors]


def test_a_flat_field_is_told_where_it_goes_and_not_also_reported_missing() -> None:
    """The schema's flat form puts a flight's fields beside the event's own: each is pointed
    at event.flight, and the "is required" that would follow for the same field is not repeated."""
    assert problems({"id": "e1", "kind": "flight", "time": "2026-03-01T09:30:00Z",
                     "origin": "JFK", "destination": "LHR", "fare": "420.00"}) == [
        ("event.origin", "belongs in event.flight: write it as event.flight.origin"),
        ("event.destination", "belongs in event.flight: write it as event.flight.destination"),
        ("event.fare", "belongs in event.flight: write it as event.flight.fare"),
    ]


def test_a_float_for_a_decimal_is_told_to_write_it_exactly() -> None:
    """A binary float (a TOML number with a point) for a decimal gets the schema's advice."""
    assert problems({"id": "e1", "time": "2026-03-01T09:30:00Z",
                     "donation": {"amount": 50.5}}) == [
        ("event.donation.amount", 'must be an exact decimal written as a string (for example '
                                  '"50.5"), not a binary floating-point number'),
    ]


def test_toml_dates_and_times_are_read_as_they_are() -> None:
    """TOML gives dates and datetimes of its own; they read like their JSON strings."""
    native = DECODER.request({
        "customer": {"id": "c1", "member_since": date(2012, 2, 29)},
        "event": {"id": "e1", "time": datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
                  "visit": {"spend": "10.00"}}})
    text = DECODER.request({
        "customer": {"id": "c1", "memberSince": "2012-02-29"},
        "event": {"id": "e1", "time": "2026-03-01T09:30:00Z", "visit": {"spend": "10.00"}}})
    assert native == text


@pytest.mark.parametrize(("key", "hint"), [("distance", "distance_miles"),
                                           ("distanceMile", "distanceMiles")],
                         ids=["snake_case", "camelCase"])
def test_a_misspelt_field_is_suggested_in_the_callers_spelling(key: str, hint: str) -> None:
    assert problems({"id": "e1", "time": "2026-03-01T09:30:00Z",
                     "flight": {"origin": "JFK", "destination": "LHR", "fare": "1", key: 5}}) == [
        (f"event.flight.{key}", f"is not a field of Flight; did you mean `{hint}`?"),
    ]


def test_problems_come_in_reading_order_then_in_the_plans_order_each_field_once() -> None:
    """The checking path reads first, key by key as the caller wrote them (a value of the wrong
    form, a misplaced field, an item that is not an object), then judges by the plans in the
    schema's order (dates, tiers, least values, required fields, nested items too); a field the
    reading refused or told to move is not judged again."""
    decoder = MappingDecoder(Schema.for_directory(Path(__file__).parents[3] / "policies"))
    request = {"customer": {"tier": "gold", "memberSince": "2026-02-30", "id": 5,
                            "lifetime": {"miles": -1, "donationYears": "x"},
                            "attributes": {"home_store": {"intValue": "3"}}},
               "event": {"id": "e1", "kind": "purchase", "time": "2026-03-01T09:30:00Z", "amount": "1",
                         "purchase": {"items": [{"sku": "a", "amount": "-1"}, "x"], "currency": 7}}}
    with pytest.raises(InputError) as exc:
        decoder.request(request)
    assert [(e.path, e.reason) for e in exc.value.errors] == [
        ("customer.id", "must be a string, not a number"),
        ("customer.attributes.home_store", "expects a string value (stringValue), not intValue"),
        ("customer.memberSince", '"2026-02-30" is not a date that exists'),
        ("customer.tier", '"gold" is not a tier (one of: MVP, GOLD, PLATINUM, 75K); did you mean `GOLD`?'),
        ("customer.lifetime.miles", "must not be negative, not -1"),
        ("customer.lifetime.donationYears", 'must be a whole number, not "x"'),
        ("event.amount", "belongs in event.purchase: write it as event.purchase.amount"),
        ("event.purchase.items[1]", "must be an object"),
        ("event.purchase.currency", "must be a string, not a number"),
        ("event.purchase.items[0].category", "is required"),
        ("event.purchase.items[0].amount", "must not be negative, not -1"),
        ("event.purchase.items[1].sku", "is required"),
        ("event.purchase.items[1].category", "is required"),
        ("event.purchase.items[1].amount", "is required"),
    ]


def test_an_extension_field_under_the_kinds_details_is_told_where_it_goes() -> None:
    """A purchase's details message carries no attributes: a field the directory adds to purchase
    events is pointed at event.attributes; an undeclared one is told how to declare it; a field
    of the details message itself is told to go there."""
    decoder = MappingDecoder(Schema.for_directory("policies"))  # [events.purchase] store
    with pytest.raises(InputError) as exc:
        decoder.request({"customer": CUSTOMER, "event": {
            "id": "e1", "time": "2026-03-01T09:30:00Z",
            "purchase": {"amount": "10.00",
                         "attributes": {"store": {"stringValue": "S1"},
                                        "stor": {"stringValue": "S1"},
                                        "brand": {"stringValue": "B"},
                                        "amount": {"decimalValue": "1"}}}}})
    declare = ("(a field the directory adds to purchase events is declared in schema.toml under "
               "[events.purchase] and sent in event.attributes)")
    assert [(e.path, e.reason) for e in exc.value.errors] == [
        ("event.purchase.attributes.store",
         "belongs in event.attributes (Purchase carries no attributes): write it as "
         "event.attributes.store"),
        ("event.purchase.attributes.stor", f"is not a field in the schema; did you mean `store`? {declare}"),
        ("event.purchase.attributes.brand", f"is not a field in the schema {declare}"),
        ("event.purchase.attributes.amount", "is a field of Purchase; set it there, not in attributes"),
    ]
