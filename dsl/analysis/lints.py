"""Lints: policies that check but read like a known mistake, each a warning with its fix.

They come from writing real programmes by hand (issue 21) and are warnings, not errors,
because each has a reading in which it is meant; ``loyalty check --strict`` makes them
errors. The stage :func:`find_lints` runs on a policy with no error, after the types
(it reads them):

- ``whole_number_of``: ``20 of base`` where ``20% of base`` was meant (``of`` reads as a
  percentage, and a whole number before it multiplies);
- ``base_paid_twice``: one base awarded in full by two awards that can apply together, one of
  them at more than 100% (a base rule plus ``(100% + bonus) of base``, or a second rate rule
  ``2 * spend`` beside ``spend``): the base is paid twice. Two awards of exactly 100% each (a
  "double stars at happy hour" rule beside the base rule) are left alone, as meant;
- ``row_never_reached``: a table's ``else`` after rows for every value of a key that is never
  missing (an enum, a tier, true and false), and in a ``decide ... first`` a row that an
  earlier row always takes first: its condition asks all an earlier row asks (and more), or
  earlier rows took every value of the enum it tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import NamedTuple

from dsl.analysis.conflicts import canonical, constant_truth, path_of
from dsl.analysis.result import Checking
from dsl.front import nodes as n
from dsl.schema.types import Type

#: Every lint's code (docs/language.md's diagnostics table lists each; a test holds it to that).
CODES = ("whole_number_of", "base_paid_twice", "row_never_reached")


def find_lints(c: Checking) -> None:
    """File every lint's warning for the policy ``c`` checks."""
    for node in n.walk(c.policy):
        if isinstance(node, n.Binary) and node.op == "of":
            _whole_number_of(c, node)
        elif isinstance(node, n.Table):
            _table_rows(c, node)
        elif isinstance(node, n.Decide) and node.hit == "first":
            _decide_rows(c, node)
    _base_paid_twice(c)


# -- whole_number_of ------------------------------------------------------------------------


def _whole_number_of(c: Checking, e: n.Binary) -> None:
    left = e.left
    if c.result.type_of(left).kind != "int":
        return
    base = c.text(e.right)
    if isinstance(left, n.Literal) and isinstance(left.value, int):
        c.warn(left.span, "whole_number_of",
               f"`{c.text(e)}` is {left.value} times {base}, not {left.value} percent of it",
               f"write `{left.value}% of {base}` for a percentage (no space before `%`), "
               f"or `{left.value} * {base}` for a multiple")
        return
    rate = c.text(left)
    c.warn(left.span, "whole_number_of",
           f"`{rate}` is a whole number, so `{c.text(e)}` is {rate} times {base}, not a "
           "percentage of it",
           f"give `{rate}` percentages (`20%`, not `20`) where it is defined, "
           f"or write `{rate} * {base}` for a multiple")


# -- base_paid_twice ------------------------------------------------------------------------


class _Paid(NamedTuple):
    """One award read as ``rate`` x ``base``; ``extra`` when the rate is 100% plus something."""

    rule: n.Rule
    group: n.Group | None
    award: n.Award
    base: n.Expr
    key: str
    rate: Decimal
    extra: n.Expr | None


def _awards(policy: n.Policy) -> Iterator[tuple[n.Rule, n.Group | None]]:
    for m in policy.members:
        if isinstance(m, n.Rule):
            yield m, None
        elif isinstance(m, n.Group):
            for r in m.rules:
                yield r, m


def _base_paid_twice(c: Checking) -> None:
    paid: list[_Paid] = []
    for rule, group in _awards(c.policy):
        for effect in rule.effects:
            if isinstance(effect, n.Award):
                read = _rate_of(effect.amount)
                if read is not None:
                    base, rate, extra = read
                    paid.append(_Paid(rule, group, effect, base, canonical(base), rate, extra))
    for i, later in enumerate(paid):
        if later.rate < 1:
            continue
        candidates = [earlier for earlier in paid[:i]
                      if earlier.key == later.key and earlier.award.currency == later.award.currency
                      and earlier.rate >= 1 and not (earlier.rate == 1 and later.rate == 1)
                      and (earlier.group is None or earlier.group is not later.group)
                      and _together(earlier.rule.cond, later.rule.cond)]
        if candidates:
            # The base rule (exactly 100%) is the likelier partner of a total-rate mistake.
            earlier = next((e for e in candidates if e.rate == 1), candidates[0])
            _report_twice(c, earlier, later)


