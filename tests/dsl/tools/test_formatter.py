"""The formatter (``dsl.tools.formatter``) and ``loyalty fmt``.

Table tests pin the house layout one rule at a time; property tests feed the formatter
random, deliberately untidy policy text and hold it to its two promises: formatting twice
changes nothing more, and the formatted text parses to the same policies with the same
comments.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import textwrap
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from strategies import KINDS, policy_sources
from strategies import SCHEMA as TEST_SCHEMA

import dsl
from dsl.errors import PolicyError
from dsl.front import nodes as n
from dsl.front.parser import parse
from dsl.input.request import MappingDecoder
from dsl.policyset import build
from dsl.programme import read_sources
from dsl.tools import exprlayout, formatter
from dsl.tools.formatter import FormatError, comments, format_source, structure
from dsl.tools.testing import load_case_file
from tests.dsl.input.reference import prepare_customer, prepare_event

ROOT = Path(__file__).resolve().parents[3]
POLICIES = ROOT / "policies"
EXAMPLES = sorted(POLICIES.rglob("*.policy"))


def fmt(text: str) -> str:
    return format_source(textwrap.dedent(text).lstrip("\n"), "test.policy")


def canon(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# -- layout: one house rule per case ---------------------------------------------------

LAYOUT = [
    pytest.param(
        """
        policy   p
            on   flight ,purchase
            let  a=1+2
        """,
        """
        policy p
          on flight, purchase

          let a = 1 + 2
        """,
        id="two-space-indent-and-single-spaces",
    ),
    pytest.param(
        """
        policy p
          "Describe."
          on flight
          effective from 2026-01-01
          version 2
          let a = 1
        """,
        """
        policy p
          version 2
          effective from 2026-01-01
          on flight
          "Describe."

          let a = 1
        """,
        id="headers-in-canonical-order-then-one-blank-line",
    ),
    pytest.param(
        """
        policy p
          version 1

          effective 2026-01-01 to 2026-12-31


          let a = 1



          let b = 2
          let c = 3
        """,
        """
        policy p
          version 1
          effective 2026-01-01 to 2026-12-31

          let a = 1

          let b = 2
          let c = 3
        """,
        id="blank-lines-kept-once-between-members-dropped-in-header",
    ),
    pytest.param(
        """
        policy p
          let a = 1
        policy q
          let b = 2
        """,
        """
        policy p

          let a = 1

        policy q

          let b = 2
        """,
        id="one-blank-line-between-policies",
    ),
    pytest.param(
        """
        policy p
          table t by customer.tier:

            "GOLD" -> 2


            "SILVER","BRONZE"->1
            else->0
        """,
        """
        policy p

          table t by customer.tier:
            "GOLD" -> 2

            "SILVER", "BRONZE" -> 1
            else -> 0
        """,
        id="table-rows-no-blank-at-block-start",
    ),
    pytest.param(
        """
        policy p
          decide level   collect :
            when a>1->"x"
            else -> "y"
        """,
        """
        policy p

          decide level collect:
            when a > 1 -> "x"
            else -> "y"
        """,
        id="decision-table",
    ),
    pytest.param(
        """
        policy p
          rule a when x > 1:
              award 5 miles
          rule b: award 1 miles
          rule c:
            award 1 miles
            tag "t"
        """,
        """
        policy p

          rule a when x > 1: award 5 miles
          rule b: award 1 miles
          rule c:
            award 1 miles
            tag "t"
        """,
        id="one-effect-rules-on-one-line-several-in-a-block",
    ),
    pytest.param(
        """
        policy p
          rule a_rule_with_a_long_name when customer.lifetime.miles >= 100000 and event.cabin == "business": award 5 miles
        """,  # noqa: E501
        """
        policy p

          rule a_rule_with_a_long_name when customer.lifetime.miles >= 100000 and event.cabin == "business":
            award 5 miles
        """,
        id="one-effect-rule-too-long-for-one-line-becomes-a-block",
    ),
    pytest.param(
        """
        policy p
          group g   takes   best miles :
            rule a: award 1 miles
            rule b: award 2 miles
          group h takes first:
            rule c: grant "lounge" with guests=1,grace = 15 minutes
        """,
        """
        policy p

          group g takes best miles:
            rule a: award 1 miles
            rule b: award 2 miles
          group h takes first:
            rule c: grant "lounge" with guests = 1, grace = 15 minutes
        """,
        id="groups-and-grant-parameters",
    ),
    pytest.param(
        """
        policy p
          rule a: award 10% of base miles up to 500
          rule b: qualify for "GOLD"
          cap miles at 25_000
          round miles half   even
        """,
        """
        policy p

          rule a: award 10% of base miles up to 500
          rule b: qualify for "GOLD"
          cap miles at 25_000
          round miles half even
        """,
        id="effects-caps-and-rounding",
    ),
]


@pytest.mark.parametrize(("source", "expected"), LAYOUT)
def test_layout(source: str, expected: str) -> None:
    """Each house layout rule turns the untidy source into exactly the canonical text."""
    assert fmt(source) == canon(expected)


# -- parentheses and spacing in expressions ---------------------------------------------

EXPRESSIONS = [
    pytest.param("((1+2)*3)", "(1 + 2) * 3", id="parens-kept-where-precedence-needs-them"),
    pytest.param("1+(2*3)", "1 + 2 * 3", id="parens-dropped-where-precedence-agrees"),
    pytest.param("a-(b-c)", "a - (b - c)", id="right-operand-of-minus-keeps-parens"),
    pytest.param("(a-b)-c", "a - b - c", id="left-associative-minus"),
    pytest.param("a otherwise (b otherwise c)", "a otherwise b otherwise c",
                 id="otherwise-is-right-associative"),
    pytest.param("(a otherwise b) otherwise c", "(a otherwise b) otherwise c",
                 id="otherwise-left-nesting-keeps-parens"),
    pytest.param("not (a == b)", "not a == b", id="not-binds-looser-than-comparison"),
    pytest.param("(not a) == b", "(not a) == b", id="not-as-comparison-operand"),
    pytest.param("a or b and c", "a or (b and c)", id="and-inside-or-always-parenthesised"),
    pytest.param("(not a) otherwise (not b)", "(not a) otherwise (not b)",
                 id="not-inside-otherwise-keeps-parens"),
    pytest.param("(a or b) and c", "(a or b) and c", id="or-inside-and-needs-parens"),
    pytest.param("(x otherwise 0) > 5", "x otherwise 0 > 5",
                 id="otherwise-binds-tighter-than-comparison"),
    pytest.param("x otherwise (1 + 2)", "x otherwise 1 + 2", id="sum-binds-tighter-than-otherwise"),
    pytest.param("(x otherwise 1) + 2", "(x otherwise 1) + 2", id="otherwise-inside-sum-keeps-parens"),
    pytest.param("(a + b) in [1,2 , 3]", "a + b in [1, 2, 3]", id="sum-binds-tighter-than-in"),
    pytest.param("a not  in b", "a not in b", id="not-in-spacing"),
    pytest.param("(a) is   missing", "a is missing", id="presence"),
    pytest.param("(a < b) == c", "(a < b) == c", id="comparisons-do-not-chain"),
    pytest.param("-(a.b)", "-a.b", id="unary-minus-below-attribute"),
    pytest.param("(-a).b", "(-a).b", id="attribute-of-negation"),
    pytest.param("(-5).b", "(-5).b", id="attribute-of-negative-number"),
    pytest.param("- - 5", "5", id="double-minus-on-a-number-cancels"),
    pytest.param("-(5)", "-5", id="negative-number"),
    pytest.param("a - -5", "a - -5", id="minus-a-negative-number"),
    pytest.param("-50% of x", "-50% of x", id="negative-percent"),
    pytest.param("max( a ,b )", "max(a, b)", id="call-spacing"),
    pytest.param("f( )", "f()", id="empty-call"),
    pytest.param("[ ]", "[]", id="empty-list"),
    pytest.param("sum( i.amount for i in event.items where (i.qty>1) )",
                 "sum(i.amount for i in event.items where i.qty > 1)", id="aggregate"),
    pytest.param("if (a) then (b+1) else (c)", "if a then b + 1 else c", id="if-minimal"),
    pytest.param("(if a then b else c) + 1", "(if a then b else c) + 1",
                 id="if-as-an-operand-keeps-parens"),
    pytest.param("if a then b else if c then d else e", "if a then b else if c then d else e",
                 id="else-if-chain"),
    pytest.param("if (if a then b else c) then d else e", "if (if a then b else c) then d else e",
                 id="if-as-condition-keeps-parens"),
    pytest.param("x*y/z of w", "x * y / z of w", id="product-chain"),
    pytest.param("x*(y/z)", "x * (y / z)", id="right-nested-product-keeps-parens"),
]


@pytest.mark.parametrize(("written", "canonical"), EXPRESSIONS)
def test_expression_layout(written: str, canonical: str) -> None:
    """Expressions get single spaces around operators and only the parentheses they need."""
    out = fmt(f"policy p\n  let v = {written}\n")
    assert out == f"policy p\n\n  let v = {canonical}\n"


LITERALS = [
    pytest.param("25_000", "25_000", id="digit-grouping-kept"),
    pytest.param("420.00", "420.00", id="decimal-trailing-zeros-kept"),
    pytest.param("12.50%", "12.50%", id="percent-kept"),
    pytest.param('"say \\"hi\\"\\t\\\\"', '"say \\"hi\\"\\t\\\\"', id="string-escapes"),
    pytest.param('"tab\there"', '"tab\\there"', id="raw-tab-in-string-escaped"),
    pytest.param('"#not a comment"', '"#not a comment"', id="hash-inside-string"),
    pytest.param("1 minutes", "1 minute", id="duration-singular"),
    pytest.param("15minute", "15 minutes", id="duration-plural"),
    pytest.param("2026-03-01T09:30:00Z", "2026-03-01T09:30:00Z", id="datetime-kept"),
    pytest.param("2026-03-01", "2026-03-01", id="date"),
    pytest.param("true", "true", id="boolean"),
]


@pytest.mark.parametrize(("written", "canonical"), LITERALS)
def test_literal_forms(written: str, canonical: str) -> None:
    """Literals take their canonical spelling without changing their exact value."""
    out = fmt(f"policy p\n  let v = {written}\n")
    assert out == f"policy p\n\n  let v = {canonical}\n"


def test_award_amount_that_would_read_as_a_duration_keeps_parentheses() -> None:
    """``award (5) days`` must not become ``award 5 days``, which is a duration with no currency."""
    assert fmt("policy p\n  rule r: award (5) days\n") == "policy p\n\n  rule r: award (5) days\n"
    assert fmt("policy p\n  rule r: award (x) days\n") == "policy p\n\n  rule r: award x days\n"
    assert fmt("policy p\n  rule r: award (30) seconds\n") == "policy p\n\n  rule r: award (30) seconds\n"


def test_crlf_line_ends_become_lf() -> None:
    """A file written with CRLF line ends comes out with LF line ends."""
    assert fmt("policy p\r\n  let a = 1  # one\r\n") == "policy p\n\n  let a = 1  # one\n"


# -- long lines ----------------------------------------------------------------------------

LONG = [
    pytest.param(
        """
        policy p
          let eligible = (if itemised
                  then sum(item.amount for item in event.items where item.category not in excluded)
              else event.amount)
        """,
        """
        policy p

          let eligible = (if itemised
                          then sum(item.amount for item in event.items where item.category not in excluded)
                          else event.amount)
        """,
        id="if-breaks-at-then-and-else",
    ),
    pytest.param(
        """
        policy p
          rule birthday_month when customer.birthday is present and month(customer.birthday otherwise event.date) == month(event.date):
            award eligible points
            grant "birthday-treat"
        """,  # noqa: E501
        """
        policy p

          rule birthday_month when (customer.birthday is present
                                    and month(customer.birthday otherwise event.date) == month(event.date)):
            award eligible points
            grant "birthday-treat"
        """,
        id="operator-chain-breaks-before-each-operator",
    ),
    pytest.param(
        """
        policy p
          let x = max(customer.lifetime.miles_flown_with_partners, customer.lifetime.miles_flown_ourselves, 500)
        """,  # noqa: E501
        """
        policy p

          let x = max(customer.lifetime.miles_flown_with_partners,
                      customer.lifetime.miles_flown_ourselves,
                      500)
        """,
        id="call-arguments-one-per-line",
    ),
    pytest.param(
        """
        policy p
          rule r when customer.tier in ["GOLD", "SILVER", "PLATINUM", "DIAMOND", "TITANIUM", "UNOBTANIUM", "ADAMANTIUM"]: award 5 miles
        """,  # noqa: E501
        """
        policy p

          rule r when customer.tier in ["GOLD", "SILVER", "PLATINUM", "DIAMOND", "TITANIUM", "UNOBTANIUM",
                                        "ADAMANTIUM"]:
            award 5 miles
        """,
        id="list-that-ends-a-comparison-is-filled",
    ),
    pytest.param(
        """
        policy p
          let total = sum(item.amount for item in event.items where item.category not in excluded and item.amount > 100)
        """,  # noqa: E501
        """
        policy p

          let total = sum(item.amount
                          for item in event.items
                          where item.category not in excluded and item.amount > 100)
        """,
        id="aggregate-clauses-one-per-line",
    ),
    pytest.param(
        f"""
        policy p
          let s = "{"x" * 120}"
        """,
        f"""
        policy p

          let s = "{"x" * 120}"
        """,
        id="unbreakable-line-stays-long",
    ),
]


@pytest.mark.parametrize(("source", "expected"), LONG)
def test_long_lines(source: str, expected: str) -> None:
    """Lines over 100 columns break at the loosest operators, inside brackets that allow it."""
    assert fmt(source) == canon(expected)


# -- comments -----------------------------------------------------------------------------

COMMENTS = [
    pytest.param(
        """
        # about the file

        # about the policy
        policy p   # trailing on the name
          # about the version
          version 2
          let a = 1 # one
        """,
        """
        # about the file

        # about the policy
        policy p  # trailing on the name
          # about the version
          version 2

          let a = 1  # one
        """,
        id="file-header-and-trailing-comments",
    ),
    pytest.param(
        """
        policy p
          on flight
        # about rule a, at column one
          rule a: award 1 miles
              # about rule b, too deep
          rule b: award 2 miles
        """,
        """
        policy p
          on flight

          # about rule a, at column one
          rule a: award 1 miles
          # about rule b, too deep
          rule b: award 2 miles
        """,
        id="standalone-comment-takes-the-indent-of-the-next-line",
    ),
    pytest.param(
        """
        policy p
          on flight
          "d"
          # about a
          let a = 1
        """,
        """
        policy p
          on flight
          "d"

          # about a
          let a = 1
        """,
        id="comment-before-first-member",
    ),
    pytest.param(
        """
        policy p
          # about on
          on flight
          # about the version
          version 2  # two
          let a = 1
        """,
        """
        policy p
          # about the version
          version 2  # two
          # about on
          on flight

          let a = 1
        """,
        id="comments-travel-with-reordered-header-lines",
    ),
    pytest.param(
        """
        policy p
          table t by x:
            # gold first
            "GOLD" -> 2  # the most
            else -> 0
          group g takes first:
            rule a: award 1 miles
            # more rules to come
          rule b: award 1 miles
        """,
        """
        policy p

          table t by x:
            # gold first
            "GOLD" -> 2  # the most
            else -> 0
          group g takes first:
            rule a: award 1 miles
            # more rules to come
          rule b: award 1 miles
        """,
        id="comments-in-blocks-and-at-the-end-of-a-block",
    ),
    pytest.param(
        """
        policy p
          let b = max(  # first
              a,
              # inside
              4)
          let c = max(a,
                      4)  # only one
        """,
        """
        policy p

          # first
          # inside
          let b = max(a, 4)
          let c = max(a, 4)  # only one
        """,
        id="comments-inside-a-joined-line",
    ),
    pytest.param(
        """
        policy p
          rule a when x:
            # why five
            award 5 miles
          rule b when x:  # on the header
            award 5 miles
          rule c when x:  # on the header
            award 5 miles  # on the effect
        """,
        """
        policy p

          rule a when x:
            # why five
            award 5 miles
          rule b when x: award 5 miles  # on the header
          rule c when x:  # on the header
            award 5 miles  # on the effect
        """,
        id="one-effect-rule-stays-a-block-when-comments-need-it",
    ),
    pytest.param(
        """
        policy p
          let s = "a # b"  # c "quoted" # d
        """,
        """
        policy p

          let s = "a # b"  # c "quoted" # d
        """,
        id="hash-in-string-and-comment-text-kept-verbatim",
    ),
    pytest.param(
        """
        policy p
          let a = 1
        # the end

          # really the end
        """,
        """
        policy p

          let a = 1
        # the end

        # really the end
        """,
        id="comments-after-the-last-line",
    ),
    pytest.param(
        """
        policy p
          let a = 1
          # closes p, indented
        """,
        """
        policy p

          let a = 1
          # closes p, indented
        """,
        id="indented-comment-after-the-last-line-stays-indented",
    ),
]


@pytest.mark.parametrize(("source", "expected"), COMMENTS)
def test_comments(source: str, expected: str) -> None:
    """Every comment survives formatting, attached to the line it describes."""
    out = fmt(source)
    assert out == canon(expected)
    assert format_source(out) == out


@pytest.mark.parametrize(
    "expected",
    [p.values[1] for p in [*LAYOUT, *LONG, *COMMENTS]],
    ids=[p.id for p in [*LAYOUT, *LONG, *COMMENTS]],
)
def test_canonical_text_is_a_fixed_point(expected: str) -> None:
    """Text already in the canonical layout is left exactly as it is."""
    assert fmt(expected) == canon(expected)


SHARED = [
    pytest.param(
        """
        # What the shop shares.
        definitions   shop_common
           "Products that never earn."
           # the list
           let excluded = ["tobacco",  "lottery"]   # by law
           use  a,b   from  base
           table bonus by customer.tier:
              "GOLD" -> 2
              else -> 1
        policy p
          on purchase
          use  excluded ,bonus  from shop_common  # why
          rule r: award bonus points
        """,
        """
        # What the shop shares.
        definitions shop_common
          "Products that never earn."

          # the list
          let excluded = ["tobacco", "lottery"]  # by law
          use a, b from base
          table bonus by customer.tier:
            "GOLD" -> 2
            else -> 1

        policy p
          on purchase

          use excluded, bonus from shop_common  # why
          rule r: award bonus points
        """,
        id="a definitions block and a use line",
    ),
    pytest.param(
        """
        definitions base
          let rate = 2
        """,
        """
        definitions base

          let rate = 2
        """,
        id="a block without a description",
    ),
]


@pytest.mark.parametrize(("source", "expected"), SHARED)
def test_shared_definitions(source: str, expected: str) -> None:
    """A definitions block and a `use` line round-trip: laid out like a policy's header and
    members, comments kept, and formatting the result changes nothing."""
    out = fmt(source)
    assert out == canon(expected)
    assert format_source(out) == out


# -- examples and errors -------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(POLICIES)) for p in EXAMPLES])
def test_example_policies_are_canonical(path: Path) -> None:
    """The policies shipped in policies/ are kept in the canonical layout (run loyalty fmt)."""
    source = path.read_text(encoding="utf-8")
    assert format_source(source, str(path)) == source


def test_syntax_error_is_reported_not_formatted() -> None:
    """A file that does not parse raises PolicyError with the parser's diagnostic."""
    with pytest.raises(PolicyError) as info:
        format_source("policy p\n  rule a when x > : award 1 miles\n", "bad.policy")
    assert info.value.render() == (
        "bad.policy:2:19: syntax_error: unexpected `:`\n"
        "    |   rule a when x > : award 1 miles\n"
        "    |                   ^\n"
        "    = hint: expected `(`, `-`, `[`, `false`, `true`, a date (YYYY-MM-DD), "
        "a date and time, a decimal number, ..."
    )


