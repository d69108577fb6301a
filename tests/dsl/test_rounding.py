"""Rounding: a policy's total of a currency rounded once (the default), or each award.

Every expected figure is worked out by hand in the comment beside it. Each case runs
through both the compiled evaluator and the reference interpreter, with and without
reasons, so the table pins what a policy means, not what one implementation does.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from strategies import SCHEMA

import dsl
from dsl.errors import PolicyError
from dsl.library.runtime import exact_award, in_evaluation_context
from dsl.tools.diffing import compare_structure
from dsl.tools.formatter import format_source
from tests.dsl.input.reference import prepare_customer, prepare_event

CUSTOMER = prepare_customer(SCHEMA, {"id": "c1", "member_since": "2010-01-01"})
VISIT = prepare_event(SCHEMA, {"id": "e1", "kind": "visit", "time": "2026-03-01T09:30:00Z"})
HEAD = "policy p\n  on visit\n"


def evaluations(source: str) -> list[dsl.Decision]:
    """The decision four ways: compiled and interpreted, each with and without reasons."""
    policy_set = dsl.load_source(source, schema=SCHEMA)
    return [
        policy_set.evaluate(CUSTOMER, VISIT),
        policy_set.evaluate(CUSTOMER, VISIT, explain=True),
        policy_set.evaluate_interpreted(CUSTOMER, VISIT),
        policy_set.evaluate_interpreted(CUSTOMER, VISIT, explain=True),
    ]


def decide(source: str) -> dsl.Decision:
    """The explained decision, after checking that all four evaluations agree on it."""
    decisions = evaluations(source)
    for d in decisions[1:]:
        assert (d.awards, d.fired) == (decisions[0].awards, decisions[0].fired)
    assert decisions[1].reasons == decisions[3].reasons
    return decisions[1]


AWARDS = [
    pytest.param(
        # 0.5 + 0.5 = 1.0, rounded down once: 1
        "  rule a: award 0.5 miles\n  rule b: award 0.5 miles\n  round miles down\n",
        {"miles": 1}, id="total-rounded-once",
    ),
    pytest.param(
        # 0.5 -> 0 and 0.5 -> 0: 0 (a decision leaves zero awards out)
        "  rule a: award 0.5 miles\n  rule b: award 0.5 miles\n  round miles down each award\n",
        {}, id="each-award-rounded-on-its-own",
    ),
    pytest.param(
        # 0.125 + 0.125 = 0.25 exactly: nothing to round
        "  rule a: award 0.125 credit\n  rule b: award 0.125 credit\n  round credit half up\n",
        {"credit": Decimal("0.25")}, id="two-decimal-currency-total",
    ),
    pytest.param(
        # 0.125 -> 0.13 twice: 0.26
        "  rule a: award 0.125 credit\n  rule b: award 0.125 credit\n"
        "  round credit half up each award\n",
        {"credit": Decimal("0.26")}, id="two-decimal-currency-each-award",
    ),
    pytest.param(
        # a: 2.7 up to 2.5; the limit is rounded down to the currency (2), the award is
        # limited exactly: 2. b: 0.6. Total 2.6, rounded down once: 2
        "  rule a: award 2.7 miles up to 2.5\n  rule b: award 0.6 miles\n  round miles down\n",
        {"miles": 2}, id="up-to-limits-the-exact-award",
    ),
    pytest.param(
        # 10.9 rounded down to 10 first, then the cap at 10 cuts nothing
        "  rule a: award 10.9 miles\n  cap miles at 10\n  round miles down\n",
        {"miles": 10}, id="cap-after-rounding",
    ),
    pytest.param(
        # 4.6 + 4.6 = 9.2, rounded up once: 10; then capped at 9
        "  rule a: award 4.6 miles\n  rule b: award 4.6 miles\n  cap miles at 9\n"
        "  round miles up\n",
        {"miles": 9}, id="cap-holds-a-rounded-up-total",
    ),
    pytest.param(
        # 2.5 + 0 (a negative award is raised to zero on its own) = 2.5, half even: 2
        "  rule a: award 2.5 miles\n  rule b: award -1.5 miles\n  round miles half even\n",
        {"miles": 2}, id="negative-award-clamped-before-the-total",
    ),
    pytest.param(
        # takes best compares exact amounts: b (1.6) beats a (1.4); total 1.6, down: 1
        "  group g takes best miles:\n    rule a: award 1.4 miles\n    rule b: award 1.6 miles\n"
        "  rule c: award 0.5 miles\n  round miles down\n",
        {"miles": 2}, id="group-compares-exact-amounts",
    ),
]


@pytest.mark.parametrize(("members", "awards"), AWARDS)
def test_awards(members: str, awards: dict[str, Any]) -> None:
    """The policy's awards under each rounding, the same in every evaluator."""
    assert decide(HEAD + members).awards == awards