def _report_twice(c: Checking, earlier: _Paid, later: _Paid) -> None:
    base, currency = c.text(later.base), later.award.currency
    where = (f"rule {earlier.rule.name} (line {earlier.award.span.line})"
             if earlier.rule is not later.rule else f"line {earlier.award.span.line}")
    first, second = c.text(earlier.award.amount), c.text(later.award.amount)
    message = (f"`{base}` is awarded in full twice: {where} awards `{first}` {currency}, and "
               f"this award `{second}` {currency} pays it again")
    if later.extra is not None:
        hint = (f"if `{c.text(later.extra)}` is the bonus on top of the base, award only it: "
                f"award {c.text(later.extra)} of {base} {currency}")
    elif earlier.extra is not None:
        hint = (f"if `{first}` is meant as the total, delete this award; if this is the base, "
                f"award only the bonus there: award {c.text(earlier.extra)} of {base} {currency}")
    else:
        big, small = (later, earlier) if later.rate >= earlier.rate else (earlier, later)
        hint = (f"the two add up to {_percent(big.rate + small.rate)} of {base}; if "
                f"{_percent(big.rate)} is the total rate, award the difference in rule "
                f"{big.rule.name}: award {_percent(big.rate - small.rate)} of {base} {currency}")
    c.warn(later.award.amount.span, "base_paid_twice", message, hint)


def _percent(rate: Decimal) -> str:
    text = format((rate * 100).normalize(), "f")
    return f"{text}%"


def _rate_of(amount: n.Expr) -> tuple[n.Expr, Decimal, n.Expr | None] | None:
    """``amount`` as (base, rate, extra): ``75% of base`` is (base, 0.75, None), ``base`` is
    (base, 1, None), ``(100% + bonus) of base`` is (base, 1 + ..., bonus); None when it is
    none of these shapes (a constant, a sum of different things)."""
    if isinstance(amount, n.Binary) and amount.op in ("of", "*"):
        sides = [(amount.left, amount.right)]
        if amount.op == "*":
            sides.append((amount.right, amount.left))
        for rate_side, base in sides:
            if not _is_base(base) or (amount.op == "of" and isinstance(rate_side, n.Literal)
                                      and type(rate_side.value) is int):
                continue  # `20 of base` is whole_number_of's
            rate = _constant(rate_side)
            if rate is not None:
                return base, rate, None
            whole = _whole_plus(rate_side)
            if whole is not None:
                # At least 100%: the bonus's own size is unknown, so it counts as "more".
                return base, whole + Decimal("0.000001"), _extra(rate_side)
        return None
    if _is_base(amount):
        return amount, Decimal(1), None
    return None


def _is_base(e: n.Expr) -> bool:
    return isinstance(e, n.Name | n.Attribute | n.Call | n.Aggregate)


def _constant(e: n.Expr) -> Decimal | None:
    """A number known without input (``75%``, ``1.5``, ``2``, ``1 + 50%``), or None."""
    if isinstance(e, n.Literal) and isinstance(e.value, int | Decimal) and not isinstance(e.value, bool):
        return Decimal(e.value)
    if isinstance(e, n.Binary) and e.op in ("+", "-", "*"):
        a, b = _constant(e.left), _constant(e.right)
        if a is None or b is None:
            return None
        return a + b if e.op == "+" else a - b if e.op == "-" else a * b
    return None


def _terms(e: n.Expr) -> list[n.Expr]:
    if isinstance(e, n.Binary) and e.op == "+":
        return [*_terms(e.left), *_terms(e.right)]
    return [e]


def _whole_plus(rate: n.Expr) -> Decimal | None:
    """The constant part of a sum ``100% + bonus`` when it is at least 100% and the rest is not
    constant (the rate includes the whole base, and more), else None."""
    terms = _terms(rate)
    constants = [v for v in (_constant(t) for t in terms) if v is not None]
    if len(constants) == len(terms) or not constants:
        return None
    total = sum(constants, Decimal(0))
    return total if total >= 1 else None


def _extra(rate: n.Expr) -> n.Expr:
    """The first term of ``rate`` that is not a constant: the bonus beside the 100%."""
    return next(t for t in _terms(rate) if _constant(t) is None)


