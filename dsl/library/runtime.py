"""The runtime's allow-listed helpers: everything generated code may reach.

Compiled policies run in a namespace built from :data:`HELPERS` and the builtins
(:data:`dsl.library.builtins.EXPORTS`) alone, with empty ``__builtins__``; the reference
interpreter calls the same functions, so both share one definition of every built-in and every rounding rule.

Every function here is pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import calendar
import threading
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta, timezone
from decimal import (
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    getcontext,
    setcontext,
)
from typing import Any, TypeVar

from dsl.decision import Benefit, Decision, Reason, text_value
from dsl.schema import airports, timezones
from dsl.schema.types import Months


class PolicyFault(Exception):
    """A run-time failure inside a policy (division by zero, an unknown airport, overflow)."""


#: What a policy fault says when a value passes the bounds below (only a value that got
#: past the input bounds can do that: the checker refuses every policy that could).
OUT_OF_BOUNDS = "arithmetic error: a value exceeded the language's bounds"


#: What a policy fault says when date or duration arithmetic leaves Python's range (the
#: checker warns where it can: dsl.analysis.cost).
OUTSIDE_THE_CALENDAR = "date outside the calendar: past 9999-12-31 or before 0001-01-01"
DURATION_TOO_LONG = "duration beyond ±999,999,999 days"


def calendar_fault(exc: OverflowError) -> str:
    """The language's words for Python's OverflowError from date or duration arithmetic."""
    text = str(exc)
    if "date value out of range" in text or "year" in text:
        return OUTSIDE_THE_CALENDAR
    if "999999999" in text or "too large to convert" in text:
        return DURATION_TOO_LONG
    return OUT_OF_BOUNDS


# -- the decimal context ---------------------------------------------------------------------

#: The most digits a number a policy computes may have. The checker (``dsl.analysis.cost.check_sizes``) proves
#: that every value an accepted policy computes is below 10**MAX_NUMBER_DIGITS, and that every
#: value computed without division has at most this many significant digits; 100 leaves room
#: for five 18-digit inputs multiplied (90 digits) or two 36-digit decimal inputs (72).
MAX_NUMBER_DIGITS = 100

_T = TypeVar("_T")


class EvaluationContext(Context):
    """The decimal context every evaluation runs in; make one with :func:`new_context`.

    Its own class, so that one type check tells whether a thread already runs in it.
    """


def new_context() -> EvaluationContext:
    """A fresh evaluation context (one per thread: contexts carry mutable flags)."""
    return EvaluationContext(
        # The checker's digit bound is the precision, so +, - and * of an accepted policy
        # are exact, and a quotient is rounded to as many significant digits.
        prec=MAX_NUMBER_DIGITS,
        rounding=ROUND_HALF_EVEN,
        # Every value of an accepted policy is below 10**MAX_NUMBER_DIGITS (adjusted exponent
        # at most MAX_NUMBER_DIGITS - 1), so a larger result can only come from a value that
        # got past the input bounds: Overflow is trapped and it fails at once, instead of
        # growing until int() or a format spends minutes on a million digits.
        Emax=MAX_NUMBER_DIGITS - 1,
        # Tiny values cost nothing (a context rounds them, to zero at the end), and a
        # difference of rounded quotients may legitimately be tiny, so Underflow is not
        # trapped; the lower limit just mirrors the upper one.
        Emin=-(MAX_NUMBER_DIGITS - 1),
        capitals=1,
        clamp=0,
        flags=[],
        traps=[InvalidOperation, DivisionByZero, Overflow],
    )


_thread = threading.local()


def use_evaluation_context() -> None:
    """Make the calling thread's decimal context the evaluation context, for good.

    For threads that do nothing but serve evaluations (the service's RPC threads):
    :func:`in_evaluation_context` then costs them one type check per call.
    """
    setcontext(new_context())


def thread_context() -> EvaluationContext:
    """The calling thread's own evaluation context, made on first use."""
    try:
        return _thread.context  # type: ignore[no-any-return]
    except AttributeError:
        context = _thread.context = new_context()
        return context


def in_evaluation_context(fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` under the evaluation context, the caller's context restored after.

    Callers check ``type(getcontext()) is EvaluationContext`` first and call this only
    when it fails, so a thread that stays in the context pays no swap.
    """
    saved = getcontext()
    setcontext(thread_context())
    try:
        return fn(*args)
    finally:
        setcontext(saved)


def _bounded(value: Decimal) -> Decimal:
    """``value`` through the context (``+value``), as a fault if it is past the bounds.

    Every Decimal -> int conversion goes through this first: ``int()`` of a value
    with a huge exponent builds all its digits (half a minute for 10**1000000).
    """
    try:
        return +value
    except DecimalException:
        raise PolicyFault(OUT_OF_BOUNDS) from None


ROUNDING_MODES = {
    "down": ROUND_DOWN,
    "up": ROUND_UP,
    "half even": ROUND_HALF_EVEN,
    "half up": ROUND_HALF_UP,
}

_ONE = Decimal(1)


# -- arithmetic ------------------------------------------------------------------------------


def div(a: int | Decimal, b: int | Decimal) -> Decimal:
    """``a / b`` as an exact decimal; dividing by zero is a policy fault."""
    if b == 0:
        raise PolicyFault("division by zero")
    for x in (a, b):
        # Decimal(int) is quadratic in the digits: refuse a huge int before converting it.
        if type(x) is int and x.bit_length() > _MAX_INT_BITS:
            raise PolicyFault(OUT_OF_BOUNDS)
    try:
        return Decimal(a) / b
    except (Overflow, InvalidOperation):
        raise PolicyFault(OUT_OF_BOUNDS) from None
    except DecimalException:  # never a Python class name in a policy's fault
        raise PolicyFault(OUT_OF_BOUNDS) from None


def mod(a: int | Decimal, b: int | Decimal) -> int | Decimal:
    """``a % b``: the remainder of floored division, so it has the sign of the divisor.

    ``a % b == a - b * floor(a / b)`` exactly, for ints and decimals alike: ``-7 % 3`` is 2,
    ``7 % -3`` is -2, ``7.5 % 2`` is 1.5. That is Python's ``%`` on ints, and what policies
    wrote before ``%`` existed (``n - floor(n / 10) * 10``); Decimal's own ``%`` truncates
    instead (its remainder has the sign of the dividend), so it is corrected here. The
    remainder is exact (never rounded), and is an int only when both operands are;
    dividing by zero is a policy fault, as for ``/``.
    """
    if b == 0:
        raise PolicyFault("division by zero")
    if type(a) is int and type(b) is int:
        return a % b
    for x in (a, b):
        # Decimal(int) is quadratic in the digits: refuse a huge int before converting it.
        if type(x) is int and x.bit_length() > _MAX_INT_BITS:
            raise PolicyFault(OUT_OF_BOUNDS)
    try:
        # Decimal's remainder is exact, but needs the whole quotient within the precision
        # (the checker proves that for accepted policies; InvalidOperation otherwise).
        r = Decimal(a) % b
        if r and (r < 0) != (b < 0):
            r += b  # |r| < |b| with opposite signs: the sum is exact and smaller than |b|
    except (Overflow, InvalidOperation):
        raise PolicyFault(OUT_OF_BOUNDS) from None
    except DecimalException:  # never a Python class name in a policy's fault
        raise PolicyFault(OUT_OF_BOUNDS) from None
    # -7.5 % 2.5 is Decimal("-0.0"): callers should see one zero, 0.0.
    return r if r else r.copy_abs()


def idiv(a: int, b: int) -> int:
    """``a div b``: whole numbers divided, the quotient rounded down (floored), so
    ``a == (a div b) * b + a % b``: ``7 div 2`` is 3, ``-7 div 2`` is -4. Dividing by zero is a
    policy fault, as for ``/``."""
    if b == 0:
        raise PolicyFault("division by zero")
    return a // b


#: Bits of the largest int below 10**MAX_NUMBER_DIGITS.
_MAX_INT_BITS = (10**MAX_NUMBER_DIGITS).bit_length()


def round_award(value: int | Decimal, decimals: int, mode: str) -> int | Decimal:
    """Round an award to a currency's decimals with one of :data:`ROUNDING_MODES`.

    Whole-unit currencies (``decimals == 0``) give an ``int``; others a ``Decimal``
    with exactly ``decimals`` places.
    """
    if decimals == 0:
        if isinstance(value, int):
            return value
        return int(_bounded(value).to_integral_value(ROUNDING_MODES[mode]))
    try:
        # quantize works within the context: a result of more than MAX_NUMBER_DIGITS
        # digits is InvalidOperation at once, whatever the value's exponent.
        return Decimal(value).quantize(Decimal(1).scaleb(-decimals), ROUNDING_MODES[mode])
    except DecimalException:
        raise PolicyFault(OUT_OF_BOUNDS) from None


def round_ratio_half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` (denominator > 0) to a whole number, halves to even."""
    q, r = divmod(numerator, denominator)
    twice = 2 * r
    if twice > denominator or (twice == denominator and q & 1):
        return q + 1
    return q


def exact_award(value: int | Decimal, decimals: int) -> int | Decimal:
    """An unrounded award as the reasons show it: the same number, written plainly.

    Under total rounding awards stay exact; ``50% of 740`` is ``Decimal("370.0")``. A
    whole amount of the currency takes the currency's form (``370``; ``1.50`` credit), and
    any other keeps its digits without trailing zeros (``250.75``, ``0.125``).
    """
    if isinstance(value, int):
        return value
    value = _bounded(value)
    if decimals == 0:
        if value == value.to_integral_value():
            return int(value)
        return value.normalize()
    try:
        quantized = value.quantize(Decimal(1).scaleb(-decimals))
    except DecimalException:  # more digits than the context holds: not a whole amount
        return value.normalize()
    return quantized if quantized == value else value.normalize()


def to_currency(value: int | Decimal, decimals: int) -> int | Decimal:
    """An already-exact amount in a currency's representation (no rounding needed)."""
    if decimals == 0:
        return value if isinstance(value, int) else int(_bounded(value))
    try:
        return Decimal(value).quantize(Decimal(1).scaleb(-decimals))
    except DecimalException:
        raise PolicyFault(OUT_OF_BOUNDS) from None


# -- built-in functions ----------------------------------------------------------------------


def floor(x: int | Decimal) -> int:
    """The largest whole number not above ``x``."""
    return x if isinstance(x, int) else int(_bounded(x).to_integral_value(rounding="ROUND_FLOOR"))


def ceil(x: int | Decimal) -> int:
    """The smallest whole number not below ``x``."""
    return x if isinstance(x, int) else int(_bounded(x).to_integral_value(rounding="ROUND_CEILING"))


def round_half_even(x: int | Decimal, places: int | None = None) -> int | Decimal:
    """``round(x)``: to a whole number, or to ``places`` decimals, halves to even."""
    if places is None:
        return x if isinstance(x, int) else int(_bounded(x).to_integral_value(ROUND_HALF_EVEN))
    if places < 0 or places > 12:
        raise PolicyFault("round() keeps from 0 to 12 decimal places")
    try:
        return Decimal(x).quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)
    except DecimalException:
        raise PolicyFault(OUT_OF_BOUNDS) from None


def absolute(x: Any) -> Any:
    """``abs(x)`` for numbers and durations."""
    return -x if x < type(x)(0) else x


def minimum(*args: Any) -> Any:
    """``min(a, b, ...)``, or ``min(list)``; the minimum of an empty list is a fault."""
    values = args[0] if len(args) == 1 and isinstance(args[0], list) else args
    if not values:
        raise PolicyFault("min() of an empty list")
    best = values[0]
    for v in values[1:]:
        if v < best:
            best = v
    return best


def maximum(*args: Any) -> Any:
    """``max(a, b, ...)``, or ``max(list)``; the maximum of an empty list is a fault."""
    values = args[0] if len(args) == 1 and isinstance(args[0], list) else args
    if not values:
        raise PolicyFault("max() of an empty list")
    best = values[0]
    for v in values[1:]:
        if v > best:
            best = v
    return best


def total(values: Iterable[int | Decimal]) -> int | Decimal:
    """``sum(...)``: 0 for an empty list; an int unless a decimal is involved."""
    acc: int | Decimal = 0
    for v in values:
        acc = acc + v
    return acc


def count(values: Iterable[Any]) -> int:
    """``count(...)``: how many values."""
    n = 0
    for _ in values:
        n += 1
    return n


def tenure_years(since: date, on: date) -> int:
    """Whole years of membership from ``since`` to ``on``, counted by anniversaries.

    A member who joined on 29 February has their anniversary on 28 February in
    years without one (the earlier date: the benefit of the doubt goes to the
    member). A date on or before ``since`` gives 0.
    """
    if type(since) is not date or type(on) is not date:  # instants count by their UTC date
        since, on = date_of(since), date_of(on)
    if on <= since:
        return 0
    years = on.year - since.year
    month, day = since.month, since.day
    if month == 2 and day == 29 and not calendar.isleap(on.year):
        day = 28
    on_month = on.month
    if on_month < month or (on_month == month and on.day < day):
        years -= 1
    return years


def tenure_months(since: date, on: date) -> int:
    """Whole calendar months from ``since`` to ``on``, counted by monthly anniversaries.

    The anniversary is ``since``'s day of the month, or the month's last day when the month
    is shorter (joined 31 January: a month on 28 February), so ``tenure_months(since, on)``
    is the most ``m`` with ``since + m months`` on or before ``on``. A date on or before
    ``since`` gives 0, as for :func:`tenure_years`.
    """
    if type(since) is not date or type(on) is not date:  # instants count by their UTC date
        since, on = date_of(since), date_of(on)
    if on <= since:
        return 0
    months = (on.year - since.year) * 12 + on.month - since.month
    if on.day < since.day and on.day < calendar.monthrange(on.year, on.month)[1]:
        months -= 1
    return months


def days_between(start: date, end: date) -> int:
    """Calendar days from ``start`` to ``end`` (negative when ``end`` is earlier)."""
    if isinstance(start, datetime):
        start = start.date()
    if isinstance(end, datetime):
        end = end.date()
    return (end - start).days


def year(d: date) -> int:
    """The year of a date."""
    return d.year


def quarter(d: date) -> int:
    """The calendar quarter of a date, 1 to 4 (January to March is 1)."""
    return (d.month + 2) // 3


def month(d: date) -> int:
    """The month of a date, 1 to 12."""
    return d.month


def day(d: date) -> int:
    """The day of the month, 1 to 31."""
    return d.day


def weekday(d: date) -> int:
    """The ISO weekday: 1 is Monday, 7 is Sunday."""
    return d.isoweekday()


def date_of(d: datetime | date) -> date:
    """The calendar date of an instant on its clock: UTC, or the zone of ``local()`` (a date
    is returned as it is)."""
    return d.date() if isinstance(d, datetime) else d


def minutes(d: timedelta) -> int:
    """A duration in whole minutes (toward zero)."""
    return int(d.total_seconds() / 60)


def hour(t: datetime) -> int:
    """The hour of a datetime on its clock, 0 to 23: UTC, or the zone of ``local()``."""
    return t.hour


def minute(t: datetime) -> int:
    """The minute of the hour of a datetime on its clock, 0 to 59."""
    return t.minute


def local(t: datetime, zone: str) -> datetime:
    """The same instant on the wall clock of the IANA time zone ``zone``.

    The result carries the zone's UTC offset at that instant as a fixed offset, not the
    zone itself: Python compares and subtracts two datetimes of one ``tzinfo`` by their wall
    clocks (so, in a repeated hour, 01:30 before and after the clocks go back would be
    equal); with fixed offsets every comparison and difference is between instants.
    """
    try:
        tz = timezones.zone(zone)
    except KeyError:
        raise PolicyFault(f'unknown time zone "{zone[:40]}"') from None
    try:
        wall = t.astimezone(tz)
    except OverflowError:
        # The instant is within the calendar, its wall clock is not (Tokyo at
        # 9999-12-31T23:59:59Z is already 10000-01-01).
        edge = "past 9999-12-31" if t.year > 1 else "before 0001-01-01"
        raise PolicyFault(f"local time {edge} in {zone[:40]}") from None
    return wall.replace(tzinfo=timezone(wall.utcoffset() or timedelta(0)))


def time_between(t: datetime, start: int, end: int) -> bool:
    """``t between START and END``: whether ``t``'s time of day on its clock is at or after
    ``start`` and before ``end`` (minutes after midnight); a range whose end is earlier than
    its start runs across midnight."""
    m = t.hour * 60 + t.minute
    if start < end:
        return start <= m < end
    return m >= start or m < end


def distance_miles(origin: str, destination: str) -> int:
    """Great-circle miles between two IATA airports; an unknown code is a policy fault."""
    try:
        return airports.great_circle_miles(origin, destination)
    except airports.UnknownAirport as exc:
        raise PolicyFault(str(exc)) from None


def contains(haystack: list[Any], needle: Any) -> bool:
    """``needle in haystack`` for lists (a missing needle is in no list)."""
    return needle is not None and needle in haystack


def finish(decision: Decision, tier_rank: dict[str, int], caps: tuple[tuple[str, Any], ...],
           explain: list[Reason] | None) -> Decision:
    """Combine what the policies accumulated into the final decision.

    Applies the schema's per-event caps, drops zero awards, keeps the first
    grant of each benefit, picks the highest tier and sorts the tags.
    """
    awards = decision.awards
    for currency, cap in caps:
        amount = awards.get(currency)
        if amount is not None and amount > cap:
            awards[currency] = cap
            if explain is not None:
                explain.append(Reason("", "", "capped",
                                      f"cap_per_event for {currency}: {amount} -> {cap}",
                                      {currency: cap}))
    if 0 in awards.values():
        for currency in [k for k, v in awards.items() if v == 0]:
            del awards[currency]
    if len(decision.benefits) > 1:
        seen: set[str] = set()
        kept: list[Benefit] = []
        for b in decision.benefits:
            if b.name not in seen:
                seen.add(b.name)
                kept.append(b)
            elif explain is not None:
                explain.append(Reason(b.policy, b.rule, "not_chosen",
                                      f'benefit "{b.name}" was already granted'))
        decision.benefits = kept
    tags = decision.tags
    if len(tags) > 1:
        decision.tags = sorted(set(tags))
    del tier_rank
    return decision


#: The most decimal places a counted amount may have (the state store's bound).
MAX_COUNTED_PLACES = 9


def count_toward(decision: Decision, used: int | Decimal, counter: str, amount: int | Decimal,
                 limit: int | Decimal | None) -> None:
    """``count amount toward counter [up to limit]``: add to ``decision.counted``.

    With a limit, the amount is clipped to the room left: ``limit`` minus ``used`` (the
    window's stored sum) minus what this decision already counted toward the counter. An
    amount (or a room) of zero or less counts nothing.
    """
    counted = decision._counted
    if counted is None:
        counted = decision._counted = {}
    if limit is not None:
        room = limit - used - counted.get(counter, 0)
        if amount > room:
            amount = room
    if amount > 0:
        if isinstance(amount, Decimal) and amount.as_tuple().exponent < -MAX_COUNTED_PLACES:  # type: ignore[operator]
            raise PolicyFault(f"the amount counted toward {counter} ({amount}) has more than "
                              f"{MAX_COUNTED_PLACES} decimal places: round it")
        counted[counter] = counted.get(counter, 0) + amount


#: The most characters a value shows in a rule's text, and a filled-in text has: with at most
#: :data:`dsl.front.texts.MAX_TEXTS` texts per rule, what texts add to one explanation stays
#: within the evaluation's text bound whatever the input.
MAX_TEXT_VALUE = 200
MAX_TEXT = 500


def render_texts(templates: tuple[tuple[str, tuple[str, ...]], ...],
                 values: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """A rule's ``says`` texts filled in: (language, text) per template, in order.

    A template's parts alternate literal text and placeholder names
    (:class:`dsl.front.texts.Template`); each name is looked up in ``values`` (the checked
    placeholders' values) and shown by :func:`dsl.decision.text_value`, cut to
    :data:`MAX_TEXT_VALUE` characters (and the text to :data:`MAX_TEXT`) with an ellipsis.
    Only joining: no ``str.format``, so no text can reach into a value's attributes.
    """
    shown = {name: _cut(text_value(value), MAX_TEXT_VALUE) for name, value in values.items()}
    return tuple((language, _cut("".join([shown[p] if i % 2 else p for i, p in enumerate(parts)]),
                                 MAX_TEXT))
                 for language, parts in templates)


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[:most - 1] + "\u2026"


#: The runtime's own helpers generated code may use (besides the builtins, below).
HELPERS: dict[str, Any] = {
    "Decimal": Decimal,
    "Benefit": Benefit,
    "Reason": Reason,
    "PolicyFault": PolicyFault,
    "div": div,
    "mod": mod,
    "idiv": idiv,
    "Months": Months,
    "round_award": round_award,
    "round_ratio_half_even": round_ratio_half_even,
    "to_currency": to_currency,
    "exact_award": exact_award,
    "contains": contains,
    "count_toward": count_toward,
    "render_texts": render_texts,
    "time_between": time_between,
    "int": int,
    "len": len,
    "str": str,
    "timedelta": timedelta,
    "date_from_iso": date.fromisoformat,
    "datetime_from_iso": datetime.fromisoformat,
}