def test_a_layout_that_would_change_the_meaning_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """If the printer ever dropped needed parentheses, format_source refuses instead of lying."""
    monkeypatch.setattr(exprlayout, "_needs_parens", lambda *args: False)
    with pytest.raises(FormatError) as info:
        format_source("policy p\n  let a = (1 + 2) * 3\n", "p.policy")
    assert str(info.value) == "p.policy: formatting would change the meaning of the policies"


def test_format_expr_prints_a_hand_built_tree() -> None:
    """format_expr lays out an AST built in code, literals without source text included."""
    tree = n.Binary("*", n.Binary("+", n.Literal(1), n.Name("base")),
                    n.Unary("neg", n.Attribute(n.Name("event"), "fare")))
    assert formatter.format_expr(tree) == "(1 + base) * -event.fare"


def test_comments_finds_hashes_outside_strings_only() -> None:
    """comments() returns each comment with its line and whether it stands on its own line."""
    found = comments('# one\nlet s = "a#b"  # two "x"\n  # three\n')
    assert [(c.line, c.text, c.standalone) for c in found] == [
        (1, "# one", True), (2, '# two "x"', False), (3, "# three", True),
    ]


# -- properties: random untidy policies ----------------------------------------------------

RESERVED = {
    "policy", "version", "effective", "to", "from", "until", "on", "let", "table", "by",
    "else", "decide", "first", "collect", "when", "rule", "award", "up", "grant", "with",
    "qualify", "for", "tag", "group", "takes", "best", "cap", "at", "round", "down", "half",
    "even", "if", "then", "otherwise", "or", "and", "not", "in", "is", "missing", "present",
    "true", "false", "of", "where", "minute", "minutes", "hour", "hours", "day", "days",
    "week", "weeks",
}
CURRENCIES = ["miles", "points", "stars"]
IF, OR, AND, NOT, COMPARE, OTHERWISE, SUM, PRODUCT, UNARY, POSTFIX = range(10)

