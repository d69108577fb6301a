"""The input schema: one place that declares every field a policy can read, and its type.

The standard schema ships as ``dsl/schema/schema.toml``; a policy directory may add a
``schema.toml`` of its own, merged on top, so that a business adds tiers,
currencies, benefits, customer attributes and event fields without code.

The schema also says how one loose value (JSON, TOML, protobuf values) becomes the runtime's
exact value (:func:`convert_scalar`, with the input bounds it checks first); the request
decoders (:mod:`dsl.input`) read whole requests with it, field by field as the plans say.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

from dsl import bounded_toml
from dsl.errors import Diagnostic, Span, did_you_mean
from dsl.schema import airports
from dsl.schema.timezones import time_zones
from dsl.schema.types import SCALARS, Type, list_of
from dsl.schema.validity import FOREVER, Validity, parse_validity

BASE_SCHEMA_PATH = Path(__file__).with_name("schema.toml")

_MISSING: Any = object()

#: Input numbers have at most this many digits (before, and after, the point), so that
#: every policy's arithmetic has a known bound.
MAX_INPUT_DIGITS = 18
MAX_MAGNITUDE = 10**MAX_INPUT_DIGITS
#: The longest input string (free text), id and list, and the most list elements one
#: request may carry in all (a batch counts as one request). Every bound is checked
#: before any conversion or arithmetic, on every path (docs/language.md, "Input bounds").
MAX_STRING = 10_000
MAX_ID = 128
MAX_LIST = 10_000
MAX_REQUEST_ITEMS = 100_000
#: How deeply typed values (lists of records of lists...) may nest in one input field.
MAX_VALUE_DEPTH = 8
#: The longest text read as a number: 18 digits either side, a sign, a point and a short
#: exponent fit well within it; anything longer is refused before it is parsed.
MAX_NUMBER_TEXT = 48
#: What a decimal written as text may look like: ASCII digits only, an optional minus sign,
#: an optional exponent; no whitespace, underscores, NaN or infinity (``Decimal()`` accepts all
#: of those, and non-ASCII digits too).
DECIMAL_TEXT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?\Z")
_INT_TEXT = re.compile(r"-?[0-9]{1,18}\Z")
_DIGITS_TEXT = re.compile(r"-?[0-9]+\Z")
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_BENEFIT = re.compile(r"[a-z][a-z0-9_\-]*\Z")


class SchemaError(ValueError):
    """The schema file itself is wrong; the message names the file, the key and (where the key
    can be found in the text) its line and column, also as :attr:`diagnostic`."""

    def __init__(self, message: str, diagnostic: Diagnostic | None = None) -> None:
        super().__init__(message)
        self.diagnostic = diagnostic


@dataclass(frozen=True, slots=True)
class Field:
    """One declared field: its type, its default (if any) and what it is derived from."""

    name: str
    type: Type
    default: Any = _MISSING
    derived: str = ""
    #: The least value a number may take (``min = 0``: never negative), or None.
    minimum: int | Decimal | None = None
    #: The longest text a string field may hold (ids are far shorter than free text).
    max_length: int = MAX_STRING
    #: The most a number may be (``max = "10000"``), or None: the input boundary refuses a
    #: larger value and the award bounds read it.
    maximum: int | Decimal | None = None

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING


@dataclass(frozen=True, slots=True)
class Currency:
    """A currency policies can award: how many decimals it keeps, an optional cap per event,
    and how long its awards stay spendable (``validity``, ``pending``: :mod:`dsl.validity`)."""

    name: str
    decimals: int = 0
    cap_per_event: int | Decimal | None = None
    validity: Validity = FOREVER
    #: Redemptions spend whole multiples of it (``redeem_step``: vouchers of 150 points, 2p
    #: money-off steps); None: any amount.
    redeem_step: int | Decimal | None = None


@dataclass(frozen=True, slots=True)
class Qualification:
    """A programme's tier qualification (``[qualification]``, docs/state.md "Tiers"): what an
    award of ``measure`` earned in a ``window`` counts toward, the ``thresholds`` per tier (lowest
    first), what the window's end does (``downgrade``) and whether a tier reached is kept one more
    window (``keep``)."""

    measure: str
    window: str
    thresholds: tuple[tuple[str, int | Decimal], ...]
    downgrade: str = "one step"
    keep: str = ""


#: The choices of ``[qualification]``'s window, downgrade and keep.
QUALIFICATION_WINDOWS = ("calendar year", "rolling 12 months", "anniversary year")
DOWNGRADES = ("one step", "to earned")
KEEPS = ("until the end of next year",)


@dataclass
class Schema:
    """Every field, event kind, currency, benefit and tier that policies may use."""

    tiers: tuple[str, ...] = ()
    currencies: dict[str, Currency] = field(default_factory=dict)
    benefits: dict[str, dict[str, Type]] = field(default_factory=dict)
    customer: dict[str, Field] = field(default_factory=dict)
    event_common: dict[str, Field] = field(default_factory=dict)
    events: dict[str, dict[str, Field]] = field(default_factory=dict)
    records: dict[str, dict[str, Field]] = field(default_factory=dict)
    #: The programme's IANA time zone (``[programme] timezone``): calendar periods and
    #: ``effective`` dates are in it.
    timezone: str = "UTC"
    #: What a reversal of points already spent does (``[programme] negative_balance``):
    #: "allowed" (the balance goes negative) or "claw back from later awards".
    negative_balance: str = "allowed"
    #: How a customer's tier is earned and kept (``[qualification]``), or None.
    qualification: Qualification | None = None
    digest: str = ""

    # -- loading -----------------------------------------------------------------

    @classmethod
    def load(cls, extra: Path | str | None = None) -> Schema:
        """The standard schema, extended by the TOML file ``extra`` when given."""
        docs = [(str(BASE_SCHEMA_PATH), BASE_SCHEMA_PATH.read_text(encoding="utf-8"))]
        if extra is not None:
            p = Path(extra)
            docs.append((str(p), p.read_text(encoding="utf-8")))
        return cls.from_texts(docs)

    @classmethod
    def for_directory(cls, directory: Path | str) -> Schema:
        """The schema for a policy directory: the standard one plus its ``schema.toml``."""
        extra = Path(directory) / "schema.toml"
        return cls.load(extra if extra.is_file() else None)

    @classmethod
    def from_texts(cls, docs: list[tuple[str, str]]) -> Schema:
        """Build a schema from (file name, TOML text) pairs, later ones extending earlier."""
        schema = cls()
        digest = hashlib.sha256()
        for name, text in docs:
            digest.update(text.encode())
            try:
                data = bounded_toml.loads(text)
            except bounded_toml.TomlBoundError as exc:
                raise SchemaError(f"{name}:{exc.line}:{exc.column}: {exc.message}: a schema is "
                                  "a short file of field declarations; flatten what crosses the "
                                  "bound") from None
            except tomllib.TOMLDecodeError as exc:
                raise SchemaError(f"{name}: {exc}") from None
            _Merger(schema, name, text).merge(data)
        schema._resolve_tiers()
        schema._check_nesting(docs[-1][0] if docs else "schema")
        schema.digest = digest.hexdigest()[:16]
        return schema

    def _check_nesting(self, source: str) -> None:
        """Refuse a field whose values could nest deeper than :data:`MAX_VALUE_DEPTH` (a list of
        lists of..., a record that contains itself): no request could carry them, since every
        decoder refuses values nested deeper, and the schema's own checks would recurse."""
        tables = [("customer", self.customer), ("event", self.event_common)]
        tables += [(f"events.{kind}", fields) for kind, fields in self.events.items()]
        for key, fields in tables:
            for name, f in fields.items():
                depth = self._depth(f.type, (), f"{key}.{name}", source)
                if depth > MAX_VALUE_DEPTH:
                    raise SchemaError(f"{source}: {key}.{name}: its values would nest {depth} levels "
                                      f"deep (at most {MAX_VALUE_DEPTH})")

    def _depth(self, t: Type, within: tuple[str, ...], key: str, source: str) -> int:
        if t.kind == "list" and t.elem is not None:
            return 1 + self._depth(t.elem, within, key, source)
        if t.kind == "record":
            if t.name in within:
                raise SchemaError(f"{source}: {key}: record {t.name} contains itself (values must "
                                  f"nest at most {MAX_VALUE_DEPTH} levels deep)")
            fields = self.records.get(t.name, {}).values()
            return 1 + max((self._depth(f.type, (*within, t.name), key, source) for f in fields), default=0)
        return 1

    def _resolve_tiers(self) -> None:
        """Give every ``tier`` field the final tier list (a later file may declare the tiers)."""

        def fix(t: Type) -> Type:
            if t.kind == "enum" and t.name == "tier":
                return self.tier_type.maybe() if t.optional else self.tier_type
            if t.kind == "list" and t.elem is not None:
                return Type("list", t.optional, fix(t.elem))
            return t

        tables = [self.customer, self.event_common, *self.events.values(), *self.records.values()]
        for table in tables:
            for name, f in table.items():
                table[name] = Field(f.name, fix(f.type), f.default, f.derived, f.minimum, f.max_length,
                                    f.maximum)
        for params in self.benefits.values():
            for name, t in params.items():
                params[name] = fix(t)

    # -- questions the checker asks ----------------------------------------------------

    @property
    def tier_type(self) -> Type:
        return Type("enum", values=self.tiers, name="tier", ordered=True)

    def event_fields(self, kinds: tuple[str, ...]) -> dict[str, Field]:
        """Fields readable on an event of any of ``kinds``: common ones plus those all kinds share."""
        out = dict(self.event_common)
        if not kinds:
            return out
        shared: dict[str, Field] | None = None
        for kind in kinds:
            fields = self.events.get(kind, {})
            if shared is None:
                shared = dict(fields)
            else:
                shared = {k: f for k, f in shared.items() if k in fields and fields[k].type == f.type}
        out.update(shared or {})
        return out

    def record_fields(self, name: str) -> dict[str, Field]:
        return self.records.get(name, {})


