"""Every diagnostic's full text, pinned: the wording is part of the product."""

from __future__ import annotations

import pytest

import dsl
from dsl.errors import PolicyError

SCHEMA = dsl.Schema.for_directory("policies")
HEAD = "policy p\n  on flight\n"


def rendered(source: str) -> str:
    """Every diagnostic for ``source`` (errors and warnings), rendered and joined."""
    try:
        policy_set = dsl.load_source(source, file="p.policy", schema=SCHEMA)
    except PolicyError as exc:
        return exc.render()
    return "\n\n".join(d.render() for d in policy_set.warnings)


CASES = [
    pytest.param(
        HEAD + "  rule r: award 1\u09ea miles\n",
        [
            "p.policy:3:17: non_ascii_digit: `\u09ea` is not an ASCII digit: it is BENGALI DIGIT FOUR "
            "(U+09EA), the digit 4",
            "    |   rule r: award 1\u09ea miles",
            "    |                 ^^",
            "    = hint: write numbers with the ASCII digits 0-9; a digit from another script is never "
            "read as a number",
        ],
        id="bengali_digit_looks_like_8",
    ),
    pytest.param(
        HEAD + "  rule r when event.fare > \uff15\uff10\uff10: award 1 miles\n",
        [
            "p.policy:3:28: non_ascii_digit: `\uff15` is not an ASCII digit: it is FULLWIDTH DIGIT FIVE "
            "(U+FF15), the digit 5",
            "    |   rule r when event.fare > \uff15\uff10\uff10: award 1 miles",
            "    |                            ^^^",
            "    = hint: write numbers with the ASCII digits 0-9; a digit from another script is never "
            "read as a number",
        ],
        id="fullwidth_digits",
    ),
    pytest.param(
        HEAD + "  rule r when tenure_years(customer.member_snce, event.date) > 2: award 1 miles\n",
        [
            "p.policy:3:28: unknown_field: customer has no field `member_snce`",
            "    |   rule r when tenure_years(customer.member_snce, event.date) > 2: award 1 miles",
            "    |                            ^^^^^^^^^^^^^^^^^^^^",
            "    = hint: did you mean `member_since`?",
        ],
        id="unknown_field",
    ),
    pytest.param(
        HEAD + '  rule r when event.fare > "500": award 1 miles\n',
        [
            'p.policy:3:15: type_error: cannot compare event.fare (decimal) with "500" (string)',
            '    |   rule r when event.fare > "500": award 1 miles',
            "    |               ^^^^^^^^^^^^^^^^^^",
            "    = hint: write the number without quotes: 500",
        ],
        id="string_number",
    ),
    pytest.param(
        HEAD + "  rule r: award 1 miles\n  rule r: award 2 miles\n",
        [
            "p.policy:4:8: duplicate_name: rule r is already defined on line 3",
            "    |   rule r: award 2 miles",
            "    |        ^",
            "    = hint: give each rule its own name",
        ],
        id="duplicate_rule",
    ),
    pytest.param(
        HEAD + "  rule r when event.fare > 10 and event.fare < 5: award 1 miles\n",
        [
            "p.policy:3:15: never_fires: rule r can never fire: `event.fare > 10` and `event.fare < 5` cannot both hold",
            "    |   rule r when event.fare > 10 and event.fare < 5: award 1 miles",
            "    |               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
            "    = hint: correct the condition or delete the rule",
        ],
        id="contradiction",
    ),
    pytest.param(
        HEAD
        + "  group g takes first:\n    rule a: award 1 miles\n    rule b when event.partner: award 2 miles\n",
        [
            "p.policy:5:10: never_fires: rule b can never fire: group g takes the first rule that applies, and rule a (line 4) always does",
            "    |     rule b when event.partner: award 2 miles",
            "    |          ^",
            "    = hint: move this rule above it, or delete it",
        ],
        id="shadowed_in_first_group",
    ),
    pytest.param(
        HEAD
        + '  table t by customer.tier:\n    "GOLD" -> 1\n    "GOLD" -> 2\n    else -> 0\n  rule r: award t miles\n',
        [
            'p.policy:5:5: unreachable_row: key "GOLD" already appears on line 4, so this row is never used',
            '    |     "GOLD" -> 2',
            "    |     ^^^^^^",
            "    = hint: delete one of the two rows",
        ],
        id="duplicate_key",
    ),
    pytest.param(
        HEAD
        + "  decide level first:\n    when true -> 1\n    when event.partner -> 2\n    else -> 3\n  rule r: award level miles\n",
        [
            "p.policy:5:5: unreachable_row: the row on line 4 always matches, so this row is never used",
            "    |     when event.partner -> 2",
            "    |     ^^^^^^^^^^^^^^^^^^^^^^^",
            "    = hint: put this row before it, or delete it",
        ],
        id="decide_after_catch_all",
    ),
    pytest.param(
        "policy p\n  effective 2026-12-31 to 2026-01-01\n  on flight\n  rule r: award 1 miles\n",
        [
            "p.policy:2:3: empty_window: the effective window ends (2026-01-01) before it starts (2026-12-31), so the policy would never apply",
            "    |   effective 2026-12-31 to 2026-01-01",
            "    |   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
            "    = hint: swap the dates, or correct the end date",
        ],
        id="empty_window",
    ),
    pytest.param(
        HEAD + '  rule r: award "25" % 10 miles\n',
        [
            'p.policy:3:17: type_error: cannot take the remainder of "25" (string) divided by 10 (int)',
            '    |   rule r: award "25" % 10 miles',
            "    |                 ^^^^^^^^^",
            "    = hint: write numbers without quotes",
        ],
        id="remainder_of_string",
    ),
    pytest.param(
        HEAD + "  rule r: award 1 mils\n",
        [
            "p.policy:3:19: unknown_currency: unknown currency `mils`",
            "    |   rule r: award 1 mils",
            "    |                   ^^^^",
            "    = hint: did you mean `miles`?",
        ],
        id="unknown_currency",
    ),
    pytest.param(
        HEAD + "  rule r: award 10% of event.fare miles\n",
        [
            "p.policy:3:17: missing_rounding: 10% of event.fare may not be a whole amount of miles, and the policy does not say how to round it",
            "    |   rule r: award 10% of event.fare miles",
            "    |                 ^^^^^^^^^^^^^^^^^",
            "    = hint: add a line such as `round miles down` to the policy",
        ],
        id="missing_rounding",
    ),
    pytest.param(
        HEAD + "  rule r when event.distance_miles > 500: award 1 miles\n",
        [
            "p.policy:3:15: optional_value: event.distance_miles may be missing, and this use needs a value",
            "    |   rule r when event.distance_miles > 500: award 1 miles",
            "    |               ^^^^^^^^^^^^^^^^^^^^",
            "    = hint: give a default: `event.distance_miles otherwise 0`, or check it first: `event.distance_miles is present and ...`",
        ],
        id="optional_value",
    ),
    pytest.param(
        HEAD + '  rule r when event.cabin == "frist": award 1 miles\n',
        [
            'p.policy:3:30: unknown_value: "frist" is not a possible value here (one of: economy, premium_economy, business, first)',
            '    |   rule r when event.cabin == "frist": award 1 miles',
            "    |                              ^^^^^^^",
            "    = hint: did you mean `first`?",
        ],
        id="unknown_enum_value",
    ),
    pytest.param(
        "policy p\n  on flihgt\n  rule r: award 1 miles\n",
        [
            'p.policy:2:3: unknown_event_kind: unknown event kind "flihgt"',
            "    |   on flihgt",
            "    |   ^^^^^^^^^",
            "    = hint: did you mean `flight`?",
        ],
        id="unknown_kind",
    ),
    pytest.param(
        HEAD + "  let a = b + 1\n  let b = 2\n  rule r: award a miles\n",
        [
            "p.policy:3:11: unknown_name: `b` is used before it is defined (line 4)",
            "    |   let a = b + 1",
            "    |           ^",
            "    = hint: move its definition above this line",
            "",
            "p.policy:4:3: warning: unused_binding: `b` is defined but never used",
            "    |   let b = 2",
            "    |   ^^^^^^^^^",
            "    = hint: use it or delete it",
        ],
        id="used_before_defined",
    ),
    pytest.param(
        HEAD + "  rule r when tenure_year(customer.member_since, event.date) > 1: award 1 miles\n",
        [
            "p.policy:3:15: unknown_function: unknown function `tenure_year`",
            "    |   rule r when tenure_year(customer.member_since, event.date) > 1: award 1 miles",
            "    |               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
            "    = hint: did you mean `tenure_years`?",
        ],
        id="unknown_function",
    ),
    pytest.param(
        HEAD + "  rule r: award floor(1, 2) miles\n",
        [
            "p.policy:3:17: wrong_arguments: floor() takes 1 argument, not 2",
            "    |   rule r: award floor(1, 2) miles",
            "    |                 ^^^^^^^^^^^",
            "    = hint: see docs/language.md, built-in functions",
        ],
        id="wrong_arguments",
    ),
    pytest.param(
        HEAD + "  let __class__ = 1\n  rule r: award 1 miles\n",
        [
            "p.policy:3:3: reserved_name: `__class__` is not allowed as a binding name: names may not start with _ or contain __",
            "    |   let __class__ = 1",
            "    |   ^^^^^^^^^^^^^^^^^",
            "    = hint: rename it with letters, digits and single underscores",
        ],
        id="reserved_name",
    ),
    pytest.param(
        "policy p\n  rule r: award 1 miles\n",
        [
            "p.policy:1:8: missing_event_kind: policy p does not say which events it applies to",
            "    | policy p",
            "    |        ^",
            "    = hint: add a line such as `on flight` under the policy name",
        ],
        id="missing_event_kind",
    ),
    pytest.param(
        HEAD + '  rule r: qualify for "GOLDEN"\n',
        [
            'p.policy:3:11: unknown_tier: unknown tier "GOLDEN"',
            '    |   rule r: qualify for "GOLDEN"',
            "    |           ^^^^^^^^^^^^^^^^^^^^",
            "    = hint: did you mean `GOLD`?",
        ],
        id="unknown_tier",
    ),
    pytest.param(
        HEAD + '  rule r: grant "priority-rebookng"\n',
        [
            'p.policy:3:11: unknown_benefit: unknown benefit "priority-rebookng"',
            '    |   rule r: grant "priority-rebookng"',
            "    |           ^^^^^^^^^^^^^^^^^^^^^^^^^",
            "    = hint: did you mean `priority-rebooking`?",
        ],
        id="unknown_benefit",
    ),
    pytest.param(
        HEAD + '  rule r: grant "late-arrival-grace" with grace = 15\n',
        [
            'p.policy:3:51: type_error: parameter grace of "late-arrival-grace" is duration, but 15 is int',
            '    |   rule r: grant "late-arrival-grace" with grace = 15',
            "    |                                                   ^^",
            "    = hint: write a duration such as 15 minutes",
        ],
        id="benefit_parameter",
    ),
    pytest.param(
        HEAD + "  rule r when event.partner\n    award 1 miles\n",
        [
            "p.policy:3:28: syntax_error: unexpected end of the line",
            "    |   rule r when event.partner",
            "    |                            ^",
            "    = hint: add `:` at the end of the line",
        ],
        id="missing_colon",
    ),
    pytest.param(
        HEAD + '  rule r when event.cabin = "first": award 1 miles\n',
        [
            "p.policy:3:27: syntax_error: unexpected `=`",
            '    |   rule r when event.cabin = "first": award 1 miles',
            "    |                           ^",
            "    = hint: compare with `==`",
        ],
        id="single_equals",
    ),
    pytest.param(
        HEAD + '  rule r when event.cabin == "first: award 1 miles\n',
        [
            "p.policy:3:30: syntax_error: this string is not closed",
            '    |   rule r when event.cabin == "first: award 1 miles',
            "    |                              ^^^^^^^^^^^^^^^^^^^^^",
            '    = hint: end the string with " on the same line',
        ],
        id="unclosed_string",
    ),
    pytest.param(
        HEAD + "  rule r when event.time - event.time > 2 years: award 1 miles\n",
        [
            "p.policy:3:15: type_error: cannot compare event.time - event.time (duration) with "
            "2 years (months)",
            "    |   rule r when event.time - event.time > 2 years: award 1 miles",
            "    |               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
            "    = hint: a calendar span (months, quarters, years) has no fixed length: move a date "
            "by it (customer.member_since + 2 years <= event.date), or count whole months or years "
            "with tenure_months(...) or tenure_years(...)",
        ],
        id="years_duration",
    ),
    pytest.param(
        HEAD + "  rule r: award miles 500\n",
        [
            "p.policy:3:23: syntax_error: unexpected `500`",
            "    |   rule r: award miles 500",
            "    |                       ^^^",
            "    = hint: write the amount before the currency: award 500 miles",
        ],
        id="currency_first",
    ),
    pytest.param(
        "policy p\n\ton flight\n  rule r: award 1 miles\n",
        [
            "p.policy:2:1: tab_indent: indentation uses a tab",
            "    | \ton flight",
            "    | ^",
            "    = hint: indent with spaces only (two per level is the house style)",
        ],
        id="tab_indent",
    ),
    pytest.param(
        "policy p\n  effective from 2026-02-30\n  on flight\n  rule r: award 1 miles\n",
        [
            "p.policy:2:18: bad_date: 2026-02-30 is not a date that exists",
            "    |   effective from 2026-02-30",
            "    |                  ^^^^^^^^^^",
            "    = hint: check the month and the day",
        ],
        id="bad_date",
    ),
]


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_diagnostic_text(source: str, expected: list[str]) -> None:
    """Each mistake gets exactly this diagnostic: place, code, message, caret and hint."""
    assert rendered(source).split("\n") == expected


def test_non_ascii_digits_in_strings_and_comments_are_text() -> None:
    """Only number literals are ASCII-only: a string or a comment may hold any digit."""
    source = HEAD + "  # \u09ea\u09ea\n  rule r:\n    award 1 miles\n    tag \"vip-\u09ea\"\n"
    policy_set = dsl.load_source(source, file="p.policy", schema=SCHEMA)
    assert list(policy_set.policies[0].rules) == ["r"]


def test_a_non_ascii_digit_is_never_read_as_a_number() -> None:
    """`award 1\u09ea miles` used to award 14 miles; it is refused, with the stable code."""
    with pytest.raises(PolicyError) as info:
        dsl.load_source(HEAD + "  rule r: award 1\u09ea miles\n", file="p.policy", schema=SCHEMA)
    assert [d.code for d in info.value.diagnostics] == ["non_ascii_digit"]
