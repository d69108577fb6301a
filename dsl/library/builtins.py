"""The built-in functions, declared once: every consumer reads :data:`BUILTINS`.

One :class:`Builtin` per function holds its name, its implementation (a function in
:mod:`dsl.library.runtime`), its type rule, its cost for the checker's cost bound and a one-line
doc. The checker type-checks calls from it (``Checker.visit_Call``) and bounds their cost from it
(``_SizePass.visit_Call``); the runtime exports each implementation to generated code as
``fn_<name>`` (:data:`EXPORTS`); the reference interpreter calls the same
implementation; docs/language.md's "Built-in functions" table is :func:`docs_table`'s text
(a test compares them); the Hypothesis strategies generate calls from the entries.

Adding a builtin is one entry here plus its implementation in :mod:`dsl.library.runtime`.

A type rule is data where it can be: one :class:`Param` per argument, each with the kinds
of value it accepts and what the diagnostic says otherwise, and a result type (or a small
function of the argument types, for ``abs`` and ``round``). Generic rules (``min``/``max``
over numbers, dates or durations, ``sum``/``count`` over a list, ``distance_miles`` with
its literal airport codes) are functions of a :class:`TypeContext`: the checker itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal, Protocol

from dsl.errors import did_you_mean
from dsl.front import nodes as n
from dsl.library import runtime as rt
from dsl.schema import airports, timezones
from dsl.schema.types import ANY, DATE, DATETIME, DECIMAL, INT, Type, unify


class TypeContext(Protocol):
    """What a generic type rule may ask of the checker."""

    def need(self, e: n.Expr, t: Type, kinds: tuple[str, ...], message: str) -> bool:
        """Report a ``type_error`` unless ``t`` is one of ``kinds``; whether it was."""
        ...

    def error(self, span: Any, code: str, message: str, hint: str = "") -> None:
        """Report a diagnostic."""
        ...

    def text(self, node: n.Node) -> str:
        """The source text of a node."""
        ...

    def type_of(self, e: n.Expr) -> Type:
        """The type already found for an expression checked before."""
        ...


#: A generic type rule: (the checker, the call, its argument types) -> the result type.
TypeRule = Callable[[TypeContext, n.Call, list[Type]], Type]

#: How a call's work counts toward the checker's step bound (``MAX_STEPS``):
#: ``"one"``, one call of ``steps`` steps (counted in an aggregate's body for every item);
#: ``"per_item"``, one step per item when its one argument is a list (``steps`` otherwise).
Cost = Literal["one", "per_item"]

#: How the checker bounds a call's numeric result (``_SizePass.visit_Call``):
#: ``"small"``, a whole number of a few digits (date parts, day counts, miles);
#: ``"args"``, no larger than its arguments; ``"rounded"``, its first argument rounded
#: (to the places of its second argument, if any); ``"extreme"``, one of its arguments or
#: an item of its list argument (min, max); ``"sum"``, a list's items added up (grown by
#: the list's length); ``"count"``, a list's length.
Size = Literal["small", "args", "rounded", "extreme", "sum", "count"]

NUMBER = ("int", "decimal")
DATES = ("date", "datetime")
ORDERED = ("int", "decimal", "date", "datetime", "duration")


@dataclass(frozen=True, slots=True)
class Param:
    """One argument of a builtin with a fixed signature."""

    name: str
    #: The kinds of value it accepts (``Type.kind``; ``string`` accepts every kind of text).
    kinds: tuple[str, ...]
    #: The ``type_error`` message when it has another type: "floor() needs a number".
    message: str


@dataclass(frozen=True, slots=True)
class Builtin:
    """A built-in function: everything the checker, runtime, interpreter and docs know of it."""

    name: str
    #: The runtime function (generated code calls it as ``fn_<name>``).
    impl: Callable[..., Any]
    #: One-line doc: the "Meaning" column of the docs' table.
    doc: str
    #: How it is written in the docs' table, and what it gives ("Function" and "Gives").
    usage: str
    gives: str
    #: The fixed signature (empty for a generic ``rule``); ``required`` of them are required.
    params: tuple[Param, ...] = ()
    required: int | None = None
    #: The result type, or a function of the argument types (ignored with a ``rule``).
    result: Type | Callable[[Sequence[Type]], Type] = ANY
    #: A generic type rule, instead of ``params`` and ``result``.
    rule: TypeRule | None = None
    #: The fewest and most arguments when a ``rule`` decides the types.
    arity: tuple[int, int] | None = None
    cost: Cost = "one"
    #: What one call costs in the checker's steps (``dsl.analysis.cost.MAX_STEPS``): the
    #: unit is one item of ``sum(i.amount for i in event.items)``, about 30 ns. Measured, not
    #: guessed: tests/dsl/analysis/test_cost_bound.py evaluates, for every builtin, the
    #: costliest aggregate the checker accepts at 10,000 items and holds its time to the
    #: bound's, as a ratio to that unit measured in the same run.
    steps: int = 1
    size: Size = "small"
    #: A call and its value (tests check and evaluate it): ``("floor(2.5)", 2)``.
    example: tuple[str, Any] = ("", None)
    #: The least and most a whole-number result can be, whatever the arguments (the award
    #: bounds read it, dsl/analysis/bounds.py); None when it follows the arguments or is no number.
    values: tuple[int, int] | None = None

    @property
    def min_args(self) -> int:
        """The fewest arguments a call may have."""
        if self.arity is not None:
            return self.arity[0]
        return len(self.params) if self.required is None else self.required

    @property
    def max_args(self) -> int:
        """The most arguments a call may have."""
        return self.arity[1] if self.arity is not None else len(self.params)

    def result_type(self, args: Sequence[Type]) -> Type:
        """The type of a call of a fixed signature, given its (checked) argument types."""
        return self.result if isinstance(self.result, Type) else self.result(args)


# -- generic type rules ----------------------------------------------------------------------


def _min_max(ctx: TypeContext, e: n.Call, types: list[Type]) -> Type:
    """``min``/``max``: one list of ordered values, or 2 to 16 ordered values of one kind."""
    f = e.func
    message = f"{f}() compares numbers, dates or durations"
    if len(types) == 1:
        t = types[0]
        if t.kind != "list":
            if t.kind != "any":
                ctx.error(e.span, "wrong_arguments", f"{f}() of one value needs a list, but this is {t}",
                          f"write {f}(a, b) or {f}(a list)")
            return ANY
        assert t.elem is not None
        ctx.need(e.args[0], t.elem, ORDERED, message)
        return t.elem
    result = types[0]
    for a, t in zip(e.args, types, strict=True):
        ctx.need(a, t, ORDERED, message)
        merged = unify(result, t)
        if merged is None:
            ctx.error(a.span, "type_error", f"{f}() needs values of one kind; {ctx.text(a)} "
                      f"is {t}, the first is {result}", "compare like with like")
            return ANY
        result = merged
    return result


def _sum_count(ctx: TypeContext, e: n.Call, types: list[Type]) -> Type:
    """``sum``/``count`` of a list (numbers, for ``sum``)."""
    f = e.func
    t = types[0]
    if t.kind != "list":
        if t.kind != "any":
            ctx.error(e.args[0].span, "type_error", f"{f}() needs a list, but this is {t}",
                      f"write {f}(x for x in some_list)")
        return ANY
    if f == "count":
        return INT
    assert t.elem is not None
    ctx.need(e.args[0], t.elem, NUMBER, "sum() adds numbers")
    return INT if t.elem.kind == "int" else DECIMAL


def _airports(ctx: TypeContext, e: n.Call, types: list[Type]) -> Type:
    """``distance_miles``: two airports; a literal code must be a known airport."""
    for a, t in zip(e.args, types, strict=True):
        if isinstance(a, n.Literal) and isinstance(a.value, str):
            if not airports.is_airport(a.value):
                ctx.error(a.span, "unknown_airport", f'unknown airport code "{a.value}"',
                          "use a three-letter IATA code in capitals, such as \"JFK\"")
        elif t.kind not in ("airport", "any"):
            ctx.need(a, t, ("airport",), "distance_miles() needs airport codes")
    return INT


def _local(ctx: TypeContext, e: n.Call, types: list[Type]) -> Type:
    """``local(t, zone)``: a datetime, and a time zone (a literal name must be a known one)."""
    t, z = e.args
    ctx.need(t, types[0], ("datetime",), "local() needs a date and time")
    if (isinstance(z, n.Binary) and z.op == "otherwise" and isinstance(z.right, n.Literal)
            and isinstance(z.right.value, str) and ctx.type_of(z.left).kind == "timezone"):
        z = z.right  # `customer.zone otherwise "Europe/London"`: a zone either way
    if isinstance(z, n.Literal) and isinstance(z.value, str):
        if not timezones.is_time_zone(z.value):
            close = did_you_mean(z.value, timezones.time_zones()) if len(z.value) <= 64 else ""
            ctx.error(z.span, "unknown_time_zone", f'"{z.value[:40]}" is not an IANA time zone name',
                      close or "write a zone name such as \"Europe/London\" or "
                      "\"America/New_York\", or read a field of type timezone")
    else:
        ctx.need(z, types[1], ("timezone",), "local() needs a time zone (a field of type timezone)")
    return DATETIME


def _clock_part(name: str, doc: str, impl: Callable[..., Any], value: int,
                values: tuple[int, int]) -> Builtin:
    return Builtin(name, impl, doc, f"`{name}(t)`", "int",
                   (Param("t", ("datetime",), f"{name}() needs a date and time"),), result=INT,
                   example=(f"{name}(2026-03-01T15:45:30Z)", value), values=values)


def _date_part(name: str, doc: str, impl: Callable[..., Any], value: int,
               values: tuple[int, int], steps: int = 1) -> Builtin:
    return Builtin(name, impl, doc, f"`{name}(d)`", "int",
                   (Param("d", DATES, f"{name}() needs a date"),), result=INT, steps=steps,
                   example=(f"{name}(2026-03-01)", value), values=values)


def _min_max_entry(name: str, impl: Callable[..., Any], example: tuple[str, Any]) -> Builtin:
    return Builtin(
        name, impl,
        "1 to 16 arguments (numbers, dates, datetimes or durations, of one kind); with one "
        f"argument, it must be a list: `{name}(bonuses)`. The {name} of an empty list is a "
        "run-time error.",
        f"`{name}(a, b, ...)`", "the arguments' type",
        rule=_min_max, arity=(1, 16), cost="per_item", steps=6, size="extreme", example=example)


def _rounding(name: str, doc: str, impl: Callable[..., Any], value: int) -> Builtin:
    return Builtin(name, impl, doc, f"`{name}(x)`", "int",
                   (Param("x", NUMBER, f"{name}() needs a number"),), result=INT, size="rounded",
                   steps=16, example=(f"{name}(2.5)", value))


#: The longest great-circle distance in whole miles: half the Earth's circumference at the
#: mean radius dsl.schema.airports uses (3958.7613 mi), rounded up.
MAX_GREAT_CIRCLE_MILES = 12_437
#: Whole years between two dates the runtime can hold (years 1 to 9999).
MAX_YEARS = 9_998
#: Calendar days between two such dates.
MAX_DAYS = 3_652_058

#: Every built-in function, in the docs' order.
BUILTINS_LIST: tuple[Builtin, ...] = (
    _min_max_entry("min", rt.minimum, ("min(3, 2.5)", Decimal("2.5"))),
    _min_max_entry("max", rt.maximum, ("max([3, 1, 2])", 3)),
    _rounding("floor", "the whole number at or below `x`", rt.floor, 2),
    _rounding("ceil", "the whole number at or above `x`", rt.ceil, 3),
    Builtin("round", rt.round_half_even,
            "to the nearest whole number, a half to even: `round(2.5)` is 2, `round(3.5)` is 4; "
            "with `places` (0 to 12), to that many decimals: `round(2.675, 2)` is 2.68",
            "`round(x)`, `round(x, places)`", "int; decimal with `places`",
            (Param("x", NUMBER, "round() needs a number"),
             Param("places", ("int",), "round()'s places must be a whole number")),
            required=1, result=lambda types: DECIMAL if len(types) == 2 else INT, size="rounded",
            steps=16,
            example=("round(2.675, 2)", Decimal("2.68"))),
    Builtin("abs", rt.absolute, "for numbers and durations", "`abs(x)`", "the argument's type",
            (Param("x", ("int", "decimal", "duration"), "abs() needs a number or a duration"),),
            result=lambda types: types[0].required(), size="args", steps=7,
            example=("abs(-90 minutes)", timedelta(minutes=90))),
    Builtin("tenure_years", rt.tenure_years,
            "whole years from `since` to `on`, counted by anniversaries (below)",
            "`tenure_years(since, on)`", "int",
            (Param("since", DATES, "tenure_years() needs dates"),
             Param("on", DATES, "tenure_years() needs dates")), result=INT, steps=5,
            example=("tenure_years(2016-02-29, 2026-02-28)", 10), values=(0, MAX_YEARS)),
    Builtin("tenure_months", rt.tenure_months,
            "whole calendar months from `since` to `on`, counted by monthly anniversaries "
            "(the day, or the month's last day when it is shorter: a member since 31 January "
            "has a month on 28 February); 0 when `on` is not later",
            "`tenure_months(since, on)`", "int",
            (Param("since", DATES, "tenure_months() needs dates"),
             Param("on", DATES, "tenure_months() needs dates")), result=INT, steps=8,
            example=("tenure_months(2026-01-31, 2026-02-28)", 1), values=(0, MAX_YEARS * 12 + 11)),
    Builtin("days_between", rt.days_between,
            "calendar days from `start` to `end`; negative when `end` is earlier",
            "`days_between(start, end)`", "int",
            (Param("start", DATES, "days_between() needs dates"),
             Param("end", DATES, "days_between() needs dates")), result=INT, steps=4,
            example=("days_between(2026-03-01, 2026-02-01)", -28),
            values=(-MAX_DAYS, MAX_DAYS)),
    _date_part("year", "the year of a date", rt.year, 2026, (1, 9999)),
    _date_part("quarter", "the calendar quarter of a date, 1 to 4 (January to March is 1)",
               rt.quarter, 1, (1, 4)),
    _date_part("month", "the month of a date, 1 to 12", rt.month, 3, (1, 12)),
    _date_part("day", "the day of the month, 1 to 31", rt.day, 1, (1, 31)),
    _date_part("weekday", "ISO weekday: 1 is Monday, 7 is Sunday", rt.weekday, 7, (1, 7), steps=3),
    Builtin("date", rt.date_of, "the calendar date of a datetime: in UTC, or in its zone after "
            "`local()` (a date is returned unchanged)",
            "`date(t)`", "date", (Param("t", DATES, "date() needs a date and time"),), result=DATE,
            steps=3,
            example=("date(2026-03-01T23:30-05:00)", date(2026, 3, 2))),
    _clock_part("hour", "the hour of a datetime, 0 to 23: in UTC, or in its zone after `local()`",
                rt.hour, 15, (0, 23)),
    _clock_part("minute", "the minute of the hour of a datetime, 0 to 59", rt.minute, 45, (0, 59)),
    Builtin("local", rt.local,
            "the same instant on the clocks of the IANA time zone `zone` (a field of type "
            "`timezone` or a name such as `\"Europe/London\"`); `hour`, `minute`, `date`, "
            "`weekday` and `between` then read local time (below)",
            # A zone lookup and a conversion: 1.5 to 3 us, against 30 ns for the unit.
            "`local(t, zone)`", "datetime", rule=_local, arity=(2, 2), steps=60,
            example=('local(2026-07-01T14:30Z, "Europe/London")',
                     datetime(2026, 7, 1, 15, 30, tzinfo=timezone(timedelta(hours=1))))),
    Builtin("minutes", rt.minutes, "a duration in whole minutes, toward zero", "`minutes(d)`", "int",
            (Param("d", ("duration",), "minutes() needs a duration"),), result=INT, steps=16,
            example=("minutes(2 hours)", 120)),
    Builtin("distance_miles", rt.distance_miles,
            "great-circle miles between two airports (below)",
            "`distance_miles(origin, destination)`", "int", rule=_airports, arity=(2, 2), steps=5,
            example=('distance_miles("JFK", "LHR")', 3442), values=(0, MAX_GREAT_CIRCLE_MILES)),
    Builtin("sum", rt.total, "the total of a list (0 for an empty list)", "`sum(list)`",
            "int or decimal", rule=_sum_count, arity=(1, 1), cost="per_item", size="sum",
            example=("sum([1, 2.5])", Decimal("3.5"))),
    Builtin("count", rt.count, "the number of items of a list", "`count(list)`", "int",
            rule=_sum_count, arity=(1, 1), cost="per_item", size="count",
            example=("count([1, 2, 3])", 3)),
)

#: The built-in functions by their policy-language name.
BUILTINS: dict[str, Builtin] = {b.name: b for b in BUILTINS_LIST}

#: The names generated code may use, and nothing else: the runtime's helpers, and every
#: builtin's implementation as ``fn_<name>``. Compiled policies run in a namespace of these alone.
EXPORTS: dict[str, Any] = {**rt.HELPERS, **{f"fn_{b.name}": b.impl for b in BUILTINS_LIST}}

#: Aggregates usable as ``f(expr for x in list where cond)``.
AGGREGATES = ("sum", "count", "any", "all", "min", "max")


def cost_table() -> str:
    """docs/language.md's table of what each builtin counts toward the step bound."""
    rows = ["| Function | Steps a call |", "| --- | --- |"]
    for b in BUILTINS_LIST:
        steps = f"{b.steps:,}"
        if b.cost == "per_item":
            steps = ("1 an item of its list" if b.rule is _sum_count
                     else f"1 an item of its list; {steps} with arguments")
        rows.append(f"| `{b.name}` | {steps} |")
    return "\n".join(rows) + "\n"


def docs_table() -> str:
    """docs/language.md's table of built-in functions, one row per entry."""
    rows = ["| Function | Gives | Meaning |", "| --- | --- | --- |"]
    rows += [f"| {b.usage} | {b.gives} | {b.doc} |" for b in BUILTINS_LIST]
    return "\n".join(rows) + "\n"