# -- scalar conversion -------------------------------------------------------------


def convert_scalar(t: Type, value: Any) -> Any:
    """Convert one loose value to the runtime value of type ``t``; ValueError says why not."""
    kind = t.kind
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            # Text is matched before int() reads it: ASCII digits only, at most 18 of them.
            if isinstance(value, str) and len(value) <= MAX_NUMBER_TEXT and _INT_TEXT.match(value):
                value = int(value)
            elif isinstance(value, str) and len(value) <= MAX_NUMBER_TEXT and _DIGITS_TEXT.match(value):
                raise ValueError(f"is out of range (at most {MAX_INPUT_DIGITS} digits)")
            else:
                raise ValueError(f"must be a whole number, not {_show(value)}")
        if not -MAX_MAGNITUDE < value < MAX_MAGNITUDE:
            raise ValueError(f"is out of range (at most {MAX_INPUT_DIGITS} digits)")
        return value
    if kind == "decimal":
        result = parse_decimal(value)
        if not decimal_in_bounds(result):
            raise ValueError(f"is out of range (at most {MAX_INPUT_DIGITS} digits before the point "
                             f"and {MAX_INPUT_DIGITS} after)")
        return result
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {_show(value)}")
        return value
    if kind in ("string", "enum", "airport", "currency_code", "timezone"):
        if not isinstance(value, str):
            raise ValueError(f"must be a string, not {_show(value)}")
        if len(value) > MAX_STRING:
            raise ValueError(f"is longer than {MAX_STRING} characters")
        if kind == "enum":
            if value not in t.values:
                hint = did_you_mean(value, t.values) if len(value) <= 64 else None
                known = ", ".join(t.values) if t.values else "none declared"
                what = f"a tier (one of: {known})" if t.name == "tier" else f"one of: {known}"
                raise ValueError(f"{_quote(value)} is not {what}" + (f"; {hint}" if hint else ""))
        elif kind == "airport":
            code = value.strip().upper()
            if not airports.is_airport(code):
                raise ValueError(f"unknown airport code {_quote(value)}")
            return code
        elif kind == "currency_code":
            code = value.strip().upper()
            if code not in currency_codes():
                raise ValueError(f"{_quote(value)} is not an ISO 4217 currency code (such as USD or EUR)")
            return code
        elif kind == "timezone" and value not in time_zones():
            hint = did_you_mean(value, time_zones()) if len(value) <= 64 else None
            raise ValueError(f"{_quote(value)} is not an IANA time zone name (such as "
                             "Europe/London)" + (f"; {hint}" if hint else ""))
        return value
    if kind == "date":
        return parse_date(value)
    if kind == "datetime":
        return parse_datetime(value)
    if kind == "duration":
        return parse_duration(value)
    raise ValueError(f"cannot read a value of type {t}")


