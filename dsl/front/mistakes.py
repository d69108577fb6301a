"""Mistakes authors bring from other languages, each named by example and given a hint.

Lark's ``match_examples`` (``examples/advanced/error_reporting_lalr.py``) is the model: a
parser failure is identified by where the parser stood, not by the wording of its message.
Every :class:`Mistake` lists a few policy lines that make it; the first time a syntax error
needs a hint, each example is parsed and its failure recorded under a key, and a real failure
with the same key gets that mistake's message and hint. The key of a failure is:

- for an unexpected token: the parser's state, the set of terminals it would have accepted
  there (after the pending reductions, so ``if c then 1 miles``, which wants ``else``, and
  ``let x = 1 miles``, which wants the end of the line, differ although both stop right after
  a number), and the token's text (``AND``) or, for mistakes that say so, its kind (any name);
- for an unexpected character (``&&``, ``;``): the characters themselves.

A mistake may also be recognised by a word alone, wherever it stands (``AND``, ``elif``):
those words are never valid where the parser stopped, so no state is needed.

``tests/dsl/front/test_mistakes.py`` parses every example and pins the full diagnostic of one per
mistake, so an example that stops matching (after a grammar change) fails loudly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.indenter import DedentError

#: What an example line is parsed under, unless it starts a policy of its own.
EXAMPLE_HEAD = "policy p\n  on flight\n"


@dataclass(frozen=True, slots=True)
class Mistake:
    """One common mistake: how to recognise it, and what to tell its author.

    ``examples`` are policy lines (under :data:`EXAMPLE_HEAD`) or whole policies that make
    the mistake. ``by_kind`` matches any token of the kind the examples stop at, not only
    the same text (a missing ``then`` is missing whatever comes instead). ``words`` are
    unexpected words that are this mistake wherever they appear, and ``after_words`` the
    same for the word just before the unexpected token (``NOT x`` reads ``NOT`` as a name
    and stops at ``x``). ``message`` replaces "unexpected ...", and ``code`` the usual
    ``syntax_error``; ``operator`` names an operator from another language, which the
    diagnostic calls unknown and underlines whole. ``line_starts`` limits a mistake to lines
    that begin with one of those words (``per day`` is a cap's mistake; after a ``let`` it is
    some other), and ``pattern`` to lines in which that regular expression is found (a stray
    name after ``20 % of base`` is this mistake; after ``award 5 miles`` it is some other).
    """

    def fits(self, line_text: str) -> bool:
        """Whether a failure on ``line_text`` can be this mistake (``line_starts``, ``pattern``)."""
        first = line_text.split(maxsplit=1)[:1]
        if self.line_starts and first and first[0] not in self.line_starts:
            return False
        return not self.pattern or re.search(self.pattern, line_text) is not None

    name: str
    hint: str
    examples: tuple[str, ...] = ()
    code: str = "syntax_error"
    message: str = ""
    by_kind: bool = False
    words: tuple[str, ...] = ()
    after_words: tuple[str, ...] = ()
    line_starts: tuple[str, ...] = ()
    operator: str = ""
    pattern: str = ""

    def describe(self, found: str) -> str:
        """The message: the mistake's own, the unknown operator, or "unexpected ..."."""
        if self.operator:
            return f"unknown operator `{self.operator}`"
        return self.message or f"unexpected {found}"


_CAP_PATTERN = ("declare a counter, count each award toward it, and cap what is left: "
                "counter {currency}_today: count per day, then "
                "cap {currency} at max(0, {amount} - history.{currency}_today)")
_CAP_LINE = re.compile(r"\s*cap\s+(\w+)\s+at\s+(.+?)\s+per\b")

