"""Award bounds: the most one event can be awarded, per policy and currency.

An interval analysis over the checked AST. Every numeric expression gets an interval
``[lo, hi]`` from its literals, table and decision-table values, the schema's ``min`` and
``max`` on input fields, list lengths (at most :data:`~dsl.schema.schema.MAX_LIST` items) and the few
builtins whose range is fixed (date parts, tenure, great-circle miles), carried through
``+ - * / div % of``, ``min``, ``max``, ``floor``, ``ceil``, ``round``, ``abs``, ``if``,
``otherwise`` and aggregates. Then, for each currency: an award's bound is its amount's
upper end (limited by ``up to``, rounded *up* to the currency's decimals, raised to zero);
a rule's is the sum of its awards; a group's the largest of its rules' (``takes first``
and ``takes best`` alike: any one rule may be the one applied); a policy's the sum of its
rules and groups, limited by its ``cap`` and by the schema's ``cap_per_event`` (limits
rounded up too).

The result is a sound over-approximation: no evaluation of the policy on input the schema
accepts awards more (tests/dsl/analysis/test_bounds.py tries to break it with Hypothesis), but the
true maximum may be lower (every rule is assumed to fire; conditions do not narrow
values). Rounding each award up to the currency's decimals makes the bound hold whether
awards are rounded one by one or their total once.

A number bounded only by the 18-digit input limit (a field with no cap in sight) makes the
bound **unbounded**, with the reason and position of the first value responsible: a
maximum of 10^18 miles is no answer to "what can one event cost".
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from dsl.analysis.result import CheckResult
from dsl.front import nodes as n
from dsl.front.visitor import ExprVisitor
from dsl.library.builtins import BUILTINS
from dsl.schema.schema import MAX_LIST, Field, Schema
from dsl.schema.types import DECIMAL, INT

_PREC = 250  # enough that interval end points are exact for every accepted policy


@dataclass(frozen=True, slots=True)
class Why:
    """Why a value has no finite bound: what, and where it was written."""

    text: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.text} (line {self.line})"


@dataclass(frozen=True, slots=True)
class Interval:
    """A number's range; ``None`` for an end the analysis cannot bound (``why`` says why)."""

    lo: Decimal | None
    hi: Decimal | None
    why: Why | None = None

    @staticmethod
    def point(v: int | Decimal) -> Interval:
        return Interval(Decimal(v), Decimal(v))


@dataclass(frozen=True, slots=True)
class ListOf:
    """A list of at most ``length`` items, each ``elem`` (an Interval for numbers, else None).

    ``items``, when known (list literals, collecting decision tables), holds each item's own
    interval: a sum over some of them is then bounded by their positive ends alone.
    """

    elem: Interval | None
    length: int
    items: tuple[Interval, ...] | None = None


#: A value that is not a number or a list of numbers (text, dates, truth values, records).
OTHER = None

Value = Interval | ListOf | None


@dataclass(frozen=True, slots=True)
class AwardBound:
    """The most one event can be awarded of a currency by one policy.

    ``maximum`` is an exact amount in the currency's decimals, or None when unbounded;
    then ``reason`` says which rule and which value, and what to do.
    """

    currency: str
    maximum: Decimal | None
    reason: str = ""
    #: The most a customer can be awarded per period, when every rule awarding the currency
    #: is limited by a counter (``when history.c < K`` and ``count toward c``): K events a
    #: period at most. ``period`` says which (``per day (counter drinks_today)``).
    period_maximum: Decimal | None = None
    period: str = ""

    def describe(self) -> str:
        """``miles: at most 25,000`` or ``miles: unbounded: <reason>``, with the per-period
        bound when there is one: ``; at most 3 per day (counter drinks_today)``."""
        if self.maximum is None:
            return f"{self.currency}: unbounded: {self.reason}"
        text = f"{self.currency}: at most {format_amount(self.maximum)}"
        if self.period_maximum is not None:
            text += f"; at most {format_amount(self.period_maximum)} {self.period}"
        return text

    def to_dict(self) -> dict[str, Any]:
        out = {"currency": self.currency,
               "max": None if self.maximum is None else str(self.maximum),
               "unbounded_reason": self.reason}
        if self.period_maximum is not None:
            out["period_max"] = str(self.period_maximum)
            out["period"] = self.period
        return out