#: The choices of ``[programme] negative_balance``.
NEGATIVE_BALANCE = ("allowed", "claw back from later awards")


@cache
def currency_codes() -> frozenset[str]:
    """Every ISO 4217 money code (from pycountry), without XTS (testing) and XXX (no currency)."""
    import pycountry

    return frozenset(c.alpha_3 for c in pycountry.currencies) - {"XTS", "XXX"}


def decimal_in_bounds(value: Decimal) -> bool:
    """Whether a finite decimal has at most 18 digits before the point and 18 after
    (a zero too: ``0E+999999`` is refused, since its exponent alone makes later work large)."""
    exponent = value.as_tuple().exponent
    return value.adjusted() < MAX_INPUT_DIGITS and exponent >= -MAX_INPUT_DIGITS  # type: ignore[operator]


def shorten(name: str) -> str:
    """A caller's name (a field, a key, an event kind) as a refusal shows it: at most 64
    characters, so that a refusal never echoes a long input."""
    return name if len(name) <= 64 else name[:61] + "..."


def _quote(value: str) -> str:
    """A caller's text in a message, quoted and cut short (a refusal never echoes a long input)."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 42 else text[:38] + '..."'


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"the number {value!r}"
    text = json.dumps(value, default=str)
    return text if len(text) < 40 else text[:37] + "..."


def parse_decimal(value: Any) -> Decimal:
    """An exact decimal from a string, int or Decimal. Binary floats are refused."""
    if isinstance(value, bool):
        raise ValueError("must be a decimal number, not a boolean")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        # Matched before Decimal() reads it: Decimal() takes whitespace, underscores,
        # non-ASCII digits, NaN and any exponent, and a huge exponent costs later.
        if len(value) > MAX_NUMBER_TEXT or not DECIMAL_TEXT.match(value):
            raise ValueError(f"{_quote(value)} is not a decimal number (write ASCII digits with an "
                             "optional minus sign and point, such as \"12.50\")")
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"{_quote(value)} is not a decimal number") from None
    elif isinstance(value, float):
        raise ValueError(
            f"must be an exact decimal written as a string (for example \"{value}\"), "
            "not a binary floating-point number"
        )
    else:
        raise ValueError(f"must be a decimal number, not {_show(value)}")
    if not result.is_finite():
        raise ValueError(f"{_quote(str(value))} is not a finite number")
    return result


DATE_TEXT = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})\Z")
_DATETIME_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?[+-][0-9]{2}:[0-9]{2}\Z")


def parse_date(value: Any) -> date:
    """A calendar date from a ``date`` or an ISO ``YYYY-MM-DD`` string."""
    if isinstance(value, datetime):
        raise ValueError("must be a date (YYYY-MM-DD), not a date and time")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        m = DATE_TEXT.match(value.strip()) if len(value) <= 64 else None
        if m:
            try:
                return date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                raise ValueError(f'"{value}" is not a date that exists') from None
    raise ValueError(f"must be a date written YYYY-MM-DD, not {_show(value)}")


def parse_datetime(value: Any) -> datetime:
    """An instant (time-zone aware, converted to UTC) from a datetime or an ISO 8601 string."""
    if isinstance(value, str):
        text = value.strip() if len(value) <= 64 else ""
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        if not _DATETIME_TEXT.match(text):
            raise ValueError(
                f"{_quote(value)} is not a date and time with a time zone "
                '(write for example "2026-03-01T09:30:00Z")'
            )
        # Nanoseconds (RFC 3339 and protobuf's JSON allow 9 digits) are cut to microseconds,
        # the runtime's resolution; fewer digits are padded (fromisoformat wants 3 or 6).
        head, dot, rest = text.partition(".")
        if dot:
            digits, offset = rest[:-6], rest[-6:]
            text = f"{head}.{digits[:6].ljust(6, '0')}{offset}"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{_quote(value)} is not a date and time that exists") from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("needs a time zone (for example a trailing Z for UTC)")
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range (in UTC it falls outside the years 1 to 9999)") from None
    raise ValueError(f"must be a date and time, not {_show(value)}")


_DURATION_UNITS = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800, "second": 1}
#: A duration's magnitude: 100,000 days, well inside ``timedelta`` (nine digits of a unit
#: times a week stays below it too).
_MAX_DURATION_SECONDS = 100_000 * 86400
_DURATION_TEXT = re.compile(r"\s*(-?[0-9]{1,5})\s*([a-z]+?)s?\s*\Z")
#: protobuf's JSON form of a Duration: at most 315,576,000,000 seconds, so 12 digits.
_PROTO_DURATION_TEXT = re.compile(r"(-?)([0-9]{1,12})(?:\.([0-9]{1,9}))?s\Z")


def parse_duration(value: Any) -> timedelta:
    """A duration from a timedelta, whole seconds, or text such as ``"15 minutes"`` or
    protobuf's ``"900s"``; at most 100,000 days either way."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = timedelta(seconds=value) if abs(value) <= _MAX_DURATION_SECONDS else None
    elif isinstance(value, str) and len(value) <= 64:
        # Text is bounded like a timedelta is (below): "99999 weeks" is 699,993 days.
        m = _DURATION_TEXT.match(value)
        if m and m[2] in _DURATION_UNITS:
            value = timedelta(seconds=int(m[1]) * _DURATION_UNITS[m[2]])
        elif m := _PROTO_DURATION_TEXT.match(value):  # protobuf's JSON form: "900s", "-1.5s"
            magnitude = timedelta(seconds=int(m[2]), microseconds=int((m[3] or "0").ljust(6, "0")[:6]))
            value = -magnitude if m[1] else magnitude
    if isinstance(value, timedelta):
        if abs(value.total_seconds()) > _MAX_DURATION_SECONDS:
            raise ValueError(f"is out of range (at most {_MAX_DURATION_SECONDS // 86400:,} days)")
        return value
    if value is None:
        raise ValueError(f"is out of range (at most {_MAX_DURATION_SECONDS // 86400:,} days)")
    raise ValueError(f'must be a duration such as "15 minutes", not {_show(value)}')