#: The table. Order matters only when two mistakes share a key: the first one wins.
MISTAKES: tuple[Mistake, ...] = (
    # -- operators from C, Java, JavaScript, SQL, Python ------------------------------------
    Mistake("and_symbol", "write `and`: event.partner and event.fare > 100",
            ("  rule r when event.partner && event.fare > 100: award 1 miles",
             "  rule r when event.partner & event.partner: award 1 miles"),
            code="unknown_operator", operator="&&"),
    Mistake("or_symbol", "write `or`: event.partner or event.fare > 100",
            ("  rule r when event.partner || event.fare > 100: award 1 miles",
             "  rule r when event.partner | event.partner: award 1 miles"),
            code="unknown_operator", operator="||"),
    Mistake("not_symbol", "write `not`: not event.partner (and `!=` for not equal)",
            ("  rule r when !event.partner: award 1 miles",),
            code="unknown_operator", operator="!"),
    Mistake("angle_not_equal", "write `!=` for not equal",
            ('  rule r when event.cabin <> "first": award 1 miles',),
            code="unknown_operator", operator="<>"),
    Mistake("triple_equals", "compare with `==`",
            ('  rule r when event.cabin === "first": award 1 miles',),
            code="unknown_operator", operator="==="),
    Mistake("power", "there is no power operator: multiply (x * x), or write the number",
            ("  rule r: award 2 ** 3 miles",),
            code="unknown_operator", operator="**"),
    Mistake("walrus", "write `let x = ...`",
            ("  let x := 5",),
            code="unknown_operator", operator=":="),
    Mistake("ternary", "write `if C then A else B`",
            ("  rule r: award event.partner ? 1 : 2 miles",),
            code="unknown_operator", operator="?"),
    Mistake("upper_case_and", "write `and` in lower case", words=("AND", "And")),
    Mistake("upper_case_or", "write `or` in lower case", words=("OR", "Or")),
    Mistake("upper_case_not", "write `not` in lower case", after_words=("NOT", "Not")),
    Mistake("chained_comparison",
            "compare two values at a time, joined with `and`: a < b and b < c",
            ('  rule r when event.cabin == "first" == true: award 1 miles',
             "  rule r when 1 < event.fare < 5: award 1 miles",
             "  let x = 1 < event.fare < 5",
             "  rule r: award if 1 < event.fare < 5 then 1 else 0 miles"),
            by_kind=True),
    Mistake("percent_for_remainder",
            "`10%` is ten percent; for a remainder put spaces around `%`: 10 % 3",
            ("  rule r when 10%3 == 1: award 1 miles", "  let x = 10%3"), by_kind=True),
    # -- if ... then ... else -------------------------------------------------------------
    Mistake("elif", "write `else if`: if a then 1 else if b then 2 else 3", words=("elif", "elsif")),
    Mistake("colon_for_then", "write `then` after the condition: if C then A else B",
            ("  rule r: award if event.partner: 1 else 2 miles",)),
    Mistake("missing_then", "write `then` after the condition: if C then A else B",
            ("  rule r: award if event.partner 1 else 2 miles",
             "  rule r: award if event.fare > 100 1 else 2 miles",
             "  rule r: award if event.partner event.fare else 2 miles"),
            by_kind=True),
    Mistake("missing_else", "an `if` needs an `else`: if C then A else B",
            ("  rule r: award if event.partner then 1 miles",
             "  let x = if event.partner then 1",
             "  rule r: award if event.partner then event.fare miles"),
            by_kind=True),
    Mistake("colon_after_else", "no `:` after `else`: if C then A else B",
            ("  rule r: award if event.partner then 1 else: 2 miles",)),
    Mistake("if_after_award",
            "put the condition on the rule: rule r when event.partner: award 5 miles",
            ("  rule r: award 5 miles if event.partner",)),
    Mistake("if_for_when", "a rule's condition follows `when`: rule r when event.partner: ...",
            ("  rule r if event.partner: award 1 miles",)),
    Mistake("then_after_when", "end the condition with `:`, not `then`: rule r when C: award 1 miles",
            ("  rule r when event.partner then award 1 miles",
             "  rule r when event.partner: then award 1 miles")),
    # -- statements that do not exist -----------------------------------------------------
    Mistake("return", "a rule's effects are award, grant, qualify and tag; there is no `return`",
            ("  rule r: return 5",), words=("return",)),
    Mistake("assignment",
            "values are defined once, with `let x = ...`; a policy has no variables to change",
            ("  x += 1", "  x = 1", "  let y = 1\n  x += 1", "  rule r: award 1 miles\n  x = 1"),
            by_kind=True),
    Mistake("function_definition",
            "a policy defines no functions: name a value with `let`, and call the built-in ones",
            words=("def", "function", "fn", "func", "lambda")),
    Mistake("if_statement", "write a rule with a condition: rule r when event.partner: award 1 miles",
            ("  if event.partner:",)),
    # -- names and literals ---------------------------------------------------------------
    Mistake("hyphenated_name", "names use letters, digits and underscores: {underscored}",
            ("policy coffee-stars\n  on flight\n  rule r: award 1 miles",
             "  rule free-drink: award 1 miles",
             "  let free-drink = 1",
             "  table free-drink by event.cabin:",
             "  group free-drink takes first:")),
    Mistake("unquoted_text", 'benefits, tiers and tags are quoted: tag "vip"',
            ("  rule r: tag vip", "  rule r: grant lounge", "  rule r: qualify for GOLD"),
            by_kind=True),
    Mistake("missing_currency", "name the currency after the amount: award 500 miles",
            ("  rule r: award 5", "  rule r: award event.fare", "  rule r: award (5)",
             # Wherever the line is: the end of the line is the same token with what follows.
             "  let base = 5\n  rule r: award base\n  rule s: award 1 miles",
             '  rule r:\n    award event.fare\n    tag "x"'),
            by_kind=True),
    Mistake("remainder_for_percent", "{percent_hint}",
            ("  let base = 5\n  rule r: award 20 % of base points",
             "  let elite_bonus = 50%\n  let base = 5\n  rule r: award elite_bonus% of base miles",
             "  rule r: award 20 % of event.fare miles",
             "  let x = 20 % of event.fare",
             "  rule r when 20 % of event.fare > 3: award 1 miles"),
            message="`%` here is the remainder, and `of` a name", by_kind=True,
            pattern=r"%\s*of\b"),
    Mistake("leading_point", "write a digit before the point: 0.5",
            ("  rule r: award .5 of event.fare miles",)),
    Mistake("is_null", "write `is missing` (or `is present`)",
            ("  rule r when event.distance_miles is null: award 1 miles",),
            words=("null", "None", "nil", "NULL")),
    Mistake("is_not_missing", "write `is present`",
            ("  rule r when event.distance_miles is not missing: award 1 miles",)),
    Mistake("is_true", "a true-or-false value is a condition by itself: when event.partner: ...",
            ("  rule r when event.partner is true: award 1 miles",
             "  rule r when event.partner is false: award 1 miles")),
    Mistake("parenthesised_list", 'a list is written in square brackets: ["first", "business"]',
            ('  rule r when event.cabin in ("first", "business"): award 1 miles',)),
    Mistake("brace", 'lists use square brackets (["a", "b"]); a block is the indented lines '
            "after a line ending in `:`",
            ('  rule r when event.cabin in {"first"}: award 1 miles',
             "  rule r when event.partner {",
             "  rule r when event.partner: }")),
    # -- layout -------------------------------------------------------------------------
    Mistake("semicolon", "delete the `;`: a line ends where it ends",
            ("  rule r: award 1 miles;",)),
    Mistake("slash_comment", "comments start with `#`",
            ("  // a note", "  rule r: award 1 miles // a note", "  /* a note */",
             "  let x = 1 // a note")),
    Mistake("trailing_colon",
            "delete the `:`; only rule, group, table and decide lines end with one",
            ("policy p:\n  on flight\n  rule r: award 1 miles",
             "  rule r: award 1 miles\n  cap miles at 100:",
             "  rule r: award 1 miles\n  round miles down:",
             "  let x = 1:",
             "  rule r: award 1 miles:")),
    Mistake("header_colon", "header lines take no `:`: on flight, version 2",
            ("policy p\n  on: flight\n  rule r: award 1 miles",
             "policy p\n  version: 2\n  on flight\n  rule r: award 1 miles",
             "policy p\n  effective: from 2026-01-01\n  on flight\n  rule r: award 1 miles")),
    Mistake("cap_per_period", _CAP_PATTERN,
            ("  rule r: award 1 miles\n  cap miles at 100 per day",
             "  rule r: award 1 miles\n  cap miles at event.fare per month",
             "  rule r: award 1 miles\n  cap miles at max(0, 100) per week"),
            message="a cap has no period: it limits one evaluation", line_starts=("cap",)),
    # -- counters and periods --------------------------------------------------------------
    Mistake("rolling_without_rolling",
            "write `per rolling 7 days` for the 7 days up to the event, or `per week` for the "
            "calendar week",
            ("  counter c: count per 7 days\n  rule r: award 1 miles",
             "  counter c: sum per 30 days\n  rule r: award 1 miles"),
            message="a period of a number of days is rolling", line_starts=("counter",)),
    Mistake("period_without_per",
            "write the period after `per`: counter spend: sum per quarter",
            ("  counter c: sum quarter\n  rule r: award 1 miles",
             "  counter c: count day\n  rule r: award 1 miles",
             "  counter c: count rolling 7 days\n  rule r: award 1 miles"),
            by_kind=True, line_starts=("counter",)),
    Mistake("counter_without_kind",
            "say what the counter adds up after a colon: counter spend: sum per quarter "
            "(amounts), or counter visits: count per day (1 a counted event)",
            ("  counter c per day\n  rule r: award 1 miles",
             "  counter c: per day\n  rule r: award 1 miles",
             "  counter c\n  rule r: award 1 miles"),
            line_starts=("counter",)),
    Mistake("count_towards", "write `toward`: count 1 toward visits",
            ("  rule r: count towards c",
             "  rule r: count 1 towards c",
             "  rule r: count 1 to c"),
            after_words=("towards",), line_starts=("count", "rule")),
)


