"""Generated fast paths for reading requests, and the cached conversions they share.

Each request form has a *checking path* (:mod:`dsl.input.request`'s reader, then
``Schema.prepare_*``), which reports every problem, and a *fast path*: straight-line
Python generated once per schema from the request layout, that reads a well-formed
request field by field and gives up (``raise SLOW``) on anything else, so that the
checking path judges it. A fast path is only safe if it checks every bound the checking
path checks; the differential tests hold the two to the same results, and the
generated source passes :func:`dsl.backend.compiler.load_decoder` (the policies' verifier with
a closed allow-list of names) before anything runs.

This module generates the fast path of the **mapping** form (the proto3 JSON mapping;
:class:`MappingFastPath`); ``service.convert`` generates the protobuf one with the
same helpers (:class:`Slow`, :func:`decimal_cache`, :func:`cached_date`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from dsl.backend.compiler import load_decoder
from dsl.input.request import ACCEPTS, MessageLayout, RequestLayout, json_name
from dsl.schema import airports
from dsl.schema.schema import (
    DATE_TEXT,
    DECIMAL_TEXT,
    MAX_LIST,
    MAX_MAGNITUDE,
    MAX_NUMBER_TEXT,
    Field,
    Schema,
    convert_scalar,
    currency_codes,
    decimal_in_bounds,
    parse_datetime,
)
from dsl.schema.timezones import time_zones
from dsl.schema.types import Type


class Slow(Exception):
    """A fast path met input it does not handle; the checking path decides."""


_INF = Decimal("Infinity")
_NINF = Decimal("-Infinity")
#: Most texts one decimal cache keeps (then it starts over).
_DECIMALS_MAX = 16384


def decimal_cache(minimum: int | Decimal | None) -> tuple[Callable[[str], Decimal | None],
                                                         Callable[[str], Decimal]]:
    """A cache of decimal texts already read for fields with one least value: ``(get,
    convert)``, where ``get(text)`` is the cached Decimal or None and ``convert(text)``
    converts and checks a text the cache does not hold (raising on anything else).

    Only texts the schema accepts unchanged are kept, so a hit is both the conversion
    and the check. Money repeats (fares, prices, "0"), and a dict lookup costs a
    fraction of ``Decimal(text)`` and its checks.
    """
    low = _NINF if minimum is None else Decimal(minimum)
    cache: dict[str, Decimal] = {}

    def convert(text: str) -> Decimal:
        # The text is matched first (ASCII digits, bounded length: Decimal() alone takes a
        # million-digit exponent), then the value held to 18 digits either side of the point.
        if len(text) > MAX_NUMBER_TEXT or not DECIMAL_TEXT.match(text):
            raise Slow
        value = Decimal(text)
        if not low <= value < _INF or not decimal_in_bounds(value):
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
_TIMES: dict[str, datetime] = {}
_TIMES_MAX = 65536


def _time(text: str) -> datetime:
    if text.__class__ is not str:
        raise Slow
    value = parse_datetime(text)  # the schema's own reading; ValueError goes the slow way
    if len(_TIMES) >= _TIMES_MAX:
        _TIMES.clear()
    _TIMES[text] = value
    return value


def _int64(value: Any) -> int:
    """A whole number as JSON gives it (a number, or digits in a string); Slow otherwise.
    The caller checks the magnitude."""
    if value.__class__ is int:
        return value  # type: ignore[no-any-return]
    if value.__class__ is str and 0 < len(value) <= 18 and value.isascii() and value.isdigit():
        return int(value)  # the usual counter: plain ASCII digits, no sign (int() is then exact)
    if value.__class__ is str and len(value) <= 19:
        return convert_scalar(_INT, value)  # type: ignore[no-any-return]
    raise Slow


def _is_str(value: Any) -> bool:
    return value.__class__ is str


def _is_dict(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_list(value: Any) -> bool:
    return value.__class__ is list or value.__class__ is tuple


_INT = Type("int")
_VALUE_KIND = {spelling: kind for kinds in ACCEPTS.values() for kind in kinds
               for spelling in (kind, json_name(kind))}


def _attribute(value: Any, t: Type, max_length: int) -> Any:
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
        inner = _int64(inner)
    elif kind == "bool_value":
        if inner is not True and inner is not False:
            raise Slow
    elif inner.__class__ is not str:
        raise Slow
    return convert_scalar(t.required(), inner)  # ValueError: the checking path says why


class DecoderGenerator:
    """What every generated decoder shares: the namespace of helpers and constants, fresh
    variables, one decimal cache per least value, and loading through the verifier.

    A subclass writes functions into :attr:`lines` (names ``decode_*`` and ``rec_N``),
    notes each in :attr:`functions`, and the attribute names its code reads in
    :attr:`attributes`; :meth:`load` verifies and runs the whole source once.
    """

    def __init__(self, schema: Schema, namespace: dict[str, Any]) -> None:
        self.schema = schema
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {
            "SLOW": Slow,
            "LEN": len,
            "INT_DECIMAL": Decimal,  # only ever called on an int already within bounds
            "DATE": cached_date,
            "DATE_GET": DATES.get,
            "AIRPORTS": airports.airport_codes(),
            "CURRENCIES": currency_codes(),
            "TIMEZONES": time_zones(),
            **namespace,
        }
        self.attributes: set[str] = {"get", "issuperset", "date"}
        self.functions: set[str] = set()
        self.helpers: dict[str, str] = {}
        self._counter = 0
        self._consts: dict[Any, str] = {}
        self._keep: list[Any] = []  # constants stay referenced, so their ids stay unique
        self._decimals: dict[Any, str] = {}
        self._namespace: dict[str, Any] | None = None

    def source(self) -> str:
        """The generated source, for tests and debugging."""
        return "\n".join(self.lines)

    def load(self, what: str) -> dict[str, Any]:
        """The loaded namespace: the first call verifies and runs everything generated
        (:func:`dsl.backend.compiler.load_decoder`), so call it once every function is written."""
        if self._namespace is None:
            names = self.attributes | self.functions | set(self.helpers.values())
            filename = f"<{what} decoder for schema {self.schema.digest}>"
            self._namespace = load_decoder(self.source(), filename, self.ns, frozenset(names))
        return self._namespace

    def const(self, value: Any) -> str:
        """The name of a namespace constant holding ``value`` (values never enter the source)."""
        key = (value.__class__, id(value)) if not isinstance(value, str | int) else (value.__class__, value)
        if key not in self._consts:
            self._counter += 1
            name = f"K{self._counter}"
            self.ns[name] = value
            self._consts[key] = name
            self._keep.append(value)
        return self._consts[key]

    def var(self) -> str:
        """A fresh local variable."""
        self._counter += 1
        return f"v{self._counter}"

    def helper_name(self) -> str:
        """A fresh name for a record helper function."""
        self._counter += 1
        return f"rec_{self._counter}"

    def decimal_conversion(self, var: str, minimum: int | Decimal | None) -> list[str]:
        """Lines converting the text in ``var`` to a checked Decimal (a cache hit is both): one
        cache per least value, ``NAME_GET(text)`` looks up, ``NAME(text)`` converts and checks."""
        key = (minimum.__class__, str(minimum))
        cache = self._decimals.get(key)
        if cache is None:
            self._counter += 1
            cache = self._decimals[key] = f"DEC{self._counter}"
            self.ns[f"{cache}_GET"], self.ns[cache] = decimal_cache(minimum)
        text = self.var()
        return [f"{text} = {var}", f"{var} = {cache}_GET({text})",
                f"if {var} is None: {var} = {cache}({text})"]

    def text_conversion(self, var: str, f: Field, is_text: str = "") -> list[str]:
        """Lines converting and checking the text in ``var`` for a field whose wire form is text
        (string, enum, airport, currency code, time zone, date, decimal); ``is_text`` names the helper
        that tells a text from anything else, where the source form may hold anything."""
        t = f.type
        kind = t.kind
        if kind == "string":
            guard = f"not {is_text}({var}) or " if is_text else ""
            return [f"if {guard}LEN({var}) > {f.max_length}: raise SLOW"]
        if kind == "enum":
            return [f"if {var} not in {self.const(frozenset(t.values))}: raise SLOW"]
        if kind == "airport":
            return [f"if {var} not in AIRPORTS: raise SLOW"]
        if kind == "currency_code":
            return [f"if {var} not in CURRENCIES: raise SLOW"]
        if kind == "timezone":
            return [f"if {var} not in TIMEZONES: raise SLOW"]
        if kind == "date":
            return [f"{var} = DATE_GET({var}) or DATE({var})"]
        if kind == "decimal":  # a hit is the conversion and the check (a zero is falsy)
            return self.decimal_conversion(var, f.minimum)
        raise ValueError(f"{kind} is not read from text")

    @staticmethod
    def decimal_ok(value: Any, minimum: int | Decimal | None) -> bool:
        """Whether a field's default passes its own checks (else the checking path says why)."""
        return isinstance(value, Decimal) and value.is_finite() and (minimum is None or value >= minimum)


