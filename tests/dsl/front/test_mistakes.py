"""The mistake table (dsl/front/mistakes.py): every mistake's full diagnostic, pinned.

Authors bring habits from other languages (``&&``, ``elif``, ``True``, ``// comments``); each
mistake gets a diagnostic whose hint says what to write instead. One pinned case per entry of
:data:`dsl.front.mistakes.MISTAKES` (the test ids are the entries' names), plus the indentation and
name mistakes that the lexer and the checker recognise, and a check that every example in
the table is still recognised as its own mistake.
"""

from __future__ import annotations

import pytest

import dsl
from dsl.errors import PolicyError
from dsl.front.mistakes import EXAMPLE_HEAD, MISTAKES
from dsl.front.parser import parse

SCHEMA = dsl.Schema.for_directory("policies")
HEAD = "policy p\n  on flight\n"


def rendered(source: str) -> str:
    """Every diagnostic for ``source``, rendered and joined."""
    try:
        policy_set = dsl.load_source(source, file="p.policy", schema=SCHEMA)
    except PolicyError as exc:
        return exc.render()
    return "\n\n".join(d.render() for d in policy_set.warnings)


CASES = [
    pytest.param(
        HEAD + '  rule r when event.partner && event.fare > 100: award 1 miles\n',
        [
            'p.policy:3:29: unknown_operator: unknown operator `&&`',
            '    |   rule r when event.partner && event.fare > 100: award 1 miles',
            '    |                             ^^',
            '    = hint: write `and`: event.partner and event.fare > 100',
        ],
        id='and_symbol',
    ),
    pytest.param(
        HEAD + '  rule r when event.partner || event.fare > 100: award 1 miles\n',
        [
            'p.policy:3:29: unknown_operator: unknown operator `||`',
            '    |   rule r when event.partner || event.fare > 100: award 1 miles',
            '    |                             ^^',
            '    = hint: write `or`: event.partner or event.fare > 100',
        ],
        id='or_symbol',
    ),
    pytest.param(
        HEAD + '  rule r when !event.partner: award 1 miles\n',
        [
            'p.policy:3:15: unknown_operator: unknown operator `!`',
            '    |   rule r when !event.partner: award 1 miles',
            '    |               ^',
            '    = hint: write `not`: not event.partner (and `!=` for not equal)',
        ],
        id='not_symbol',
    ),
    pytest.param(
        HEAD + '  rule r when event.cabin <> "first": award 1 miles\n',
        [
            'p.policy:3:27: unknown_operator: unknown operator `<>`',
            '    |   rule r when event.cabin <> "first": award 1 miles',
            '    |                           ^^',
            '    = hint: write `!=` for not equal',
        ],
        id='angle_not_equal',
    ),
    pytest.param(
        HEAD + '  rule r when event.cabin === "first": award 1 miles\n',
        [
            'p.policy:3:27: unknown_operator: unknown operator `===`',
            '    |   rule r when event.cabin === "first": award 1 miles',
            '    |                           ^^^',
            '    = hint: compare with `==`',
        ],
        id='triple_equals',
    ),
    pytest.param(
        HEAD + '  rule r: award 2 ** 3 miles\n',
        [
            'p.policy:3:19: unknown_operator: unknown operator `**`',
            '    |   rule r: award 2 ** 3 miles',
            '    |                   ^^',
            '    = hint: there is no power operator: multiply (x * x), or write the number',
        ],
        id='power',
    ),
    pytest.param(
        HEAD + '  let x := 5\n',
        [
            'p.policy:3:9: unknown_operator: unknown operator `:=`',
            '    |   let x := 5',
            '    |         ^^',
            '    = hint: write `let x = ...`',
        ],
        id='walrus',
    ),
    pytest.param(
        HEAD + '  rule r: award event.partner ? 1 : 2 miles\n',
        [
            'p.policy:3:31: unknown_operator: unknown operator `?`',
            '    |   rule r: award event.partner ? 1 : 2 miles',
            '    |                               ^',
            '    = hint: write `if C then A else B`',
        ],
        id='ternary',
    ),
    pytest.param(
        HEAD + '  rule r when event.partner AND event.fare > 100: award 1 miles\n',
        [
            'p.policy:3:29: syntax_error: unexpected `AND`',
            '    |   rule r when event.partner AND event.fare > 100: award 1 miles',
            '    |                             ^^^',
            '    = hint: write `and` in lower case',
        ],
        id='upper_case_and',
    ),
    pytest.param(
        HEAD + '  rule r when event.partner OR event.fare > 100: award 1 miles\n',
        [
            'p.policy:3:29: syntax_error: unexpected `OR`',
            '    |   rule r when event.partner OR event.fare > 100: award 1 miles',
            '    |                             ^^',
            '    = hint: write `or` in lower case',
        ],
        id='upper_case_or',
    ),
    pytest.param(
        HEAD + '  rule r when NOT event.partner: award 1 miles\n',
        [
            'p.policy:3:15: syntax_error: unexpected `NOT`',
            '    |   rule r when NOT event.partner: award 1 miles',
            '    |               ^^^',
            '    = hint: write `not` in lower case',
        ],
        id='upper_case_not',
    ),
    pytest.param(
        HEAD + '  rule r when event.cabin == "first" == true: award 1 miles\n',
        [
            'p.policy:3:38: syntax_error: unexpected `==`',
            '    |   rule r when event.cabin == "first" == true: award 1 miles',
            '    |                                      ^^',
            '    = hint: compare two values at a time, joined with `and`: a < b and b < c',
        ],
        id='chained_comparison',
    ),
    pytest.param(
        HEAD + '  rule r when 10%3 == 1: award 1 miles\n',
        [
            'p.policy:3:18: syntax_error: unexpected `3`',
            '    |   rule r when 10%3 == 1: award 1 miles',
            '    |                  ^',
            '    = hint: `10%` is ten percent; for a remainder put spaces around `%`: 10 % 3',
        ],
        id='percent_for_remainder',
    ),
    pytest.param(
        HEAD + '  rule r: award if event.partner then 2 elif event.fare > 100 then 1 else 0 miles\n',
        [
            'p.policy:3:41: syntax_error: unexpected `elif`',
            '    |   rule r: award if event.partner then 2 elif event.fare > 100 then 1 else 0 miles',
            '    |                                         ^^^^',
            '    = hint: write `else if`: if a then 1 else if b then 2 else 3',
        ],
        id='elif',
    ),
    pytest.param(
        HEAD + '  rule r: award if event.partner: 1 else 2 miles\n',
        [
            'p.policy:3:33: syntax_error: unexpected `:`',
            '    |   rule r: award if event.partner: 1 else 2 miles',
            '    |                                 ^',
            '    = hint: write `then` after the condition: if C then A else B',
        ],
        id='colon_for_then',
    ),
    pytest.param(
        HEAD + '  rule r: award if event.partner 1 else 2 miles\n',
        [
            'p.policy:3:34: syntax_error: unexpected `1`',
            '    |   rule r: award if event.partner 1 else 2 miles',
            '    |                                  ^',
            '    = hint: write `then` after the condition: if C then A else B',
        ],
        id='missing_then',
    ),
    pytest.param(
        HEAD + '  rule r: award if event.partner then 1 miles\n',
        [
            'p.policy:3:41: syntax_error: unexpected `miles`',
            '    |   rule r: award if event.partner then 1 miles',
            '    |                                         ^^^^^',
            '    = hint: an `if` needs an `else`: if C then A else B',
        ],
        id='missing_else',
    ),
    pytest.param(
        HEAD + '  rule r: award if event.partner then 1 else: 2 miles\n',
        [
            'p.policy:3:45: syntax_error: unexpected `:`',
            '    |   rule r: award if event.partner then 1 else: 2 miles',
            '    |                                             ^',
            '    = hint: no `:` after `else`: if C then A else B',
        ],
        id='colon_after_else',
    ),
    pytest.param(
        HEAD + '  rule r: award 5 miles if event.partner\n',
        [
            'p.policy:3:25: syntax_error: unexpected `if`',
            '    |   rule r: award 5 miles if event.partner',
            '    |                         ^^',
            '    = hint: put the condition on the rule: rule r when event.partner: award 5 miles',
        ],
        id='if_after_award',
    ),
    pytest.param(
        HEAD + '  rule r if event.partner: award 1 miles\n',
        [
            'p.policy:3:10: syntax_error: unexpected `if`',
            '    |   rule r if event.partner: award 1 miles',
            '    |          ^^',
            "    = hint: a rule's condition follows `when`: rule r when event.partner: ...",
        ],
        id='if_for_when',
    ),
    pytest.param(
        HEAD + '  rule r when event.partner then award 1 miles\n',
        [
            'p.policy:3:29: syntax_error: unexpected `then`',
            '    |   rule r when event.partner then award 1 miles',
            '    |                             ^^^^',
            '    = hint: end the condition with `:`, not `then`: rule r when C: award 1 miles',
        ],
        id='then_after_when',
    ),
    pytest.param(
        HEAD + '  rule r: return 5\n',
        [
            'p.policy:3:11: syntax_error: unexpected `return`',
            '    |   rule r: return 5',
            '    |           ^^^^^^',
            "    = hint: a rule's effects are award, grant, qualify and tag; there is no `return`",
        ],
        id='return',
    ),
    pytest.param(
        HEAD + '  let bonus = 1\n  bonus += 1\n',
        [
            'p.policy:4:3: syntax_error: unexpected `bonus`',
            '    |   bonus += 1',
            '    |   ^^^^^',
            '    = hint: values are defined once, with `let x = ...`; a policy has no variables to change',
        ],
        id='assignment',
    ),
    pytest.param(
        HEAD + '  def bonus(x):\n',
        [
            'p.policy:3:3: syntax_error: unexpected `def`',
            '    |   def bonus(x):',
            '    |   ^^^',
            '    = hint: a policy defines no functions: name a value with `let`, and call the built-in ones',
        ],
        id='function_definition',
    ),
    pytest.param(
        HEAD + '  if event.partner:\n',
        [
            'p.policy:3:3: syntax_error: unexpected `if`',
            '    |   if event.partner:',
            '    |   ^^',
            '    = hint: write a rule with a condition: rule r when event.partner: award 1 miles',
        ],
        id='if_statement',
    ),
    pytest.param(
        'policy coffee-stars\n  on visit\n  rule r: award 1 points\n',
        [
            'p.policy:1:14: syntax_error: unexpected `-`',
            '    | policy coffee-stars',
            '    |              ^',
            '    = hint: names use letters, digits and underscores: coffee_stars',
        ],
        id='hyphenated_name',
    ),
    pytest.param(
        HEAD + '  rule r: tag vip\n',
        [
            'p.policy:3:15: syntax_error: unexpected `vip`',
            '    |   rule r: tag vip',
            '    |               ^^^',
            '    = hint: benefits, tiers and tags are quoted: tag "vip"',
        ],
        id='unquoted_text',
    ),
    pytest.param(
        HEAD + '  rule r: award 5\n',
        [
            'p.policy:3:18: syntax_error: unexpected end of the line',
            '    |   rule r: award 5',
            '    |                  ^',
            '    = hint: name the currency after the amount: award 500 miles',
        ],
        id='missing_currency',
    ),
    pytest.param(
        HEAD + '  rule r: award .5 of event.fare miles\n',
        [
            'p.policy:3:17: syntax_error: unexpected `.`',
            '    |   rule r: award .5 of event.fare miles',
            '    |                 ^',
            '    = hint: write a digit before the point: 0.5',
        ],
        id='leading_point',
    ),
    pytest.param(
        HEAD + '  rule r when event.distance_miles is null: award 1 miles\n',
        [
            'p.policy:3:39: syntax_error: unexpected `null`',
            '    |   rule r when event.distance_miles is null: award 1 miles',
            '    |                                       ^^^^',
            '    = hint: write `is missing` (or `is present`)',
        ],
        id='is_null',
    ),
    pytest.param(
        HEAD + '  rule r when event.distance_miles is not missing: award 1 miles\n',
        [
            'p.policy:3:39: syntax_error: unexpected `not`',
            '    |   rule r when event.distance_miles is not missing: award 1 miles',
            '    |                                       ^^^',
            '    = hint: write `is present`',
        ],
        id='is_not_missing',
    ),
    pytest.param(
        HEAD + '  rule r when event.partner is true: award 1 miles\n',
        [
            'p.policy:3:32: syntax_error: unexpected `true`',
            '    |   rule r when event.partner is true: award 1 miles',
            '    |                                ^^^^',
            '    = hint: a true-or-false value is a condition by itself: when event.partner: ...',
        ],
        id='is_true',
    ),
    pytest.param(
        HEAD + '  rule r when event.cabin in ("first", "business"): award 1 miles\n',
        [
            'p.policy:3:38: syntax_error: unexpected `,`',
            '    |   rule r when event.cabin in ("first", "business"): award 1 miles',
            '    |                                      ^',
            '    = hint: a list is written in square brackets: ["first", "business"]',
        ],
        id='parenthesised_list',
    ),
    pytest.param(
        HEAD + '  rule r when event.cabin in {"first"}: award 1 miles\n',
        [
            'p.policy:3:30: syntax_error: unexpected character `{`',
            '    |   rule r when event.cabin in {"first"}: award 1 miles',
            '    |                              ^',
            '    = hint: lists use square brackets (["a", "b"]); a block is the indented lines after a'
            ' line ending in `:`',
        ],
        id='brace',
    ),
    pytest.param(
        HEAD + '  rule r: award 1 miles;\n',
        [
            'p.policy:3:24: syntax_error: unexpected character `;`',
            '    |   rule r: award 1 miles;',
            '    |                        ^',
            '    = hint: delete the `;`: a line ends where it ends',
        ],
        id='semicolon',
    ),
    pytest.param(
        HEAD + '  rule r: award 1 miles  // a note\n',
        [
            'p.policy:3:26: syntax_error: unexpected `/`',
            '    |   rule r: award 1 miles  // a note',
            '    |                          ^',
            '    = hint: comments start with `#`',
        ],
        id='slash_comment',
    ),
    pytest.param(
        'policy p:\n  on flight\n  rule r: award 1 miles\n',
        [
            'p.policy:1:9: syntax_error: unexpected `:`',
            '    | policy p:',
            '    |         ^',
            '    = hint: delete the `:`; only rule, group, table and decide lines end with one',
        ],
        id='trailing_colon',
    ),
    pytest.param(
        'policy p\n  on: flight\n  rule r: award 1 miles\n',
        [
            'p.policy:2:5: syntax_error: unexpected `:`',
            '    |   on: flight',
            '    |     ^',
            '    = hint: header lines take no `:`: on flight, version 2',
        ],
        id='header_colon',
    ),
    pytest.param(
        HEAD + '  rule r: award 1 miles\n  cap miles at 100 per day\n',
        [
            'p.policy:4:20: syntax_error: a cap has no period: it limits one evaluation',
            '    |   cap miles at 100 per day',
            '    |                    ^^^',
            '    = hint: declare a counter, count each award toward it, and cap what is left: counter'
            ' miles_today: count per day, then cap miles at max(0, 100 - history.miles_today)',
        ],
        id='cap_per_period',
    ),
    pytest.param(
        HEAD + '  counter c: count per 7 days\n  rule r: award 1 miles\n',
        [
            'p.policy:3:24: syntax_error: a period of a number of days is rolling',
            '    |   counter c: count per 7 days',
            '    |                        ^',
            '    = hint: write `per rolling 7 days` for the 7 days up to the event, or `per week` for'
            ' the calendar week',
        ],
        id='rolling_without_rolling',
    ),
    pytest.param(
        HEAD + '  counter c: sum quarter\n  rule r: award 1 miles\n',
        [
            'p.policy:3:18: syntax_error: unexpected `quarter`',
            '    |   counter c: sum quarter',
            '    |                  ^^^^^^^',
            '    = hint: write the period after `per`: counter spend: sum per quarter',
        ],
        id='period_without_per',
    ),
    pytest.param(
        HEAD + '  counter c per day\n  rule r: award 1 miles\n',
        [
            'p.policy:3:13: syntax_error: unexpected `per`',
            '    |   counter c per day',
            '    |             ^^^',
            '    = hint: say what the counter adds up after a colon: counter spend: sum per quarter'
            ' (amounts), or counter visits: count per day (1 a counted event)',
        ],
        id='counter_without_kind',
    ),
    pytest.param(
        HEAD + '  counter visits: count per day\n  rule r: count 1 towards visits\n',
        [
            'p.policy:4:19: syntax_error: unexpected `towards`',
            '    |   rule r: count 1 towards visits',
            '    |                   ^^^^^^^',
            '    = hint: write `toward`: count 1 toward visits',
        ],
        id='count_towards',
    ),
    pytest.param(
        HEAD + '  rule r:\n    award 1 miles\n      tag "x"\n',
        [
            'p.policy:5:7: bad_indent: this line is indented more than the line above it, which opens'
            ' no block',
            '    |       tag "x"',
            '    |       ^',
            '    = hint: line it up with the line above; only a line ending in `:` (rule, group,'
            ' table, decide) opens an indented block',
        ],
        id='over_indented',
    ),
    pytest.param(
        HEAD + '  rule a: award 1 miles\n    rule b: award 2 miles\n',
        [
            'p.policy:4:5: bad_indent: this line is indented more than the line above it, which opens'
            ' no block',
            '    |     rule b: award 2 miles',
            '    |     ^',
            '    = hint: line it up with the line above; only a line ending in `:` (rule, group,'
            ' table, decide) opens an indented block',
        ],
        id='over_indented_after_one_line_rule',
    ),
    pytest.param(
        HEAD + '  rule r:\n    award 1 miles\n   tag "x"\n',
        [
            "p.policy:5:1: bad_indent: this line's indentation matches no enclosing block",
            '    |    tag "x"',
            '    | ^^^',
            '    = hint: line it up with the block it belongs to: indent it by 2 or 4 spaces',
        ],
        id='under_indented',
    ),
    pytest.param(
        HEAD + '  rule r when event.partner == True: award 1 miles\n',
        [
            'p.policy:3:32: unknown_name: unknown name `True`',
            '    |   rule r when event.partner == True: award 1 miles',
            '    |                                ^^^^',
            '    = hint: write `true`',
        ],
        id='python_true',
    ),
    pytest.param(
        HEAD + '  rule r when event.partner == False: award 1 miles\n',
        [
            'p.policy:3:32: unknown_name: unknown name `False`',
            '    |   rule r when event.partner == False: award 1 miles',
            '    |                                ^^^^^',
            '    = hint: write `false`',
        ],
        id='python_false',
    ),
    pytest.param(
        HEAD + '  rule r when event.distance_miles == None: award 1 miles\n',
        [
            'p.policy:3:39: unknown_name: unknown name `None`',
            '    |   rule r when event.distance_miles == None: award 1 miles',
            '    |                                       ^^^^',
            '    = hint: a missing value has no literal: test it with `x is missing`, or give a'
            ' default with `x otherwise 0`',
        ],
        id='python_none',
    ),
    pytest.param(
        HEAD + '  rule r when event.distance_miles != null: award 1 miles\n',
        [
            'p.policy:3:39: unknown_name: unknown name `null`',
            '    |   rule r when event.distance_miles != null: award 1 miles',
            '    |                                       ^^^^',
            '    = hint: a missing value has no literal: test it with `x is missing`, or give a'
            ' default with `x otherwise 0`',
        ],
        id='null',
    ),
    pytest.param(
        HEAD + "  rul r: award 1 miles\n",
        [
            "p.policy:3:3: syntax_error: unexpected `rul`",
            "    |   rul r: award 1 miles",
            "    |   ^^^",
            "    = hint: did you mean `rule`?",
        ],
        id="misspelt_keyword",
    ),
    pytest.param(
        HEAD + "  rule r:\n    awrd 1 miles\n",
        [
            "p.policy:4:5: syntax_error: unexpected `awrd`",
            "    |     awrd 1 miles",
            "    |     ^^^^",
            "    = hint: did you mean `award`?",
        ],
        id="misspelt_effect",
    ),
    pytest.param(
        HEAD + "  Rule r: award 1 miles\n",
        [
            "p.policy:3:3: syntax_error: unexpected `Rule`",
            "    |   Rule r: award 1 miles",
            "    |   ^^^^",
            "    = hint: did you mean `rule`?",
        ],
        id="capitalised_keyword",
    ),
    pytest.param(
        HEAD + '  let base = 500\n  rule r: award base\n  rule s: award 1 miles\n',
        [
            'p.policy:4:21: syntax_error: unexpected end of the line',
            '    |   rule r: award base',
            '    |                     ^',
            '    = hint: name the currency after the amount: award 500 miles',
        ],
        id='missing_currency_mid_file',
    ),
    pytest.param(
        HEAD + '  let base = 500\n  rule r: award 20 % of base points\n',
        [
            'p.policy:4:20: syntax_error: `%` here is the remainder, and `of` a name',
            '    |   rule r: award 20 % of base points',
            '    |                    ^^^^',
            '    = hint: write `20%` with no space before `%` for a percentage: 20% of ...; `%` '
            'after a space is the remainder (10 % 3)',
        ],
        id='remainder_for_percent',
    ),
    pytest.param(
        HEAD + '  let elite_bonus = 50%\n  rule r: award elite_bonus% of event.fare miles\n'
        '  round miles down\n',
        [
            'p.policy:4:28: syntax_error: `%` here is the remainder, and `of` a name',
            '    |   rule r: award elite_bonus% of event.fare miles',
            '    |                            ^^^^',
            '    = hint: `%` makes a percentage only after a number (20%); `elite_bonus` already '
            'holds its rate, so write `elite_bonus of ...` (and give it percentages where it is '
            'defined: 20%, not 20)',
        ],
        id='remainder_for_percent_after_name',
    ),
    pytest.param(
        HEAD + '  rule r when customer.member_since > 90: award 1 miles\n',
        [
            'p.policy:3:15: type_error: cannot compare customer.member_since (date) with 90 (int)',
            '    |   rule r when customer.member_since > 90: award 1 miles',
            '    |               ^^^^^^^^^^^^^^^^^^^^^^^^^^',
            '    = hint: a number is not a date: compare with a date such as 2026-03-01, or '
            'count the days: days_between(customer.member_since, event.date) > 90',
        ],
        id='date_compared_with_number',
    ),
    pytest.param(
        HEAD + '  rule r when event.date >= 2026: award 1 miles\n',
        [
            'p.policy:3:15: type_error: cannot compare event.date (date) with 2026 (int)',
            '    |   rule r when event.date >= 2026: award 1 miles',
            '    |               ^^^^^^^^^^^^^^^^^^',
            '    = hint: a number is not a date: to compare the year, write year(event.date) >= '
            '2026; or compare with a date such as 2026-01-01',
        ],
        id='year_compared_with_number',
    ),
    pytest.param(
        HEAD + '  rule r when event.time - event.time > 30: award 1 miles\n',
        [
            'p.policy:3:15: type_error: cannot compare event.time - event.time (duration) with 30 (int)',
            '    |   rule r when event.time - event.time > 30: award 1 miles',
            '    |               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^',
            '    = hint: a duration compares with a duration: write a unit after the number, '
            'such as 30 days or 30 minutes (or count minutes with minutes(...))',
        ],
        id='duration_compared_with_number',
    ),
]


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_mistake_diagnostic_text(source: str, expected: list[str]) -> None:
    """Each common mistake gets exactly this diagnostic, whose hint says what to write instead."""
    assert rendered(source).split("\n") == expected


