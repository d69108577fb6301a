"""The three ways into the evaluator agree exactly, on valid, boundary and hostile input.

- **P**, the protobuf decoder: ``Converter.inputs`` (fast path, falling back to the checking
  path), ``Converter.checked_inputs`` (the checking path alone) and the fast path alone;
- **M**, the mapping decoder: ``MappingDecoder.request`` on the proto3 JSON mapping of the same
  request (``MessageToDict``, camelCase and snake_case);
- **R**, the reference: ``prepare_customer`` / ``prepare_event`` (tests/dsl/input/reference.py,
  written without the layout or the plans) on the schema's flat form of the same input, built
  here from the generated request itself (never from a decoder).

A request is drawn as a *spec*: nested dicts keyed by proto field names, with ``Ts`` / ``Dur``
for timestamps and durations and ``V`` for typed ``Value``s. :func:`to_proto`,
:func:`to_mapping` and :func:`to_flat` render one spec three ways.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dsl.errors import InputError
from dsl.input.request import ACCEPTS, MappingDecoder, RequestLayout, json_name
from dsl.schema.schema import MAX_LIST, MAX_STRING, Schema
from dsl.schema.types import Type
from service.convert import Converter
from service.errors import InvalidArgument
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from tests.dsl.input.reference import prepare_customer, prepare_event, request_path
from tests.dsl.strategies import AIRPORTS, BIG_INTS, SPECIAL_DATES, STRINGS
from tests.service.conftest import POLICIES

# -- the schemas ---------------------------------------------------------------------------------

#: Extension fields of every type where they travel as attributes: the customer, its lifetime,
#: every event, a purchase item, a standard kind (purchase) and an extension kind (stay).
EXTENSION_TOML = """
tiers = ["SILVER", "GOLD"]

[records.part]
code = "string"
weight = { type = "decimal?", min = 0 }

[customer]
nickname = "string?"
score = { type = "int?", min = 0 }
balance = "decimal?"
vip = "bool?"
joined = "date?"
seen_at = "datetime?"
patience = "duration?"
hub = "airport?"
money = "currency_code?"
zone = "timezone?"
level = "tier?"
segment = "enum(alpha, beta)?"
tags = "list<string>?"
grid = "list<list<int>>?"
best = "part?"

[customer.lifetime]
stamps = { type = "int", default = 0, min = 0 }
credit = "decimal?"
note = "string?"
renewed = "bool?"
since = "date?"
last_at = "datetime?"
idle = "duration?"
home = "airport?"
paid_in = "currency_code?"
clock = "timezone?"
peak = "tier?"
band = "enum(low, high)?"
counts = "list<int>?"
grid = "list<list<int>>?"
parts = "list<part>?"

[event]
source = "string?"

[events.purchase]
store = "string?"
discount = { type = "decimal?", min = 0 }

[records.item]
weight = { type = "int?", min = 0 }
price = "decimal?"
brand = "string?"
fragile = "bool?"
expires = "date?"
packed_at = "datetime?"
shelf_life = "duration?"
made_in = "airport?"
priced_in = "currency_code?"
grade = "tier?"
size = "enum(s, m, l)?"
codes = "list<int>?"
grid = "list<list<int>>?"
part = "part?"