names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: s not in RESERVED)
comment_text = st.text(
    alphabet=st.sampled_from(list("abc XYZ#\"\\'()-:")), min_size=0, max_size=12,
).map(lambda s: "#" + s)


class Untidy:
    """Draws untidy but valid policy text: odd spacing, spare parentheses, broken lines,
    comments everywhere the grammar allows them, blank lines, headers in any order."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.unit = draw(st.sampled_from([2, 3, 4]))

    def chance(self, p: float) -> bool:
        return self.draw(st.floats(0, 1)) < p

    def gap(self, in_brackets: bool) -> str:
        """Space between two tokens; inside brackets it may break the line, with a comment."""
        if in_brackets and self.chance(0.15):
            comment = ("  " + self.draw(comment_text)) if self.chance(0.4) else ""
            return comment + "\n" + " " * self.draw(st.integers(0, 12))
        if not in_brackets and self.chance(0.03):
            return " \\\n" + " " * self.draw(st.integers(0, 8))
        return self.draw(st.sampled_from([" ", " ", "  "]))

    def tight(self, in_brackets: bool) -> str:
        """Optional space around punctuation."""
        return self.gap(in_brackets) if self.chance(0.3) else ""

    # expressions

    def literal(self, kinds: tuple[str, ...] = (
            "int", "grouped", "decimal", "percent", "string", "date", "datetime", "duration",
            "bool")) -> str:
        kind = self.draw(st.sampled_from(kinds))
        d = self.draw
        if kind == "int":
            return str(d(st.integers(0, 10**6)))
        if kind == "grouped":
            return f"{d(st.integers(1, 999))}_{d(st.integers(0, 999)):03d}"
        if kind == "decimal":
            return f"{d(st.integers(0, 999))}.{d(st.sampled_from(['0', '5', '50', '125']))}"
        if kind == "percent":
            return f"{d(st.integers(0, 200))}{d(st.sampled_from(['', '.5', '.25']))}%"
        if kind == "string":
            chars = d(st.lists(st.sampled_from(list('ab #"\\\t')), max_size=6))
            body = "".join({'"': '\\"', "\\": "\\\\"}.get(c, c) for c in chars)
            if self.chance(0.5):
                body = body.replace("\t", "\\t")
            return f'"{body}"'
        if kind == "date":
            return d(st.dates()).isoformat()
        if kind == "datetime":
            day = d(st.dates(min_value=date(1000, 1, 1))).isoformat()
            zone = d(st.sampled_from(["Z", "+02:00", "-05:30"]))
            return f"{day}T{d(st.integers(0, 23)):02d}:{d(st.integers(0, 59)):02d}{zone}"
        if kind == "duration":
            unit = d(st.sampled_from(["minute", "minutes", "hour", "hours", "day", "days",
                                      "week", "weeks"]))
            return f"{d(st.integers(0, 90))}{d(st.sampled_from([' ', '', '  ']))}{unit}"
        return d(st.sampled_from(["true", "false"]))

    def expr(self, need: int, depth: int, in_brackets: bool) -> str:
        """Text of an expression that parses at precedence ``need`` in its context."""
        kinds = ["literal", "name", "attribute"]
        if depth > 0:
            kinds += ["negate", "not", "arith", "product", "compare", "presence", "and", "or",
                      "otherwise", "if", "call", "aggregate", "list", "attribute_of"]
        kind = self.draw(st.sampled_from(kinds))
        level = {"negate": UNARY, "not": NOT, "arith": SUM, "product": PRODUCT,
                 "compare": COMPARE, "presence": COMPARE, "and": AND, "or": OR,
                 "otherwise": OTHERWISE, "if": IF}.get(kind, POSTFIX)
        parens = level < need or self.chance(0.08)
        inner = in_brackets or parens
        text = self.build(kind, depth - 1, inner)
        if parens:
            return "(" + self.tight(True) + text + self.tight(True) + ")"
        return text

    def build(self, kind: str, depth: int, b: bool) -> str:
        e, gap, tight = self.expr, self.gap, self.tight
        if kind == "literal":
            if self.chance(0.1):  # a negative number
                return "-" + tight(b) + self.literal(("int", "decimal", "percent"))
            return self.literal()
        if kind == "name":
            return self.draw(names)
        if kind == "attribute":
            return ".".join(self.draw(st.lists(names, min_size=2, max_size=3)))
        if kind == "attribute_of":
            return e(POSTFIX, depth, b) + "." + self.draw(names)
        if kind == "negate":
            return "-" + tight(b) + e(UNARY, depth, b)
        if kind == "not":
            return "not" + gap(b) + e(NOT, depth, b)
        if kind in ("arith", "product"):
            level = SUM if kind == "arith" else PRODUCT
            op = self.draw(st.sampled_from(["+", "-"] if kind == "arith" else ["*", "/", "%", "of"]))
            around = gap(b) if op in ("of", "-") else tight(b)
            # `10%` is a percentage: a remainder's `%` is apart from a number before it.
            before = " " if op in ("-", "%") else around
            return e(level, depth, b) + before + op + \
                (gap(b) if op == "of" else around) + e(level + 1, depth, b)
        if kind == "compare":
            op = self.draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"]))
            if op[0].isalpha():
                op = op.replace(" ", gap(b))
                return e(OTHERWISE, depth, b) + gap(b) + op + gap(b) + e(OTHERWISE, depth, b)
            return e(OTHERWISE, depth, b) + tight(b) + op + tight(b) + e(OTHERWISE, depth, b)
        if kind == "presence":
            word = self.draw(st.sampled_from(["missing", "present"]))
            return e(OTHERWISE, depth, b) + gap(b) + "is" + gap(b) + word
        if kind in ("and", "or"):
            level = AND if kind == "and" else OR
            return e(level, depth, b) + gap(b) + kind + gap(b) + e(level + 1, depth, b)
        if kind == "otherwise":
            return e(SUM, depth, b) + gap(b) + "otherwise" + gap(b) + e(OTHERWISE, depth, b)
        if kind == "if":
            return ("if" + gap(b) + e(IF, depth, b) + gap(b) + "then" + gap(b)
                    + e(IF, depth, b) + gap(b) + "else" + gap(b) + e(IF, depth, b))
        if kind == "call":
            args = [e(IF, depth, True) for _ in range(self.draw(st.integers(0, 3)))]
            sep = tight(True) + "," + tight(True)
            return self.draw(names) + "(" + tight(True) + sep.join(args) + tight(True) + ")"
        if kind == "aggregate":
            text = (self.draw(st.sampled_from(["sum", "count", "any", "max"])) + "("
                    + e(IF, depth, True) + gap(True) + "for" + gap(True) + self.draw(names)
                    + gap(True) + "in" + gap(True) + e(IF, depth, True))
            if self.chance(0.5):
                text += gap(True) + "where" + gap(True) + e(IF, depth, True)
            return text + ")"
        items = [e(IF, depth, True) for _ in range(self.draw(st.integers(0, 3)))]
        return "[" + tight(True) + (tight(True) + "," + tight(True)).join(items) + "]"

    def expression(self) -> str:
        return self.expr(IF, self.draw(st.integers(0, 4)), False)

    # lines and blocks

    def line(self, depth: int, text: str) -> list[str]:
        """Blank lines and comment lines, then ``text`` indented, maybe with a trailing comment."""
        out = []
        for _ in range(self.draw(st.integers(0, 2))):
            if self.chance(0.5):
                out.append(" " * self.draw(st.integers(0, 2 * self.unit)) + self.draw(comment_text))
            else:
                out.append(" " * self.draw(st.integers(0, 3)))
        trailing = self.gap(False) + self.draw(comment_text) if self.chance(0.2) else ""
        out.append(" " * (self.unit * depth) + text + trailing)
        return out

    def effect(self) -> str:
        kind = self.draw(st.sampled_from(["award", "award", "grant", "qualify", "tag"]))
        if kind == "award":
            text = "award" + self.gap(False) + self.expression() + " " + \
                self.draw(st.sampled_from(CURRENCIES))
            if self.chance(0.3):
                text += " up to " + self.expression()
            return text
        if kind == "grant":
            text = "grant " + self.literal_string()
            params = [f"{self.draw(names)}{self.tight(False)}={self.tight(False)}"
                      f"{self.expression()}" for _ in range(self.draw(st.integers(0, 2)))]
            return text + (" with " + ", ".join(params) if params else "")
        if kind == "qualify":
            return "qualify for " + self.literal_string()
        return "tag " + self.literal_string()

    def literal_string(self) -> str:
        return '"' + self.draw(st.sampled_from(["GOLD", "late-arrival", "a \\\"b\\\"", ""])) + '"'

    def rule(self, depth: int) -> list[str]:
        head = "rule " + self.draw(names)
        if self.chance(0.6):
            head += " when " + self.expression()
        head += self.tight(False) + ":"
        count = self.draw(st.integers(1, 3))
        if count == 1 and self.chance(0.6):
            return self.line(depth, head + " " + self.effect())
        out = self.line(depth, head)
        for _ in range(count):
            out += self.line(depth + 1, self.effect())
        return out

    def member(self) -> list[str]:
        kind = self.draw(st.sampled_from(
            ["let", "let", "table", "decide", "rule", "rule", "group", "cap", "round"]))
        d = self.draw
        if kind == "let":
            return self.line(1, f"let {d(names)}{self.tight(False)}={self.tight(False)}"
                                f"{self.expression()}")
        if kind == "table":
            out = self.line(1, f"table {d(names)} by {self.expression()}:")
            for _ in range(d(st.integers(1, 3))):
                keys = [self.key() for _ in range(d(st.integers(1, 3)))]
                out += self.line(2, (self.tight(False) + ",").join(keys) + self.tight(False)
                                 + "->" + self.tight(False) + self.expression())
            if self.chance(0.5):
                out += self.line(2, "else -> " + self.expression())
            return out
        if kind == "decide":
            out = self.line(1, f"decide {d(names)} {d(st.sampled_from(['first', 'collect']))}:")
            for _ in range(d(st.integers(1, 3))):
                out += self.line(2, f"when {self.expression()} -> {self.expression()}")
            if self.chance(0.5):
                out += self.line(2, "else->" + self.expression())
            return out
        if kind == "rule":
            return self.rule(1)
        if kind == "group":
            mode = d(st.sampled_from(["first", "best miles", "best  points"]))
            out = self.line(1, f"group {d(names)} takes {mode}:")
            for _ in range(d(st.integers(1, 3))):
                out += self.rule(2)
            return out
        if kind == "cap":
            return self.line(1, f"cap {d(st.sampled_from(CURRENCIES))} at {self.expression()}")
        mode = d(st.sampled_from(["down", "up", "half even", "half   up"]))
        return self.line(1, f"round {d(st.sampled_from(CURRENCIES))} {mode}")

    def key(self) -> str:
        if self.chance(0.2):
            return "-" + self.tight(False) + self.literal(("int", "decimal"))
        return self.literal(("int", "grouped", "decimal", "percent", "string", "date", "bool"))

    def policy(self) -> list[str]:
        d = self.draw
        headers = []
        if self.chance(0.6):
            headers.append(f"version {d(st.integers(1, 20))}")
        if self.chance(0.6):
            headers.append(d(st.sampled_from([
                "effective 2026-01-01 to 2026-12-31", "effective from 2026-01-01",
                "effective until 2027-06-30"])))
        if self.chance(0.7):
            headers.append("on " + ", ".join(d(st.lists(names, min_size=1, max_size=3))))
        if self.chance(0.5):
            headers.append('"A policy \\"in\\" words."')
        headers = d(st.permutations(headers))
        out = self.line(0, f"policy{self.gap(False)}{d(names)}")
        for header in headers:
            out += self.line(1, header)
        for _ in range(d(st.integers(1, 5))):
            out += self.member()
        return out


@st.composite
def untidy_policies(draw: st.DrawFn) -> str:
    """A random policy file in untidy but valid layout."""
    maker = Untidy(draw)
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 2))):
        lines += maker.policy()
    if draw(st.booleans()):
        lines.append(" " * draw(st.integers(0, 4)) + draw(comment_text))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTY
@given(untidy_policies())
def test_formatting_is_idempotent(source: str) -> None:
    """Formatting formatted text changes nothing."""
    once = format_source(source)
    assert format_source(once) == once


@PROPERTY
@given(untidy_policies())
def test_formatting_preserves_the_policies_and_the_comments(source: str) -> None:
    """The formatted text parses to the same AST (spans aside) and keeps every comment."""
    once = format_source(source)
    assert structure(parse(once)) == structure(parse(source))
    assert sorted(c.text for c in comments(once)) == sorted(c.text for c in comments(source))
    assert all(not line.endswith(" ") for line in once.splitlines())
    assert "\t" not in once.replace("\\t", "")


# -- loyalty fmt ------------------------------------------------------------------------------

UNTIDY = "policy p\n    let a=1\n    rule r:   award a miles # keep\n"
TIDY = "policy p\n\n  let a = 1\n  rule r: award a miles  # keep\n"


def loyalty(*args: str, stdin: str | None = None, cwd: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "service", *args], input=stdin,
                          capture_output=True, text=True, cwd=cwd or ROOT, env=env, timeout=60)


def test_fmt_rewrites_files_in_place(tmp_path: Path) -> None:
    """loyalty fmt rewrites untidy files, names them, and leaves tidy files untouched."""
    (tmp_path / "a.policy").write_text(UNTIDY)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.policy").write_text(TIDY)
    result = loyalty("fmt", str(tmp_path))
    assert (result.returncode, result.stdout, result.stderr) == (
        0, f"reformatted {tmp_path / 'a.policy'}\n", "")
    assert (tmp_path / "a.policy").read_text() == TIDY
    assert (tmp_path / "sub" / "b.policy").read_text() == TIDY


def test_fmt_check_lists_files_and_changes_nothing(tmp_path: Path) -> None:
    """--check exits 1 naming the files that would change, and writes nothing."""
    (tmp_path / "a.policy").write_text(UNTIDY)
    (tmp_path / "b.policy").write_text(TIDY)
    result = loyalty("fmt", "--check", str(tmp_path))
    assert (result.returncode, result.stdout) == (1, f"would reformat {tmp_path / 'a.policy'}\n")
    assert (tmp_path / "a.policy").read_text() == UNTIDY
    assert loyalty("fmt", "--check", str(tmp_path / "b.policy")).returncode == 0


def test_fmt_diff_prints_a_unified_diff(tmp_path: Path) -> None:
    """--diff prints what would change and exits 1, writing nothing."""
    path = tmp_path / "a.policy"
    path.write_text(UNTIDY)
    result = loyalty("fmt", "--diff", str(path))
    assert result.returncode == 1
    assert result.stdout == (
        f"--- {path} (original)\n"
        f"+++ {path} (formatted)\n"
        "@@ -1,3 +1,4 @@\n"
        " policy p\n"
        "-    let a=1\n"
        "-    rule r:   award a miles # keep\n"
        "+\n"
        "+  let a = 1\n"
        "+  rule r: award a miles  # keep\n"
    )
    assert path.read_text() == UNTIDY


def test_fmt_reads_standard_input() -> None:
    """``loyalty fmt -`` formats standard input onto standard output."""
    result = loyalty("fmt", "-", stdin=UNTIDY)
    assert (result.returncode, result.stdout, result.stderr) == (0, TIDY, "")


def test_fmt_syntax_error_prints_diagnostics_and_leaves_the_file(tmp_path: Path) -> None:
    """A file that does not parse is reported with its diagnostics, exit 1, no traceback."""
    path = tmp_path / "bad.policy"
    path.write_text("policy p\n  let a = (1 +\n  let b = 2\n")
    good = tmp_path / "good.policy"
    good.write_text(UNTIDY)
    result = loyalty("fmt", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr == (
        f"{path}:3:7: syntax_error: unexpected `b`\n"
        "    |   let b = 2\n"
        "    |       ^\n"
        "    = hint: expected `)`\n"
    )
    assert path.read_text() == "policy p\n  let a = (1 +\n  let b = 2\n"
    assert good.read_text() == TIDY  # the other files are still formatted


def test_fmt_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    """A path that does not exist stops the command with exit 2 before anything is written."""
    result = loyalty("fmt", str(tmp_path / "nope.policy"))
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", f"loyalty fmt: {tmp_path / 'nope.policy'}: no such file or directory\n")


# -- meaning: the evaluator decides the same before and after formatting ---------------------


def untidy(source: str, rnd: random.Random) -> str:
    """``source`` made untidy without changing its policies: spare parentheses (with spaces
    and line breaks inside) around random expressions, and every indentation doubled."""
    openers: dict[tuple[int, int], list[tuple[tuple[int, int], str]]] = {}
    closers: dict[tuple[int, int], list[tuple[tuple[int, int], str]]] = {}
    for policy in parse(source):
        keys = {id(k) for row in (m.rows for m in policy.members if isinstance(m, n.Table))
                for r in row for k in r.keys}
        # A rule text's placeholders stand inside its string: no parentheses there.
        keys |= {id(x) for rule in policy.rules for t in rule.texts for x in n.walk(t)}
        for node in n.walk(policy):
            if not isinstance(node, n.Expr) or id(node) in keys or node.span.line <= 0:
                continue
            if rnd.random() < 0.35:
                s = node.span
                start, end = (s.line, s.column), (s.end_line, s.end_column)
                inside = rnd.choice(["", " ", "  ", "\n      "])
                openers.setdefault(start, []).append((end, "(" + inside))
                closers.setdefault(end, []).append((start, rnd.choice(["", " "]) + ")"))
    lines = source.split("\n")
    out_lines = []
    for number, text in enumerate(lines, 1):
        pieces = []
        for column in range(1, len(text) + 2):
            # at one place: closers of inner spans first, then openers of outer spans first
            pieces += [t for _, t in sorted(closers.get((number, column), []), reverse=True)]
            pieces += [t for _, t in sorted(openers.get((number, column), []), reverse=True)]
            if column <= len(text):
                pieces.append(text[column - 1])
        out_lines.append("".join(pieces))
    doubled = []
    for line in "\n".join(out_lines).split("\n"):
        indent = len(line) - len(line.lstrip(" "))
        doubled.append(" " * (2 * indent) + line[indent:])
    return "\n".join(doubled)


def decisions(policy_set: dsl.PolicySet, inputs: list[tuple[dict, dict]]) -> list[object]:
    """What the set decides for each (customer, event), revision left out."""
    out: list[object] = []
    for customer, event in inputs:
        try:
            d = policy_set.evaluate(customer, event).to_dict()
        except dsl.EvaluationError as exc:
            out.append(("error", exc.policy, exc.message))
            continue
        del d["revision"]
        out.append(d)
    return out


def example_inputs(schema: dsl.Schema, names: list[str]) -> list[tuple[dict, dict]]:
    """The customers and events of the example policies' own test files, prepared."""
    inputs = []
    decoder = MappingDecoder(schema)
    for path in sorted(POLICIES.rglob("*.test.toml")):
        cases, _ = load_case_file(path.read_text(encoding="utf-8"), str(path), schema, names)
        for case in cases:
            try:  # a case's customer and event are in the request form
                inputs.append(decoder.request({"customer": case.customer, "event": case.event}))
            except dsl.InputError:
                continue  # a case about rejected input
    return inputs


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32))
def test_untidy_examples_format_back_and_decide_the_same(seed: int) -> None:
    """Untidied, the example policies format back to their own text, and the untidy set, the
    formatted set and the original decide the same on every input of their test files."""
    schema = dsl.Schema.for_directory(POLICIES)
    sources = read_sources(POLICIES)
    rnd = random.Random(seed)
    messy = [(file, untidy(text, rnd)) for file, text in sources]
    for (file, text), (_, mess) in zip(sources, messy, strict=True):
        assert structure(parse(mess)) == structure(parse(text)), file
        assert format_source(mess, file) == text, file
    original = build(sources, schema)
    inputs = example_inputs(schema, [p.name for p in original.policies])
    assert len(inputs) > 20
    expected = decisions(original, inputs)
    assert decisions(build(messy, schema), inputs) == expected
    formatted = [(file, format_source(text, file)) for file, text in messy]
    assert decisions(build(formatted, schema), inputs) == expected