def test_group_best_chooses_by_exact_amount() -> None:
    """Under total rounding a best-of group sees 1.4 < 1.6; per award both are 1 and the first wins."""
    group = "  group g takes best miles:\n    rule a: award 1.4 miles\n    rule b: award 1.6 miles\n"
    assert decide(HEAD + group + "  round miles down\n").fired == [("p", "b")]
    assert decide(HEAD + group + "  round miles down each award\n").fired == [("p", "a")]


def test_reasons_show_exact_contributions_and_one_total_rounding() -> None:
    """Every bonus rule stays visible with its exact contribution; the total is rounded once, then capped."""
    d = decide(HEAD + "  rule base: award 1003 miles\n  rule premium: award 25% of 1003 miles\n"
                      "  rule elite: award 50% of 1003 miles\n  cap miles at 1700\n"
                      "  round miles down\n")
    assert d.fired == [("p", "base"), ("p", "premium"), ("p", "elite")]
    assert [(r.rule, r.kind, r.detail, r.awards, r.line) for r in d.reasons or []] == [
        ("base", "fired", "", {"miles": 1003}, 3),
        ("premium", "fired", "", {"miles": Decimal("250.75")}, 4),
        ("elite", "fired", "", {"miles": Decimal("501.5")}, 5),
        # 1003 + 250.75 + 501.5 = 1755.25
        ("", "rounded", "total 1755.25 miles -> 1755 (down)", {}, 7),
        ("", "capped", "cap miles at 1700: 1755 -> 1700", {"miles": 1700}, 6),
    ]


def test_each_policy_rounds_its_own_total() -> None:
    """The total is the policy's: two policies of 0.5 miles each round to 0 each, and the set adds 0 + 0."""
    source = (HEAD + "  rule a: award 0.5 miles\n  round miles down\n"
              "policy q\n  on visit\n  rule b: award 0.5 miles\n  round miles down\n")
    d = decide(source)
    assert d.awards.get("miles", 0) == 0
    assert d.fired == [("p", "a"), ("q", "b")]


def test_set_cap_applies_to_the_rounded_policy_totals() -> None:
    """The schema's cap per event (credit: 250000.00) limits the sum of each policy's rounded total."""
    # p: 150000.004 + 0.004 = 150000.008, down: 150000.00; q the same; 300000.00 -> 250000.00
    policy = "policy {n}\n  on visit\n  rule a: award 150000.004 credit\n" \
             "  rule b: award 0.004 credit\n  round credit down\n"
    d = decide(policy.format(n="p") + policy.format(n="q"))
    assert d.awards == {"credit": Decimal("250000.00")}


@pytest.mark.parametrize("line", ["round miles down", "round miles half even each award"])
def test_formatter_keeps_the_rounding_scope(line: str) -> None:
    """Formatting keeps `each award` (or its absence), and formatting twice changes nothing."""
    source = HEAD + "  rule a: award 0.5 miles\n  " + line + "\n"
    formatted = format_source(source)
    assert f"  {line}\n" in formatted
    assert format_source(formatted) == formatted


def test_diff_sees_a_change_of_rounding_scope() -> None:
    """`loyalty diff` reports `round miles` as changed when `each award` is added."""
    old = dsl.load_source(HEAD + "  rule a: award 0.5 miles\n  round miles down\n", schema=SCHEMA)
    new = dsl.load_source(HEAD + "  rule a: award 0.5 miles\n  round miles down each award\n",
                          schema=SCHEMA)
    diff = compare_structure(old, new)
    assert [c.members_changed for c in diff.changed] == [["round miles"]]


def warnings_of(source: str) -> list[str]:
    return [d.render() for d in dsl.load_source(source, file="p.policy", schema=SCHEMA).warnings]


def test_per_award_rounding_of_summed_fractional_awards_is_a_warning() -> None:
    """`each award` over awards that add up, one fractional, warns with the total form as the hint."""
    assert warnings_of(HEAD + "  rule a: award 10 miles\n  rule b: award 10% of 15 miles\n"
                              "  round miles down each award\n") == ["\n".join([
        "p.policy:5:3: warning: per_award_rounding: each of up to 2 awards of miles is rounded "
        "down on its own before they are added up, which can pay a different total than "
        "rounding the policy's total of miles once",
        "    |   round miles down each award",
        "    |   ^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        "    = hint: to round the total once, as programme terms state it, write "
        "`round miles down`",
    ])]