def format_amount(v: Decimal) -> str:
    """An amount with thousands separators: ``25,000``, ``1,234.50``."""
    return f"{v:,}"


def _ctx(rounding: str) -> decimal.Context:
    return decimal.Context(prec=_PREC, rounding=rounding, Emax=999_999, Emin=-999_999)


_UP = _ctx(ROUND_CEILING)
_DOWN = _ctx(ROUND_FLOOR)


def _quantize(v: Decimal, decimals: int, rounding: str) -> Decimal:
    """``v`` to a currency's decimals, rounded as asked, in the analysis' wide context."""
    return v.quantize(Decimal(1).scaleb(-decimals), rounding=rounding, context=_UP)


def _why(*vals: Interval) -> Why | None:
    return next((v.why for v in vals if v.why is not None), None)


def _products(x: Interval, y: Interval) -> Interval:
    """``x * y``: the extremes of the four end-point products, an infinite end signed."""
    lows: list[Decimal] = []
    highs: list[Decimal] = []
    neg_inf = pos_inf = False
    for a, sa in ((x.lo, -1), (x.hi, 1)):
        for b, sb in ((y.lo, -1), (y.hi, 1)):
            if (a is not None and a == 0) or (b is not None and b == 0):
                lows.append(Decimal(0))
                highs.append(Decimal(0))
            elif a is None or b is None:
                # An infinite end times a non-zero one: the sign is the product of the signs.
                s = (sa if a is None else (1 if a > 0 else -1)) * (sb if b is None else (1 if b > 0 else -1))
                neg_inf |= s < 0
                pos_inf |= s > 0
            else:
                lows.append(_DOWN.multiply(a, b))
                highs.append(_UP.multiply(a, b))
    lo = None if neg_inf or not lows else min(lows)
    hi = None if pos_inf or not highs else max(highs)
    return Interval(lo, hi, _why(x, y) if lo is None or hi is None else None)


def _add(x: Interval, y: Interval) -> Interval:
    lo = None if x.lo is None or y.lo is None else _DOWN.add(x.lo, y.lo)
    hi = None if x.hi is None or y.hi is None else _UP.add(x.hi, y.hi)
    return Interval(lo, hi, _why(x, y) if lo is None or hi is None else None)


def _neg(x: Interval) -> Interval:
    return Interval(None if x.hi is None else -x.hi, None if x.lo is None else -x.lo, x.why)


def _union(vals: list[Interval]) -> Interval:
    lo = None if any(v.lo is None for v in vals) else min(v.lo for v in vals)  # type: ignore[type-var]
    hi = None if any(v.hi is None for v in vals) else max(v.hi for v in vals)  # type: ignore[type-var]
    return Interval(lo, hi, _why(*vals) if lo is None or hi is None else None)


def _min_hi(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)




