"""Lints (dsl/analysis/lints.py): policies that check but read like a known mistake.

Each lint is a warning with a code, a place and a hint that shows the fix; the cases below pin
every lint's full diagnostic, and the cases after them pin what each lint leaves alone (the
reading in which the policy is meant). `loyalty check --strict` turning them into errors is
in tests/dsl/test_cli.py; the bundled policies staying clean in tests/dsl/test_policies_examples.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import dsl
from dsl.analysis.checker import check_policy
from dsl.analysis.lints import CODES
from dsl.front.parser import parse

SCHEMA = dsl.Schema.for_directory("policies")
FLIGHT = "policy p\n  on flight\n"
PURCHASE = "policy p\n  on purchase\n"


def warnings(source: str) -> list[str]:
    """Every diagnostic of one policy text, rendered (the cases have no errors)."""
    result = check_policy(SCHEMA, parse(source, "p.policy")[0])
    assert result.ok, [d.render() for d in result.diagnostics]
    return [d.render() for d in result.diagnostics]


CASES = [
    # a whole number before `of` multiplies: 20 times the fare, not 20 percent
    pytest.param(
        FLIGHT + '  rule r: award 20 of event.fare miles\n  round miles down\n',
        [
         'p.policy:3:17: warning: whole_number_of: `20 of event.fare` is 20 times event.fare, '
         'not 20 percent of it\n'
         '    |   rule r: award 20 of event.fare miles\n'
         '    |                 ^^\n'
         '    = hint: write `20% of event.fare` for a percentage (no space before `%`), or `20 '
         '* event.fare` for a multiple',
        ],
        id='whole_number_before_of',
    ),
    # a binding holding a whole number reads the same way, told where to fix it
    pytest.param(
        FLIGHT + '  let bonus = 20\n  rule r: award bonus of event.fare miles\n  round miles down\n',
        [
         'p.policy:4:17: warning: whole_number_of: `bonus` is a whole number, so `bonus of '
         'event.fare` is bonus times event.fare, not a percentage of it\n'
         '    |   rule r: award bonus of event.fare miles\n'
         '    |                 ^^^^^\n'
         '    = hint: give `bonus` percentages (`20%`, not `20`) where it is defined, or write '
         '`bonus * event.fare` for a multiple',
        ],
        id='whole_number_binding_before_of',
    ),
    # a base rule plus `(100% + bonus) of base` pays the base twice; the fix awards the bonus alone
    pytest.param(
        FLIGHT + '  table elite_bonus by customer.tier:\n    "GOLD" -> 100%\n    else -> 0%\n'
        '  rule base: award event.fare miles\n'
        '  rule elite: award (100% + elite_bonus) of event.fare miles\n  round miles down\n',
        [
         'p.policy:7:21: warning: base_paid_twice: `event.fare` is awarded in full twice: rule '
         'base (line 6) awards `event.fare` miles, and this award `(100% + elite_bonus) of '
         'event.fare` miles pays it again\n'
         '    |   rule elite: award (100% + elite_bonus) of event.fare miles\n'
         '    |                     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n'
         '    = hint: if `elite_bonus` is the bonus on top of the base, award only it: award '
         'elite_bonus of event.fare miles',
        ],
        id='base_rule_plus_total_rate',
    ),
    # the other order: the total-rate rule first, then a base rule; the hint covers both readings
    pytest.param(
        FLIGHT + '  table elite_bonus by customer.tier:\n    "GOLD" -> 100%\n    else -> 0%\n'
        '  rule elite: award (100% + elite_bonus) of event.fare miles\n'
        '  rule base: award event.fare miles\n  round miles down\n',
        [
         'p.policy:7:20: warning: base_paid_twice: `event.fare` is awarded in full twice: rule '
         'elite (line 6) awards `(100% + elite_bonus) of event.fare` miles, and this award '
         '`event.fare` miles pays it again\n'
         '    |   rule base: award event.fare miles\n'
         '    |                    ^^^^^^^^^^\n'
         '    = hint: if `(100% + elite_bonus) of event.fare` is meant as the total, delete '
         'this award; if this is the base, award only the bonus there: award elite_bonus of '
         'event.fare miles',
        ],
        id='total_rate_rule_before_the_base_rule',
    ),
    # a second rate rule beside the base rate pays the base again
    pytest.param(
        PURCHASE + '  rule base_rate: award event.amount points\n'
        '  rule gold_rate when customer.tier == "GOLD": award 2 * event.amount points\n'
        '  round points down\n',
        [
         'p.policy:4:54: warning: base_paid_twice: `event.amount` is awarded in full twice: '
         'rule base_rate (line 3) awards `event.amount` points, and this award `2 * '
         'event.amount` points pays it again\n'
         '    |   rule gold_rate when customer.tier == "GOLD": award 2 * event.amount points\n'
         '    |                                                      ^^^^^^^^^^^^^^^^\n'
         '    = hint: the two add up to 300% of event.amount; if 200% is the total rate, award '
         'the difference in rule gold_rate: award 100% of event.amount points',
        ],
        id='second_rate_rule',
    ),
    # an `else` after rows for every cabin (never missing) is reached by no event
    pytest.param(
        FLIGHT + '  table cabin_rate by event.cabin:\n    "first", "business" -> 2\n'
        '    "premium_economy", "economy" -> 1\n    else -> 0\n  rule r: award cabin_rate miles\n',
        [
         'p.policy:6:5: warning: row_never_reached: every value of `event.cabin` ("economy", '
         '"premium_economy", "business", "first") has a row above, so no event reaches this '
         '`else` row\n'
         '    |     else -> 0\n'
         '    |     ^^^^^^^^^\n'
         '    = hint: delete the `else` row, or the rows that give the same value as it',
        ],
        id='else_after_every_enum_value',
    ),
    # in a first-hit table, a row that asks more than an earlier row is never reached
    pytest.param(
        FLIGHT + '  decide bonus first:\n    when event.cabin == "first" -> 3\n'
        '    when event.partner and event.cabin == "first" -> 4\n    else -> 0\n'
        '  rule r: award bonus miles\n',
        [
         'p.policy:5:10: warning: row_never_reached: the row on line 4 matches every event '
         'this row matches (it asks less) and comes first, so no event reaches this row\n'
         '    |     when event.partner and event.cabin == "first" -> 4\n'
         '    |          ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n'
         '    = hint: move this row above line 4, or delete it',
        ],
        id='row_asking_more_than_an_earlier_row',
    ),
    # in a first-hit table, rows that took every cabin leave nothing for the rows after them
    pytest.param(
        FLIGHT + '  decide bonus first:\n    when event.cabin in ["first", "business"] -> 2\n'
        '    when event.cabin == "premium_economy" -> 1\n    when event.cabin == "economy" -> 1\n'
        '    when event.partner -> 5\n  rule r: award bonus otherwise 0 miles\n',
        [
         'p.policy:7:5: warning: row_never_reached: the rows above take every value of '
         '`event.cabin`, so no event reaches this row\n'
         '    |     when event.partner -> 5\n'
         '    |     ^^^^^^^^^^^^^^^^^^^^^^^\n'
         '    = hint: delete this row, or move it above the rows it follows',
        ],
        id='row_after_every_enum_value_taken',
    ),
]


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_each_lint_is_a_warning_with_the_fix(source: str, expected: list[str]) -> None:
    """Each lint's warning, in full: code, place, message and the hint that shows the fix."""
    assert warnings(source) == expected


