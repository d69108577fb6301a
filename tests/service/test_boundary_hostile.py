"""Hostile input at the request boundary, case by case: every decoder refuses it, naming the field.

Each case is one valid request with one thing wrong. The protobuf decoder (P, both paths and the
fast path alone), the mapping decoder (M, camelCase and snake_case) and the schema's reference
(R) must all refuse it with an ``InvalidArgument`` / ``InputError`` naming the expected request
path, and agree with each other as ``check_agreement`` requires; none may raise anything else
(no ValueError, OverflowError, RecursionError or decimal exception leaking). A few boundary
cases that must be *accepted* sit beside them.
"""

from __future__ import annotations

from typing import Any

import pytest

from dsl.schema.schema import (
    BASE_SCHEMA_PATH,
    MAX_LIST,
    MAX_REQUEST_ITEMS,
    MAX_VALUE_DEPTH,
    Schema,
    SchemaError,
)
from tests.dsl.input.reference import prepare_customer
from tests.service.test_boundary_differential import (
    BUNDLED,
    EXTENDED,
    NINES,
    Dur,
    Ts,
    V,
    check_agreement,
    loose_paths,
)

NOW = Ts(1_772_357_400)  # 2026-03-01T09:30:00Z


def purchase(**details: Any) -> dict[str, Any]:
    """A valid purchase request, its details updated by ``details``."""
    return {"customer": {"id": "c-1", "member_since": "2012-05-01"},
            "event": {"id": "e-1", "kind": "purchase", "time": NOW, "purchase": {"amount": "10", **details}}}


def with_customer(spec: dict[str, Any], **fields: Any) -> dict[str, Any]:
    spec["customer"].update(fields)
    return spec


def with_event(spec: dict[str, Any], **fields: Any) -> dict[str, Any]:
    spec["event"].update(fields)
    return spec


def customer_attribute(name: str, value: V) -> dict[str, Any]:
    return with_customer(purchase(), attributes={name: value})


def lifetime_attribute(name: str, value: V) -> dict[str, Any]:
    return with_customer(purchase(), lifetime={"attributes": {name: value}})


def item_attribute(name: str, value: V) -> dict[str, Any]:
    return purchase(items=[{"sku": "s", "category": "c", "amount": "1", "attributes": {name: value}}])


def appointment(**attributes: V) -> dict[str, Any]:
    return {"customer": {"id": "c-1", "member_since": "2012-05-01"},
            "event": {"id": "e-1", "kind": "appointment", "time": NOW,
                      "appointment": {"service": "cut", "scheduled_at": NOW}, "attributes": attributes}}


def stay(**attributes: V) -> dict[str, Any]:
    """A valid event of the extension kind ``stay`` (every field an attribute)."""
    base = {"hotel": V("string_value", "h-1"), "rate": V("decimal_value", "99.50"),
            "checked_in": V("time_value", NOW)}
    return {"customer": {"id": "c-1", "member_since": "2012-05-01"},
            "event": {"id": "e-1", "kind": "stay", "time": NOW, "attributes": {**base, **attributes}}}


def nested(depth: int, leaf: V) -> V:
    for _ in range(depth):
        leaf = V("list_value", [leaf])
    return leaf


HOSTILE_DECIMALS = ["1" + NINES, "-1", "1e18", "0E+18", "0." + "0" * 18 + "1", "1.0000000000000000000",
                    "1E+999999", "1e999999999", "NaN", "sNaN", "Infinity", "-Infinity", "1_000", " 1",
                    "\u0661\u0662\u0663", "\uff11\uff12\uff13", "+1", "0x10", "-", "1" * 49]
HOSTILE_INT64S = [10**18, -(10**18), 2**63 - 1, -(2**63)]
HOSTILE_DATES = ["2026-02-30", "2026-W01-1", "20260101", "١٢٣٤-01-01", "0000-01-01"]
HOSTILE_TIMESTAMPS = {"nanos-negative": Ts(1_772_357_400, -1), "nanos-1e9": Ts(1_772_357_400, 10**9),
                      "before-year-1": Ts(-62_135_596_801), "after-year-9999": Ts(253_402_300_800),
                      "seconds-2^62": Ts(2**62)}