class BoundsPass(ExprVisitor[Value]):
    """Intervals of one checked policy's expressions; :func:`award_bounds` is the entry point."""

    def __init__(self, schema: Schema, policy: n.Policy, check: CheckResult) -> None:
        self.schema = schema
        self.policy = policy
        self.check = check
        self.records: dict[str, dict[str, Field]] = dict(schema.records)
        self.records["customer"] = schema.customer
        self.records["event"] = schema.event_fields(tuple(k for k in policy.kinds if k in schema.events))
        # A counter's value is a stored sum with no maximum, and never below zero: a decision
        # counts nothing negative, and a reversal's entries take the reversed event's instant,
        # so every window holding one also holds what it gives back (docs/state.md).
        self.records["history"] = {c.name: Field(c.name, INT if c.kind == "count" else DECIMAL,
                                                 minimum=0)
                                   for c in policy.counters}

    def visit(self, e: n.Node, *args: Any) -> Value:
        """The value of ``e``; a number the analysis could not follow is unbounded, never dropped."""
        v = super().visit(e, *args)
        if not isinstance(v, Interval) and isinstance(e, n.Expr) and self.check.type_of(e).is_numeric:
            return Interval(None, None, self.why(e, f"{self.text(e)} is not a number the analysis "
                                                    "can follow"))
        return v

    def why(self, e: n.Node, text: str) -> Why:
        return Why(text, e.span.line, e.span.column)

    def text(self, e: n.Node) -> str:
        return n.source_text(self.policy.source, e.span) or "this expression"

    def number(self, e: n.Expr, env: dict[str, Value]) -> Interval:
        """The interval of a numeric expression (unbounded, with a reason, if it is not one)."""
        v = self.visit(e, env)
        if isinstance(v, Interval):
            return v
        return Interval(None, None, self.why(e, f"{self.text(e)} is not a number the analysis can follow"))

    # -- expressions ------------------------------------------------------------------------

    def visit_Literal(self, e: n.Literal, env: dict[str, Value]) -> Value:
        v = e.value
        if isinstance(v, bool) or not isinstance(v, int | Decimal):
            return OTHER
        return Interval.point(v)

    def visit_ListExpr(self, e: n.ListExpr, env: dict[str, Value]) -> Value:
        items = [self.visit(x, env) for x in e.items]
        nums = [x for x in items if isinstance(x, Interval)]
        if not items or len(nums) != len(items):
            return ListOf(OTHER, len(items))
        return ListOf(_union(nums), len(items), tuple(nums))

    def visit_Name(self, e: n.Name, env: dict[str, Value]) -> Value:
        return env.get(e.name, OTHER)

    def visit_Attribute(self, e: n.Attribute, env: dict[str, Value]) -> Value:
        base = self.check.type_of(e.value)
        if base.kind != "record":
            return OTHER
        f = self.records.get(base.name, {}).get(e.name)
        if f is None:
            return OTHER
        t = f.type
        path = self.text(e)
        if t.kind == "list":
            elem = t.elem
            item = (Interval(None, None, self.why(e, f"the items of {path} have no maximum in the schema"))
                    if elem is not None and elem.is_numeric else OTHER)
            return ListOf(item, MAX_LIST)
        if not t.is_numeric:
            return OTHER
        lo = None if f.minimum is None else Decimal(f.minimum)
        if f.maximum is not None:
            return Interval(lo, Decimal(f.maximum), None if lo is not None else self.why(
                e, f"{path} has no minimum in the schema (only the 18-digit input limit)"))
        return Interval(lo, None, self.why(e, f"{path} has no maximum in the schema (only the "
                                              "18-digit input limit)"))

    def visit_Unary(self, e: n.Unary, env: dict[str, Value]) -> Value:
        if e.op == "not":
            return OTHER
        return _neg(self.number(e.operand, env))

    def visit_Presence(self, e: n.Presence, env: dict[str, Value]) -> Value:
        return OTHER

    def visit_Between(self, e: n.Between, env: dict[str, Value]) -> Value:
        return OTHER  # true or false

    def visit_IfExpr(self, e: n.IfExpr, env: dict[str, Value]) -> Value:
        return self.either([self.visit(e.then, env), self.visit(e.orelse, env)], e)

    def either(self, vals: list[Value], e: n.Node) -> Value:
        """A value that is one of ``vals`` (missing values, OTHER, are no number at all)."""
        nums = [v for v in vals if isinstance(v, Interval)]
        lists = [v for v in vals if isinstance(v, ListOf)]
        if nums:
            return _union(nums)
        if lists:
            elems = [v.elem for v in lists]
            elem = _union(elems) if all(isinstance(x, Interval) for x in elems) else OTHER  # type: ignore[arg-type]
            return ListOf(elem, max(v.length for v in lists))
        return OTHER

    def visit_Call(self, e: n.Call, env: dict[str, Value]) -> Value:
        f = e.func
        if f in ("min", "max"):
            if len(e.args) == 1:
                v = self.visit(e.args[0], env)
                return v.elem if isinstance(v, ListOf) else OTHER
            args = [self.visit(a, env) for a in e.args]
            if not all(isinstance(a, Interval) for a in args):
                return OTHER  # dates, datetimes or durations
            ivs: list[Interval] = args  # type: ignore[assignment]
            los = [a.lo for a in ivs if a.lo is not None]
            his = [a.hi for a in ivs if a.hi is not None]
            if f == "min":  # below the least low end; at most the least known high end
                lo = min(los) if len(los) == len(ivs) else None
                hi = min(his) if his else None
            else:
                lo = max(los) if los else None
                hi = max(his) if len(his) == len(ivs) else None
            return Interval(lo, hi, _why(*ivs) if lo is None or hi is None else None)
        if f in ("floor", "ceil", "round"):
            x = self.number(e.args[0], env)
            # floor and ceil move a value by less than one; round(x, places) by less than one too
            lo = None if x.lo is None else x.lo.to_integral_value(ROUND_FLOOR)
            hi = None if x.hi is None else x.hi.to_integral_value(ROUND_CEILING)
            return Interval(lo, hi, x.why if lo is None or hi is None else None)
        if f == "abs":
            x = self.visit(e.args[0], env)
            if not isinstance(x, Interval):
                return OTHER  # a duration
            if x.lo is not None and x.lo >= 0:
                return x
            if x.lo is None or x.hi is None:
                return Interval(Decimal(0), None, x.why)
            return Interval(Decimal(0), max(-x.lo, x.hi))
        if f == "minutes":
            return Interval(None, None, self.why(e, f"{self.text(e)}: durations are not bounded by "
                                                    "the analysis"))
        if f == "sum":
            return self.total(self.visit(e.args[0], env), e)
        if f == "count":
            v = self.visit(e.args[0], env)
            return Interval(Decimal(0), Decimal(v.length if isinstance(v, ListOf) else MAX_LIST))
        builtin = BUILTINS.get(f)
        values = None if builtin is None else builtin.values
        if values is not None:  # a fixed range, declared with the builtin
            return Interval(Decimal(values[0]), Decimal(values[1]))
        if builtin is not None and not self.check.type_of(e).is_numeric:
            return OTHER  # a date, a datetime (local()), a duration
        # A number this pass cannot bound: fail loudly rather than guess its range.
        raise NotImplementedError(f"dsl.analysis.bounds does not know the range of {f}()")

    def total(self, v: Value, e: n.Node) -> Interval:
        """The sum of a list's items (or of any of them): between length x the least and
        length x the most (or 0), or the sums of the known items' negative and positive ends."""
        if isinstance(v, ListOf) and v.items is not None:
            lo: Decimal | None = Decimal(0)
            hi: Decimal | None = Decimal(0)
            for x in v.items:
                lo = None if lo is None or x.lo is None else _DOWN.add(lo, min(x.lo, Decimal(0)))
                hi = None if hi is None or x.hi is None else _UP.add(hi, max(x.hi, Decimal(0)))
            return Interval(lo, hi, _why(*v.items) if lo is None or hi is None else None)
        if not isinstance(v, ListOf) or not isinstance(v.elem, Interval):
            return Interval(None, None, self.why(e, f"{self.text(e)} adds values the analysis cannot follow"))
        length = Interval.point(v.length)
        scaled = _products(Interval(Decimal(0), length.hi), v.elem)
        return _union([scaled, Interval.point(0)])

    def visit_Aggregate(self, e: n.Aggregate, env: dict[str, Value]) -> Value:
        src = self.visit(e.source, env)
        length = src.length if isinstance(src, ListOf) else MAX_LIST
        inner = dict(env)
        inner[e.var] = src.elem if isinstance(src, ListOf) else OTHER
        if e.func in ("any", "all"):
            return OTHER
        if e.func == "count":
            return Interval(Decimal(0), Decimal(length))
        if isinstance(src, ListOf) and src.items is not None:
            # Item by item: a sum over the items the `where` keeps.
            bodies = [self.visit(e.body, {**env, e.var: item}) for item in src.items]
            if all(isinstance(b, Interval) for b in bodies):
                ivs: tuple[Interval, ...] = tuple(bodies)  # type: ignore[arg-type]
                if e.func in ("min", "max"):
                    return _union(list(ivs))
                return self.total(ListOf(_union(list(ivs)), length, ivs), e)
        body = self.visit(e.body, inner)
        if e.func in ("min", "max"):
            return body if isinstance(body, Interval) else OTHER
        elem = body if isinstance(body, Interval) else None
        return self.total(ListOf(elem, length), e)

    def visit_Binary(self, e: n.Binary, env: dict[str, Value]) -> Value:
        op = e.op
        if op == "otherwise":
            return self.either([self.visit(e.left, env), self.visit(e.right, env)], e)
        if op not in ("+", "-", "*", "of", "/", "%", "div"):
            return OTHER
        a, b = self.visit(e.left, env), self.visit(e.right, env)
        if not isinstance(a, Interval) or not isinstance(b, Interval):
            return OTHER  # dates and durations; text joined with +
        if op == "+":
            return _add(a, b)
        if op == "-":
            return _add(a, _neg(b))
        if op in ("*", "of"):
            return _products(a, b)
        if op == "/":
            return self.divide(a, b, e)
        if op == "div":  # the quotient rounded down: floor is monotone, so floor both ends
            q = self.divide(a, b, e)
            return Interval(None if q.lo is None else q.lo.to_integral_value(ROUND_FLOOR),
                            None if q.hi is None else q.hi.to_integral_value(ROUND_FLOOR), q.why)
        # x % y has the sign of y and is smaller than |y| (and than |x| when signs agree).
        m = None if b.lo is None or b.hi is None else max(-b.lo, b.hi)
        if m is None:
            return Interval(None, None, _why(b))
        lo = Decimal(0) if b.lo >= 0 else -m  # type: ignore[operator]
        hi = Decimal(0) if b.hi <= 0 else m  # type: ignore[operator]
        return Interval(lo, hi)

    def divide(self, a: Interval, b: Interval, e: n.Binary) -> Interval:
        if self.check.type_of(e.right).kind == "int" and not ((b.lo is not None and b.lo > 0)
                                                              or (b.hi is not None and b.hi < 0)):
            # A whole divisor other than zero is at least 1 in size (zero is a fault), so
            # 1/b lies within [-1, 1], on the side of b's sign.
            inv = Interval(Decimal(0) if b.lo is not None and b.lo >= 0 else Decimal(-1),
                           Decimal(0) if b.hi is not None and b.hi <= 0 else Decimal(1))
            return _products(a, inv)
        if b.lo is None or b.hi is None or b.lo <= 0 <= b.hi:
            if b.lo is not None and b.hi is not None and b.lo == b.hi == 0:
                return Interval(None, None, self.why(e, f"{self.text(e)} divides by zero"))
            return Interval(None, None, b.why or self.why(e, f"{self.text(e.right)} may be zero or "
                                                             "near it, so the quotient has no bound"))
        # b keeps one sign: 1/b lies between 1/b.hi and 1/b.lo.
        inv = Interval(_DOWN.divide(1, b.hi), _UP.divide(1, b.lo))
        return _products(a, inv)

    # -- members -----------------------------------------------------------------------------

    def bindings(self) -> dict[str, Value]:
        env: dict[str, Value] = {}
        for m in self.policy.members:
            if isinstance(m, n.Let):
                env[m.name] = self.visit(m.value, env)
            elif isinstance(m, n.Table):
                env[m.name] = self.either([self.visit(r.value, env) for r in m.rows], m)
            elif isinstance(m, n.Decide):
                vals = [self.visit(r.value, env) for r in m.rows]
                one = self.either(vals, m)
                if m.hit == "first":
                    env[m.name] = one
                else:
                    items = tuple(v for v in vals if isinstance(v, Interval))
                    if isinstance(one, Interval) and len(items) == len(vals):
                        env[m.name] = ListOf(one, len(m.rows), items)
                    else:
                        env[m.name] = ListOf(OTHER, len(m.rows))
        return env

    def rule_awards(self, r: n.Rule, env: dict[str, Value]) -> dict[str, tuple[Decimal | None, str]]:
        """Currency -> (the most the rule awards, or None, and why)."""
        out: dict[str, tuple[Decimal | None, str]] = {}
        for eff in r.effects:
            if not isinstance(eff, n.Award):
                continue
            decimals = self.schema.currencies[eff.currency].decimals
            amount = self.number(eff.amount, env)
            hi = amount.hi
            why = ""
            if eff.limit is not None:
                limit = self.number(eff.limit, env)
                if limit.hi is not None:
                    # The language rounds the limit down; rounding it up here keeps the bound
                    # true however awards and totals are rounded.
                    hi = _min_hi(hi, _quantize(limit.hi, decimals, ROUND_CEILING))
            if hi is None:
                cause = amount.why
                why = (f"rule {r.name} at line {eff.span.line}: award {self.text(eff.amount)} "
                       f"{eff.currency}: {cause.text if cause else 'no bound'}"
                       f"{f' at line {cause.line}' if cause and cause.line != eff.span.line else ''}; "
                       f"add `up to ...` to the award or `cap {eff.currency} at ...` to the policy")
                value: Decimal | None = None
            else:
                value = max(Decimal(0), _quantize(hi, decimals, ROUND_CEILING))
            prev = out.get(eff.currency)
            if prev is None:
                out[eff.currency] = (value, why)
            elif prev[0] is None or value is None:
                out[eff.currency] = (None, prev[1] or why)
            else:
                out[eff.currency] = (prev[0] + value, "")
        return out

    def run(self) -> list[AwardBound]:
        env = self.bindings()
        totals: dict[str, tuple[Decimal | None, str]] = {}

        def add(currency: str, part: tuple[Decimal | None, str]) -> None:
            prev = totals.get(currency)
            if prev is None:
                totals[currency] = part
            elif prev[0] is None or part[0] is None:
                totals[currency] = (None, prev[1] or part[1])
            else:
                totals[currency] = (prev[0] + part[0], "")

        for m in self.policy.members:
            if isinstance(m, n.Rule):
                for c, part in self.rule_awards(m, env).items():
                    add(c, part)
            elif isinstance(m, n.Group):
                best: dict[str, tuple[Decimal | None, str]] = {}
                for r in m.rules:  # any one rule may be the one applied
                    for c, part in self.rule_awards(r, env).items():
                        prev = best.get(c)
                        if prev is None or (prev[0] is not None and (part[0] is None or part[0] > prev[0])):
                            best[c] = part
                for c, part in best.items():
                    add(c, part)
        out: list[AwardBound] = []
        caps = {c.currency: c for c in self.policy.caps}
        for currency, (value, why) in totals.items():
            cur = self.schema.currencies[currency]
            if currency in caps:
                cap = self.number(caps[currency].amount, env)
                if cap.hi is not None:
                    limit = max(Decimal(0), _quantize(cap.hi, cur.decimals, ROUND_CEILING))
                    value = limit if value is None else min(value, limit)
            if cur.cap_per_event is not None:
                limit = _quantize(Decimal(cur.cap_per_event), cur.decimals, ROUND_CEILING)
                value = limit if value is None else min(value, limit)
            if value is not None:
                bound = _quantize(value, cur.decimals, ROUND_CEILING)
                per_period = self.period_bound(currency)
                if per_period is None:
                    out.append(AwardBound(currency, bound))
                else:
                    times, counter = per_period
                    out.append(AwardBound(currency, bound, "", bound * times,
                                          f"{counter.period.text} (counter {counter.name})"))
            else:
                out.append(AwardBound(currency, None, why))
        return out


    def period_bound(self, currency: str) -> tuple[int, n.Counter] | None:
        """(K, counter) when every rule awarding ``currency`` fires only while a ``count``
        counter's window holds less than K and counts at least 1 toward it: then at most K
        events a period can fire any of them (each starts below K and adds 1 or more)."""
        gates: list[tuple[str, int]] = []
        for r in self.policy.rules:
            if not any(isinstance(e, n.Award) and e.currency == currency for e in r.effects):
                continue
            gate = _gate(r, {c.name: c for c in self.policy.counters})
            if gate is None:
                return None
            gates.append(gate)
        names = {g[0] for g in gates}
        if len(names) != 1:
            return None
        counter = next(c for c in self.policy.counters if c.name in names)
        return max(k for _, k in gates), counter


