"""The cost bound: every number, text and aggregate of a policy bounded before it runs.

A sibling of :mod:`dsl.analysis.bounds` (which bounds what a policy can award): this pass
carries the schema's input bounds through every expression and proves a
:class:`CostBound` for every evaluation of an accepted policy, or refuses the policy
with a diagnostic where the cost starts. It reads the types the type checker recorded,
so it runs after it, and only on a policy with no errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from dsl.analysis.result import Checking, CostBound
from dsl.front import nodes as n
from dsl.front.visitor import ExprVisitor
from dsl.library.builtins import BUILTINS
from dsl.library.runtime import DURATION_TOO_LONG, MAX_NUMBER_DIGITS, OUTSIDE_THE_CALENDAR
from dsl.schema.schema import MAX_INPUT_DIGITS, MAX_LIST, MAX_STRING
from dsl.schema.types import Months, Type

__all__ = ["MAX_BUILT_TEXT", "MAX_DURATION_DAYS", "MAX_STEPS", "MAX_TEXT", "CostBound", "Size",
           "check_sizes"]

#: The longest text a policy may compute.
MAX_TEXT = 100_000
#: The most steps in aggregates one evaluation of a policy may take. A step is one operation
#: of an aggregate's body or condition for one item (nested aggregates multiply), one item an
#: ``in`` compares or a list-taking call reads, or one item of a list literal; a division
#: counts as _DIVISION_STEPS. That is fifty passes of ``i.amount`` over the longest list an
#: input may hold.
MAX_STEPS = 1_000_000
#: What one division or remainder counts for: a quotient of 100 significant digits takes
#: about as long as ten plain steps (measured: 0.5 us against 0.03 to 0.05 us).
_DIVISION_STEPS = 10
#: What ``t between 15:00 and 18:00`` counts for (a call of the runtime's time_between:
#: about 0.1 us). A builtin's own cost is its entry's ``steps`` (dsl/library/builtins.py).
_BETWEEN_STEPS = 3
#: A duration times a number (``customer.lifetime.visits * 1 day``): Python rebuilds the
#: duration from microseconds, about 0.47 us.
_DURATION_PRODUCT_STEPS = 16
#: Adding or subtracting dates, datetimes and durations: about 0.03 to 0.05 us.
_TEMPORAL_STEPS = 2
#: Adding or subtracting a calendar span (``event.date + 3 months``): the runtime's
#: add_months, about 15 times a date plus a duration (measured in one run: 2.8 us against
#: 0.19 us on a loaded machine), so 30 steps, rounded up.
_CALENDAR_STEPS = 40
#: The calendar (0001-01-01 to 9999-12-31, as day numbers) and the longest duration
#: (Python's timedelta): the range the checker's interval analysis holds dates and
#: durations to.
_FIRST_DAY = date.min.toordinal()
_LAST_DAY = date.max.toordinal()
MAX_DURATION_DAYS = timedelta.max.days
#: The longest duration an input may hold (dsl.schema.schema: 100,000 days).
_INPUT_DURATION_DAYS = 100_000
#: The most characters of text one evaluation of a policy may build with ``+``.
MAX_BUILT_TEXT = 10_000_000
#: Digits of values the built-in functions compute from dates and durations: minutes() of
#: the longest duration (999,999,999 days) has 13, the others fewer.
_SMALL = 13


@dataclass(frozen=True, slots=True)
class Size:
    """What the size pass knows about every value one expression can take.

    A number is below 10**``digits`` in magnitude and a multiple of 10**-``places``; one
    that is not zero is at least 10**-``tiny``. An ``exact`` number was computed without
    division, so it has at most ``digits + places`` significant digits; a quotient is
    rounded to the evaluation context's precision, and its ``places`` say how far
    below the point those digits may reach. A text has at most ``digits`` characters. A
    list has at most ``items`` items, each bounded by the rest of the fields.
    """

    digits: int = 1
    places: int = 0
    tiny: int = 0
    exact: bool = True
    items: int = 0
    #: For a date or datetime, the first and last calendar day (``date.toordinal()``) it
    #: can fall on, on its own clock; for a duration, the fewest and most days it can
    #: be (rounded outward). None: not known, the whole range of its type.
    days: tuple[int, int] | None = None

    def join(self, other: Size) -> Size:
        """A bound on values that are either of this bound's or of ``other``'s."""
        days = None if self.days is None or other.days is None else (
            min(self.days[0], other.days[0]), max(self.days[1], other.days[1]))
        return Size(max(self.digits, other.digits), max(self.places, other.places),
                    max(self.tiny, other.tiny), self.exact and other.exact,
                    max(self.items, other.items), days)

    def element(self) -> Size:
        """The bound of one item of a list bounded by this."""
        return Size(self.digits, self.places, self.tiny, self.exact, days=self.days)


_ONE = Size()
_TEXT_INPUT = Size(MAX_STRING)


def _count_digits(n: int) -> int:
    """Digits of the largest count of ``n`` things (10,000 items: 5)."""
    return len(str(max(n, 1)))


def _literal_size(v: Any) -> Size:
    if isinstance(v, bool):
        return _ONE
    if isinstance(v, int):
        return Size(len(str(abs(v))))
    if isinstance(v, Decimal):
        if not v:
            return Size(1, max(-v.as_tuple().exponent, 0))  # type: ignore[operator]
        # 0.000000000000000001 is below 1 (no digit before the point) and 18 places after.
        return Size(max(v.adjusted() + 1, 1), max(-v.as_tuple().exponent, 0),  # type: ignore[operator]
                    max(-v.adjusted(), 0))
    if isinstance(v, str):
        return Size(len(v))
    if isinstance(v, date):  # a datetime too: its day on its own clock
        day = v.toordinal()
        return Size(days=(day, day))
    if isinstance(v, timedelta):
        return Size(days=_outward(v))
    if isinstance(v, Months):
        # A month moves a date by 28 to 31 days, less up to 3 when the day is clamped to a
        # shorter month's last (Jan 31 + 1 month = Feb 28).
        m = v.count
        return Size(days=(28 * m - 3, 31 * m) if m >= 0 else (31 * m, 28 * m + 3))
    return _ONE


def _outward(d: timedelta) -> tuple[int, int]:
    """The whole days around a duration: (floor, ceiling)."""
    return (d.days, d.days + (1 if d.seconds or d.microseconds else 0))


def _input_size(t: Type) -> Size:
    """The bound of an input value of type ``t`` (dsl.schema.schema's input bounds)."""
    if t.kind == "enum" and t.values:
        return Size(max(len(v) for v in t.values))
    if t.kind in ("airport", "currency_code"):
        return Size(3)
    if t.is_stringy:
        return _TEXT_INPUT
    if t.kind == "list":
        elem = _input_size(t.elem) if t.elem is not None else _ONE
        return Size(elem.digits, elem.places, elem.tiny, elem.exact, MAX_LIST)
    if t.kind == "decimal":
        return Size(MAX_INPUT_DIGITS, MAX_INPUT_DIGITS, MAX_INPUT_DIGITS)
    if t.kind == "int":
        return Size(MAX_INPUT_DIGITS)
    if t.kind in ("date", "datetime"):
        return Size(days=(_FIRST_DAY, _LAST_DAY))
    if t.kind == "duration":
        return Size(days=(-_INPUT_DURATION_DAYS, _INPUT_DURATION_DAYS))
    return _ONE


class _SizePass(ExprVisitor[Size]):
    """The walk behind :func:`check_sizes`: one :class:`Size` per expression.

    ``times`` is how often an expression is evaluated in one evaluation of the policy
    (the product of the lengths of the aggregates around it); the steps and the text
    built are counted over the whole policy. A problem is reported where it starts:
    an expression whose parts already earned a diagnostic earns no second one.
    """

    def __init__(self, checker: Checking) -> None:
        self.checker = checker
        self.bounds: dict[str, Size] = {}
        self.steps = 0
        self.built = 0
        #: The largest digits, exact significant digits and text seen (for the CostBound).
        self.digits = 1
        self.significant = 1
        self.longest = 0
        self.awards: dict[str, int] = {}
        #: Divisors' ``tiny``, by id, for the hint of a division that grows too large.
        self.divisor_tiny: dict[int, int] = {}
        #: Date and duration arithmetic already warned of: what uses it is not warned again.
        self.out_of_range: set[int] = set()

    def errors(self) -> int:
        """How many errors the policy has earned so far (warnings do not count)."""
        return sum(1 for d in self.checker.result.diagnostics if d.severity == "error")

    def report(self, e: n.Node, code: str, message: str, hint: str) -> None:
        self.checker.error(e.span, code, message, hint)

    def text(self, e: n.Node) -> str:
        return self.checker.text(e)

    def run(self) -> None:
        policy = self.checker.policy
        for r in policy.rules:
            for eff in r.effects:
                if isinstance(eff, n.Award):
                    self.awards[eff.currency] = self.awards.get(eff.currency, 0) + 1
        before = self.errors()
        for m in policy.members:
            if isinstance(m, n.Let | n.Table | n.Decide):
                reported = self.errors()
                self.checker.muted = self.checker.imported(m) is not None
                found = self.binding(m)
                self.checker.muted = False
                # A binding whose value earned a diagnostic is reported there, not at each use.
                self.bounds[m.name] = found if self.errors() == reported else _ONE
            elif isinstance(m, n.Cap):
                self.amount(m.amount, m.currency, 1)
            elif isinstance(m, n.Rule | n.Group):
                for r in (m.rules if isinstance(m, n.Group) else [m]):
                    if r.cond is not None:
                        self.size(r.cond, {}, 1)
                    for eff in r.effects:
                        if isinstance(eff, n.Award):
                            self.amount(eff.amount, eff.currency, self.awards[eff.currency],
                                        summed_exact=self.summed_exact(eff.currency))
                            if eff.limit is not None:
                                self.amount(eff.limit, eff.currency, 1)
                        elif isinstance(eff, n.Grant):
                            for _, value, _ in eff.params:
                                self.size(value, {}, 1)
                        elif isinstance(eff, n.Count):
                            for value in (eff.amount, eff.limit):
                                if value is not None:
                                    self.size(value, {}, 1)
        if self.errors() > before:
            return
        self.checker.result.bound = CostBound(self.digits, self.significant, self.longest,
                                              self.steps, self.built)
        name_span = policy.header_spans.get("name", policy.span)
        if self.steps > MAX_STEPS:
            self.checker.error(name_span, "too_costly",
                               f"policy {policy.name} could take {self.steps} steps in aggregates "
                               f"in one evaluation; the limit is {MAX_STEPS}",
                               "aggregate each list once, in a `let`, and reuse the result; or "
                               "split the policy")
        elif self.built > MAX_BUILT_TEXT:
            self.checker.error(name_span, "too_costly",
                               f"policy {policy.name} could build {self.built} characters of text "
                               f"in one evaluation; the limit is {MAX_BUILT_TEXT}",
                               "build each text once, in a `let`, and reuse it")

    def binding(self, m: n.Let | n.Table | n.Decide) -> Size:
        """The bound of a ``let``, ``table`` or ``decide`` value."""
        if isinstance(m, n.Let):
            return self.size(m.value, {}, 1)
        if isinstance(m, n.Table):
            self.size(m.key, {}, 1)
            return _join_all([self.size(r.value, {}, 1) for r in m.rows])
        values = []
        for r in m.rows:
            if r.cond is not None:
                self.size(r.cond, {}, 1)
            values.append(self.size(r.value, {}, 1))
        found = _join_all(values)
        if m.hit == "collect":
            return Size(found.digits, found.places, found.tiny, found.exact, len(m.rows))
        return found

    def summed_exact(self, currency: str) -> bool:
        """Whether the policy adds up this currency's awards unrounded (its total is rounded once)."""
        result = self.checker.result
        return currency in result.rounding and currency not in result.per_award

    def amount(self, e: n.Expr, currency: str, awards: int, summed_exact: bool = False) -> None:
        """An award, ``up to`` limit or cap: rounded to the currency, then added up.

        With ``summed_exact`` the awards are added up unrounded (the total is rounded
        once), so their sum must also stay exact within the context's precision.
        """
        before = self.errors()
        s = self.size(e, {}, 1)
        currencies = self.checker.schema.currencies
        decimals = currencies[currency].decimals if currency in currencies else 0
        # Rounding to the currency's places is a quantize within the context's precision
        # (and may carry into one more digit), and the policy's total adds up to ``awards``
        # such amounts.
        rounding = 0 if self.checker.result.type_of(e).kind == "int" else 1
        digits = s.digits + rounding + (_count_digits(awards) if awards > 1 else 0)
        self.digits = max(self.digits, digits)
        total = digits + decimals
        if total > MAX_NUMBER_DIGITS and self.errors() == before:
            self.report(e, "number_too_large",
                        f"{self.text(e)} could grow past {MAX_NUMBER_DIGITS} digits as an "
                        f"amount of {currency} ({s.digits} digits, {decimals} decimal places, "
                        f"{awards} awards added up): evaluating it would have no bounded cost",
                        "this arithmetic multiplies large values together; simplify it")
        elif summed_exact and s.exact and digits + s.places > MAX_NUMBER_DIGITS \
                and self.errors() == before:
            self.report(e, "number_too_large",
                        f"{self.text(e)} could need more than {MAX_NUMBER_DIGITS} significant digits "
                        f"when {awards} unrounded awards of {currency} are added up "
                        f"({s.digits} before the point, {s.places} after, and {digits - s.digits} "
                        "for carries), so their total could not be computed exactly",
                        "round a part to fewer decimal places first, for example round(x, 2)")

    def size(self, e: n.Expr, items: dict[str, Size], times: int) -> Size:
        """The bound of ``e``'s values, evaluated ``times`` times per evaluation."""
        before = self.errors()
        found = self.measure(e, items, times)
        if self.errors() > before:
            return found
        t = self.checker.result.type_of(e)
        if t.is_stringy:
            self.longest = max(self.longest, found.digits)
            if found.digits > MAX_TEXT:
                self.report(e, "text_too_long",
                            f"{self.text(e)} could grow past {MAX_TEXT} characters: evaluating it "
                            "would have no bounded cost",
                            "this text is built from long texts; build it from shorter parts")
        elif t.is_numeric and not found.items:
            self.digits = max(self.digits, found.digits)
            if found.exact:
                self.significant = max(self.significant, found.digits + found.places)
            if found.digits > MAX_NUMBER_DIGITS:
                self.report(e, "number_too_large",
                            f"{self.text(e)} could grow past {MAX_NUMBER_DIGITS} digits: "
                            "evaluating it would have no bounded cost", self.hint(e))
            elif found.exact and found.digits + found.places > MAX_NUMBER_DIGITS:
                self.report(e, "number_too_large",
                            f"{self.text(e)} could need more than {MAX_NUMBER_DIGITS} significant "
                            f"digits ({found.digits} before the point, {found.places} after), so "
                            "it could not be computed exactly",
                            "round a part to fewer decimal places first, for example "
                            "round(x, 2)")
        return found

    def hint(self, e: n.Expr) -> str:
        if isinstance(e, n.Binary) and e.op in ("/", "%"):
            return (f"dividing by {self.text(e.right)} multiplies by up to 10^"
                    f"{self.divisor_tiny.get(id(e.right), 0)}; divide by a value with fewer decimal places, "
                    "for example round(x, 2)")
        return "this arithmetic multiplies large values together; simplify it"

    def measure(self, e: n.Expr, items: dict[str, Size], times: int) -> Size:
        """The bound of ``e``'s values: its ``visit_<Node>`` (an unknown kind raises)."""
        return self.visit(e, items, times)

    def visit_Literal(self, e: n.Literal, items: dict[str, Size], times: int) -> Size:
        return _literal_size(e.value)

    def visit_Name(self, e: n.Name, items: dict[str, Size], times: int) -> Size:
        if e.name in items:
            return items[e.name]
        return self.bounds.get(e.name, _ONE)

    def visit_Attribute(self, e: n.Attribute, items: dict[str, Size], times: int) -> Size:
        self.size(e.value, items, times)
        return _input_size(self.checker.result.type_of(e))

    def visit_ListExpr(self, e: n.ListExpr, items: dict[str, Size], times: int) -> Size:
        found = _join_all([self.size(x, items, times) for x in e.items])
        self.steps += times * len(e.items)
        return Size(found.digits, found.places, found.tiny, found.exact, len(e.items))

    def visit_Unary(self, e: n.Unary, items: dict[str, Size], times: int) -> Size:
        inner = self.size(e.operand, items, times)
        if e.op == "not":
            return _ONE
        if inner.days is not None:  # -d: a duration, negated
            return Size(inner.digits, inner.places, inner.tiny, inner.exact, inner.items,
                        (-inner.days[1], -inner.days[0]))
        return inner

    def visit_Presence(self, e: n.Presence, items: dict[str, Size], times: int) -> Size:
        self.size(e.operand, items, times)
        return _ONE

    def visit_Between(self, e: n.Between, items: dict[str, Size], times: int) -> Size:
        self.size(e.operand, items, times)
        return _ONE

    def visit_IfExpr(self, e: n.IfExpr, items: dict[str, Size], times: int) -> Size:
        self.size(e.cond, items, times)
        return self.size(e.then, items, times).join(self.size(e.orelse, items, times))

    def iterate(self, e: n.Expr, length: int, times: int, what: str, weight: int = 1) -> int:
        """Count ``length`` items of ``weight`` steps, ``times`` over; report a single
        expression past the limit."""
        steps = times * length * weight
        self.steps += steps
        if steps > MAX_STEPS and times <= MAX_STEPS:
            self.report(e, "too_costly",
                        f"{self.text(e)} could take {steps} steps in one evaluation ({what}); "
                        f"the limit is {MAX_STEPS}",
                        "aggregate over one list at a time: compute what does not depend on "
                        "the outer item in a `let` first")
        return steps

    def visit_Aggregate(self, e: n.Aggregate, items: dict[str, Size], times: int) -> Size:
        source = self.size(e.source, items, times)
        length = source.items
        weight = self.item_weight(e)
        what = f"{length} items" + (f", {times} times" if times > 1 else "") + (
            f", {weight} operations each" if weight > 1 else "")
        self.iterate(e, length, times, what, weight)
        inner = dict(items)
        inner[e.var] = source.element()
        every = times * max(length, 1)
        if e.where is not None:
            self.size(e.where, inner, every)
        body = self.size(e.body, inner, every)
        if e.func == "sum":
            return _grown(body, _count_digits(length))
        if e.func == "count":
            return Size(_count_digits(length))
        if e.func in ("any", "all"):
            return _ONE
        return body

    def visit_Call(self, e: n.Call, items: dict[str, Size], times: int) -> Size:
        """A builtin's bound and steps, from its entry's ``cost`` and ``size``."""
        args = [self.size(a, items, times) for a in e.args]
        b = BUILTINS[e.func]
        if b.cost == "per_item" and len(args) == 1 and args[0].items:
            self.iterate(e, args[0].items, times, f"a list of {args[0].items} items")
            if b.size == "sum":
                return _grown(args[0].element(), _count_digits(args[0].items))
            if b.size == "count":
                return Size(_count_digits(args[0].items))
            if b.size == "extreme":
                return args[0].element()
            raise TypeError(f"the size pass cannot bound {b.name}() of a list (size {b.size!r})")
        if b.name == "local":
            # The wall clock of any zone is within a day of the instant's own, and within the
            # calendar: local() stops the evaluation when it is not.
            low, high = _widen(args[0].days, 1)
            return Size(days=(max(low, _FIRST_DAY), min(high, _LAST_DAY)))
        if b.name == "date":
            return Size(days=args[0].days or (_FIRST_DAY, _LAST_DAY))
        if b.name == "abs" and args[0].days is not None:
            low, high = args[0].days
            return Size(days=(0 if low <= 0 <= high else min(abs(low), abs(high)),
                              max(abs(low), abs(high))))
        if b.size in ("args", "extreme"):
            return _join_all(args)
        if b.size == "rounded":
            x = args[0]
            places = 0
            if len(e.args) == 2:
                p = e.args[1]
                # round() faults on places outside 0..12, so 12 bounds every value it gives.
                literal = isinstance(p, n.Literal) and type(p.value) is int and 0 <= p.value <= 12
                places = p.value if literal else 12  # type: ignore[union-attr, assignment]
            # Rounding can carry into one more digit (9.5 -> 10) and leaves an exact value.
            return Size(x.digits + 1, places, min(x.tiny, places))
        if b.size in ("small", "sum", "count"):  # sum and count of an empty list: 0
            return Size(_SMALL)
        raise TypeError(f"the size pass does not know the size rule {b.size!r} of {b.name}()")

    def visit_Binary(self, e: n.Binary, items: dict[str, Size], times: int) -> Size:
        op = e.op
        before = self.errors()
        a = self.size(e.left, items, times)
        b = self.size(e.right, items, times)
        t = self.checker.result.type_of(e)
        if op in ("in", "not in"):
            if b.items:
                self.iterate(e, b.items, times, f"a list of {b.items} items")
            return _ONE
        if op == "otherwise":
            return a.join(b)
        if op not in ("+", "-", "*", "of", "/", "%", "div"):
            return _ONE
        if op == "div":  # whole numbers, the quotient no larger than the dividend
            self.divisor_tiny[id(e.right)] = 0
            return Size(a.digits)
        if t.is_stringy:
            length = a.digits + b.digits
            built = times * length
            self.built += built
            if built > MAX_BUILT_TEXT and length <= MAX_TEXT and self.errors() == before:
                self.report(e, "too_costly",
                            f"{self.text(e)} could build {built} characters of text in one "
                            f"evaluation ({times} texts of up to {length}); the limit is "
                            f"{MAX_BUILT_TEXT}",
                            "build the text once, in a `let` outside the aggregate")
            return Size(length)
        if t.kind in ("date", "datetime", "duration"):
            return self.temporal(e, t.kind, a, b, before)
        if not t.is_numeric:
            return _ONE
        if op in ("+", "-"):
            # A sum keeps the finer scale, and can cancel down to it.
            places = max(a.places, b.places)
            return Size(max(a.digits, b.digits) + 1, places, places, a.exact and b.exact)
        if op in ("*", "of"):
            return Size(a.digits + b.digits, a.places + b.places, a.tiny + b.tiny,
                        a.exact and b.exact)
        if op == "%":
            # a % b: Decimal's remainder is exact, but it needs the whole quotient (below
            # 10**(a.digits + b.tiny), as for a / b) within the context's precision. The
            # remainder itself is smaller than |b| in magnitude, a multiple of the finer
            # of the two scales, and exact when both operands are.
            self.divisor_tiny[id(e.right)] = b.tiny
            if a.digits + b.tiny > MAX_NUMBER_DIGITS and self.errors() == before:
                self.report(e, "number_too_large",
                            f"{self.text(e)} could need a quotient of more than "
                            f"{MAX_NUMBER_DIGITS} digits: evaluating it would have no bounded cost",
                            self.hint(e))
            places = max(a.places, b.places)
            return Size(b.digits, places, places, a.exact and b.exact)
        # a / b: |b| >= 10**-b.tiny, so the quotient is below 10**(a.digits + b.tiny); it is at
        # least 10**-(a.tiny + b.digits), and rounded to the context's precision below that.
        self.divisor_tiny[id(e.right)] = b.tiny
        tiny = a.tiny + b.digits
        return Size(a.digits + b.tiny, tiny + MAX_NUMBER_DIGITS, tiny, False)


    def temporal(self, e: n.Binary, kind: str, a: Size, b: Size, before: int) -> Size:
        """``a op b`` giving a date, datetime or duration: its days, held to the calendar
        and to the longest duration.

        Every value out of range: refused (``date_out_of_range``, ``duration_too_long``).
        Some values out of range (``event.date + 1 day`` when the event is on
        9999-12-31): a warning, since every date input reaches the calendar's ends and
        refusing would refuse every date arithmetic; evaluation then stops with the
        language's own message ("date past 9999-12-31"). A value that passes on is within
        range, so the range is clamped and what uses it is not warned of again.
        """
        found = _temporal_days(e.op, a, b,
                               self.checker.result.type_of(e.right).kind in ("duration", "months"))
        if kind == "duration":
            low, high, what = -MAX_DURATION_DAYS, MAX_DURATION_DAYS, "duration"
        else:
            low, high, what = _FIRST_DAY, _LAST_DAY, "date"
        if found is None or (low <= found[0] and found[1] <= high):
            return Size(days=found)
        warned = id(e.left) in self.out_of_range or id(e.right) in self.out_of_range
        self.out_of_range.add(id(e))
        clamped = (max(found[0], low), min(found[1], high))
        if self.errors() > before or warned:
            return Size(days=clamped)
        always = found[1] < low or found[0] > high
        if what == "duration":
            most = max(abs(found[0]), abs(found[1]))
            message = (f"{self.text(e)} could be a duration of {most:,} days; the longest is "
                       f"{MAX_DURATION_DAYS:,} days")
            code, edge = "duration_too_long", DURATION_TOO_LONG
            hint = "multiply by a smaller number, or compare counts instead of durations"
        else:
            later = found[1] > high
            message = (f"{self.text(e)} could be a date "
                       + ("past 9999-12-31" if later else "before 0001-01-01")
                       + ", outside the calendar")
            code, edge = "date_out_of_range", OUTSIDE_THE_CALENDAR
            hint = "compare with days_between() instead of adding a duration to the date"
        if always:
            self.report(e, code, message.replace("could be", "is always"), hint)
            return Size(days=clamped)
        self.checker.warn(e.span, code, f"{message} (evaluation then fails: \"{edge}\")", hint)
        return Size(days=clamped)

    def item_weight(self, e: n.Aggregate) -> int:
        """The steps an aggregate evaluates per item: the operations of its body and
        condition, each weighted (a builtin by its entry's ``steps``), not counting the
        bodies of aggregates inside them (their own steps count those)."""
        return _item_weight(e, self.checker.result.type_of)


def _widen(days: tuple[int, int] | None, by: int) -> tuple[int, int]:
    low, high = days or (_FIRST_DAY, _LAST_DAY)
    return (low - by, high + by)


def _temporal_days(op: str, a: Size, b: Size, by_duration: bool) -> tuple[int, int] | None:
    """The days of ``a op b`` (a date, datetime or duration; ``by_duration`` when ``b`` is a
    duration), or None when not known."""
    if a.days is None or b.days is None:
        if op in ("*", "of"):
            known = a.days if a.days is not None else b.days
            if known is None:
                return None
            count = 10 ** (b.digits if a.days is not None else a.digits) - 1
            most = max(abs(known[0]), abs(known[1])) * count
            return (-most, most)
        return None
    (a0, a1), (b0, b1) = a.days, b.days
    if op == "+":
        return (a0 + b0, a1 + b1)
    if op == "-" and by_duration:
        return (a0 - b1, a1 - b0)
    if op == "-":
        # A datetime's day is rounded down: the difference of two may be a day more.
        return (a0 - b1 - 1, a1 - b0 + 1)
    return None


def _operation_steps(x: n.Expr, type_of: Any) -> int:
    """What evaluating one node counts, not counting its operands."""
    if isinstance(x, n.Binary):
        if x.op in ("/", "%"):
            return _DIVISION_STEPS
        kinds = {type_of(x.left).kind, type_of(x.right).kind}
        if x.op in ("*", "of") and "duration" in kinds:
            return _DURATION_PRODUCT_STEPS
        if x.op in ("+", "-") and "months" in kinds:
            return _CALENDAR_STEPS
        if x.op in ("+", "-") and kinds & {"date", "datetime", "duration"}:
            return _TEMPORAL_STEPS
        return 1
    if isinstance(x, n.Between):
        return _BETWEEN_STEPS
    if isinstance(x, n.Call):
        b = BUILTINS.get(x.func)
        if b is None or (b.cost == "per_item" and len(x.args) == 1):
            return 1  # the items of its list are counted as the list's
        return b.steps
    return 1


def _item_weight(e: n.Aggregate, type_of: Any) -> int:
    """The steps an aggregate evaluates per item (see :meth:`_SizePass.item_weight`)."""
    count = 0
    stack: list[n.Expr] = [e.body] if e.where is None else [e.body, e.where]
    while stack:
        x = stack.pop()
        count += _operation_steps(x, type_of)
        if isinstance(x, n.Aggregate):
            stack.append(x.source)
            continue
        for name in x.__dataclass_fields__:
            child = getattr(x, name)
            if isinstance(child, n.Expr):
                stack.append(child)
            elif isinstance(child, list):
                stack.extend(c for c in child if isinstance(c, n.Expr))
    return count


def _grown(s: Size, digits: int) -> Size:
    """The bound of a sum of up to 10**digits values bounded by ``s``."""
    return Size(s.digits + digits, s.places, s.places, s.exact)


def _join_all(sizes: list[Size]) -> Size:
    if not sizes:
        return _ONE
    found = sizes[0]
    for s in sizes[1:]:
        found = found.join(s)
    return found


def check_sizes(checking: Checking) -> None:
    """Bound every number and text the policy computes, and the work of one evaluation.

    Inputs are bounded by the schema (18 digits before and after the point, 10,000
    characters, 10,000 items); this pass carries those bounds through every
    expression (see :class:`Size`) and refuses a policy that could compute a number
    of 10**MAX_NUMBER_DIGITS or more, an exact number of more significant digits than
    the evaluation context holds, a text past MAX_TEXT, or more than MAX_STEPS
    aggregate steps or MAX_BUILT_TEXT characters of text in one evaluation. So no
    policy can make one evaluation slow: repeated squaring grows a number's digits
    exponentially, and an aggregate inside an aggregate multiplies their lists.
    """
    _SizePass(checking).run()