BIG_ITEMS = [{"sku": "s", "category": "c", "amount": "1"}] * (MAX_LIST + 1)
BIG_VALUE_LIST = V("list_value", [V("int_value", 1)] * (MAX_LIST + 1))

#: (id, schema, request spec, the request path that must be named)
CASES: list[tuple[str, Schema, dict[str, Any], str]] = [
    *[(f"decimal-{text!r}", BUNDLED, purchase(amount=text),
       "event.purchase.amount") for text in HOSTILE_DECIMALS],
    *[(f"decimal-value-{text!r}", BUNDLED, appointment(price=V("decimal_value", text)),
       "event.attributes.price")
      for text in HOSTILE_DECIMALS if text != "-1"],  # price has no minimum
    ("decimal-empty-required", BUNDLED, purchase(amount=""), "event.purchase.amount"),
    ("decimal-value-empty", BUNDLED, appointment(price=V("decimal_value", "")), "event.attributes.price"),
    *[(f"lifetime-miles-{n}", BUNDLED, with_customer(purchase(), lifetime={"miles": n}),
       "customer.lifetime.miles")
      for n in HOSTILE_INT64S],
    *[(f"quantity-{n}", BUNDLED, purchase(items=[{"sku": "s", "category": "c", "amount": "1",
                                                  "quantity": n}]),
       "event.purchase.items[0].quantity") for n in HOSTILE_INT64S],
    *[(f"int-value-{n}", EXTENDED, customer_attribute("score", V("int_value", n)),
       "customer.attributes.score")
      for n in HOSTILE_INT64S],
    *[(f"int-as-decimal-value-{n}", BUNDLED, appointment(price=V("int_value", n)), "event.attributes.price")
      for n in HOSTILE_INT64S],
    ("customer-id-129", BUNDLED, with_customer(purchase(), id="x" * 129), "customer.id"),
    ("event-id-129", BUNDLED, with_event(purchase(), id="x" * 129), "event.id"),
    ("item-sku-10001", BUNDLED, purchase(items=[{"sku": "x" * 10_001, "category": "c", "amount": "1"}]),
     "event.purchase.items[0].sku"),
    ("home-store-10001", BUNDLED, customer_attribute("home_store", V("string_value", "x" * 10_001)),
     "customer.attributes.home_store"),
    ("stay-hotel-129", EXTENDED, stay(hotel=V("string_value", "x" * 129)), "event.attributes.hotel"),
    ("items-10001", BUNDLED, purchase(items=BIG_ITEMS), "event.purchase.items"),
    ("value-list-10001", EXTENDED, customer_attribute("tags", V("list_value", [V("string_value",
                                                                                 "t")] * 10_001)),
     "customer.attributes.tags"),
    ("lifetime-value-list-10001", EXTENDED, lifetime_attribute("counts", BIG_VALUE_LIST),
     "customer.lifetime.attributes.counts"),
    ("request-past-max-items", EXTENDED, customer_attribute("grid", V("list_value", [
        V("list_value", [V("int_value", 1)] * MAX_LIST)] * (MAX_REQUEST_ITEMS // MAX_LIST + 1))),
     "customer.attributes.grid[9]"),
    *[(f"member-since-{text}", BUNDLED, with_customer(purchase(), member_since=text), "customer.member_since")
      for text in HOSTILE_DATES],
    *[(f"date-value-{text}", EXTENDED, customer_attribute("joined", V("date_value", text)),
       "customer.attributes.joined") for text in HOSTILE_DATES],
    *[(f"time-{name}", BUNDLED, with_event(purchase(), time=ts), "event.time")
      for name, ts in HOSTILE_TIMESTAMPS.items()],
    *[(f"time-value-{name}", EXTENDED, item_attribute("packed_at", V("time_value", ts)),
       "event.purchase.items[0].attributes.packed_at") for name, ts in HOSTILE_TIMESTAMPS.items()],
    ("datetime-text-after-9999-in-utc", EXTENDED,
     customer_attribute("seen_at", V("string_value",
                                     "9999-12-31T23:59:59-01:00")), "customer.attributes.seen_at"),
    ("duration-past-100000-days", EXTENDED, customer_attribute("patience", V("duration_value",
                                                                             Dur(8_640_000_001))),
     "customer.attributes.patience"),
    ("duration-text-past-100000-days", EXTENDED,
     customer_attribute("patience", V("string_value", "8640000001s")), "customer.attributes.patience"),
    ("duration-weeks-past-100000-days", EXTENDED,
     customer_attribute("patience", V("string_value", "99999 weeks")), "customer.attributes.patience"),
    ("duration-signs-differ", EXTENDED, customer_attribute("patience", V("duration_value", Dur(1, -1))),
     "customer.attributes.patience"),
    ("duration-nanos-1e9", EXTENDED, lifetime_attribute("idle", V("duration_value", Dur(0, 10**9))),
     "customer.lifetime.attributes.idle"),
    ("unknown-customer-attribute", BUNDLED, customer_attribute("bogus", V("string_value", "x")),
     "customer.attributes.bogus"),
    ("unknown-long-attribute", BUNDLED, customer_attribute("x" * 70, V("string_value", "x")),
     "customer.attributes." + "x" * 61 + "..."),
    ("unknown-item-attribute", EXTENDED, item_attribute("bogus", V("int_value", 1)),
     "event.purchase.items[0].attributes.bogus"),
    ("another-kinds-field", BUNDLED, with_event(purchase(), attributes={"price": V("decimal_value", "1")}),
     "event.attributes.price"),
    ("wrong-value-kind", BUNDLED, customer_attribute("home_store", V("int_value", 5)),
     "customer.attributes.home_store"),
    ("wrong-value-kind-list", EXTENDED, customer_attribute("tags", V("string_value", "a")),
     "customer.attributes.tags"),
    ("wrong-value-kind-in-list", EXTENDED,
     customer_attribute("grid", V("list_value", [V("list_value", [V("int_value", 1), V("string_value",
                                                                                       "2")])])),
     "customer.attributes.grid[0][1]"),
    ("record-missing-field", EXTENDED, customer_attribute("best", V("record_value", {})),
     "customer.attributes.best.code"),
    ("record-unknown-field", EXTENDED,
     customer_attribute("best", V("record_value", {"code": V("string_value", "a"), "bogus": V("int_value",
                                                                                              1)})),
     "customer.attributes.best.bogus"),
    ("value-nested-100-deep", EXTENDED, customer_attribute("grid", nested(100, V("int_value", 1))),
     "customer.attributes.grid[0][0]"),
    ("value-nested-past-max-depth", EXTENDED, lifetime_attribute("counts", nested(MAX_VALUE_DEPTH + 1,
                                                                                  V(None))),
     "customer.lifetime.attributes.counts[0]"),
    ("kind-disagrees-with-details", BUNDLED, with_event(purchase(), kind="flight"), "event.kind"),
    ("extension-kind-with-details", EXTENDED, with_event(stay(), purchase={"amount": "1"}), "event.kind"),
    ("unknown-kind", BUNDLED, {"customer": {"id": "c", "member_since": "2012-05-01"},
                               "event": {"id": "e", "kind": "bogus", "time": NOW}}, "event.kind"),
    ("no-kind-no-details", BUNDLED, {"customer": {"id": "c", "member_since": "2012-05-01"},
                                     "event": {"id": "e", "time": NOW}}, "event.kind"),
    ("extension-kind-rate-below-minimum", EXTENDED, stay(rate=V("decimal_value", "0")),
     "event.attributes.rate"),
]


@pytest.mark.parametrize(("schema", "spec", "path"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_is_refused_by_every_decoder_at_its_field(schema, spec, path):
    """Every decoder refuses the request with a field problem at ``path`` (and only refusals:
    any other exception fails the test), and the decoders agree on all of it."""
    outcomes = check_agreement(schema, spec, loose_paths(spec, schema))
    for name, outcome in outcomes.items():
        assert not outcome.accepted, f"{name} took it"
        if name == "M-camel" or (name == "R" and path == "event.kind"):
            continue  # camelCase paths and the reference's view of a mismatched kind: see check_agreement
        assert path in outcome.paths(), f"{name}: {outcome.problems}"


GRID_100 = V("list_value", [V("list_value", [V("int_value", i)] * 100) for i in range(100)])

#: (id, schema, request spec): boundary input that every decoder takes, to the same values.
ACCEPTED: list[tuple[str, Schema, dict[str, Any]]] = [
    ("decimal-18-digits-each-side", BUNDLED, purchase(amount=NINES + "." + NINES)),
    ("decimal-minus-zero", BUNDLED, purchase(amount="-0")),
    ("decimal-0E+17", BUNDLED, purchase(amount="0E+17")),
    ("decimal-1e17", BUNDLED, purchase(amount="1e17")),
    ("decimal-.5-and-5.", BUNDLED, purchase(amount=".5", items=[{"sku": "s", "category": "c",
                                                                 "amount": "5."}])),
    ("int64-18-digits", BUNDLED, with_customer(purchase(), lifetime={"miles": 10**18 - 1})),
    ("int-value-minus-18-digits", EXTENDED,
     lifetime_attribute("counts", V("list_value", [V("int_value", -(10**18 - 1))]))),
    ("ids-128", BUNDLED, with_event(with_customer(purchase(), id="x" * 128), id="y" * 128)),
    ("text-10000", BUNDLED, customer_attribute("home_store", V("string_value", "x" * 10_000))),
    ("items-10000", BUNDLED, purchase(items=BIG_ITEMS[:MAX_LIST])),
    ("grid-100x100", EXTENDED, customer_attribute("grid", GRID_100)),
    ("years-1-and-9999", BUNDLED, with_event(with_customer(purchase(), member_since="0001-01-01"),
                                             time=Ts(253_402_300_799, 999_999_999))),
    ("duration-100000-days", EXTENDED, customer_attribute("patience", V("duration_value",
                                                                        Dur(-8_640_000_000)))),
    ("duration-negative-nanos", EXTENDED, customer_attribute("patience", V("duration_value", Dur(0, -1500)))),
    ("value-nested-max-depth", EXTENDED, customer_attribute("grid", nested(2, V("int_value", 7)))),
    ("kind-left-empty", BUNDLED, with_event(purchase(), kind="")),
    ("extension-kind", EXTENDED, stay(nights=V("int_value", 3), extras=V("list_value", [
        V("record_value", {"code": V("string_value", "a"), "weight": V("int_value", 2)})]))),
]


@pytest.mark.parametrize(("schema", "spec"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_boundary_input_is_taken_by_every_decoder_alike(schema, spec):
    """Input at the bounds (18 digits, the longest id, text and list, years 1 and 9999, 100,000
    days) is taken by every decoder, to values equal in type and text."""
    outcomes = check_agreement(schema, spec, loose_paths(spec, schema))
    assert outcomes["P"].accepted, outcomes["P"].problems


BASE = (str(BASE_SCHEMA_PATH), BASE_SCHEMA_PATH.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("toml", "message"), [
    ('[customer]\ndeep = "list<list<list<list<list<list<list<list<list<int>>>>>>>>>?"',
     "x.toml: customer.deep: its values would nest 10 levels deep (at most 8)"),
    ('[records.node]\nchildren = "list<node>?"\n[customer]\ntree = "node?"',
     "x.toml: customer.tree: record node contains itself (values must nest at most 8 levels deep)"),
], ids=["list-nested-9-deep", "record-containing-itself"])
def test_types_nesting_past_the_value_depth_are_refused_by_the_schema(toml, message):
    """No request may carry a value nested deeper than MAX_VALUE_DEPTH, so no field may be
    declared with such values (the schema's own checks would recurse without bound)."""
    with pytest.raises(SchemaError) as info:
        Schema.from_texts([BASE, ("x.toml", toml)])
    assert str(info.value) == message


def test_the_deepest_type_allowed_takes_values_as_deep():
    """A list nested 7 times (8 levels with its whole numbers) loads, and its deepest values pass."""
    deepest = '[customer]\ndeep = "list<list<list<list<list<list<list<int>>>>>>>?"'
    schema = Schema.from_texts([BASE, ("x.toml", deepest)])
    prepared = prepare_customer(schema, {"id": "c", "member_since": "2012-05-01", "deep": [[[[[[[5]]]]]]]})
    assert prepared["deep"] == [[[[[[[5]]]]]]]