@pytest.mark.parametrize("members", [
    pytest.param("  rule a: award 10 miles\n  rule b: award 1.5 miles\n  round miles down\n",
                 id="total-rounding"),
    pytest.param("  rule a: award 1.5 miles\n  round miles down each award\n", id="one-award"),
    pytest.param("  rule a: award 10 miles\n  rule b: award 20 miles\n"
                 "  rule c: award 0.5 credit\n  round miles up each award\n"
                 "  round credit down\n", id="whole-awards"),
    pytest.param("  group g takes first:\n    rule a when event.party_size > 2: award 1.5 miles\n"
                 "    rule b: award 2.5 miles\n  round miles down each award\n",
                 id="group-alternatives-never-add-up"),
])
def test_no_per_award_warning_where_nothing_can_be_lost(members: str) -> None:
    """No warning when the total is rounded, or no two awards with a fraction can add up."""
    assert warnings_of(HEAD + members) == []


def test_unrounded_sum_must_stay_exact() -> None:
    """Under total rounding the awards add up unrounded, so the checker bounds their exact sum.

    Each award has at most 99 significant digits (39 before the point, 60 after): exact on
    its own, so `each award` is accepted; added up unrounded, they could need more than 100.
    """
    k = "0." + "0" * 27 + "1"
    source = (HEAD + f"  let k = {k} * {k} * 0.0001\n"
              "  rule a: award k * event.party_size * event.party_size miles\n"
              "  rule b: award k * event.party_size * event.party_size miles\n")
    dsl.load_source(source + "  round miles down each award\n", schema=SCHEMA)
    with pytest.raises(PolicyError) as caught:
        dsl.load_source(source + "  round miles down\n", file="p.policy", schema=SCHEMA)
    first = caught.value.render().split("\n\n")[0]
    assert first == "\n".join([
        "p.policy:4:17: number_too_large: k * event.party_size * event.party_size could need "
        "more than 100 significant digits when 2 unrounded awards of miles are added up "
        "(39 before the point, 60 after, and 2 for carries), so their total could not be "
        "computed exactly",
        "    |   rule a: award k * event.party_size * event.party_size miles",
        "    |                 ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        "    = hint: round a part to fewer decimal places first, for example round(x, 2)",
    ])


@pytest.mark.parametrize(("value", "decimals", "shown"), [
    pytest.param(Decimal("370.0"), 0, 370, id="whole-miles-as-int"),
    pytest.param(Decimal("92.50"), 0, Decimal("92.5"), id="fraction-without-trailing-zero"),
    pytest.param(Decimal("1.5"), 2, Decimal("1.50"), id="whole-cents-in-currency-form"),
    pytest.param(Decimal("0.125"), 2, Decimal("0.125"), id="below-a-cent-kept-exactly"),
    pytest.param(7, 2, 7, id="int-unchanged"),
])
def test_exact_award_is_the_same_number_written_plainly(value: Any, decimals: int, shown: Any) -> None:
    """Reasons show an unrounded award in the currency's form when it is whole, else plainly."""
    got = in_evaluation_context(exact_award, value, decimals)
    assert got == value and type(got) is type(shown) and str(got) == str(shown)


@pytest.mark.parametrize("mode", ["down", "up", "half even", "half up"])
def test_whole_unit_totals_in_integer_units_agree_with_the_interpreter(mode: str) -> None:
    """The evaluate variant's integer path (a total in 1/D units) rounds as the interpreter does.

    Awards of constant ratios (a literal and a table) and whole numbers, a best-of group and
    a cap: every party size from 1 to 60 and every tier, compiled against interpreted.
    """
    source = (HEAD + "  table bonus by customer.tier:\n    \"GOLD\" -> 12.5%\n"
              "    \"PLATINUM\" -> 0.3\n    else -> 0\n"
              "  rule base: award event.party_size miles\n"
              "  group g takes best miles:\n"
              "    rule a: award 37.5% of event.party_size miles\n"
              "    rule b: award event.party_size * 0.4 miles\n"
              "  rule t: award bonus of event.party_size miles\n"
              f"  cap miles at 150\n  round miles {mode}\n")
    policy_set = dsl.load_source(source, schema=SCHEMA)
    generated = policy_set.policy("p").source("evaluate")
    assert "// 40" in generated or "(2 * total_miles + 40) // 80" in generated \
        or "round_ratio_half_even(total_miles, 40)" in generated  # the integer path is taken
    for tier in (None, "GOLD", "PLATINUM"):
        customer = prepare_customer(SCHEMA, {"id": "c1", "member_since": "2010-01-01",
                                            **({"tier": tier} if tier else {})})
        for size in range(1, 61):
            event = prepare_event(SCHEMA, {"id": "e1", "kind": "visit",
                                          "time": "2026-03-01T09:30:00Z", "party_size": size})
            compiled = policy_set.evaluate(customer, event)
            interpreted = policy_set.evaluate_interpreted(customer, event)
            assert (compiled.awards, compiled.fired) == (interpreted.awards, interpreted.fired), \
                (tier, size)
