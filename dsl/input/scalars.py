"""The helpers generated decoders call, and the scalar readings both request forms share.

A generated decoder (:mod:`dsl.input.generate`) reaches only the names its namespace
gives it; these are the non-trivial ones: caches of decimals, dates and instants
(values repeat across requests), the proto3 JSON readings of int64 and timestamps, the
two forms' readers of an extension field's ``Value``, and :class:`Slow`, the one thing
a decoder may raise. Messages are read by attribute name (``WhichOneof``, ``seconds``,
``nanos``): nothing here imports protobuf.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from dsl.input.layout import ACCEPTS, json_name
from dsl.schema.schema import (
    DATE_TEXT,
    DECIMAL_TEXT,
    MAX_NUMBER_TEXT,
    convert_scalar,
    decimal_in_bounds,
    parse_datetime,
)
from dsl.schema.types import Type


@dataclass(frozen=True, slots=True)
class InvalidValue:
    """A value a decoder could not even read (a timestamp outside the years 1 to 9999), in
    place of the value: the reader reports ``reason`` at the field's path."""

    reason: str


class Slow(Exception):
    """A fast path met input it does not handle; the checking path decides."""


_INF = Decimal("Infinity")
_NINF = Decimal("-Infinity")
#: Most texts one decimal cache keeps (then it starts over).
_DECIMALS_MAX = 16384


def decimal_cache(minimum: int | Decimal | None, maximum: int | Decimal | None = None,
                  ) -> tuple[Callable[[str], Decimal | None], Callable[[str], Decimal]]:
    """A cache of decimal texts already read for fields with one least (and most) value: ``(get,
    convert)``, where ``get(text)`` is the cached Decimal or None and ``convert(text)``
    converts and checks a text the cache does not hold (raising on anything else).

    Only texts the schema accepts unchanged are kept, so a hit is both the conversion
    and the check. Money repeats (fares, prices, "0"), and a dict lookup costs a
    fraction of ``Decimal(text)`` and its checks.
    """
    low = _NINF if minimum is None else Decimal(minimum)
    high = _INF if maximum is None else Decimal(maximum)
    cache: dict[str, Decimal] = {}

    def convert(text: str) -> Decimal:
        # The text is matched first (ASCII digits, bounded length: Decimal() alone takes a
        # million-digit exponent), then the value held to 18 digits either side of the point.
        if len(text) > MAX_NUMBER_TEXT or not DECIMAL_TEXT.match(text):
            raise Slow
        value = Decimal(text)
        if not low <= value < _INF or value > high or not decimal_in_bounds(value):
            raise Slow
        if len(cache) >= _DECIMALS_MAX:
            cache.clear()
        cache[text] = value
        return value

    return cache.get, convert


#: Dates already parsed (member_since and birthdays repeat across customers).
DATES: dict[str, date] = {}
_DATES_MAX = 65536


def cached_date(text: str) -> date:
    """A ``YYYY-MM-DD`` text as a date (cached); :class:`Slow` for anything else."""
    value = DATES.get(text)
    if value is not None:
        return value
    # The schema accepts exactly YYYY-MM-DD in ASCII digits (fromisoformat alone also takes
    # week dates such as 2026-W01-1); anything else goes the slow way.
    if len(text) != 10 or not DATE_TEXT.match(text):
        raise Slow
    value = date.fromisoformat(text)
    if len(DATES) >= _DATES_MAX:
        DATES.clear()
    DATES[text] = value
    return value


#: RFC 3339 texts already parsed (event times cluster).
TIMES: dict[str, datetime] = {}
TIMES_MAX = 65536


def parse_time(text: str) -> datetime:
    if text.__class__ is not str:
        raise Slow
    value = parse_datetime(text)  # the schema's own reading; ValueError goes the slow way
    if len(TIMES) >= TIMES_MAX:
        TIMES.clear()
    TIMES[text] = value
    return value


def int64(value: Any) -> int:
    """A whole number as JSON gives it (a number, or digits in a string); Slow otherwise.
    The caller checks the magnitude."""
    if value.__class__ is int:
        return value  # type: ignore[no-any-return]
    if value.__class__ is str and 0 < len(value) <= 18 and value.isascii() and value.isdigit():
        return int(value)  # the usual counter: plain ASCII digits, no sign (int() is then exact)
    if value.__class__ is str and len(value) <= 19:
        return convert_scalar(_INT, value)  # type: ignore[no-any-return]
    raise Slow


def is_str(value: Any) -> bool:
    return value.__class__ is str


def is_dict(value: Any) -> bool:
    return isinstance(value, Mapping)