def test_every_mistake_in_the_table_has_a_pinned_case() -> None:
    """A new entry in the table comes with its pinned diagnostic."""
    pinned = {case.id for case in CASES}
    assert [m.name for m in MISTAKES if m.name not in pinned] == []


@pytest.mark.parametrize(
    ("name", "example"),
    [pytest.param(m.name, ex, id=f"{m.name}-{i}") for m in MISTAKES for i, ex in enumerate(m.examples)],
)
def test_every_example_is_recognised_as_its_mistake(name: str, example: str) -> None:
    """Each example still fails where its mistake says, and gets that mistake's code and hint
    (after a grammar change, an example that no longer matches fails here, not silently)."""
    mistake = next(m for m in MISTAKES if m.name == name)
    source = example if example.startswith("policy") else EXAMPLE_HEAD + example
    with pytest.raises(PolicyError) as info:
        parse(source + "\n", file="p.policy")
    [diagnostic] = info.value.diagnostics
    assert diagnostic.code == mistake.code
    fixed = mistake.hint.split("{", 1)[0]
    assert diagnostic.hint.startswith(fixed), diagnostic.render()


def test_there_are_at_least_25_mistakes() -> None:
    """The table covers the common mistakes the issue lists, and more."""
    assert len(MISTAKES) >= 25


@pytest.mark.parametrize("source", [
    pytest.param(HEAD + "  let x = 100 per day\n  rule r: award x miles\n", id="per-outside-a-cap"),
    pytest.param(HEAD + "  rule r when event.fare > 1 foo: award 1 miles\n", id="unknown-word"),
])
def test_other_errors_keep_the_plain_syntax_error(source: str) -> None:
    """A failure that is none of the table's mistakes keeps the parser's own words."""
    with pytest.raises(PolicyError) as info:
        dsl.load_source(source, file="p.policy", schema=SCHEMA)
    [diagnostic] = info.value.diagnostics
    assert diagnostic.code == "syntax_error"
    assert "caller keeps" not in diagnostic.hint
