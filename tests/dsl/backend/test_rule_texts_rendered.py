"""Rule texts filled in: both evaluators render a fired rule's ``says`` texts the same way,
from checked placeholders only, in the language asked for."""

from __future__ import annotations

from decimal import Decimal

import pytest

import dsl
from dsl.backend.runner import COMPILED, INTERPRETED
from dsl.decision import Reason, default_text, text_value
from dsl.library.runtime import render_texts

SCHEMA = dsl.Schema.for_directory("policies")
POLICY = '''\
policy p
  on flight

  let tenure = tenure_years(customer.member_since, event.date)
  table bonus by customer.tier:
    "GOLD" -> 100%
    else -> 0%
  rule loyal when tenure >= 10:
    award 10% of (event.distance_miles otherwise 0) miles
    says "+{miles} miles for {tenure} years with us"
    says fr "+{miles} miles pour {tenure} ans avec nous"
    says pt_BR "+{miles} milhas por {tenure} anos"
  rule carried:
    award 1 miles
    says "{event.carrier}: {customer.tier}, bonus {bonus} {{braces}}"
  rule plain_thanks: award 2 miles
  round miles down
'''


def evaluate(runner, *, carrier: str | None = "AC", tier: str | None = "GOLD"):
    policy_set = dsl.load_source(POLICY, file="p.policy", schema=SCHEMA)
    flight = {"origin": "JFK", "destination": "ORD", "distanceMiles": 3442, "fare": "10.00"}
    if carrier is not None:
        flight["carrier"] = carrier
    customer = {"id": "c1", "memberSince": "2012-05-01"}
    if tier is not None:
        customer["tier"] = tier
    c, e = policy_set.decoder.request({
        "customer": customer, "event": {"id": "e1", "time": "2026-03-01T09:30:00Z", "flight": flight}})
    return policy_set.evaluate(c, e, explain=True, runner=runner)


def fired(decision) -> dict[str, Reason]:
    return {r.rule: r for r in decision.reasons if r.kind == "fired"}


@pytest.mark.parametrize("runner", [COMPILED, INTERPRETED], ids=["compiled", "interpreted"])
def test_texts_are_filled_in_from_the_rule_and_its_policy(runner) -> None:
    """An award placeholder shows the rule's amount rounded as the policy rounds its currency
    (344.2 shows 344); a let, a table and fields show their values; doubled braces are
    braces; a rule without a text says its name in words."""
    reasons = fired(evaluate(runner))
    assert reasons["loyal"].awards == {"miles": Decimal("344.2")}
    assert reasons["loyal"].texts == (
        ("", "+344 miles for 13 years with us"), ("fr", "+344 miles pour 13 ans avec nous"),
        ("pt_BR", "+344 milhas por 13 anos"))
    assert reasons["carried"].says() == "AC: GOLD, bonus 1 {braces}"
    assert reasons["plain_thanks"].texts == ()
    assert reasons["plain_thanks"].says() == "Plain thanks"


def test_both_evaluators_give_the_same_reasons() -> None:
    """The compiled evaluator's reasons, texts included, equal the reference interpreter's."""
    assert evaluate(COMPILED).reasons == evaluate(INTERPRETED).reasons


@pytest.mark.parametrize("runner", [COMPILED, INTERPRETED], ids=["compiled", "interpreted"])
def test_a_missing_value_shows_as_nothing(runner) -> None:
    """A placeholder for a field the request left out shows as nothing, not as None."""
    assert fired(evaluate(runner, carrier=None, tier=None))["carried"].says() == ": , bonus 0 {braces}"


@pytest.mark.parametrize("runner", [COMPILED, INTERPRETED], ids=["compiled", "interpreted"])
def test_a_value_is_inserted_as_it_is_never_read_as_a_text(runner) -> None:
    """A value that looks like a placeholder or a format trick is shown verbatim: texts are
    filled in one pass by joining, never by str.format."""
    hostile = "{miles}{0.__class__}<b>"
    said = fired(evaluate(runner, carrier=hostile))["carried"].says()
    assert said == f"{hostile}: GOLD, bonus 1 {{braces}}"