@dataclass(frozen=True, slots=True)
class Match:
    """A recognised mistake, with its hint filled in for this source, and where to point
    (1-based ``column`` and ``width`` on the line; 0 keeps the parser's place)."""

    mistake: Mistake
    hint: str
    column: int = 0
    width: int = 0
    message: str = ""


def token_key(exc: UnexpectedToken, by_kind: bool) -> tuple[Any, ...]:
    """The key of an unexpected token: state, what was acceptable there, the token."""
    state = getattr(exc.state, "position", exc.state)
    accepts = frozenset(exc.accepts or exc.expected)
    return (state, accepts, exc.token.type if by_kind else ("text", str(exc.token)))


def character_key(text: str, column: int) -> str:
    """The key of an unexpected character: it and the punctuation right after it."""
    run = ""
    for ch in text[column - 1 : column + 1]:
        if ch not in _OPERATOR_CHARACTERS:
            break
        run += ch
    return run or text[column - 1 : column]


#: Characters that make up the operators of other languages (``&&``, ``||``, ``!``, ``?:``).
_OPERATOR_CHARACTERS = frozenset("&|!;{}?<>=*/%:^~")


@cache
def _index(parse: Callable[[str], Any]) -> dict[Any, tuple[Mistake, ...]]:
    """Every example's failure key -> its mistakes, in table order (built once, on the first
    syntax error). Several share a key only when all but the last limit the lines they fit."""
    index: dict[Any, tuple[Mistake, ...]] = {}
    for mistake in MISTAKES:
        for example in mistake.examples:
            source = example if example.startswith("policy") else EXAMPLE_HEAD + example
            try:
                parse(source + "\n")
            except UnexpectedToken as exc:
                key = token_key(exc, mistake.by_kind)
            except UnexpectedCharacters as exc:
                line = source.splitlines()[exc.line - 1]
                key = ("char", character_key(line, exc.column))
            except DedentError:  # an example that fails otherwise is caught by the tests
                continue
            else:
                continue
            if mistake not in index.get(key, ()):
                index[key] = (*index.get(key, ()), mistake)
    return index


