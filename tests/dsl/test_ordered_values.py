"""Ordered values: tiers (declared lowest first) and enums declared `ordered = true` compare by
rank, compiled and interpreted alike; text with no declared order cannot be compared with `<`."""

from __future__ import annotations

from typing import Any

import pytest

import dsl
from dsl.errors import PolicyError
from dsl.schema.schema import BASE_SCHEMA_PATH, Schema, SchemaError
from tests.dsl.input.reference import prepare_customer, prepare_event

SCHEMA = dsl.Schema.for_directory("policies")  # tiers = ["MVP", "GOLD", "PLATINUM", "75K"]

BANDS = """
[customer]
band = { type = "enum(bronze, silver, gold)", default = "bronze", ordered = true }
"""


def with_extra(text: str) -> Schema:
    return Schema.from_texts([(str(BASE_SCHEMA_PATH), BASE_SCHEMA_PATH.read_text(encoding="utf-8")),
                              ("extra.toml", text)])


def purchase() -> dict[str, Any]:
    return prepare_event(SCHEMA, {"id": "e", "kind": "purchase", "time": "2026-03-01T10:00:00Z",
                                 "amount": "10.00"})


def awarded(source: str, schema: Schema, customer: dict[str, Any], event: dict[str, Any]) -> int:
    """The points awarded, after checking the compiled code and the interpreter agree."""
    policy_set = dsl.load_source(source, file="p.policy", schema=schema)
    compiled = policy_set.evaluate(customer, event, explain=True)
    interpreted = policy_set.evaluate_interpreted(customer, event, explain=True)
    assert compiled.to_dict() == interpreted.to_dict()
    return compiled.awards.get("points", 0)


GOLD_AND_ABOVE = """policy p
  on purchase
  rule gold_or_better when customer.tier is present and customer.tier >= "GOLD": award 1 points
  rule below_platinum when (customer.tier otherwise "MVP") < "PLATINUM": award 10 points
  rule above_own when "GOLD" < (customer.tier otherwise "MVP"): award 100 points
"""


@pytest.mark.parametrize(("tier", "points"), [
    pytest.param(None, 10, id="no-tier"),
    pytest.param("MVP", 10, id="MVP-sorts-after-GOLD-as-text-but-ranks-below"),
    pytest.param("GOLD", 1 + 10, id="GOLD"),
    pytest.param("PLATINUM", 1 + 100, id="PLATINUM"),
    pytest.param("75K", 1 + 100, id="75K-sorts-before-GOLD-as-text-but-ranks-above"),
])
def test_tiers_compare_by_rank(tier: str | None, points: int) -> None:
    """`customer.tier >= "GOLD"` holds for GOLD and the tiers above it in the schema's list."""
    customer = prepare_customer(SCHEMA, {"id": "c", "member_since": "2020-01-01",
                                        **({"tier": tier} if tier else {})})
    assert awarded(GOLD_AND_ABOVE, SCHEMA, customer, purchase()) == points


@pytest.mark.parametrize(("tier", "points"), [(None, 0), ("MVP", 1), ("75K", 1)])
def test_two_tier_values_compare_by_rank(tier: str | None, points: int) -> None:
    """Two tier values compare with each other by rank too: with no tier, MVP >= GOLD is false
    (as text it would be true)."""
    source = """policy p
  on purchase
  rule r when (customer.tier otherwise "MVP") >= (customer.tier otherwise "GOLD"): award 1 points
"""
    customer = prepare_customer(SCHEMA, {"id": "c", "member_since": "2020-01-01",
                                        **({"tier": tier} if tier else {})})
    assert awarded(source, SCHEMA, customer, purchase()) == points


@pytest.mark.parametrize(("cabin", "points"), [
    ("economy", 0), ("premium_economy", 0), ("business", 1), ("first", 1),
])
def test_the_standard_cabins_are_ordered(cabin: str, points: int) -> None:
    """The standard schema lists the cabins lowest first, `ordered = true`: they compare by rank."""
    source = 'policy p\n  on flight\n  rule r when event.cabin >= "business": award 1 points\n'
    customer = prepare_customer(SCHEMA, {"id": "c", "member_since": "2020-01-01"})
    event = prepare_event(SCHEMA, {"id": "e", "kind": "flight", "time": "2026-03-01T10:00:00Z",
                                  "origin": "JFK", "destination": "LHR", "fare": "100",
                                  "cabin": cabin})
    assert awarded(source, SCHEMA, customer, event) == points


@pytest.mark.parametrize(("band", "points"), [("bronze", 0), ("silver", 1), ("gold", 1)])
def test_an_enum_declared_ordered_compares_by_rank(band: str, points: int) -> None:
    """`ordered = true` on a directory's enum: its values compare in the order listed
    ("gold" sorts before "silver" as text)."""
    schema = with_extra(BANDS)
    source = 'policy p\n  on purchase\n  rule r when customer.band >= "silver": award 1 points\n'
    customer = prepare_customer(schema, {"id": "c", "member_since": "2020-01-01", "band": band})
    assert awarded(source, schema, customer, purchase()) == points


def rendered(body: str, schema: Schema = SCHEMA, kind: str = "purchase") -> list[str]:
    source = f"policy p\n  on {kind}\n{body}"
    with pytest.raises(PolicyError) as info:
        dsl.load_source(source, file="p.policy", schema=schema)
    return info.value.render().split("\n")