@pytest.mark.parametrize(("language", "expected"), [
    pytest.param(None, "+344 miles for 13 years with us", id="none_asked_first_text"),
    pytest.param("fr", "+344 miles pour 13 ans avec nous", id="declared"),
    pytest.param("pt-BR", "+344 milhas por 13 anos", id="hyphen_tag"),
    pytest.param("pt", "+344 milhas por 13 anos", id="language_without_region"),
    pytest.param("fr_CA", "+344 miles pour 13 ans avec nous", id="region_falls_back_to_language"),
    pytest.param("de", "+344 miles for 13 years with us", id="undeclared_falls_back_to_first"),
])
def test_the_language_asked_for_else_the_first(language: str | None, expected: str) -> None:
    """says() picks the text in the language asked for, else one for the same language in
    another region, else the first the rule declares."""
    assert fired(evaluate(COMPILED))["loyal"].says(language) == expected


def test_speak_puts_a_language_first_for_the_wire_and_the_statement() -> None:
    """Decision.speak reorders each reason's texts so that says() gives the language asked
    for; award_texts gives each applied rule's awards beside its text."""
    decision = evaluate(COMPILED)
    decision.speak("fr")
    assert fired(decision)["loyal"].says() == "+344 miles pour 13 ans avec nous"
    assert decision.award_texts() == [
        ("p", "loyal", {"miles": Decimal("344.2")}, "+344 miles pour 13 ans avec nous"),
        ("p", "carried", {"miles": 1}, "AC: GOLD, bonus 1 {braces}"),
        ("p", "plain_thanks", {"miles": 2}, "Plain thanks"),
    ]
    assert [r.get("says") for r in decision.to_dict()["reasons"] if r["kind"] == "fired"] == [
        "+344 miles pour 13 ans avec nous", "AC: GOLD, bonus 1 {braces}", "Plain thanks"]


def test_a_fired_line_of_the_explanation_ends_with_its_text() -> None:
    """`loyalty eval --explain`'s line for a fired rule says what the customer reads."""
    line = fired(evaluate(COMPILED))["loyal"].render()
    assert line == 'p.loyal: fired +344.2 miles -- says "+344 miles for 13 years with us"'


def test_award_texts_need_the_reasons() -> None:
    """Without explain there are no texts to give, and asking says so."""
    with pytest.raises(ValueError, match="explain=True"):
        dsl.Decision("r1").award_texts()


@pytest.mark.parametrize(("value", "shown"), [
    pytest.param(Decimal("344.00"), "344.00", id="decimal_as_it_is"),
    pytest.param(Decimal("12.50"), "12.50", id="money_keeps_its_places"),
    pytest.param("GOLD", "GOLD", id="text_unquoted"),
    pytest.param(None, "", id="missing"),
    pytest.param(True, "true", id="bool"),
    pytest.param(["a", "b"], "a, b", id="list"),
])
def test_text_value(value, shown: str) -> None:
    """How a value shows in a customer's text."""
    assert text_value(value) == shown


def test_render_texts_joins_parts_and_values() -> None:
    """Odd parts are placeholder names looked up in the values; even parts are literal."""
    assert render_texts((("", ("+", "miles", " for {x}")),), {"miles": 5}) == (("", "+5 for {x}"),)


def test_default_text() -> None:
    """A rule's name in words, the first capitalised."""
    assert default_text("loyal_for_a_decade") == "Loyal for a decade"
    assert default_text("elite") == "Elite"


def test_long_values_and_texts_are_cut() -> None:
    """A value shows at most MAX_TEXT_VALUE characters and a text has at most MAX_TEXT, each
    cut with an ellipsis: what texts add to an explanation is bounded whatever the input."""
    from dsl.library.runtime import MAX_TEXT, MAX_TEXT_VALUE

    [(_, one)] = render_texts((("", ("<", "v", ">")),), {"v": "x" * 10_000})
    assert one == "<" + "x" * (MAX_TEXT_VALUE - 1) + "\u2026>"
    parts = ("",) + ("v", "") * 5
    [(_, five)] = render_texts((("", parts),), {"v": "y" * 10_000})
    assert len(five) == MAX_TEXT and five.endswith("\u2026")