# Generated policies that pass the checker: integer and decimal arithmetic over visit fields.

INT_FIELDS = ["customer.lifetime.visits", "customer.lifetime.miles", "event.party_size"]
DEC_FIELDS = ["event.spend", "customer.lifetime.spend"]


class Typed:
    """Draws well-typed expressions and policies for visit events (canonical-ish text)."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.ints: list[str] = []  # let bindings of type int

    def pick(self, options: list[str]) -> str:
        return self.draw(st.sampled_from(options))

    def int_expr(self, depth: int) -> str:
        kinds = ["field", "literal"] + (["let"] if self.ints else [])
        if depth > 0:
            kinds += ["arith", "arith", "neg", "minmax", "if", "grouped"]
        kind = self.pick(kinds)
        if kind == "field":
            return self.pick(INT_FIELDS)
        if kind == "literal":
            return self.pick(["0", "1", "5", "10", "1_000", "25"])
        if kind == "let":
            return self.pick(self.ints)
        if kind == "neg":
            return "-" + self.atom(self.int_expr(depth - 1))
        if kind == "minmax":
            return f"{self.pick(['min', 'max'])}({self.int_expr(depth - 1)}, " \
                   f"{self.int_expr(depth - 1)})"
        if kind == "if":
            return f"(if {self.bool_expr(depth - 1)} then {self.int_expr(depth - 1)} " \
                   f"else {self.int_expr(depth - 1)})"
        if kind == "grouped":
            return f"({self.int_expr(depth - 1)})"
        op = self.pick(["+", "-", "*"])
        return f"{self.atom(self.int_expr(depth - 1))} {op} {self.atom(self.int_expr(depth - 1))}"

    @staticmethod
    def atom(text: str) -> str:
        """``text`` as an operand of a tighter operator: parenthesised unless a single token."""
        return text if re.fullmatch(r"[\w.%]+", text) else f"({text})"

    def amount(self, depth: int) -> str:
        kind = self.pick(["int", "percent", "decimal", "divide"])
        if kind == "int":
            return self.int_expr(depth)
        if kind == "percent":
            return f"{self.pick(['10%', '12.5%', '150%'])} of {self.atom(self.int_expr(depth))}"
        if kind == "decimal":
            return f"{self.pick(DEC_FIELDS)} * {self.pick(['2', '1.5', '0.25'])}"
        return f"{self.atom(self.int_expr(depth))} / {self.pick(['3', '7', '2.5'])}"

    def bool_expr(self, depth: int) -> str:
        kinds = ["compare", "compare", "in"]
        if depth > 0:
            kinds += ["and", "or", "not"]
        kind = self.pick(kinds)
        if kind == "compare":
            # A field against a number or another field: never a constant the checker refuses
            # ("can never fire").
            field = self.pick(INT_FIELDS)
            other = self.pick([f for f in INT_FIELDS if f != field] + ["0", "3", "40", "1_000"])
            return f"{field} {self.pick(['==', '!=', '<', '<=', '>', '>='])} {other}"
        if kind == "in":
            return f"{self.pick(INT_FIELDS)} in [1, 2, 3, 5, 8]"
        if kind == "not":
            return f"not ({self.bool_expr(depth - 1)})"
        return f"({self.bool_expr(depth - 1)}) {kind} ({self.bool_expr(depth - 1)})"

    def policy(self, number: int) -> str:
        lines = [f"policy generated_{number}", "  on visit", ""]
        for i in range(self.draw(st.integers(0, 2))):
            lines.append(f"  let v{i} = {self.pick(INT_FIELDS)} + {self.atom(self.int_expr(1))}")
            self.ints.append(f"v{i}")
        for i in range(self.draw(st.integers(1, 4))):
            cond = f" when {self.bool_expr(2)}" if self.draw(st.booleans()) else ""
            effects = [f"award {self.amount(2)} points"]
            if self.draw(st.booleans()):
                effects.append(f'tag "t{i}"')
            if len(effects) == 1:
                lines.append(f"  rule r{i}{cond}: {effects[0]}")
            else:
                lines += [f"  rule r{i}{cond}:", *(f"    {e}" for e in effects)]
        if self.draw(st.booleans()):
            lines.append(f"  cap points at {self.pick(['100', '5_000'])}")
        lines.append(f"  round points {self.pick(['down', 'up', 'half even', 'half up'])}")
        return "\n".join(lines) + "\n"


@st.composite
def typed_policy_files(draw: st.DrawFn) -> str:
    """One file of one or two generated visit policies."""
    return "\n".join(Typed(draw).policy(i) for i in range(draw(st.integers(1, 2))))


visit_inputs = st.lists(
    st.tuples(st.integers(0, 80), st.integers(0, 200_000), st.integers(1, 12),
              st.decimals(0, 500, places=2), st.decimals(0, 9999, places=2)),
    min_size=3, max_size=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(typed_policy_files(), visit_inputs, st.integers(0, 2**32))
def test_generated_policies_decide_the_same_untidy_and_formatted(
        text: str, rows: list[tuple[int, int, int, Decimal, Decimal]], seed: int) -> None:
    """Generated policies, untidied and then formatted, decide exactly as before."""
    schema = dsl.Schema.load()
    messy = untidy(text, random.Random(seed))
    formatted = format_source(messy, "generated.policy")
    try:
        original = dsl.load_source(text, file="generated.policy", schema=schema)
    except PolicyError as exc:
        # Contradictory conditions (`x <= 3 and x > 40`) are the one thing this small
        # generator does not avoid; anything else it writes must be accepted.
        if all(d.code == "never_fires" for d in exc.diagnostics if d.severity == "error"):
            reject()
        raise AssertionError(f"generated policy rejected:\n{text}\n{exc.render()}") from None
    inputs = [
        (prepare_customer(schema, {"id": f"c{i}", "member_since": "2015-01-01",
                                  "lifetime": {"visits": visits, "miles": miles,
                                               "spend": str(spend_total)}}),
         prepare_event(schema, {"id": f"e{i}", "kind": "visit", "time": "2026-03-01T19:00:00Z",
                               "party_size": party, "spend": str(spend)}))
        for i, (visits, miles, party, spend, spend_total) in enumerate(rows)
    ]
    expected = decisions(original, inputs)
    for variant in (messy, formatted):
        policy_set = dsl.load_source(variant, file="generated.policy", schema=schema)
        assert decisions(policy_set, inputs) == expected


def money(low: int, high: int) -> st.SearchStrategy[str]:
    return st.decimals(low, high, places=2).map(str)


def moments() -> st.SearchStrategy[str]:
    return st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2027, 12, 31)).map(
        lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"))


def maybe(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | strategy


def raw_customer() -> st.SearchStrategy[dict]:
    """A loose customer for the differential tests' schema (optional fields often missing)."""
    return st.fixed_dictionaries(
        {"id": st.sampled_from(["c1", "c2"]),
         "member_since": st.dates(date(1990, 1, 1), date(2026, 6, 1)).map(str),
         "lifetime": st.fixed_dictionaries({
             "miles": st.integers(0, 300_000), "flights": st.integers(0, 500),
             "visits": st.integers(0, 90), "appointments": st.integers(0, 60),
             "spend": money(0, 90_000), "donations": money(0, 50_000),
             "donation_years": st.integers(0, 30)})},
        optional={"tier": st.sampled_from(["SILVER", "GOLD", "PLATINUM"]),
                  "birthday": st.dates(date(1950, 1, 1), date(2010, 1, 1)).map(str),
                  "score": st.integers(-50, 500), "balance": money(-100, 1000),
                  "nickname": st.sampled_from(["", "Jo", "JFK"]),
                  "segment": st.sampled_from(["alpha", "beta", "gamma"]),
                  "patience": st.sampled_from(["15 minutes", "2 days"]),
                  "last_visit": moments()},
    )