def _together(a: n.Expr | None, b: n.Expr | None) -> bool:
    """Whether two rules' conditions may both hold on one event (as far as is known)."""
    if a is None or b is None:
        return True
    return constant_truth(n.Binary("and", a, b, span=a.span)) is not False


# -- row_never_reached ----------------------------------------------------------------------


def _values(t: Type) -> tuple[object, ...] | None:
    """Every value of a type that is never missing and has few values, or None."""
    if t.optional:
        return None
    if t.kind == "enum" and t.values:
        return t.values
    if t.kind == "bool":
        return (True, False)
    return None


def _table_rows(c: Checking, t: n.Table) -> None:
    values = _values(c.result.type_of(t.key))
    if values is None:
        return
    listed: set[object] = set()
    for row in t.rows:
        if not row.keys:
            missing = [v for v in values if v not in listed]
            if not missing:
                shown = ", ".join(f'"{v}"' if isinstance(v, str) else str(v).lower() for v in values)
                c.warn(row.span, "row_never_reached",
                       f"every value of `{c.text(t.key)}` ({shown}) has a row above, so no "
                       "event reaches this `else` row",
                       "delete the `else` row, or the rows that give the same value as it")
            return
        listed.update(k.value for k in row.keys)


#: A row of more conjuncts than this is not compared with the rows above it (the subsets of
#: its conditions are looked up, 2**n of them).
_MAX_CONJUNCTS = 8


def _decide_rows(c: Checking, d: n.Decide) -> None:
    earlier: dict[frozenset[str], n.DecideRow] = {}  # a row's conjuncts -> the first such row
    taken: dict[str, tuple[tuple[object, ...], set[object]]] = {}  # path -> (values, taken whole)
    for row in d.rows:
        covered = next((p for p, (values, vs) in taken.items() if all(v in vs for v in values)),
                       None)
        if covered is not None:
            c.warn(row.span, "row_never_reached",
                   f"the rows above take every value of `{covered}`, so no event reaches "
                   "this row",
                   "delete this row, or move it above the rows it follows")
            return
        if row.cond is None:
            return
        mine = [canonical(x) for x in n.conjuncts(row.cond)]
        before = _subsumed(earlier, mine)
        if before is not None and canonical(row.cond) != canonical(before.cond or row.cond):
            c.warn(row.cond.span, "row_never_reached",
                   f"the row on line {before.span.line} matches every event this row matches "
                   "(it asks less) and comes first, so no event reaches this row",
                   f"move this row above line {before.span.line}, or delete it")
            continue
        earlier.setdefault(frozenset(mine), row)
        test = _equality(c, row.cond)
        if test is not None:
            path, values, took = test
            taken.setdefault(path, (values, set()))[1].update(took)


def _subsumed(earlier: dict[frozenset[str], n.DecideRow], mine: list[str]) -> n.DecideRow | None:
    """The first earlier row whose conjuncts are all among ``mine``, or None."""
    unique = sorted(set(mine))
    if len(unique) > _MAX_CONJUNCTS:
        return earlier.get(frozenset(unique))
    found: n.DecideRow | None = None
    for mask in range(1, 1 << len(unique)):
        row = earlier.get(frozenset(u for i, u in enumerate(unique) if mask >> i & 1))
        if row is not None and (found is None or row.span.line < found.span.line):
            found = row
    return found


def _equality(c: Checking, cond: n.Expr) -> tuple[str, tuple[object, ...], set[object]] | None:
    """``path == "v"`` or ``path in ["v", "w"]`` (a whole condition) on a path of few values,
    as (path, every value of its type, the values it takes)."""
    if isinstance(cond, n.Binary) and cond.op == "==":
        for side, lit in ((cond.left, cond.right), (cond.right, cond.left)):
            path, values = path_of(side), _values(c.result.type_of(side))
            if path and values is not None and isinstance(lit, n.Literal):
                return path, values, {lit.value}
    if isinstance(cond, n.Binary) and cond.op == "in" and isinstance(cond.right, n.ListExpr):
        path, values = path_of(cond.left), _values(c.result.type_of(cond.left))
        items = cond.right.items
        if path and values is not None and all(isinstance(i, n.Literal) for i in items):
            return path, values, {i.value for i in items if isinstance(i, n.Literal)}
    return None