# -- merging TOML into a schema ------------------------------------------------------------


class _Merger:
    def __init__(self, schema: Schema, source: str, text: str = "") -> None:
        self.schema = schema
        self.source = source
        self.text = text

    def fail(self, key: str, message: str, hint: str = "") -> SchemaError:
        span = _locate_key(self.text, key)
        if span is None:
            return SchemaError(f"{self.source}: {key}: {message}")
        lines = self.text.splitlines()
        diagnostic = Diagnostic(self.source, span, "schema_error", f"{key}: {message}",
                                hint or "fix the schema file; see docs/language.md, The schema",
                                source_line=lines[span.line - 1] if span.line <= len(lines) else "")
        return SchemaError(f"{self.source}:{span.line}:{span.column}: {key}: {message}", diagnostic)

    def merge(self, data: dict[str, Any]) -> None:
        s = self.schema
        known = {"tiers", "currencies", "benefits", "customer", "event", "events", "records",
                 "programme", "qualification"}
        for key in data:
            if key not in known:
                raise self.fail(key, "unknown section" + _hint(key, known))
        programme = data.get("programme", {})
        if not isinstance(programme, dict):
            raise self.fail("programme", 'must be a table such as timezone = "Europe/London"')
        for key, value in programme.items():
            if key == "negative_balance":
                if value not in NEGATIVE_BALANCE:
                    raise self.fail("programme.negative_balance", f"{value!r} is not a choice",
                                    'write "allowed" or "claw back from later awards"')
                s.negative_balance = value
                continue
            if key != "timezone":
                raise self.fail(f"programme.{key}", "unknown setting"
                                + _hint(key, {"timezone", "negative_balance"}))
            if not isinstance(value, str) or value not in time_zones():
                hint = did_you_mean(str(value), time_zones()) if len(str(value)) <= 64 else None
                raise self.fail("programme.timezone", f"{value!r} is not an IANA time zone name",
                                hint or 'write a name such as "Europe/London"')
            s.timezone = value
        # Records first: fields may refer to them.
        for rname, rdata in data.get("records", {}).items():
            self._check_name(f"records.{rname}", rname)
            self._fields(s.records.setdefault(rname, {}), rdata, f"records.{rname}", rname)
        if "tiers" in data:
            tiers = data["tiers"]
            if not isinstance(tiers, list) or not all(isinstance(t, str) and t for t in tiers):
                raise self.fail("tiers", "must be a list of tier names, lowest first")
            if len(set(tiers)) != len(tiers):
                raise self.fail("tiers", "names a tier twice")
            s.tiers = tuple(tiers)
        for cname, cdata in data.get("currencies", {}).items():
            self._check_name(f"currencies.{cname}", cname)
            if not isinstance(cdata, dict):
                raise self.fail(f"currencies.{cname}", "must be a table such as { decimals = 0 }")
            decimals = cdata.get("decimals", 0)
            if not isinstance(decimals, int) or not 0 <= decimals <= 6:
                raise self.fail(f"currencies.{cname}.decimals", "must be a whole number from 0 to 6")
            cap = cdata.get("cap_per_event")
            cap_value: int | Decimal | None = None
            if cap is not None:
                try:
                    d = parse_decimal(cap if not isinstance(cap, float) else str(cap))
                except ValueError as exc:
                    raise self.fail(f"currencies.{cname}.cap_per_event", str(exc)) from None
                cap_value = int(d) if decimals == 0 and d == d.to_integral_value() else d
            try:
                validity = parse_validity(cdata.get("validity", "never"), cdata.get("pending", ""))
            except ValueError as exc:
                key = "pending" if str(exc).startswith("pending") else "validity"
                raise self.fail(f"currencies.{cname}.{key}", str(exc)) from None
            s.currencies[cname] = Currency(cname, decimals, cap_value, validity,
                                           self._redeem_step(cname, cdata.get("redeem_step"), decimals))
        if "qualification" in data:
            s.qualification = self._qualification(data["qualification"])
        for bname, params in data.get("benefits", {}).items():
            if not _BENEFIT.match(bname):
                raise self.fail(f"benefits.{bname}", "benefit names are lower case words joined by - or _")
            if not isinstance(params, dict):
                raise self.fail(f"benefits.{bname}", "must be a table of parameter = \"type\"")
            s.benefits[bname] = {
                p: self._type(str(t), f"benefits.{bname}.{p}") for p, t in params.items()
            }
        if "customer" in data:
            self._fields(s.customer, data["customer"], "customer", "customer")
        if "event" in data:
            self._fields(s.event_common, data["event"], "event", "event")
        for kind, kdata in data.get("events", {}).items():
            self._check_name(f"events.{kind}", kind)
            fields = s.events.setdefault(kind, {})
            self._fields(fields, kdata, f"events.{kind}", f"event.{kind}")
            clash = set(fields) & set(s.event_common)
            if clash:
                raise self.fail(f"events.{kind}", f"redeclares common event field {sorted(clash)[0]}")

    def _redeem_step(self, cname: str, value: Any, decimals: int) -> int | Decimal | None:
        """A currency's ``redeem_step``: a positive amount the currency can hold (at most its
        decimals, below 10^12 units, the ledger's bound), written as a number or a string."""
        if value is None:
            return None
        key = f"currencies.{cname}.redeem_step"
        example = '"0.02"' if decimals else "150"
        try:
            step = parse_decimal(value)
        except ValueError as exc:
            raise self.fail(key, str(exc), f"write a positive amount such as {example}") from None
        if not 0 < step < 10**12:
            raise self.fail(key, f"must be more than 0 and below 1000000000000, not {step}",
                            f"write a positive amount such as {example}")
        if step != step.quantize(Decimal(1).scaleb(-decimals)):
            raise self.fail(key, f"{step} has more decimal places than the currency's {decimals}",
                            f"redeemable amounts are whole multiples of the step; write one with at "
                            f"most {decimals} decimal places, or raise decimals")
        return int(step) if step == step.to_integral_value() else step.normalize()

    def _qualification(self, data: Any) -> Qualification:
        s = self.schema
        example = ('a table such as { measure = "points", window = "calendar year", '
                   'thresholds = { GOLD = 50000 }, downgrade = "one step" }')
        if not isinstance(data, dict):
            raise self.fail("qualification", "must be " + example)
        known = {"measure", "window", "thresholds", "downgrade", "keep"}
        for key in data:
            if key not in known:
                raise self.fail(f"qualification.{key}", "unknown setting" + _hint(key, known))
        measure = data.get("measure")
        if measure not in s.currencies:
            raise self.fail("qualification.measure", f"{measure!r} is not a declared currency",
                            "name the currency whose awards count toward status (declared under "
                            f"[currencies]: {', '.join(sorted(s.currencies)) or 'none yet'})")
        choices = {"window": QUALIFICATION_WINDOWS, "downgrade": DOWNGRADES, "keep": KEEPS}
        for key, options in choices.items():
            if key in data and data[key] not in options:
                raise self.fail(f"qualification.{key}", f"{data[key]!r} is not a choice",
                                "write " + " or ".join(f'"{o}"' for o in options))
        if "window" not in data:
            raise self.fail("qualification", "names no window",
                            "write window = " + " or ".join(f'"{o}"' for o in QUALIFICATION_WINDOWS))
        thresholds = data.get("thresholds")
        if not isinstance(thresholds, dict) or not thresholds:
            raise self.fail("qualification.thresholds", "must be a table of tier = amount",
                            "write thresholds = { GOLD = 50000, PLATINUM = 100000 }")
        if not s.tiers:
            raise self.fail("qualification", "comes before any tiers are declared",
                            'declare tiers = ["SILVER", "GOLD"] (lowest first)')
        pairs: list[tuple[str, int | Decimal]] = []
        for tier, amount in thresholds.items():
            if tier not in s.tiers:
                raise self.fail(f"qualification.thresholds.{tier}", "is not a declared tier",
                                did_you_mean(tier, s.tiers) or f"tiers are {', '.join(s.tiers)}")
            try:
                value = parse_decimal(amount if not isinstance(amount, float) else str(amount))
            except ValueError as exc:
                raise self.fail(f"qualification.thresholds.{tier}", str(exc)) from None
            if value < 0:
                raise self.fail(f"qualification.thresholds.{tier}", "must be zero or more")
            pairs.append((tier, int(value) if value == value.to_integral_value() else value))
        pairs.sort(key=lambda p: s.tiers.index(p[0]))
        if any(a[1] >= b[1] for a, b in pairwise(pairs)):
            raise self.fail("qualification.thresholds", "must grow with the tiers (lowest first)",
                            "a higher tier needs a larger amount")
        return Qualification(measure, data["window"], tuple(pairs), data.get("downgrade", "one step"),
                             data.get("keep", ""))

    def _check_name(self, key: str, name: str) -> None:
        if not _NAME.match(name) or "__" in name:
            raise self.fail(key, "names are lower case letters, digits and single underscores")

    def _fields(self, into: dict[str, Field], data: Any, key: str, record: str) -> None:
        if not isinstance(data, dict):
            raise self.fail(key, "must be a table of fields")
        for fname, spec in data.items():
            fkey = f"{key}.{fname}"
            self._check_name(fkey, fname)
            if fname == "attributes":  # every record's extension fields travel in that map
                raise self.fail(fkey, "is the name of the map that carries extension fields, "
                                "so no request could send it", "give the field another name")
            if isinstance(spec, dict) and "type" not in spec:
                nested = f"{record}.{fname}"
                self._fields(self.schema.records.setdefault(nested, {}), spec, fkey, nested)
                t = Type("record", name=nested)
                new = Field(fname, t)
            elif isinstance(spec, dict):
                extra = set(spec) - {"type", "default", "derived", "doc", "min", "max", "max_length",
                                     "ordered"}
                if extra:
                    raise self.fail(fkey, f"unknown key {sorted(extra)[0]}")
                t = self._type(str(spec["type"]), fkey)
                if "ordered" in spec:
                    if t.kind != "enum" or t.name == "tier" or not isinstance(spec["ordered"], bool):
                        raise self.fail(f"{fkey}.ordered", "only an enum can be ordered (true: its "
                                        "values are listed lowest first); tiers always are")
                    if spec["ordered"]:
                        t = Type("enum", t.optional, values=t.values, name=t.name, ordered=True)
                default = _MISSING
                if "default" in spec:
                    raw = spec["default"]
                    try:
                        if t.kind == "list":
                            if raw != []:
                                raise ValueError("a list default must be []")
                            default = []
                        else:
                            default = convert_scalar(t.required(), raw)
                    except ValueError as exc:
                        raise self.fail(f"{fkey}.default", str(exc)) from None
                    t = t.required()
                minimum = self._limit(spec, "min", t, fkey)
                maximum = self._limit(spec, "max", t, fkey)
                if minimum is not None and maximum is not None and maximum < minimum:
                    raise self.fail(f"{fkey}.max", f"is below the field's min ({minimum})")
                if maximum is not None and "default" in spec and default is not _MISSING \
                        and t.is_numeric and default > maximum:
                    raise self.fail(f"{fkey}.default", f"is above the field's max ({maximum})")
                max_length = spec.get("max_length", MAX_STRING)
                if "max_length" in spec and (
                        not t.is_stringy or not isinstance(max_length, int)
                        or isinstance(max_length, bool) or not 1 <= max_length <= MAX_STRING):
                    raise self.fail(f"{fkey}.max_length", "only text fields have a max_length, "
                                    f"a whole number from 1 to {MAX_STRING}")
                new = Field(fname, t, default, str(spec.get("derived", "")), minimum, max_length,
                            maximum)
            elif isinstance(spec, str):
                new = Field(fname, self._type(spec, fkey))
            else:
                raise self.fail(fkey, 'must be a type name such as "int" or a table with a type')
            old = into.get(fname)
            if old is not None and old.type != new.type:
                raise self.fail(fkey, f"is already declared as {old.type}; a field cannot change type")
            into[fname] = new

    def _limit(self, spec: dict[str, Any], key: str, t: Type, fkey: str) -> int | Decimal | None:
        """A field's ``min`` or ``max``: a number within the input bounds, for a number field."""
        if key not in spec:
            return None
        if not t.is_numeric:
            what = "a minimum" if key == "min" else "a maximum"
            raise self.fail(f"{fkey}.{key}", f"only numbers can have {what}")
        raw = spec[key]
        try:
            value = parse_decimal(raw if not isinstance(raw, float) else str(raw))
        except ValueError as exc:
            raise self.fail(f"{fkey}.{key}", str(exc)) from None
        if t.kind == "int" and value != value.to_integral_value():
            raise self.fail(f"{fkey}.{key}", "a whole-number field's limit must be a whole number")
        return int(value) if value == value.to_integral_value() else value

    def _type(self, text: str, key: str) -> Type:
        text = text.strip()
        optional = text.endswith("?")
        if optional:
            text = text[:-1].strip()
        t: Type
        if text in SCALARS:
            t = SCALARS[text]
        elif text == "tier":
            t = Type("enum", values=self.schema.tiers, name="tier", ordered=True)
        elif m := re.fullmatch(r"enum\((.*)\)", text):
            values = tuple(v.strip() for v in m[1].split(",") if v.strip())
            if not values:
                raise self.fail(key, "an enum needs at least one value")
            t = Type("enum", values=values, name=f"enum({', '.join(values)})")
        elif m := re.fullmatch(r"list<(.+)>", text):
            t = list_of(self._type(m[1], key))
        elif text in self.schema.records:
            t = Type("record", name=text)
        else:
            known = [*SCALARS, "tier", *self.schema.records]
            raise self.fail(key, f'unknown type "{text}"' + _hint(text, known))
        return t.maybe() if optional else t