class MappingFastPath(DecoderGenerator):
    """Generates the mapping form's fast path for one schema: ``decode_customer(d)`` and one
    ``decode_event_<kind>(d)`` per event kind, each ``d`` a plain mapping as JSON gives it.

    Names in the generated source come from the schema (checked there against
    ``[a-z][a-z0-9_]*``); every other value is a constant in the namespace, never spliced
    into the source as text.
    """

    def __init__(self, schema: Schema, layout: RequestLayout | None = None) -> None:
        super().__init__(schema, {
            "ISSTR": _is_str,
            "ISDICT": _is_dict,
            "ISLIST": _is_list,
            "INT64": _int64,
            "TIME": _time,
            "TIME_GET": _TIMES.get,
            "ATTR": _attribute,
            "EMPTY": {},
        })
        self.layout = layout or RequestLayout(schema)
        self._generate()

    # -- public ---------------------------------------------------------------------------------

    def customer(self) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
        """``decode_customer(mapping) -> prepared customer``; raises on anything unusual."""
        return self.load("mapping")["decode_customer"]  # type: ignore[no-any-return]

    def events(self) -> dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]]:
        """``decode_event_<kind>`` by kind; each raises on anything unusual (including an event
        whose ``kind`` or details are another kind's)."""
        ns = self.load("mapping")
        return {kind: ns[f"decode_event_{kind}"] for kind in self.layout.events}

    # -- generation ---------------------------------------------------------------------------------

    def _generate(self) -> None:
        body = ["def decode_customer(d):"]
        result = self._message(body, "d", self.layout.customer, 1)
        body.append(f"    return {result}")
        self.lines += body
        self.functions.add("decode_customer")
        for kind, (own, details) in self.layout.events.items():
            name = f"decode_event_{kind}"
            body = [f"def {name}(d):"]
            keys = {k for s in own.message_slots() for k in (s.name, s.json_name)} | {"kind", "attributes"}
            if details is not None:
                keys.add(kind)
            body.append(f"    if not {self.const(frozenset(keys))}.issuperset(d): raise SLOW")
            body.append("    v0 = d.get('kind')")
            body.append(f"    if v0 is not None and v0 != '' and v0 != {self.const(kind)}: raise SLOW")
            items = self._fields(body, "d", own, 1, skip=("kind",))
            if details is not None:
                m = self.var()
                body.append(f"    {m} = d.get({kind!r})")
                body.append(f"    if {m} is None: {m} = EMPTY")
                body.append(f"    elif not ISDICT({m}): raise SLOW")
                body.append(f"    if not {self._message_keys(details)}.issuperset({m}): raise SLOW")
                items += self._fields(body, m, details, 1)
            by_name = dict(items)
            fields = {**self.schema.event_common, **self.schema.events[kind]}
            out = []
            for fname, f in fields.items():  # in the schema's order, derived fields last
                if fname == "kind":
                    out.append((fname, self.const(kind)))
                elif not f.derived:
                    out.append((fname, by_name[fname]))
            for fname, f in fields.items():
                if f.derived:
                    var = self.var()
                    src = by_name.get(f.derived)
                    body.append(f"    {var} = {src}.date() if {src} is not None else None" if src
                                else f"    {var} = None")
                    out.append((fname, var))
            body.append("    return {" + ", ".join(f"{n!r}: {v}" for n, v in out) + "}")
            self.lines += body
            self.functions.add(name)

    def _message_keys(self, layout: MessageLayout) -> str:
        keys = {k for s in layout.message_slots() for k in (s.name, s.json_name)}
        if layout.attribute_slots() or layout.message in ("Customer", "Lifetime", "Item", "Event"):
            keys.add("attributes")
        return self.const(frozenset(keys))

    def _message(self, body: list[str], d: str, layout: MessageLayout, depth: int) -> str:
        """Decode a whole message (keys checked, every field, derived ones) into a dict expression."""
        pad = "    " * depth
        body.append(f"{pad}if not {self._message_keys(layout)}.issuperset({d}): raise SLOW")
        items = dict(self._fields(body, d, layout, depth))
        return "{" + ", ".join(f"{n!r}: {items[n]}" for n in layout.slots) + "}"

    def _fields(self, body: list[str], d: str, layout: MessageLayout, depth: int,
                skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        pad = "    " * depth
        out: list[tuple[str, str]] = []
        attrs: str | None = None
        if layout.attribute_slots():
            attrs = self.var()
            known = frozenset(layout.attribute_slots())
            body.append(f"{pad}{attrs} = {d}.get('attributes')")
            body.append(f"{pad}if {attrs} is not None and (not ISDICT({attrs}) or "
                        f"not {self.const(known)}.issuperset({attrs})): raise SLOW")
        elif layout.message:
            body.append(f"{pad}if {d}.get('attributes'): raise SLOW")
        for name, slot in layout.slots.items():
            if name in skip:
                continue
            if slot.in_message:
                var = self.var()
                body.append(f"{pad}{var} = {d}.get({slot.json_name!r})")
                if slot.json_name != name:
                    body.append(f"{pad}if {var} is None: {var} = {d}.get({name!r})")
                    body.append(f"{pad}elif {name!r} in {d}: raise SLOW")
                self._convert(body, var, slot.field, depth)
            else:
                var = self.var()
                f = slot.field
                body.append(f"{pad}{var} = {attrs}.get({name!r}) if {attrs} else None")
                body.append(f"{pad}if {var} is not None: {var} = ATTR({var}, {self.const(f.type)}, "
                            f"{f.max_length})")
                missing = self._missing(f)
                if missing == "RAISE":
                    body.append(f"{pad}if {var} is None: raise SLOW")
                elif missing != "None":
                    body.append(f"{pad}if {var} is None: {var} = {missing}")
                self._bounds(body, var, f, depth, maybe_none=missing == "None")
            out.append((name, var))
        return out

    def _missing(self, f: Field) -> str:
        """What a field that was not given becomes: its default, None, or a refusal."""
        if f.has_default:
            return "[]" if f.default == [] else self.const(f.default)
        if f.type.optional:
            return "None"
        return "RAISE"

    def _convert(self, body: list[str], var: str, f: Field, depth: int) -> None:
        """Convert and check a message field's value in ``var`` (None or "" when not given)."""
        pad = "    " * depth
        t = f.type
        kind = t.kind
        missing = self._missing(f)
        when_missing = "raise SLOW" if missing == "RAISE" else f"{var} = {missing}"
        if kind == "record":
            sub = self.var()
            body.append(f"{pad}{sub} = {var}")
            body.append(f"{pad}if {sub} is None: {sub} = EMPTY")
            body.append(f"{pad}elif not ISDICT({sub}): raise SLOW")
            result = self._message(body, sub, self.layout.record(t.name), depth)
            body.append(f"{pad}{var} = {result}")
            return
        if kind == "list":
            assert t.elem is not None and t.elem.kind == "record"
            helper = self._record_helper(t.elem.name)
            body.append(f"{pad}if {var} is None: {var} = []")
            body.append(f"{pad}elif not ISLIST({var}) or LEN({var}) > {MAX_LIST}: raise SLOW")
            body.append(f"{pad}else: {var} = [{helper}(x) for x in {var}]")
            return
        if kind in ("string", "enum", "airport", "currency_code", "timezone", "date", "decimal"):
            conv = self.text_conversion(var, f, is_text="ISSTR")
            body.append(f"{pad}if {var} is None or {var} == '': {when_missing}")
            body.append(f"{pad}else:")
            body += [f"{pad}    {c}" for c in conv]
            if kind == "decimal" and f.has_default and not self.decimal_ok(f.default, f.minimum):
                body.append(f"{pad}if {var} is {missing}: raise SLOW")
            return
        if kind == "int":
            body.append(f"{pad}if {var} is None: {when_missing}")
            body.append(f"{pad}else: {var} = INT64({var})")
            self._bounds(body, var, f, depth, maybe_none=missing == "None")
            return
        if kind == "bool":
            body.append(f"{pad}if {var} is None: {when_missing}")
            body.append(f"{pad}elif {var} is not True and {var} is not False: raise SLOW")
            return
        if kind == "datetime":
            body.append(f"{pad}if {var} is None or {var} == '': {when_missing}")
            body.append(f"{pad}else: {var} = TIME_GET({var}) or TIME({var})")
            return
        body.append(f"{pad}raise SLOW")

    def _bounds(self, body: list[str], var: str, f: Field, depth: int, maybe_none: bool) -> None:
        """Range checks for a number: the input bound, then the schema's least value."""
        pad = "    " * depth
        guard = f"{var} is not None and " if maybe_none else ""
        if f.type.kind == "int":
            low = max(f.minimum, -MAX_MAGNITUDE + 1) if f.minimum is not None else -MAX_MAGNITUDE + 1
            body.append(f"{pad}if {guard}not {self.const(low)} <= {var} < {MAX_MAGNITUDE}: raise SLOW")
        elif f.minimum is not None:
            body.append(f"{pad}if {guard}{var} < {self.const(f.minimum)}: raise SLOW")

    def _record_helper(self, record: str) -> str:
        if record in self.helpers:
            return self.helpers[record]
        name = self.helpers[record] = self.helper_name()
        body = [f"def {name}(m):", "    if not ISDICT(m): raise SLOW"]
        result = self._message(body, "m", self.layout.record(record), 1)
        body.append(f"    return {result}")
        self.lines += body
        return name


__all__ = ["DATES", "DecoderGenerator", "MappingFastPath", "Slow", "cached_date",
           "decimal_cache"]