CLEAN = [
    pytest.param(FLIGHT + "  rule r: award 20% of event.fare miles\n  round miles down\n",
                 id="a_percentage_of"),
    pytest.param(FLIGHT + "  let rate = 20%\n  rule r: award rate of event.fare miles\n"
                 "  round miles down\n", id="a_percentage_binding_of"),
    pytest.param(FLIGHT + "  rule r: award 2 * event.fare miles\n  round miles down\n",
                 id="a_multiple_written_with_times"),
    # A "double stars at happy hour" rule: the base again, exactly 100%, is meant.
    pytest.param(PURCHASE + "  rule base: award event.amount points\n"
                 "  rule happy_hour when weekday(event.time) == 5: award event.amount points\n"
                 "  round points down\n", id="the_base_again_at_exactly_100_percent"),
    # A bonus from a table may be 100% or more for some tiers: that is the programme's rate.
    pytest.param(FLIGHT + '  table elite_bonus by customer.tier:\n    "GOLD" -> 100%\n'
                 "    else -> 0%\n  rule base: award event.fare miles\n"
                 "  rule elite: award elite_bonus of event.fare miles\n  round miles down\n",
                 id="a_bonus_rate_from_a_table"),
    pytest.param(FLIGHT + '  rule first when event.cabin == "first": award 2 * event.fare miles\n'
                 '  rule business when event.cabin == "business": award event.fare miles\n'
                 "  round miles down\n", id="rates_whose_rules_cannot_both_fire"),
    pytest.param(FLIGHT + "  group cabin takes best miles:\n"
                 "    rule plain: award event.fare miles\n"
                 "    rule double when event.partner: award 2 * event.fare miles\n"
                 "  round miles down\n", id="rates_in_one_group"),
    pytest.param(FLIGHT + "  rule base: award event.fare miles\n"
                 "  rule r: award 2 * event.fare credit\n  round miles down\n  round credit down\n",
                 id="rates_of_different_currencies"),
    # customer.tier may be missing: the else row is for a customer without a tier.
    pytest.param(FLIGHT + '  table rate by customer.tier:\n    "MVP", "GOLD" -> 2\n'
                 '    "PLATINUM", "75K" -> 3\n    else -> 1\n  rule r: award rate miles\n',
                 id="else_after_every_value_of_an_optional_key"),
    pytest.param(FLIGHT + '  table rate by event.cabin:\n    "first" -> 2\n    else -> 1\n'
                 "  rule r: award rate miles\n", id="else_after_some_values"),
    pytest.param(FLIGHT + "  decide bonus first:\n    when event.partner and event.cabin == \"first\" -> 4\n"
                 '    when event.cabin == "first" -> 3\n    else -> 0\n  rule r: award bonus miles\n',
                 id="the_narrower_row_first"),
    pytest.param(FLIGHT + "  decide bonus collect:\n    when event.cabin == \"first\" -> 3\n"
                 '    when event.partner and event.cabin == "first" -> 4\n'
                 "  rule r: award sum(b for b in bonus) miles\n", id="a_collect_table_takes_every_row"),
]