def _gate(r: n.Rule, counters: dict[str, n.Counter]) -> tuple[str, int] | None:
    """(counter, K) when rule ``r``'s condition has a conjunct ``history.c < K`` (or
    ``<= K - 1``) for a ``count`` counter c, and ``r`` counts a whole 1 or more toward c with no
    ``up to`` (which could count nothing)."""
    if r.cond is None:
        return None
    for part in n.conjuncts(r.cond):
        if not (isinstance(part, n.Binary) and part.op in ("<", "<=")
                and isinstance(part.left, n.Attribute) and isinstance(part.left.value, n.Name)
                and part.left.value.name == "history" and isinstance(part.right, n.Literal)
                and type(part.right.value) is int):
            continue
        counter = counters.get(part.left.name)
        if counter is None or counter.kind != "count":
            continue
        k = part.right.value + (1 if part.op == "<=" else 0)
        counts = any(isinstance(e, n.Count) and e.counter == counter.name and e.limit is None
                     and (e.amount is None or (isinstance(e.amount, n.Literal)
                                               and type(e.amount.value) is int
                                               and e.amount.value >= 1))
                     for e in r.effects)
        if counts and k >= 0:
            return counter.name, k
    return None


def award_bounds(schema: Schema, policy: n.Policy, check: CheckResult) -> list[AwardBound]:
    """The most one event can be awarded by ``policy``, per currency it awards (in order of
    first award), as a sound over-approximation; see the module doc."""
    return BoundsPass(schema, policy, check).run()