def raw_event(kind: str) -> st.SearchStrategy[dict]:
    """A loose event of ``kind`` for the differential tests' schema."""
    airports = st.sampled_from(["JFK", "LHR", "SYD", "BOS", "LGA"])
    fields: dict[str, st.SearchStrategy[object]] = {
        "flight": st.fixed_dictionaries(
            {"origin": airports, "destination": airports, "fare": money(0, 3000)},
            optional={"distance_miles": st.integers(0, 9000), "partner": st.booleans(),
                      "cabin": st.sampled_from(["economy", "business", "first"])}),
        "purchase": st.fixed_dictionaries(
            {"amount": money(0, 900)},
            optional={"channel": st.sampled_from(["store", "online"]),
                      "store": st.sampled_from(["JFK", "garden"]),
                      "discount": money(0, 50),
                      "items": st.lists(st.fixed_dictionaries(
                          {"sku": st.just("s1"), "category": st.sampled_from(["fresh", "gift"]),
                           "amount": money(0, 200), "quantity": st.integers(1, 4)}),
                          max_size=3)}),
        "visit": st.fixed_dictionaries(
            {}, optional={"party_size": st.integers(1, 12), "spend": money(0, 400),
                          "venue": st.sampled_from(["JFK", "garden"])}),
        "appointment": st.fixed_dictionaries(
            {"service": st.sampled_from(["grooming", "vet"]), "scheduled_at": moments()},
            optional={"arrived_at": moments()}),
    }.get(kind, st.fixed_dictionaries({}))
    return st.tuples(fields, moments()).map(
        lambda pair: {"id": "e1", "kind": kind, "time": pair[1], **pair[0]})