@pytest.mark.parametrize(("body", "expected"), [
    pytest.param(
        '  rule r when customer.tier is present and customer.tier >= "GOLF": award 1 points\n',
        ['p.policy:3:61: unknown_value: "GOLF" is not a possible tier here (one of: MVP, GOLD, '
         'PLATINUM, 75K)',
         '    |   rule r when customer.tier is present and customer.tier >= "GOLF": award 1 points',
         '    |                                                             ^^^^^^',
         '    = hint: did you mean `GOLD`?'], id="unknown-tier-did-you-mean"),
    pytest.param(
        '  rule r when (customer.tier otherwise "SILVER") >= "GOLD": award 1 points\n',
        ['p.policy:3:15: unordered_comparison: customer.tier otherwise "SILVER" (string) and '
         '"GOLD" (string) have no declared order: `>=` would compare them as text, alphabetically',
         '    |   rule r when (customer.tier otherwise "SILVER") >= "GOLD": award 1 points',
         '    |               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^',
         '    = hint: the default "SILVER" is not a tier (MVP, GOLD, PLATINUM, 75K), so the '
         'comparison falls back to text; default to one of them, such as "MVP"'],
        id="a-default-that-is-not-a-tier"),
    pytest.param(
        '  rule r when event.channel < "online": award 1 points\n',
        ['p.policy:3:15: unordered_comparison: event.channel (enum(store, online, app)) and '
         '"online" (string) have no declared order: `<` would compare them as text, alphabetically',
         '    |   rule r when event.channel < "online": award 1 points',
         '    |               ^^^^^^^^^^^^^^^^^^^^^^^^',
         '    = hint: declare the order in the schema, values lowest first: { type = '
         '"enum(store, online, app)", ordered = true }, or compare with == or in'],
        id="an-unordered-enum"),
    pytest.param(
        '  rule r when event.currency > "EUR": award 1 points\n',
        ['p.policy:3:15: unordered_comparison: event.currency (currency_code) and "EUR" (string) '
         'have no declared order: `>` would compare them as text, alphabetically',
         '    |   rule r when event.currency > "EUR": award 1 points',
         '    |               ^^^^^^^^^^^^^^^^^^^^^^',
         '    = hint: compare with == or in; for values with a rank, declare them in the schema as '
         'an enum listed lowest first with `ordered = true` (tiers are ordered: tiers = [...])'],
        id="plain-text"),
    pytest.param(
        '  rule r when customer.tier is present and customer.tier <= customer.id: award 1 points\n',
        ['p.policy:3:44: type_error: customer.tier (tier) and customer.id (string) cannot be '
         'compared by rank: only tier\'s own values have one',
         '    |   rule r when customer.tier is present and customer.tier <= customer.id: award 1 points',
         '    |                                            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^',
         '    = hint: compare with one of its values, lowest first: "MVP", "GOLD", "PLATINUM", '
         '"75K"'], id="a-tier-with-other-text"),
])
def test_diagnostics(body: str, expected: list[str]) -> None:
    """Each mistake with ordered or unordered text gets exactly this diagnostic and hint."""
    assert rendered(body) == expected


@pytest.mark.parametrize(("extra", "message"), [
    pytest.param('[customer]\nx = { type = "string", ordered = true }\n',
                 "customer.x.ordered: only an enum can be ordered", id="ordered-string"),
    pytest.param('[customer]\nx = { type = "tier?", ordered = false }\n',
                 "customer.x.ordered: only an enum can be ordered", id="tiers-always-are"),
    pytest.param('[customer]\nx = { type = "string", max = 3 }\n',
                 "customer.x.max: only numbers can have a maximum", id="max-on-text"),
    pytest.param('[customer]\nx = { type = "int", min = 5, max = 3 }\n',
                 "customer.x.max: is below the field's min (5)", id="max-below-min"),
    pytest.param('[customer]\nx = { type = "int", max = "2.5" }\n',
                 "customer.x.max: a whole-number field's limit must be a whole number",
                 id="fractional-limit-of-an-int"),
    pytest.param('[customer]\nx = { type = "int", default = 9, max = 3 }\n',
                 "customer.x.default: is above the field's max (3)", id="default-above-max"),
])
def test_schema_errors(extra: str, message: str) -> None:
    """`ordered` belongs to enums and `max` to numbers, within the field's other limits."""
    with pytest.raises(SchemaError) as info:
        with_extra(extra)
    assert message in str(info.value)


def test_a_field_max_is_read() -> None:
    """`max` is kept on the field, as an int for a whole number and a Decimal otherwise."""
    schema = with_extra('[customer]\nx = { type = "int", max = 10 }\n'
                        'y = { type = "decimal?", max = "2.50" }\n')
    assert schema.customer["x"].maximum == 10 and type(schema.customer["x"].maximum) is int
    assert str(schema.customer["y"].maximum) == "2.50"
    assert SCHEMA.events["stay"]["nights"].maximum == 365


@pytest.mark.parametrize(("nights", "error"), [
    (365, None),
    (366, "event.nights: must be at most 365, not 366"),
])
def test_prepare_refuses_a_number_above_max(nights: int, error: str | None) -> None:
    """The reference input path refuses a value above the field's `max`, naming the field."""
    event = {"id": "e", "kind": "stay", "time": "2026-03-01T10:00:00Z", "nights": nights}
    if error is None:
        assert prepare_event(SCHEMA, event)["nights"] == nights
        return
    with pytest.raises(dsl.InputError) as info:
        prepare_event(SCHEMA, event)
    assert error in str(info.value)


def test_rank_ranges_are_not_taken_for_contradictions() -> None:
    """PLATINUM is at least PLATINUM and below 75K by rank (not as text): the rule can fire,
    so the conflict analysis must not call it `never_fires`."""
    source = ('policy p\n  on purchase\n  rule r when customer.tier is present and '
              'customer.tier >= "PLATINUM" and customer.tier < "75K": award 1 points\n')
    customer = prepare_customer(SCHEMA, {"id": "c", "member_since": "2020-01-01", "tier": "PLATINUM"})
    assert awarded(source, SCHEMA, customer, purchase()) == 1
