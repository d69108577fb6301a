"""Periods as windows over a customer's counter entries.

The state store keeps append-only entries (counter, instant, exact amount) per customer and
sums windows of them; a reversal appends negative entries. A policy's ``counter`` says which
window it reads at an event (:class:`dsl.front.nodes.Period`):

- ``per day|week|month|quarter|year`` (``calendar`` optional): the whole calendar period that
  holds the event, in the programme's time zone (weeks start on Monday). The window ends at
  the period's end, not at the event, so a cap per period holds even for an event that
  arrives after later ones of the same period;
- ``per rolling N hours|days|weeks``: the entries from N before the event up to the event,
  both included;
- ``ever``: every entry up to the event, included.

Every boundary is computed with ``zoneinfo`` from the zone's local midnight, so a day in
London is 23 or 25 hours long on the days the clocks change.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal

from dsl.front import nodes as n

#: The smallest step of an instant: a window "up to the event" ends just after it.
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open interval ``[start, end)`` of one counter's entries (``start`` None: since
    ever). Both instants are aware UTC datetimes; windows are hashable keys of a state."""

    counter: str
    start: datetime | None
    end: datetime


def period_start(unit: str, day: date) -> date:
    """The first local day of the calendar ``unit`` (day, week, month, quarter, year) holding ``day``."""
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    if unit == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    if unit == "year":
        return date(day.year, 1, 1)
    raise ValueError(f"unknown calendar unit {unit!r}")


def next_period_start(unit: str, start: date) -> date:
    """The first local day after the calendar ``unit`` that starts on ``start``."""
    if unit == "day":
        return start + timedelta(days=1)
    if unit == "week":
        return start + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[unit]
    index = start.year * 12 + start.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """The instant (aware UTC) a local day starts in ``zone``.

    A zone whose clocks jump at midnight has no local 00:00 that day: ``fold=0`` reads it
    with the offset before the change, which is the instant of the change itself.
    """
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


#: The calendar window each (counter, unit, zone) read last. Events come in runs that share
#: their periods (a batch, one customer's history in time order), and a window is a pure
#: function of (counter, unit, zone, the period holding the instant), so the last one answers
#: whenever it holds the instant: no zone conversion, no new Window. Bounded: cleared when full.
_LAST_CALENDAR: dict[tuple[str, str, tzinfo], Window] = {}
_LAST_CALENDAR_MAX = 4096


def window(counter: str, period: n.Period, at: datetime, zone: tzinfo) -> Window:
    """The window of ``counter`` that ``period`` reads at instant ``at`` (aware)."""
    if period.kind == "calendar":
        key = (counter, period.unit, zone)
        last = _LAST_CALENDAR.get(key)
        if last is not None and last.start <= at < last.end:  # type: ignore[operator]
            return last
        day = at.astimezone(zone).date()
        start = period_start(period.unit, day)
        made = Window(counter, local_midnight(start, zone),
                      local_midnight(next_period_start(period.unit, start), zone))
        if len(_LAST_CALENDAR) >= _LAST_CALENDAR_MAX:
            _LAST_CALENDAR.clear()
        _LAST_CALENDAR[key] = made
        return made
    end = at.astimezone(UTC) + _TICK
    if period.kind == "rolling":
        assert period.length is not None
        return Window(counter, end - _TICK - period.length, end)
    return Window(counter, None, end)


def read_sum(value: object, kind: str, counter: str) -> int | Decimal:
    """A stored window sum as a counter's value: an ``int`` for a ``count`` counter, a
    ``Decimal`` for a ``sum`` counter. Binary floats are refused: amounts are exact."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise TypeError(f"the state of counter {counter} is {type(value).__name__}; "
                        "a window's sum is an int or a Decimal")
    if kind == "count":
        if isinstance(value, Decimal):
            if value != value.to_integral_value():
                raise ValueError(f"counter {counter} counts whole numbers, but its state is {value}")
            return int(value)
        return value
    return Decimal(value) if isinstance(value, int) else value


def histories(counters: tuple[tuple[str, str, n.Period], ...], at: datetime, zone: tzinfo,
              state: Mapping[Window, int | Decimal] | None) -> dict[str, int | Decimal]:
    """``history``'s values for one policy's counters (name, kind, period) at ``at``."""
    out: dict[str, int | Decimal] = {}
    for name, kind, period in counters:
        value: object = 0
        if state is not None:
            value = state.get(window(name, period, at, zone), 0)
        out[name] = read_sum(value, kind, name)
    return out


def exact_sum(total: Decimal) -> int | Decimal:
    """A window's sum as the state store gives it: an ``int`` when it has no fractional
    digits, else a ``Decimal`` with the largest scale of its entries."""
    exponent = total.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(total)
    return total


class MemoryStore:
    """A customer's counter entries in memory, summed as the service's store sums them.

    Policy tests (a case's ``history``), ``loyalty eval`` and ``loyalty replay`` use it to run
    events in time order with state: each evaluation reads the windows it needs, and what it
    counted is appended at the event's instant. Entries are kept sorted by instant per
    (customer, counter), so a window's sum reads only the entries inside it.
    """

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], tuple[list[datetime], list[int | Decimal]]] = {}

    def append(self, customer: str, counter: str, at: datetime, amount: int | Decimal) -> None:
        """Add one entry (``at`` aware; ``amount`` exact)."""
        if isinstance(amount, bool) or not isinstance(amount, int | Decimal):
            raise TypeError(f"an entry's amount is an int or a Decimal, not {type(amount).__name__}")
        if at.tzinfo is None:
            raise ValueError("an entry's instant must be aware")
        instants, amounts = self.entries.setdefault((customer, counter), ([], []))
        at = at.astimezone(UTC)
        i = bisect_right(instants, at)
        instants.insert(i, at)
        amounts.insert(i, amount)

    def sums(self, customer: str, windows: list[Window]) -> dict[Window, int | Decimal]:
        """The sum of each window's entries for ``customer``."""
        out: dict[Window, int | Decimal] = {}
        for w in windows:
            instants, amounts = self.entries.get((customer, w.counter), ([], []))
            lo = 0 if w.start is None else bisect_left(instants, w.start)
            hi = bisect_left(instants, w.end)
            total = Decimal(0)
            for amount in amounts[lo:hi]:
                total += amount
            out[w] = exact_sum(total)
        return out


__all__ = ["MemoryStore", "Window", "exact_sum", "histories", "local_midnight",
           "next_period_start", "period_start", "read_sum", "window"]