def _first_fit(candidates: tuple[Mistake, ...], line_text: str) -> Mistake | None:
    return next((m for m in candidates if m.fits(line_text)), None)


def recognise(exc: UnexpectedInput, line_text: str, parse: Callable[[str], Any]) -> Match | None:
    """The mistake ``exc`` is an instance of, or None. ``line_text`` is the source line."""
    index = _index(parse)
    found: Mistake | None = None
    column = width = 0
    message = ""
    if isinstance(exc, UnexpectedCharacters):
        run = character_key(line_text, exc.column)
        found = (_first_fit(index.get(("char", run), ()), line_text)
                 or _first_fit(index.get(("char", run[:1]), ()), line_text))
    elif isinstance(exc, UnexpectedToken):
        value = str(exc.token)
        before = line_text[: max((exc.token.column or 1) - 1, 0)].split()
        for m in MISTAKES:
            if value in m.words:
                found = m
                break
            if before and before[-1] in m.after_words:
                # `NOT x` stops at x, having read NOT as a name: point at NOT.
                found = m
                column = line_text.rfind(before[-1], 0, (exc.token.column or 1) - 1) + 1
                width = len(before[-1])
                message = f"unexpected `{before[-1]}`"
                break
        else:
            found = (_first_fit(index.get(token_key(exc, False), ()), line_text)
                     or _first_fit(index.get(token_key(exc, True), ()), line_text))
    if found is None or not found.fits(line_text):
        return None
    if found.operator:
        # The parser stops inside `<>` or `===`, at the part it cannot take: underline it all.
        at = (exc.column or 1) - 1
        start = line_text.rfind(found.operator, 0, at + len(found.operator))
        if start >= 0 and start <= at:
            column, width = start + 1, len(found.operator)
    hint = found.hint
    if "{currency}" in hint:
        cap = _CAP_LINE.match(line_text)
        currency, amount = (cap[1], cap[2]) if cap is not None else ("stars", "100")
        hint = hint.format(currency=currency, amount=amount)
    if "{percent_hint}" in hint:
        hint = _percent_hint(line_text)
        at = re.search(found.pattern, line_text)
        if at is not None:  # the parser stops later, at the name after `of base`: point at `% of`
            column, width = at.start() + 1, len(at[0])
    if "{underscored}" in hint:
        words = [w for w in line_text.replace(":", " ").split() if "-" in w]
        hint = hint.replace("{underscored}", words[0].replace("-", "_") if words else "free_drink")
    return Match(found, hint, column, width, message)


_SPACED_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s+%\s*of\b")
_NAME_PERCENT = re.compile(r"([A-Za-z_]\w*|\))\s*%\s*of\b")


def _percent_hint(line_text: str) -> str:
    """What to write for ``20 % of base`` (no space) or ``elite_bonus% of base`` (no ``%``)."""
    spaced = _SPACED_PERCENT.search(line_text)
    if spaced:
        return (f"write `{spaced[1]}%` with no space before `%` for a percentage: "
                f"{spaced[1]}% of ...; `%` after a space is the remainder (10 % 3)")
    named = _NAME_PERCENT.search(line_text)
    if named and named[1] != ")":
        return (f"`%` makes a percentage only after a number (20%); `{named[1]}` already holds "
                f"its rate, so write `{named[1]} of ...` (and give it percentages where it is "
                "defined: 20%, not 20)")
    return ("`%` makes a percentage only after a number (20%); a rate in a name or in "
            "parentheses is used as it is: (a + b) of ...")
