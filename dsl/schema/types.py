"""The policy language's types, shared by the schema, the checker and the code generator."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar


@dataclass(frozen=True, slots=True)
class Type:
    """A value type.

    ``kind`` is one of ``int``, ``decimal``, ``string``, ``bool``, ``date``,
    ``datetime``, ``duration``, ``airport`` (an IATA code, a kind of string),
    ``currency_code`` (an ISO 4217 money code such as ``USD``, a kind of string),
    ``timezone`` (an IANA time zone name such as ``Europe/London``, a kind of string),
    ``enum`` (strings from ``values``), ``list`` (of ``elem``), ``record`` (named
    by ``name``, fields in the schema), ``months`` (a calendar span such as ``3 months``,
    ``1 quarter``, ``2 years``: a :class:`Months`), ``null`` (the literal missing value) and
    ``any`` (the type of an expression that already failed to check, so that
    one mistake does not cascade into many diagnostics).
    ``optional`` marks a value that may be missing. ``ordered`` marks an enum whose
    ``values`` are listed lowest first (the tiers, and an enum declared ``ordered = true``):
    ``<`` and its kin compare its values by rank.
    """

    kind: str
    optional: bool = False
    elem: Type | None = None
    values: tuple[str, ...] = ()
    name: str = ""
    ordered: bool = False

    def __reduce__(self) -> tuple[type[Type], tuple[Any, ...]]:
        # Rebuilt by its constructor (see Span.__reduce__: the compiled-policy disk cache).
        return (Type, (self.kind, self.optional, self.elem, self.values, self.name, self.ordered))

    def __str__(self) -> str:
        if self.kind == "list":
            text = f"list of {self.elem}"
        elif self.kind == "enum":
            text = self.name or "string"
        elif self.kind == "record":
            text = self.name
        else:
            text = self.kind
        return text + ("?" if self.optional else "")

    def required(self) -> Type:
        """The same type, never missing."""
        if not self.optional:
            return self
        return Type(self.kind, False, self.elem, self.values, self.name, self.ordered)

    def maybe(self) -> Type:
        """The same type, possibly missing."""
        if self.optional:
            return self
        return Type(self.kind, True, self.elem, self.values, self.name, self.ordered)

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("int", "decimal")

    @property
    def is_stringy(self) -> bool:
        return self.kind in ("string", "enum", "airport", "currency_code", "timezone")

    def rank(self, value: str) -> int | None:
        """An ordered enum's rank of ``value`` (0 for the lowest), or None for another value."""
        try:
            return self.values.index(value)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Months:
    """A calendar span: a whole number of months (``3 months``; ``1 quarter`` is 3, ``1 year``
    12), the value of the ``months`` type.

    Added to a date (or a date and time) it moves the month and keeps the day, or takes the
    month's last day when the month is shorter: 2026-01-31 + 1 month is 2026-02-28, and
    2024-01-31 + 1 month is 2024-02-29 (the rule of most date libraries: Python's dateutil,
    Java's ``plusMonths``, PostgreSQL's ``interval``). Subtracting is adding the negated span.
    A datetime keeps its time of day and its offset.
    """

    count: int

    def __reduce__(self) -> tuple[type[Months], tuple[Any, ...]]:
        return (Months, (self.count,))

    def __str__(self) -> str:
        return f"{self.count} month{'' if abs(self.count) == 1 else 's'}"

    def __neg__(self) -> Months:
        return Months(-self.count)

    def __add__(self, other: Any) -> Any:
        if isinstance(other, date):  # a datetime too
            return add_months(other, self.count)
        return NotImplemented

    __radd__ = __add__

    def __rsub__(self, other: Any) -> Any:
        if isinstance(other, date):
            return add_months(other, -self.count)
        return NotImplemented


_D = TypeVar("_D", bound=date)


def add_months(d: _D, count: int) -> _D:
    """``d`` moved by ``count`` calendar months, the day clamped to the month's last
    (:class:`Months`); OverflowError ("date value out of range") outside years 1 to 9999."""
    year, month = divmod(d.year * 12 + d.month - 1 + count, 12)
    if not 1 <= year <= 9999:
        raise OverflowError("date value out of range")
    day = d.day
    if day > 28:
        last = 29 if month == 1 and calendar.isleap(year) else _MONTH_DAYS[month]
        day = min(day, last)
    if type(d) is date:
        return date(year, month + 1, day)  # type: ignore[return-value]
    return d.replace(year=year, month=month + 1, day=day)


#: Days of each month in a year that is not a leap year.
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


INT = Type("int")
DECIMAL = Type("decimal")
STRING = Type("string")
BOOL = Type("bool")
DATE = Type("date")
DATETIME = Type("datetime")
DURATION = Type("duration")
MONTHS = Type("months")
AIRPORT = Type("airport")
CURRENCY_CODE = Type("currency_code")
TIMEZONE = Type("timezone")
NULL = Type("null", optional=True)
ANY = Type("any")

SCALARS = {
    t.kind: t for t in (INT, DECIMAL, STRING, BOOL, DATE, DATETIME, DURATION, AIRPORT, CURRENCY_CODE,
              TIMEZONE)
}


def list_of(elem: Type) -> Type:
    """The type of a list whose elements are ``elem``."""
    return Type("list", elem=elem)


def numeric_result(a: Type, b: Type) -> Type:
    """The type of ``a op b`` for + - *: int only when both are int."""
    if a.kind == "any" or b.kind == "any":
        return ANY
    return INT if a.kind == "int" and b.kind == "int" else DECIMAL


def comparable(a: Type, b: Type) -> bool:
    """Whether values of the two types can be ordered or compared for equality."""
    if a.kind == "any" or b.kind == "any" or a.kind == "null" or b.kind == "null":
        return True
    if a.is_numeric and b.is_numeric:
        return True
    if a.is_stringy and b.is_stringy:
        return True
    return a.kind == b.kind


def unify(a: Type, b: Type) -> Type | None:
    """The type of a value that is either ``a`` or ``b`` (if-branches, table rows), or None."""
    if a.kind == "any":
        return b
    if b.kind == "any":
        return a
    if a.kind == "null":
        return b.maybe()
    if b.kind == "null":
        return a.maybe()
    optional = a.optional or b.optional
    if a.is_numeric and b.is_numeric:
        t = INT if a.kind == b.kind == "int" else DECIMAL
    elif a.is_stringy and b.is_stringy:
        t = a.required() if a.kind == b.kind and a.values == b.values else STRING
    elif a.kind == b.kind == "list":
        assert a.elem is not None and b.elem is not None
        elem = unify(a.elem, b.elem)
        if elem is None:
            return None
        t = list_of(elem)
    elif a.kind == b.kind:
        t = a.required()
    else:
        return None
    return t.maybe() if optional else t