def _locate_key(text: str, key: str) -> Span | None:
    """Where the dotted ``key`` stands in a TOML text: the line declaring its last part, under
    the longest table header that is a prefix of it (``[customer.lifetime]`` then
    ``attributes = ...``), or None when it cannot be found (then only the key is named)."""
    if not text:
        return None
    parts = key.split(".")
    lines = text.splitlines()
    start, depth = 0, 0
    for i, line in enumerate(lines):
        m = re.match(r"\s*\[+\s*([^\]]+?)\s*\]", line)
        if m:
            header = [h.strip().strip('"') for h in m[1].split(".")]
            if parts[:len(header)] == header and len(header) >= depth:
                start, depth = i + 1, len(header)
    rest = parts[depth:]
    if not rest:
        return Span.point(start, 1, len(lines[start - 1].strip()) if start else 1) if start else None
    first = re.escape(rest[0])
    for i in range(start, len(lines)):
        if re.match(r"\s*\[", lines[i]) and i > start:
            break
        m = re.match(rf"(\s*)(\"?{first}\"?)\s*[.=]", lines[i])
        if m:
            return Span.point(i + 1, len(m[1]) + 1, len(m[2]))
    return None


def _hint(name: str, candidates: Any) -> str:
    h = did_you_mean(name, candidates)
    return f"; {h}" if h else ""
