"""The input schema: every bad field is reported with its path and a reason a caller can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import dsl
from dsl.schema.schema import Schema, SchemaError
from tests.dsl.input.reference import prepare_customer, prepare_event

SCHEMA = dsl.Schema.for_directory("policies")
FLIGHT = {"id": "e1", "kind": "flight", "time": "2026-03-01T10:00:00Z", "origin": "JFK",
          "destination": "BOS", "fare": "100.00"}


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        pytest.param({"distance_miles": -5}, [("event.distance_miles", "must not be negative, not -5")],
                     id="negative-distance"),
        pytest.param({"currency": "ABC"},
                     [("event.currency", '"ABC" is not an ISO 4217 currency code (such as USD or EUR)')],
                     id="unknown-currency"),
        pytest.param({"origin": "XXX"}, [("event.origin", 'unknown airport code "XXX"')],
                     id="unknown-airport"),
        pytest.param({"time": "2026-02-30T10:00:00Z"},
                     [("event.time", '"2026-02-30T10:00:00Z" is not a date and time that exists')],
                     id="date-that-cannot-exist"),
        pytest.param({"time": "2026-03-01T10:00:00"},
                     [("event.time", '"2026-03-01T10:00:00" is not a date and time with a time zone '
                                     '(write for example "2026-03-01T09:30:00Z")')],
                     id="no-time-zone"),
        pytest.param({"fare": 99.5},
                     [("event.fare", 'must be an exact decimal written as a string (for example "99.5"), '
                                     "not a binary floating-point number")],
                     id="binary-float-money"),
        pytest.param({"cabn": "first"},
                     [("event.cabn", "is not a field in the schema; did you mean `cabin`?")],
                     id="unknown-field"),
        pytest.param({"cabin": "frist"},
                     [("event.cabin", '"frist" is not one of: economy, premium_economy, business, first; '
                                      "did you mean `first`?")],
                     id="enum-value"),
        pytest.param({"date": "2026-03-01"},
                     [("event.date", "is derived from time; do not send it")], id="derived-field"),
    ],
)
def test_bad_event_fields(changes: dict[str, Any], errors: list[tuple[str, str]]) -> None:
    """Each bad field gets its own path and reason."""
    with pytest.raises(dsl.InputError) as info:
        prepare_event(SCHEMA, {**FLIGHT, **changes})
    assert [(e.path, e.reason) for e in info.value.errors] == errors


def test_every_problem_is_reported_at_once() -> None:
    """Several bad fields give several errors, not just the first."""
    with pytest.raises(dsl.InputError) as info:
        prepare_customer(SCHEMA, {"member_since": "2020-13-01", "tier": "gold"})
    assert [(e.path, e.reason) for e in info.value.errors] == [
        ("customer.id", "is required"),
        ("customer.member_since", '"2020-13-01" is not a date that exists'),
        ("customer.tier", '"gold" is not a tier (one of: MVP, GOLD, PLATINUM, 75K); did you mean `GOLD`?'),
    ]


def test_prepared_values_are_exact_and_complete() -> None:
    """Defaults are filled, optional fields are None, codes upper-cased, instants in UTC."""
    e = prepare_event(SCHEMA, {**FLIGHT, "origin": "jfk", "time": "2026-03-01T23:30:00-05:00"})
    assert e["origin"] == "JFK"
    assert e["cabin"] == "economy" and e["partner"] is False and e["distance_miles"] is None
    assert e["time"].isoformat() == "2026-03-02T04:30:00+00:00"
    assert e["date"].isoformat() == "2026-03-02"
    assert str(e["fare"]) == "100.00"


def test_business_extends_the_schema_without_code(tmp_path: Path) -> None:
    """A directory's schema.toml adds fields, kinds and currencies that policies can use."""
    (tmp_path / "schema.toml").write_text(
        'tiers = ["SILVER"]\n[currencies]\nstars = { decimals = 0 }\n'
        '[customer]\nsegment = "enum(student, family)?"\n'
        '[events.review]\nrating = { type = "int", min = 1 }\n')
    (tmp_path / "p.policy").write_text(
        'policy reviews\n  on review\n  rule good when event.rating >= 4 and customer.segment == "student":'
        "\n    award 3 stars\n")
    ps = dsl.load_directory(tmp_path)
    c = prepare_customer(ps.schema, {"id": "c", "member_since": "2020-01-01", "segment": "student"})
    e = prepare_event(ps.schema, {"id": "e", "kind": "review", "time": "2026-01-01T00:00:00Z", "rating": 5})
    assert ps.evaluate(c, e).awards == {"stars": 3}
    with pytest.raises(dsl.InputError, match="must be at least 1, not 0"):
        prepare_event(ps.schema, {"id": "e", "kind": "review", "time": "2026-01-01T00:00:00Z", "rating": 0})


def test_a_field_cannot_change_type(tmp_path: Path) -> None:
    """Redeclaring a standard field with another type is a schema error naming the key."""
    (tmp_path / "schema.toml").write_text('[customer]\nmember_since = "string"\n')
    with pytest.raises(SchemaError, match=r"customer\.member_since: is already declared as date"):
        dsl.Schema.for_directory(tmp_path)


def test_a_schema_past_the_toml_bounds_is_refused_with_its_place() -> None:
    """The 25 KB dotted-key schema that took 872 MiB is refused before tomllib, with a position."""
    bomb = "[customer]\n" + "x" + ".x" * 8_000 + ' = "int"\n'
    with pytest.raises(SchemaError) as refused:
        Schema.from_texts([("bomb/schema.toml", bomb)])
    assert str(refused.value) == (
        "bomb/schema.toml:2:64: a dotted key has more than 32 parts: a schema is a short file of "
        "field declarations; flatten what crosses the bound")