@st.composite
def rich_policies_and_inputs(draw: st.DrawFn) -> tuple[str, list[tuple[dict, dict]]]:
    """Policies from the differential tests' generator (every construct, every type) with a
    few raw inputs for their event kind."""
    kind = draw(st.sampled_from(KINDS))
    inputs = draw(st.lists(st.tuples(raw_customer(), raw_event(kind)), min_size=1, max_size=3))
    return draw(policy_sources(kind)), inputs


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rich_policies_and_inputs(), st.integers(0, 2**32))
def test_richly_generated_policies_decide_the_same_untidy_and_formatted(
        generated: tuple[str, list[tuple[dict, dict]]], seed: int) -> None:
    """Policies using tables, decisions, groups, grants, dates and durations decide exactly
    the same after being untidied and after being formatted."""
    text, raw_inputs = generated
    try:
        original = dsl.load_source(text, file="generated.policy", schema=TEST_SCHEMA)
    except PolicyError:
        # Rare, and the differential tests' business (they own the generator): this test is
        # about what formatting does to policies the checker accepts.
        reject()
    inputs = []
    for c, e in raw_inputs:
        try:
            inputs.append((prepare_customer(TEST_SCHEMA, c), prepare_event(TEST_SCHEMA, e)))
        except dsl.InputError as exc:
            raise AssertionError(f"generated input rejected: {exc}") from None
    expected = decisions(original, inputs)
    messy = untidy(text, random.Random(seed))
    formatted = format_source(messy, "generated.policy")
    assert format_source(text, "generated.policy") == formatted
    for variant in (messy, formatted):
        policy_set = dsl.load_source(variant, file="generated.policy", schema=TEST_SCHEMA)
        assert decisions(policy_set, inputs) == expected