def event_bounds(schema: Schema, policies: list[tuple[tuple[str, ...], list[AwardBound]]]
                 ) -> dict[str, list[AwardBound]]:
    """Per event kind, the most one event of it can cost the programme: the bounds of every
    policy on the kind added up (whatever their effective windows), limited by the schema's
    ``cap_per_event``. ``policies`` holds each policy's kinds and bounds."""
    out: dict[str, list[AwardBound]] = {}
    for kind in sorted({k for kinds, _ in policies for k in kinds}):
        totals: dict[str, AwardBound] = {}
        for kinds, bounds in policies:
            if kind not in kinds:
                continue
            for b in bounds:
                prev = totals.get(b.currency)
                if prev is None:
                    totals[b.currency] = b
                elif prev.maximum is None or b.maximum is None:
                    totals[b.currency] = prev if prev.maximum is None else b
                else:
                    totals[b.currency] = AwardBound(b.currency, _UP.add(prev.maximum, b.maximum))
        for currency, b in totals.items():
            cur = schema.currencies[currency]
            if cur.cap_per_event is not None:
                limit = _quantize(Decimal(cur.cap_per_event), cur.decimals, ROUND_CEILING)
                if b.maximum is None or b.maximum > limit:
                    totals[currency] = AwardBound(currency, limit)
        out[kind] = list(totals.values())
    return out


def describe(bounds: list[AwardBound]) -> str:
    """One line per currency, as ``loyalty check --bounds`` prints them."""
    return "\n".join(b.describe() for b in bounds)