def is_list(value: Any) -> bool:
    return value.__class__ is list or value.__class__ is tuple


_INT = Type("int")
_VALUE_KIND = {spelling: kind for kinds in ACCEPTS.values() for kind in kinds
               for spelling in (kind, json_name(kind))}


def mapping_attribute(value: Any, t: Type, max_length: int) -> Any:
    """A scalar extension field in its ``Value`` JSON form (``{"stringValue": "S1"}``),
    converted by the schema's own ``convert_scalar``; Slow for anything unusual."""
    if not isinstance(value, Mapping) or len(value) != 1:
        raise Slow
    ((key, inner),) = value.items()
    kind = _VALUE_KIND.get(key)
    if kind is None or kind not in ACCEPTS.get(t.kind, ()) or t.kind in ("list", "record"):
        raise Slow
    if inner is None:
        return None
    if kind == "string_value":
        if inner.__class__ is not str or len(inner) > max_length:
            raise Slow
        if not inner:
            return None  # an empty string is not given (proto3's convention, attributes included)
    elif kind == "int_value":
        inner = int64(inner)
    elif kind == "bool_value":
        if inner is not True and inner is not False:
            raise Slow
    elif inner.__class__ is not str:
        raise Slow
    return convert_scalar(t.required(), inner)  # ValueError: the checking path says why


# -- the message form's timestamps and values ----------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_NANOS = 999_999_999


def timestamp_to_datetime(ts: Any) -> datetime:
    """A ``Timestamp`` as an aware UTC datetime; ValueError for one outside years 1-9999."""
    if not 0 <= ts.nanos <= _MAX_NANOS:
        raise ValueError("is not a valid timestamp (nanos out of range)")
    try:
        return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)
    except OverflowError:
        raise ValueError("is not a valid timestamp (outside years 1 to 9999)") from None


#: Whole-second instants already converted: event times cluster, and building a
#: datetime costs more than the rest of an event's fields together.
INSTANTS: dict[int, datetime] = {}
INSTANTS_MAX = 65536


def message_time(ts: Any) -> datetime:
    """A timestamp with nanoseconds (whole seconds take :func:`new_instant`)."""
    seconds = ts.seconds
    nanos = ts.nanos
    if nanos:
        if nanos < 0 or nanos > _MAX_NANOS:
            raise Slow
        return _EPOCH + timedelta(0, seconds, nanos // 1000)
    return INSTANTS.get(seconds) or new_instant(seconds)


_from_timestamp = datetime.fromtimestamp


def new_instant(seconds: int) -> datetime:
    """A whole-second instant not in the cache yet (ValueError outside years 1 to 9999)."""
    value = _from_timestamp(seconds, UTC)  # the same instant as _EPOCH + timedelta(0, seconds), faster
    if len(INSTANTS) >= INSTANTS_MAX:
        INSTANTS.clear()
    INSTANTS[seconds] = value
    return value


def timestamp_or_problem(ts: Any) -> datetime | InvalidValue:
    try:
        return timestamp_to_datetime(ts)
    except ValueError as exc:
        return InvalidValue(str(exc))


def duration_or_problem(d: Any) -> timedelta | InvalidValue:
    if not -_MAX_NANOS <= d.nanos <= _MAX_NANOS or (d.seconds < 0 < d.nanos) or (d.nanos < 0 < d.seconds):
        return InvalidValue("is not a valid duration (nanos out of range)")
    # Nanoseconds are cut to microseconds toward zero, as the JSON form's digits are ("-0.0000015s").
    micros = abs(d.nanos) // 1000
    try:
        return timedelta(seconds=d.seconds, microseconds=-micros if d.nanos < 0 else micros)
    except OverflowError:
        return InvalidValue("is out of range (at most 100,000 days)")


def message_attribute(value: Any, t: Type, max_length: int) -> Any:
    """A scalar extension field, converted by the schema's own ``convert_scalar`` (lists and
    records, and anything it refuses, go to the checking path)."""
    which = value.WhichOneof("kind")
    if which is None or (which == "string_value" and not value.string_value):
        return None  # an empty string is not given (proto3's convention, attributes included)
    if t.kind in ("list", "record") or which not in ACCEPTS.get(t.kind, ()):
        raise Slow
    inner = getattr(value, which)
    if which == "time_value":
        inner = timestamp_or_problem(inner)
    elif which == "duration_value":
        inner = duration_or_problem(inner)
    elif which == "string_value" and len(inner) > max_length:
        raise Slow
    if isinstance(inner, InvalidValue):
        raise Slow
    return convert_scalar(t.required(), inner)  # ValueError: the checking path says why