@pytest.mark.parametrize("source", CLEAN)
def test_what_each_lint_leaves_alone(source: str) -> None:
    """The reading in which each shape is meant draws no warning."""
    assert warnings(source) == []


def test_lints_run_only_on_a_policy_without_errors() -> None:
    """A policy with an error is not linted: the error comes first, alone."""
    result = check_policy(SCHEMA, parse(FLIGHT + "  rule r: award 20 of event.fare mils\n",
                                        "p.policy")[0])
    assert [d.code for d in result.diagnostics] == ["unknown_currency"]


def test_the_largest_first_hit_table_draws_no_false_warning() -> None:
    """5,000 rows (the most a table may have) that share a conjunct but each ask something of
    their own: none is taken for a row an earlier one shadows."""
    rows = "".join(f"    when event.fare > {i} and event.partner -> {i}\n" for i in range(5000))
    source = FLIGHT + f"  decide bonus first:\n{rows}    else -> 0\n  rule r: award bonus miles\n"
    assert warnings(source) == []


def test_every_lint_has_a_pinned_case_and_a_documented_code() -> None:
    """Each lint's code has a case above and rows in docs/language.md (the diagnostics table and
    the lints table), so a new lint comes with both."""
    # "p.policy:3:17: warning: whole_number_of: ..." -> whole_number_of
    assert {rendered.split(": ")[2] for case in CASES for rendered in case.values[1]} == set(CODES)
    docs = (Path(__file__).resolve().parents[3] / "docs" / "language.md").read_text(encoding="utf-8")
    for code in CODES:
        assert f"| warning `{code}` |" in docs, code
        assert f"| `{code}` |" in docs, code