[events.stay]
hotel = { type = "string", max_length = 128 }
nights = { type = "int", default = 1, min = 1, max = 365 }
rate = { type = "decimal", min = "0.01", max = "50000" }
checked_in = "datetime"
checkout = "date?"
late = "duration?"
airport = "airport?"
currency = { type = "currency_code", default = "EUR" }
hotel_zone = { type = "timezone", default = "Europe/London" }
club = "tier?"
room = "enum(single, double)?"
extras = "list<part>?"
"""


def _extension_schema() -> Schema:
    """The standard schema plus EXTENSION_TOML, loaded from a policy directory under tmp."""
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "schema.toml").write_text(EXTENSION_TOML, encoding="utf-8")
        return Schema.for_directory(directory)


BUNDLED = Schema.for_directory(POLICIES)
EXTENDED = _extension_schema()
STANDARD = Schema.load(None)
CONVERTERS = {id(BUNDLED): Converter(BUNDLED), id(EXTENDED): Converter(EXTENDED)}
DECODERS = {id(s): MappingDecoder(s) for s in (BUNDLED, EXTENDED)}
LAYOUTS = {id(s): RequestLayout(s) for s in (BUNDLED, EXTENDED)}

# -- the request spec ----------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: An impossible instant or duration as text: what a JSON caller would write for one (refused).
BAD_TIME_TEXT = "0000-01-01T00:00:00Z"
BAD_DURATION_TEXT = "1 fortnight"


@dataclass(frozen=True)
class Ts:
    """A ``Timestamp``'s two fields, valid or not."""

    seconds: int
    nanos: int = 0

    def instant(self) -> datetime | None:
        """The instant (cut to microseconds), or None where no ``Timestamp`` may say it."""
        if not 0 <= self.nanos <= 999_999_999:
            return None
        try:
            return _EPOCH + timedelta(seconds=self.seconds, microseconds=self.nanos // 1000)
        except OverflowError:
            return None


@dataclass(frozen=True)
class Dur:
    """A ``Duration``'s two fields, valid or not."""

    seconds: int
    nanos: int = 0

    def delta(self) -> timedelta | None:
        """The length (cut to microseconds, toward zero), or None for an invalid ``Duration``."""
        if not -999_999_999 <= self.nanos <= 999_999_999 or self.seconds * self.nanos < 0:
            return None
        if abs(self.seconds) > 315_576_000_000:
            return None
        micros = abs(self.nanos) // 1000
        return timedelta(seconds=self.seconds, microseconds=-micros if self.nanos < 0 else micros)


@dataclass(frozen=True)
class V:
    """A ``Value``: ``kind`` is a oneof name (or None: no kind set), ``inner`` its content
    (a list of V for list_value, a dict of name -> V for record_value)."""

    kind: str | None
    inner: Any = None


#: The Value kinds each schema type takes (the contract; dsl.input.request.ACCEPTS must say the same).
TAKES: dict[str, tuple[str, ...]] = {
    "int": ("int_value",), "decimal": ("decimal_value", "int_value"), "string": ("string_value",),
    "enum": ("string_value",), "airport": ("string_value",), "currency_code": ("string_value",),
    "timezone": ("string_value",), "bool": ("bool_value",), "date": ("date_value", "string_value"),
    "datetime": ("time_value", "string_value"), "duration": ("duration_value", "string_value"),
    "list": ("list_value",), "record": ("record_value",),
}


class Mistyped:
    """The flat form of a ``Value`` of a kind its field does not take: a value of no type at all
    (the reference has no Value kinds; every type refuses this)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"Mistyped({self.kind})"


# -- rendering: protobuf --------------------------------------------------------------------------


def _set_value(target: pb.Value, v: V, placeholders: dict[str, str] | None) -> None:
    if v.kind is None:
        return
    if v.kind == "list_value":
        target.list_value.SetInParent()
        for item in v.inner:
            _set_value(target.list_value.values.add(), item, placeholders)
    elif v.kind == "record_value":
        target.record_value.SetInParent()
        for name, item in v.inner.items():
            _set_value(target.record_value.fields[name], item, placeholders)
    elif v.kind in ("time_value", "duration_value"):
        _set_time(getattr(target, v.kind), v.inner, placeholders)
    else:
        setattr(target, v.kind, v.inner)


def _set_time(target: Any, value: Ts | Dur, placeholders: dict[str, str] | None) -> None:
    valid = value.instant() if isinstance(value, Ts) else value.delta()
    if placeholders is not None and valid is None:
        # The JSON printer refuses an invalid Timestamp or Duration: a unique valid one stands in,
        # and its JSON text is replaced by the text a caller would write (refused as well).
        n = len(placeholders) + 1
        if isinstance(value, Ts):
            target.seconds, target.nanos = 7 * 86400 + n, 0
            placeholders[target.ToJsonString()] = BAD_TIME_TEXT
        else:
            target.seconds, target.nanos = 777_000 + n, 0
            placeholders[target.ToJsonString()] = BAD_DURATION_TEXT
        return
    target.seconds, target.nanos = value.seconds, value.nanos


def _fill(msg: Any, spec: dict[str, Any], placeholders: dict[str, str] | None) -> None:
    fields = msg.DESCRIPTOR.fields_by_name
    for name, value in spec.items():
        fd = fields[name]
        if name == "attributes":
            for key, v in value.items():
                _set_value(msg.attributes[key], v, placeholders)
        elif fd.message_type is not None and fd.is_repeated:
            for item in value:
                _fill(getattr(msg, name).add(), item, placeholders)
        elif isinstance(value, Ts | Dur):
            _set_time(getattr(msg, name), value, placeholders)
        elif fd.message_type is not None:
            getattr(msg, name).SetInParent()
            _fill(getattr(msg, name), value, placeholders)
        else:
            setattr(msg, name, value)


def to_proto(spec: dict[str, Any], placeholders: dict[str, str] | None = None
             ) -> tuple[pb.Customer, pb.Event]:
    """The request as messages (with placeholders for invalid times when ``placeholders`` is given)."""
    customer, event = pb.Customer(), pb.Event()
    _fill(customer, spec["customer"], placeholders)
    _fill(event, spec["event"], placeholders)
    return customer, event


# -- rendering: the proto3 JSON mapping ----------------------------------------------------------


def _replace(data: Any, placeholders: dict[str, str]) -> Any:
    if isinstance(data, dict):
        return {k: _replace(v, placeholders) for k, v in data.items()}
    if isinstance(data, list):
        return [_replace(v, placeholders) for v in data]
    if isinstance(data, str):
        return placeholders.get(data, data)
    return data


def to_mapping(spec: dict[str, Any], snake: bool) -> dict[str, Any]:
    """The request's proto3 JSON mapping (MessageToDict), camelCase or snake_case."""
    placeholders: dict[str, str] = {}
    customer, event = to_proto(spec, placeholders)
    data = {"customer": MessageToDict(customer, preserving_proto_field_name=snake),
            "event": MessageToDict(event, preserving_proto_field_name=snake)}
    return _replace(data, placeholders) if placeholders else data


# -- rendering: the schema's flat form -----------------------------------------------------------


def _flat_time(value: Ts | Dur) -> Any:
    valid = value.instant() if isinstance(value, Ts) else value.delta()
    if valid is None:
        return BAD_TIME_TEXT if isinstance(value, Ts) else BAD_DURATION_TEXT
    return valid


def flat_value(schema: Schema, v: V, t: Type | None) -> Any:
    """A ``Value`` as the flat form's loose value for a field of type ``t`` (None: undeclared)."""
    if v.kind is None:
        return None
    if t is not None and v.kind not in TAKES[t.kind]:
        return Mistyped(v.kind)
    if v.kind == "list_value":
        return [flat_value(schema, item, t.elem if t else None) for item in v.inner]
    if v.kind == "record_value":
        fields = schema.record_fields(t.name) if t else {}
        return {name: flat_value(schema, item, fields[name].type if name in fields else None)
                for name, item in v.inner.items()}
    if v.kind in ("time_value", "duration_value"):
        return _flat_time(v.inner)
    return v.inner


def _flat_message(schema: Schema, desc: Any, spec: dict[str, Any], fields: dict[str, Any],
                  out: dict[str, Any]) -> None:
    """A message's fields into ``out`` under their schema names: what proto3 leaves out ("" and
    0 without presence) is not given, nor is an attribute whose ``stringValue`` is empty;
    attributes join the record."""
    for name, value in spec.items():
        if name == "attributes":
            for key, v in value.items():
                if v.kind == "string_value" and v.inner == "":
                    continue  # an empty string attribute is not given either
                loose = flat_value(schema, v, fields[key].type if key in fields else None)
                if loose is not None:
                    out[key] = loose
            continue
        fd = desc.fields_by_name[name]
        t = fields[name].type if name in fields else Type("any")  # another kind's details field
        if fd.message_type is not None and fd.is_repeated and t.elem is not None:
            record = schema.record_fields(t.elem.name)
            items = []
            for item in value:
                sub: dict[str, Any] = {}
                _flat_message(schema, fd.message_type, item, record, sub)
                items.append(sub)
            if items:
                out[name] = items
        elif isinstance(value, Ts | Dur):
            out[name] = _flat_time(value)
        elif fd.message_type is not None and not fd.is_repeated:
            sub = {}
            _flat_message(schema, fd.message_type, value, schema.record_fields(t.name), sub)
            out[name] = sub
        elif fd.has_presence or value not in ("", 0, False):
            out[name] = value


DETAILS = ("flight", "purchase", "visit", "appointment", "donation")


def to_flat(schema: Schema, spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request in the schema's flat form: (customer, event) for the reference prepare_*."""
    customer: dict[str, Any] = {}
    _flat_message(schema, pb.Customer.DESCRIPTOR, spec["customer"], schema.customer, customer)
    event_spec = spec["event"]
    kind = event_kind(event_spec)
    fields = {**schema.event_common, **schema.events.get(kind or "", {})}
    event: dict[str, Any] = {"kind": kind} if kind else {}
    own = {k: v for k, v in event_spec.items() if k not in DETAILS and k != "kind"}
    _flat_message(schema, pb.Event.DESCRIPTOR, own, fields, event)
    for which in DETAILS:
        if which in event_spec:
            details = pb.Event.DESCRIPTOR.fields_by_name[which].message_type
            _flat_message(schema, details, event_spec[which], fields, event)
    return customer, event


def details_of(event_spec: dict[str, Any]) -> str | None:
    """Which details message the event carries (the spec carries at most one)."""
    return next((w for w in DETAILS if w in event_spec), None)


def event_kind(event_spec: dict[str, Any]) -> str | None:
    """The event's kind: its ``kind``, or the details' when ``kind`` is empty."""
    return event_spec.get("kind") or details_of(event_spec)


def shape_mismatch(event_spec: dict[str, Any]) -> bool:
    """The event's kind disagrees with the details it carries (no flat form says that)."""
    which = details_of(event_spec)
    return bool(which and event_spec.get("kind") and event_spec["kind"] != which)


# -- outcomes ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one decoder did: the prepared (customer, event), or the problems as (path, reason)."""

    value: tuple[dict[str, Any], dict[str, Any]] | None = None
    problems: list[tuple[str, str]] | None = None

    @property
    def accepted(self) -> bool:
        return self.problems is None

    def paths(self) -> set[str]:
        return {p for p, _ in self.problems or ()}

    def reasons(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for path, reason in self.problems or ():
            out.setdefault(path, set()).add(reason)
        return out


def run_p(converter: Converter, customer: pb.Customer, event: pb.Event, checked: bool = False) -> Outcome:
    """The protobuf decoder (``checked``: the checking path alone)."""
    try:
        value = (converter.checked_inputs if checked else converter.inputs)(customer, event)
    except InvalidArgument as exc:
        return Outcome(problems=[(v.field, v.description) for v in exc.violations])
    return Outcome(value=value)


def run_fast(converter: Converter, customer: pb.Customer, event: pb.Event) -> Outcome | None:
    """The fast path alone, as a batch runs it; None where it gives up (in any way)."""
    fast = converter.fast
    fast_customer, by_kind, event_function = fast.customer, fast.by_kind, fast.event_function
    try:
        fast_event = by_kind.get(event.kind) or event_function(event)
        return Outcome(value=(fast_customer(customer), fast_event(event)))
    except Exception:
        return None


def run_m(decoder: MappingDecoder, data: dict[str, Any]) -> Outcome:
    """The mapping decoder."""
    try:
        value = decoder.request(data)
    except InputError as exc:
        return Outcome(problems=[(e.path, e.reason) for e in exc.errors])
    return Outcome(value=value)


def run_r(schema: Schema, customer: dict[str, Any], event: dict[str, Any]) -> Outcome:
    """The reference, schema paths mapped to request paths (``request_path``)."""
    layout = LAYOUTS[id(schema)]
    problems: list[tuple[str, str]] = []
    value: list[dict[str, Any]] = []
    for prepare, record in ((prepare_customer, customer), (prepare_event, event)):
        try:
            value.append(prepare(schema, record))
        except InputError as exc:
            details = record.get("kind") if record is event else None
            problems += [(request_path(layout, e.path, details), e.reason) for e in exc.errors]
    if problems:
        return Outcome(problems=problems)
    return Outcome(value=(value[0], value[1]))


def same(a: Any, b: Any, where: str = "") -> None:
    """``a`` and ``b`` are equal and equal in type, all the way down; decimals equal as text too
    (Decimal("1.0") == Decimal("1.00"), but they are different inputs)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} {a!r} vs {type(b).__name__} {b!r}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} vs {list(b)}"
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, Decimal):
        assert str(a) == str(b), f"{where}: {a!r} vs {b!r}"
    elif isinstance(a, datetime):
        assert a == b and a.tzinfo == b.tzinfo, f"{where}: {a!r} vs {b!r}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def camel_path(path: str, data: dict[str, Any]) -> str:
    """A request path in proto names as a camelCase caller's path: each message field name the
    caller wrote in camelCase (found in ``data``, the camelCase mapping) is camelCase; map keys
    (attribute and record field names) and fields the caller did not write keep their names."""
    out: list[str] = []
    node: Any = data
    for segment in path.split("."):
        name, bracket, rest = segment.partition("[")
        camel = json_name(name)
        if isinstance(node, dict) and camel in node and node is not None:
            out.append(camel + bracket + rest)
            node = node[camel]
            if node is not None and bracket:
                for index in (bracket + rest).strip("[]").split("]["):
                    node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
            if camel == "attributes":
                node = None  # below: names as the caller gave them
        else:
            out.append(segment)
            node = None
    return ".".join(out)


# -- the agreement ------------------------------------------------------------------------------


def check_agreement(schema: Schema, spec: dict[str, Any], loose_paths: frozenset[str] = frozenset()
                    ) -> dict[str, Outcome]:
    """Every decoder on one request; asserts properties (a) to (d) of the module. Reasons at
    ``loose_paths`` (values whose form differs between protobuf and text: an invalid Timestamp,
    a Value of the wrong kind) are compared for presence only."""
    converter, decoder = CONVERTERS[id(schema)], DECODERS[id(schema)]
    customer, event = to_proto(spec)
    outcomes = {
        "P": run_p(converter, customer, event),
        "P-checked": run_p(converter, customer, event, checked=True),
        "M-snake": run_m(decoder, to_mapping(spec, snake=True)),
    }
    camel = to_mapping(spec, snake=False)
    outcomes["M-camel"] = run_m(decoder, camel)
    outcomes["R"] = run_r(schema, *to_flat(schema, spec))
    p = outcomes["P"]
    # (a) one verdict (the reference's too, where the request has a flat form at all: an
    # event whose kind disagrees with its details has none, and the flat form drops empty details)
    verdicts = {name: o.accepted for name, o in outcomes.items()
                if name != "R" or not shape_mismatch(spec["event"])}
    assert len(set(verdicts.values())) == 1, f"verdicts differ: {verdicts}\n{_show(outcomes)}"
    if p.accepted:
        # (b) one prepared input, value for value and type for type
        for name, o in outcomes.items():
            same(p.value, o.value, f"P vs {name}")
    else:
        # (c) the same problems: the checking path and snake_case mappings exactly
        assert outcomes["P-checked"].problems == p.problems
        m = outcomes["M-snake"]
        assert m.paths() == p.paths(), _show(outcomes)
        for path, reasons in p.reasons().items():
            if path not in loose_paths:
                assert m.reasons()[path] == reasons, f"{path}: {_show(outcomes)}"
        # camelCase: the same paths in the caller's spelling
        expected = {camel_path(path, camel) for path in p.paths()}
        assert outcomes["M-camel"].paths() == expected, _show(outcomes)
        # the reference: the same fields (where the request has a flat form at all)
        if not shape_mismatch(spec["event"]):
            r = outcomes["R"]
            assert r.paths() == p.paths(), _show(outcomes)
            for path, reasons in p.reasons().items():
                if path not in loose_paths:
                    assert r.reasons()[path] == reasons, f"{path}: {_show(outcomes)}"
    # (d) the fast path alone takes only what the checking path takes, unchanged
    fast = run_fast(converter, customer, event)
    if fast is not None:
        assert outcomes["P-checked"].accepted, f"the fast path took a refused request: {_show(outcomes)}"
        same(outcomes["P-checked"].value, fast.value, "checked vs fast")
    return outcomes


def _show(outcomes: dict[str, Outcome]) -> str:
    lines = []
    for name, o in outcomes.items():
        lines.append(f"  {name}: " + ("accepted" if o.accepted else repr(sorted(o.problems or []))))
    return "\n" + "\n".join(lines)


# -- values: valid, boundary and hostile ------------------------------------------------------------
#
# Every pool comes in two halves: values the schema takes (boundaries included: 18 digits, the
# longest id and text, years 1 and 9999, 100,000 days) and values it refuses (one past each
# bound, and text no decimal, date or instant reader should take). A request draws how hostile
# it is (the chance, out of 10, that a field gets a refused value), so that most requests are
# accepted, some carry one problem, and some many.

NINES = "9" * 18
VALID_DECIMALS = ["0", "12.50", "-0", "0E+17", "1e17", ".5", "5.", "1E+3", "0.00", "0.01", NINES,
                  NINES + "." + NINES, "0." + "0" * 17 + "1", "1.000000000000000000", "50000",
                  "50000.00", "50000.01"]
HOSTILE_DECIMALS = [
    "-" + NINES, "-12.50", "1" + NINES, "1e18", "0E+18", "0." + "0" * 18 + "1", "1.0000000000000000000",
    "1e-19", "1E+999999", "1e999999999", "NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "1_000", " 1",
    "1 ", "١٢٣", "\uff11\uff12\uff13", "+1", "", "-", ".", "e5", "1e", "--1", "0x10", "1" * 49,
]
VALID_INTS = [0, 1, 5, 12, 365, 366, 10**18 - 1, *(n for n in BIG_INTS if n > 0)]
HOSTILE_INTS = [-1, -(10**18 - 1), 10**18, -(10**18), 2**63 - 1, -(2**63), *(n for n in BIG_INTS if n < 0)]
VALID_DATES = ["2026-01-01", "2024-02-29", "0001-01-01", "9999-12-31", " 2026-01-01",
               *(d.isoformat() for d in SPECIAL_DATES)]
HOSTILE_DATES = ["2026-02-30", "2023-02-29", "2026-W01-1", "20260101", "١٢٣٤-01-01",
                 "\uff12\uff10\uff12\uff16-01-01",
                 "0000-01-01", "2026-1-1", "2026-01-01T00:00:00Z", "", "x" * 65]
VALID_DATETIMES = ["2026-03-01T09:30:00Z", "2026-03-01 09:30:00z", "2026-03-01T09:30Z",
                   "2026-03-01T09:30:00.123456789+05:30",
                   "2026-03-01T09:30:00.5-08:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"]
HOSTILE_DATETIMES = ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "2026-03-01",
                     "2026-02-30T00:00:00Z", "2026-03-01T09:30:00", "2026-03-01T09:30:00.1234567890Z",
                     "١٢٣٤-01-01T00:00:00Z", ""]
VALID_DURATIONS = ["15 minutes", "1 week", "900s", "-1.5s", "0.000001500s", "8640000000s", "99999 days"]
HOSTILE_DURATIONS = ["8640000001s", "9999999999s", "315576000000s", "99999 weeks", "1 fortnight", "1e3s", ""]
VALID_TIMESTAMPS = [Ts(0), Ts(1_772_357_400), Ts(1_772_357_400, 123_456_789), Ts(1_772_357_400, 999),
                    Ts(-1, 999_999_999), Ts(-62_135_596_800), Ts(253_402_300_799, 999_999_999)]
HOSTILE_TIMESTAMPS = [Ts(-62_135_596_801), Ts(253_402_300_800), Ts(1_772_357_400, -1),
                      Ts(1_772_357_400, 1_000_000_000), Ts(2**62)]
VALID_DURATION_VALUES = [Dur(0), Dur(900), Dur(-1, -500_000_000), Dur(0, 1500), Dur(0, -1500),
                         Dur(8_640_000_000), Dur(-8_640_000_000)]
HOSTILE_DURATION_VALUES = [Dur(8_640_000_001), Dur(315_576_000_000), Dur(1, -1), Dur(-1, 1),
                           Dur(0, 1_000_000_000), Dur(315_576_000_001)]


def _either(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any],
            bad: int) -> st.SearchStrategy[Any]:
    """``valid`` (10 - bad) times in 10, ``hostile`` otherwise."""
    if bad <= 0:
        return valid
    if bad >= 10:
        return hostile
    return st.integers(0, 9).flatmap(lambda n: hostile if n < bad else valid)


def _timestamps(bad: int) -> st.SearchStrategy[Ts]:
    moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda d: d.replace(tzinfo=UTC) - _EPOCH)
    drawn = st.builds(
        lambda delta, nanos: Ts(delta.days * 86400 + delta.seconds, delta.microseconds * 1000 + nanos),
        moments, st.sampled_from([0, 0, 1, 999]))
    return _either(st.one_of(st.sampled_from(VALID_TIMESTAMPS), drawn), st.sampled_from(HOSTILE_TIMESTAMPS),
                   bad)


def _text_for(t: Type, bad: int, limit: int = MAX_STRING) -> st.SearchStrategy[str]:
    """Text for a field of type ``t`` written as a string (message fields and string_value)."""
    kind = t.kind
    if kind == "decimal":
        return _either(st.one_of(st.sampled_from(VALID_DECIMALS),
                                 st.decimals(min_value=0, max_value=10**6, places=2).map(str)),
                       st.sampled_from(HOSTILE_DECIMALS), bad)
    if kind == "enum":
        return _either(st.sampled_from(t.values), st.sampled_from(["", "gold", "x" * (MAX_STRING + 1)]), bad)
    if kind == "airport":
        return _either(st.sampled_from([*AIRPORTS, "jfk", " lhr "]),
                       st.sampled_from(["XXX", "", "J" * (MAX_STRING + 1)]), bad)
    if kind == "currency_code":
        return _either(st.sampled_from(["USD", "EUR", "usd", " eur "]),
                       st.sampled_from(["XTS", "ABC", "US", ""]), bad)
    if kind == "timezone":
        return _either(st.sampled_from(["Europe/London", "America/New_York", "Asia/Kolkata", "UTC"]),
                       st.sampled_from(["europe/london", "Mars/Olympus", "localtime", "Factory",
                                        "../../etc/passwd", " UTC", "", "Z" * (MAX_STRING + 1)]), bad)
    if kind == "date":
        return _either(st.sampled_from(VALID_DATES), st.sampled_from(HOSTILE_DATES), bad)
    if kind == "datetime":
        return _either(st.sampled_from(VALID_DATETIMES), st.sampled_from(HOSTILE_DATETIMES), bad)
    if kind == "duration":
        return _either(st.sampled_from(VALID_DURATIONS), st.sampled_from(HOSTILE_DURATIONS), bad)
    valid = [s for s in STRINGS if s] + ["x" * limit, "١٢٣", "\uff11\uff12\uff13", " "]
    return _either(st.sampled_from(valid), st.sampled_from(["", "x" * (limit + 1)]), bad)


def _ints(bad: int) -> st.SearchStrategy[int]:
    return _either(st.one_of(st.integers(0, 12), st.sampled_from(VALID_INTS)), st.sampled_from(HOSTILE_INTS),
                   bad)


#: A value of every kind, for a field that takes another.
WRONG_KINDS = [V("string_value", "5"), V("int_value", 5), V("decimal_value", "5"), V("bool_value", True),
               V("date_value", "2026-01-01"), V("time_value", Ts(0)), V("duration_value", Dur(60)),
               V("list_value", [V("int_value", 1)]), V("record_value", {"code": V("string_value", "a")})]


def values_for(schema: Schema, t: Type, bad: int, depth: int = 1, limit: int = MAX_STRING
               ) -> st.SearchStrategy[V]:
    """A ``Value`` for a field of type ``t``: of a kind it takes, valid or not, or (hostile) of
    another kind, or empty."""
    kind = t.kind
    options: list[st.SearchStrategy[V]] = []
    if kind == "list":
        assert t.elem is not None
        elems = values_for(schema, t.elem, bad, depth + 1) if depth < 4 else st.just(V(None))
        options.append(st.lists(elems, max_size=3).map(lambda xs: V("list_value", xs)))
    elif kind == "record":
        fields = schema.record_fields(t.name)
        required = [n for n, f in fields.items() if _required(f)]

        @st.composite
        def record(draw: st.DrawFn) -> V:
            out = {n: draw(values_for(schema, f.type, bad, depth + 1, f.max_length))
                   for n, f in fields.items() if n in required or draw(st.booleans())}
            if bad and draw(st.integers(0, 9)) < bad:
                out[draw(st.sampled_from(["bogus", "Code"]))] = V("int_value", 1)
            return V("record_value", out)

        options.append(record())
    elif kind == "int":
        options.append(_ints(bad).map(lambda n: V("int_value", n)))
    elif kind == "decimal":
        options += [_text_for(t, bad).map(lambda s: V("decimal_value", s)),
                    _ints(bad).map(lambda n: V("int_value", n))]
    elif kind == "bool":
        options.append(st.booleans().map(lambda b: V("bool_value", b)))
    elif kind == "date":
        options += [_text_for(t, bad).map(lambda s: V("date_value", s)),
                    _text_for(t, bad).map(lambda s: V("string_value", s))]
    elif kind == "datetime":
        options += [_timestamps(bad).map(lambda ts: V("time_value", ts)),
                    _text_for(t, bad).map(lambda s: V("string_value", s))]
    elif kind == "duration":
        options += [_either(st.sampled_from(VALID_DURATION_VALUES), st.sampled_from(HOSTILE_DURATION_VALUES),
                            bad).map(lambda d: V("duration_value", d)),
                    _text_for(t, bad).map(lambda s: V("string_value", s))]
    else:
        options.append(_text_for(t, bad, limit).map(lambda s: V("string_value", s)))
    wrong = st.sampled_from([v for v in WRONG_KINDS if v.kind not in TAKES[kind]] + [V(None)])
    return _either(st.one_of(*options), st.one_of(*options, wrong), bad)


def _required(f: Any) -> bool:
    """A field every request must give (no default, may not be missing, not derived)."""
    return not (f.type.optional or f.has_default or f.derived or f.type.kind == "record")


def _message_value(f: Any, fd: Any, bad: int) -> st.SearchStrategy[Any]:
    """A value for a standard field carried by the message itself."""
    if fd.message_type is not None:
        assert fd.message_type.full_name == "google.protobuf.Timestamp", fd.full_name
        return _timestamps(bad)
    if fd.type == fd.TYPE_BOOL:
        return st.booleans()
    if fd.type == fd.TYPE_INT64:
        return _ints(bad)
    return _text_for(f.type, bad, f.max_length)


_UNKNOWN = st.sampled_from(["bogus", "Home_store", "x" * 70, "store", "weight"])


@st.composite
def message_spec(draw: st.DrawFn, schema: Schema, desc: Any, fields: dict[str, Any], bad: int,
                 attributes: bool = True) -> dict[str, Any]:
    """A message of ``desc`` carrying ``fields`` (schema name -> Field): each field left out
    (required ones only when hostile), given a value, or (records, lists) built recursively;
    extension fields as attributes, and (hostile) a name the schema does not declare."""
    spec: dict[str, Any] = {}
    attrs: dict[str, V] = {}
    for name, f in fields.items():
        if f.derived or name == "kind":
            continue
        # A required field is left out only in a hostile request; any other, one time in four.
        keep = (not bad or draw(st.integers(0, 19)) >= bad) if _required(f) else draw(st.integers(0, 3)) > 0
        if not keep:
            continue
        fd = desc.fields_by_name.get(name)
        if fd is None:
            attrs[name] = draw(values_for(schema, f.type, bad, limit=f.max_length))
        elif fd.message_type is not None and fd.is_repeated:
            record = schema.record_fields(f.type.elem.name)
            spec[name] = draw(st.lists(message_spec(schema, fd.message_type, record, bad), max_size=3))
        elif fd.message_type is not None and fd.message_type.full_name != "google.protobuf.Timestamp":
            spec[name] = draw(message_spec(schema, fd.message_type, schema.record_fields(f.type.name), bad))
        else:
            spec[name] = draw(_message_value(f, fd, bad))
    if attributes and "attributes" in desc.fields_by_name and bad and draw(st.integers(0, 29)) < bad:
        attrs[draw(_UNKNOWN)] = draw(st.sampled_from(WRONG_KINDS[:3]))
    if attrs:
        spec["attributes"] = attrs
    return spec


#: How hostile a request is: the chance, out of 10, that a field gets a refused value.
HOSTILITY = st.sampled_from([0, 0, 0, 1, 1, 3, 10])


@st.composite
def requests(draw: st.DrawFn, schema: Schema) -> dict[str, Any]:
    """A request spec for ``schema``: a customer and an event of any kind the schema declares;
    hostile ones now and then with a kind that disagrees with the details, or none at all."""
    bad = draw(HOSTILITY)
    customer = draw(message_spec(schema, pb.Customer.DESCRIPTOR, schema.customer, bad))
    kind = draw(st.sampled_from(sorted(schema.events)))
    fields = {**schema.event_common, **schema.events[kind]}
    own = {n: f for n, f in fields.items() if n in schema.event_common or kind not in DETAILS
           or n not in pb.Event.DESCRIPTOR.fields_by_name[kind].message_type.fields_by_name}
    event = draw(message_spec(schema, pb.Event.DESCRIPTOR, own, bad))
    if kind in DETAILS:
        details_desc = pb.Event.DESCRIPTOR.fields_by_name[kind].message_type
        details = {n: f for n, f in schema.events[kind].items() if n in details_desc.fields_by_name}
        event[kind] = draw(message_spec(schema, details_desc, details, bad, attributes=False))
    shapes = ["kind", "kind", "details only"]
    if bad:
        shapes += ["kind only", "other kind", "unknown kind", "neither"]
    shape = draw(st.sampled_from(shapes))
    if shape in ("kind", "kind only") or (kind not in DETAILS and shape == "details only"):
        event["kind"] = kind
    elif shape == "other kind":  # another kind's name with these details, or details with this kind
        if kind in DETAILS:
            event["kind"] = draw(st.sampled_from([k for k in (*schema.events, "bogus") if k != kind]))
        else:
            event["kind"] = kind
            event[draw(st.sampled_from(DETAILS))] = {}
    elif shape == "unknown kind":
        event["kind"] = draw(st.sampled_from(["bogus", "Flight", "x" * 70]))
    if shape in ("kind only", "unknown kind", "neither"):
        event.pop(kind, None)
    return {"customer": customer, "event": event}


def loose_paths(spec: dict[str, Any], schema: Schema) -> frozenset[str]:
    """Request paths whose reason may differ by form (see :func:`check_agreement`): values of a
    kind their field does not take, and invalid timestamps and durations."""
    out: set[str] = set()

    def walk(node: Any, path: str, t: Type | None) -> None:
        if isinstance(node, V):
            if node.kind is None:
                return
            if t is None or node.kind not in TAKES[t.kind] or (
                    isinstance(node.inner, Ts | Dur) and _flat_time(node.inner) in (BAD_TIME_TEXT,
                                                                                    BAD_DURATION_TEXT)):
                out.add(path)
            elif node.kind == "list_value":
                for i, item in enumerate(node.inner):
                    walk(item, f"{path}[{i}]", t.elem)
            elif node.kind == "record_value":
                fields = schema.record_fields(t.name)
                for name, item in node.inner.items():
                    walk(item, f"{path}.{name}", fields[name].type if name in fields else None)
        elif isinstance(node, Ts) and node.instant() is None:
            out.add(path)

    def message(spec_: dict[str, Any], path: str, fields: dict[str, Any]) -> None:
        for name, value in spec_.items():
            if name == "attributes":
                for key, v in value.items():
                    walk(v, f"{path}.attributes.{key}", fields[key].type if key in fields else None)
            elif isinstance(value, dict):
                record = fields[name].type.name if name in fields else name
                inner = schema.record_fields(record) if name in fields else fields
                message(value, f"{path}.{name}", inner)
            elif isinstance(value, list):
                t = fields[name].type if name in fields else Type("list", elem=Type("record", name="item"))
                record = schema.record_fields(t.elem.name)
                for i, item in enumerate(value):
                    message(item, f"{path}.{name}[{i}]", record)
            else:
                walk(value, f"{path}.{name}", None)

    message(spec["customer"], "customer", schema.customer)
    kind = event_kind(spec["event"]) or ""
    if not kind:  # the request form's refusal names the details messages that would do
        out.add("event.kind")
    message(spec["event"], "event", {**schema.event_common, **schema.events.get(kind, {})})
    return frozenset(out)


# -- the properties -------------------------------------------------------------------------------


def _minimal(customer: dict[str, Any] | None = None, **event: Any) -> dict[str, Any]:
    """A small request (for the examples found by these tests, kept below as @example)."""
    return {"customer": {"id": "c", "member_since": "2026-01-01", **(customer or {})},
            "event": {"id": "e", "time": Ts(0), **event}}


@settings(max_examples=400, deadline=None)
@given(requests(BUNDLED))
@example(_minimal({"attributes": {"bogus": V("string_value", "5")}}, kind="visit"))
@example(_minimal(kind="x" * 70))
@example(_minimal(kind="visit", attributes={"x" * 70: V("string_value", "5")}))
@example(_minimal(kind="appointment", appointment={"service": "s", "scheduled_at": Ts(0)},
                  attributes={"price": V("int_value", 10**18)}))
def test_bundled_schema_decoders_agree(spec):
    """For the bundled schema (home_store, store and price as attributes), P, M and R give the same
    verdict, the same prepared input, and the same problems; the fast path never differs."""
    check_agreement(BUNDLED, spec, loose_paths(spec, BUNDLED))


@settings(max_examples=500, deadline=None)
@given(requests(EXTENDED))
@example(_minimal({"attributes": {"best": V("string_value", "5")}}, kind="visit"))
@example(_minimal({"attributes": {"patience": V("duration_value", Dur(8_640_000_001))}}, kind="visit"))
@example(_minimal({"attributes": {"patience": V("duration_value", Dur(315_576_000_000))}}, kind="visit"))
@example(_minimal({"attributes": {"patience": V("duration_value", Dur(0, -1500))}}, kind="visit"))
def test_extension_fields_of_every_type_agree(spec):
    """Extension fields of every type in Customer, Lifetime, Event and Item attributes, and an
    extension event kind: P, M and R agree as for the bundled schema."""
    check_agreement(EXTENDED, spec, loose_paths(spec, EXTENDED))


@settings(max_examples=12, deadline=None)
@given(requests(EXTENDED), st.sampled_from(["items", "tags", "counts"]),
       st.sampled_from([MAX_LIST, MAX_LIST + 1]))
def test_the_longest_lists_agree(spec, where, length):
    """A list at its bound and one past it (purchase items, a customer's and a lifetime's list
    attribute), inside otherwise drawn requests: the decoders still agree."""
    if where == "items":
        spec["event"] = {"id": "e", "kind": "purchase", "time": Ts(0), "purchase": {"amount": "1", "items": (
            BIG_ITEMS[:length])}}
    elif where == "tags":
        spec["customer"].setdefault("attributes", {})["tags"] = V("list_value", BIG_TAGS[:length])
    else:
        lifetime = spec["customer"].setdefault("lifetime", {})
        lifetime.setdefault("attributes", {})["counts"] = V("list_value", BIG_COUNTS[:length])
    check_agreement(EXTENDED, spec, loose_paths(spec, EXTENDED))


BIG_ITEMS = [{"sku": "s", "category": "c", "amount": "1"}] * (MAX_LIST + 1)
BIG_TAGS = [V("string_value", "t")] * (MAX_LIST + 1)
BIG_COUNTS = [V("int_value", 7)] * (MAX_LIST + 1)


# -- the standard schema's layout is the proto's ------------------------------------------------------

_STRING_KINDS = ("string", "enum", "airport", "currency_code", "date", "decimal")


def _standard_messages() -> list[tuple[str, Any, Any]]:
    """(schema table, its MessageLayout, the proto message) for every standard table."""
    layout = RequestLayout(STANDARD)
    out = [("customer", layout.customer, pb.Customer.DESCRIPTOR),
           ("customer.lifetime", layout.record("customer.lifetime"), pb.Lifetime.DESCRIPTOR),
           ("event", layout.events["flight"][0], pb.Event.DESCRIPTOR),
           ("records.item", layout.record("item"), pb.Item.DESCRIPTOR)]
    for kind in DETAILS:
        out.append((f"events.{kind}", layout.events[kind][1],
                    pb.Event.DESCRIPTOR.fields_by_name[kind].message_type))
    return out


def _wire_problem(f: Any, fd: Any, layout: RequestLayout) -> str | None:
    """Why the proto field ``fd`` cannot carry the schema field ``f`` (None: it can)."""
    t = f.type
    repeated = fd.is_repeated
    if t.kind in _STRING_KINDS:
        ok = fd.type == fd.TYPE_STRING and not repeated
        return None if ok else "must be a string"
    if t.kind == "int":
        if fd.type != fd.TYPE_INT64 or repeated:
            return "must be an int64"
        # 0 is "not given" without presence: fine only where not given means 0.
        needs_presence = not (f.has_default and f.default == 0)
        return None if fd.has_presence == needs_presence else f"optional must be {needs_presence}"
    if t.kind == "bool":
        ok = fd.type == fd.TYPE_BOOL and not repeated and (fd.has_presence or f.default is False)
        return None if ok else "must be a bool (false when not given)"
    if t.kind == "datetime":
        ok = fd.message_type is not None and fd.message_type.full_name == "google.protobuf.Timestamp"
        return None if ok and not repeated else "must be a Timestamp"
    if t.kind == "record":
        ok = fd.message_type is not None and fd.message_type.name == layout.record(t.name).message
        return None if ok and not repeated else f"must be the message {layout.record(t.name).message}"
    if t.kind == "list" and t.elem is not None and t.elem.kind == "record":
        want = layout.record(t.elem.name).message
        ok = repeated and fd.message_type is not None and fd.message_type.name == want
        return None if ok else f"must be a repeated {want}"
    return f"no wire form for {t}"


def _wire_of(fd: Any) -> str:
    """A proto field's wire type as :func:`dsl.input.layout.wire_type` names it."""
    if fd.message_type is not None:
        if fd.message_type.full_name == "google.protobuf.Timestamp":
            return "timestamp"
        return "repeated" if fd.is_repeated else "message"
    if fd.type == fd.TYPE_INT64:
        return "optional int64" if fd.has_presence else "int64"
    return {fd.TYPE_STRING: "string", fd.TYPE_BOOL: "bool"}.get(fd.type, f"type {fd.type}")


@pytest.mark.parametrize(("table", "message", "desc"), _standard_messages(),
                         ids=[m[0] for m in _standard_messages()])
def test_the_standard_schema_travels_in_the_proto_fields_of_the_same_names(table, message, desc):
    """Every field of the standard schema (dsl/schema/schema.toml) is a field of its request message,
    of a compatible wire type (optional where 0 is not the same as not given); and every field
    of that message but attributes and the details oneof is a standard field."""
    layout = RequestLayout(STANDARD)
    assert message.message == desc.name
    problems = []
    for name, slot in message.slots.items():
        fd = desc.fields_by_name.get(name)
        if not slot.in_message or fd is None:
            problems.append(f"{table}.{name}: no field {desc.name}.{name}")
            continue
        why = _wire_problem(slot.field, fd, layout)
        if why:
            problems.append(f"{table}.{name}: {desc.name}.{name} {why}")
        if slot.wire != _wire_of(fd):  # what the message accessor reads it as
            problems.append(f"{table}.{name}: the layout says {slot.wire}, the proto {_wire_of(fd)}")
    if message.has_attributes != ("attributes" in desc.fields_by_name):
        problems.append(f"{desc.name}: the layout is wrong about its attributes")
    for fd in desc.fields:
        if fd.name == "attributes" or fd.containing_oneof is not None:
            continue
        if fd.name not in message.slots:
            problems.append(f"{desc.name}.{fd.name} is not a field of the standard {table}")
    assert problems == []


def test_a_schema_with_many_fields_gets_its_fast_path():
    """The extension schema's customer has 19 fields: its generated decoder (a dict display of
    more than 16 entries) passes the decoder verifier, and takes a valid customer as the
    checking path does."""
    converter = CONVERTERS[id(EXTENDED)]
    spec = _minimal({"attributes": {"nickname": V("string_value", "n"), "score": V("int_value", 3)}},
                    kind="visit", visit={})
    customer, event = to_proto(spec)
    fast = run_fast(converter, customer, event)
    assert fast is not None
    same(fast.value, check_agreement(EXTENDED, spec).get("P").value)


def test_the_value_kinds_each_type_takes_are_the_contract():
    """The request reader's table of Value kinds per type is the one these tests render by."""
    assert ACCEPTS == TAKES
