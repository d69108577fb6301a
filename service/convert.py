"""Request messages -> the runtime's prepared input (responses: :mod:`service.wire`).

The policy runtime takes *prepared* dicts (docs/architecture.md): every field the
schema declares, defaults filled in, exact Python values. :class:`Converter`
builds them from ``loyalty.v1`` messages for one schema, on two paths that give
the same result:

- the **checking path** turns a message into the loose mapping the schema reads
  (only the fields that were given) and lets ``Schema.prepare_customer`` /
  ``Schema.prepare_event`` check and convert it, collecting every problem; the
  schema's field paths are then renamed to request paths (``event.origin`` becomes
  ``event.flight.origin``, an extension field ``customer.home_store`` becomes
  ``customer.attributes.home_store``);
- the **fast path** is straight-line Python generated once per schema (like the
  policy compiler does for policies) that reads the message fields directly. It
  handles well-formed input only; on anything unusual it gives up and the checking
  path runs, so errors and odd-but-valid input (``"jfk"`` for ``"JFK"``) are always
  judged by the schema itself. Tests hold the two paths to the same output.

Every check comes from the schema: a field's least value (``Field.minimum``), enum
values, airport and ISO 4217 currency codes (``currency_code`` fields). The fast
path only accepts what the schema would accept unchanged; the reason for a
refusal is always the schema's own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from google.protobuf import descriptor as _descriptor
from google.protobuf import timestamp_pb2

from dsl import airports
from dsl.errors import FieldError, InputError
from dsl.schema import Field, Schema, convert_scalar, currency_codes
from dsl.types import Type
from service.errors import InvalidArgument, Violation
from service.gen.loyalty.v1 import loyalty_pb2 as pb

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_NANOS = 999_999_999
_FD = _descriptor.FieldDescriptor
_STRING_TYPES = {_FD.TYPE_STRING}
_INT_TYPES = {_FD.TYPE_INT64, _FD.TYPE_INT32, _FD.TYPE_UINT32, _FD.TYPE_UINT64, _FD.TYPE_SINT64}
_TIMESTAMP = timestamp_pb2.Timestamp.DESCRIPTOR.full_name
_EVENT_OWN = ("id", "kind", "time")
_CUSTOMER_FIELDS = frozenset(f.name for f in pb.Customer.DESCRIPTOR.fields) - {"attributes"}
_DETAILS = {f.name: f.message_type for f in pb.Event.DESCRIPTOR.oneofs_by_name["details"].fields}


class _Slow(Exception):
    """The fast path met input it does not handle; the checking path decides."""


# -- scalar helpers shared by both paths ---------------------------------------------------


def timestamp_to_datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    """A ``Timestamp`` as an aware UTC datetime; ValueError for one outside years 1-9999."""
    if not 0 <= ts.nanos <= _MAX_NANOS:
        raise ValueError("is not a valid timestamp (nanos out of range)")
    try:
        return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)
    except OverflowError:
        raise ValueError("is not a valid timestamp (outside years 1 to 9999)") from None


#: Whole-second instants already converted: event times cluster, and building a
#: datetime costs more than the rest of an event's fields together.
_INSTANTS: dict[int, datetime] = {}
_INSTANTS_MAX = 65536


def _ts(ts: timestamp_pb2.Timestamp) -> datetime:
    """A timestamp with nanoseconds (whole seconds take :func:`_instant`)."""
    seconds = ts.seconds
    nanos = ts.nanos
    if nanos:
        if nanos < 0 or nanos > _MAX_NANOS:
            raise _Slow
        return _EPOCH + timedelta(0, seconds, nanos // 1000)
    return _INSTANTS.get(seconds) or _instant(seconds)


_from_timestamp = datetime.fromtimestamp


def _instant(seconds: int) -> datetime:
    """A whole-second instant not in the cache yet (ValueError outside years 1 to 9999)."""
    value = _from_timestamp(seconds, UTC)  # the same instant as _EPOCH + timedelta(0, seconds), faster
    if len(_INSTANTS) >= _INSTANTS_MAX:
        _INSTANTS.clear()
    _INSTANTS[seconds] = value
    return value


#: Dates already parsed (member_since and birthdays repeat across customers).
_DATES: dict[str, date] = {}
_DATES_MAX = 65536


def _date(text: str) -> date:
    value = _DATES.get(text)
    if value is not None:
        return value
    # The schema accepts exactly YYYY-MM-DD (after stripping); anything else goes the slow way.
    if len(text) != 10 or text[4] != "-" or text[7] != "-" or not text.isascii():
        raise _Slow
    value = date.fromisoformat(text)
    if len(_DATES) >= _DATES_MAX:
        _DATES.clear()
    _DATES[text] = value
    return value


_INF = Decimal("Infinity")
_NINF = Decimal("-Infinity")
#: Most texts one decimal cache keeps (then it starts over).
_DECIMALS_MAX = 16384


def _decimals(minimum: int | Decimal | None) -> tuple[Callable[[str], Decimal | None],
                                                     Callable[[str], Decimal]]:
    """A cache of decimal texts already read for fields with one least value: ``(get,
    convert)``, where ``get(text)`` is the cached Decimal or None and ``convert(text)``
    converts and checks a text the cache does not hold (raising on anything else).

    Only texts that parse to a finite number at least the minimum are kept, so a hit
    is both the conversion and the check. Money repeats (fares, prices, "0"), and a
    dict lookup costs a fraction of ``Decimal(text)`` and two comparisons.
    """
    low = _NINF if minimum is None else Decimal(minimum)
    cache: dict[str, Decimal] = {}

    def convert(text: str) -> Decimal:
        value = Decimal(text)  # InvalidOperation for a text that is not a number
        if not low <= value < _INF:  # NaN raises; infinities and small values fail
            raise _Slow
        if len(cache) >= _DECIMALS_MAX:
            cache.clear()
        cache[text] = value
        return value

    return cache.get, convert


# -- proto Value <-> Python --------------------------------------------------------------------

#: Which Value kinds a schema type accepts.
_ACCEPTS = {
    "int": ("int_value",),
    "decimal": ("decimal_value", "int_value"),
    "string": ("string_value",),
    "enum": ("string_value",),
    "airport": ("string_value",),
    "currency_code": ("string_value",),
    "bool": ("bool_value",),
    "date": ("date_value", "string_value"),
    "datetime": ("time_value", "string_value"),
    "duration": ("duration_value", "string_value"),
    "list": ("list_value",),
    "record": ("record_value",),
}


def value_to_loose(
    value: pb.Value, t: Type | None, schema: Schema, path: str, errors: list[FieldError]
) -> Any:
    """A ``Value`` as the loose Python value the schema reads, checking its kind against ``t``.

    ``t`` is the declared type (``None`` for a name the schema does not know, which
    the schema itself will report). A kind that does not fit adds a FieldError.
    """
    which = value.WhichOneof("kind")
    if which is None:
        return None
    if t is not None and which not in _ACCEPTS.get(t.kind, ()):
        want = " or ".join(_ACCEPTS.get(t.kind, ("a value",)))
        errors.append(FieldError(path, f"expects a {t.required()} value ({want}), not {which}"))
        return None
    if which == "time_value":
        try:
            return timestamp_to_datetime(value.time_value)
        except ValueError as exc:
            errors.append(FieldError(path, str(exc)))
            return None
    if which == "duration_value":
        d = value.duration_value
        return timedelta(seconds=d.seconds, microseconds=d.nanos // 1000)
    if which == "list_value":
        elem = t.elem if t is not None else None
        return [
            value_to_loose(v, elem, schema, f"{path}[{i}]", errors)
            for i, v in enumerate(value.list_value.values)
        ]
    if which == "record_value":
        fields = schema.record_fields(t.name) if t is not None else {}
        return {
            k: value_to_loose(v, fields[k].type if k in fields else None, schema, f"{path}.{k}", errors)
            for k, v in sorted(value.record_value.fields.items())
        }
    return getattr(value, which)


# -- the converter ------------------------------------------------------------------------------------


class Converter:
    """Turns ``loyalty.v1`` messages into prepared input for one schema.

    Build one per policy set (the policy store does, off the request path); it is
    immutable afterwards and safe to share between threads.
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        gen = _FastPathGenerator(schema)
        self._fast_customer: Callable[[pb.Customer], dict[str, Any]] = gen.customer()
        #: (kind, details oneof name or None) -> fast event function
        self._fast_events: dict[tuple[str, str | None], Callable[[pb.Event], dict[str, Any]]] = gen.events()
        #: The fast event function by details oneof name, for events whose kind is empty or
        #: says the same; by kind for extension kinds (no details).
        self._fast_by_which: dict[str, Callable[[pb.Event], dict[str, Any]]] = {
            which: fn for (_kind, which), fn in self._fast_events.items() if which is not None
        }
        self._fast_extension: dict[str, Callable[[pb.Event], dict[str, Any]]] = {
            kind: fn for (kind, which), fn in self._fast_events.items() if which is None
        }
        #: The fast event function by ``kind`` alone, without asking which details are set:
        #: only for kinds whose function refuses an event without its details (a required
        #: details field), so that another kind's details can never pass as this kind's.
        self._fast_by_kind: dict[str, Callable[[pb.Event], dict[str, Any]]] = {
            kind: fn for kind, fn in self._fast_by_which.items() if _refuses_empty_details(fn, kind)
        }
        self.source = gen.source()

    # -- input --------------------------------------------------------------------------------

    def customer(self, msg: pb.Customer) -> dict[str, Any]:
        """The prepared customer; raises :class:`InvalidArgument` listing every bad field."""
        try:
            return self._fast_customer(msg)
        except Exception:  # anything unusual: the checking path judges it
            pass
        return self.check_customer(msg)

    def event_function(self, msg: pb.Event) -> Callable[[pb.Event], dict[str, Any]]:
        """The fast event function for ``msg``; raises where only the checking path can judge
        (no kind at all, an unknown kind, a kind that does not match the details set)."""
        kind = msg.kind
        fast = self._fast_by_kind.get(kind)
        if fast is not None:
            return fast
        which = msg.WhichOneof("details")
        if which is None:
            return self._fast_extension[kind]
        if kind and kind != which:
            raise _Slow
        return self._fast_by_which[which]

    def fast_event(self, msg: pb.Event) -> dict[str, Any]:
        """The fast path alone for an event: raises (anything) where the checking path must judge."""
        return self.event_function(msg)(msg)

    def event(self, msg: pb.Event) -> dict[str, Any]:
        """The prepared event; raises :class:`InvalidArgument` listing every bad field."""
        try:
            return self.fast_event(msg)
        except Exception:  # anything unusual: the checking path judges it
            pass
        return self.check_event(msg)

    def inputs(self, customer: pb.Customer, event: pb.Event) -> tuple[dict[str, Any], dict[str, Any]]:
        """Both prepared records; one :class:`InvalidArgument` lists the problems of both."""
        try:  # the fast path for both at once: this is on every evaluation's path
            fast = self._fast_by_kind.get(event.kind) or self.event_function(event)
            return self._fast_customer(customer), fast(event)
        except Exception:  # anything unusual: the checking paths judge it
            pass
        return self.checked_inputs(customer, event)

    def fast_inputs(self) -> tuple[Callable[[pb.Customer], dict[str, Any]],
                                   dict[str, Callable[[pb.Event], dict[str, Any]]],
                                   Callable[[pb.Event], Callable[[pb.Event], dict[str, Any]]]]:
        """The fast path's parts for a caller's own loop (a batch): the customer function,
        the event functions by kind (for events whose kind is set, the usual case), and
        :meth:`event_function` for any other event. They raise (anything) on input the
        checking path must judge: then call :meth:`checked_inputs`."""
        return self._fast_customer, self._fast_by_kind, self.event_function

    def checked_inputs(
        self, customer: pb.Customer, event: pb.Event
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Both records, each by the fast path if it can and otherwise by the schema; one
        :class:`InvalidArgument` lists the problems of both."""
        violations: list[Violation] = []
        c: dict[str, Any] = {}
        e: dict[str, Any] = {}
        try:
            c = self.customer(customer)
        except InvalidArgument as exc:
            violations += exc.violations
        try:
            e = self.event(event)
        except InvalidArgument as exc:
            violations += exc.violations
        if violations:
            raise InvalidArgument(violations)
        return c, e

    def check_customer(self, msg: pb.Customer) -> dict[str, Any]:
        """The checking path for a customer (always run by the schema itself)."""
        errors: list[FieldError] = []
        loose = _loose_message(msg, "customer", errors)
        attrs = dict(loose.pop("attributes", {}))
        for name, value in sorted(msg.attributes.items()):
            path = f"customer.attributes.{name}"
            if name in _CUSTOMER_FIELDS:
                errors.append(FieldError(path, f"is a field of Customer; set customer.{name} instead"))
                continue
            field = self.schema.customer.get(name)
            attrs[name] = value_to_loose(value, field.type if field else None, self.schema, path, errors)
        loose.update(attrs)
        return self._prepare(self.schema.prepare_customer, loose, errors, _customer_path)

    def check_event(self, msg: pb.Event) -> dict[str, Any]:
        """The checking path for an event (always run by the schema itself)."""
        errors: list[FieldError] = []
        which = msg.WhichOneof("details")
        kind = msg.kind or which or ""
        if which and msg.kind and msg.kind != which:
            # Which fields belong to which kind is then anybody's guess: say only this.
            reason = f'is "{msg.kind}" but the event carries {which} details'
            raise InvalidArgument([Violation("event.kind", reason)])
        loose: dict[str, Any] = {}
        if msg.id:
            loose["id"] = msg.id
        if kind:
            loose["kind"] = kind
        if msg.HasField("time"):
            try:
                loose["time"] = timestamp_to_datetime(msg.time)
            except ValueError as exc:
                errors.append(FieldError("event.time", str(exc)))
        if which:
            loose.update(_loose_message(getattr(msg, which), f"event.{which}", errors))
        details_fields = set(_DETAILS[kind].fields_by_name) if kind in _DETAILS else set()
        declared = {**self.schema.event_common, **self.schema.events.get(kind, {})}
        for name, value in sorted(msg.attributes.items()):
            path = f"event.attributes.{name}"
            if name in _EVENT_OWN or name in details_fields:
                where = f"event.{name}" if name in _EVENT_OWN else f"event.{kind}.{name}"
                errors.append(FieldError(path, f"is not an extension field; set {where} instead"))
                continue
            field = declared.get(name)
            loose[name] = value_to_loose(value, field.type if field else None, self.schema, path, errors)

        def rename(path: str) -> str:
            return _event_path(path, kind, details_fields)

        return self._prepare(self.schema.prepare_event, loose, errors, rename)

    def _prepare(
        self,
        prepare: Callable[[Mapping[str, Any]], dict[str, Any]],
        loose: dict[str, Any],
        errors: list[FieldError],
        rename: Callable[[str], str],
    ) -> dict[str, Any]:
        schema_errors: list[FieldError] = []
        prepared: dict[str, Any] = {}
        try:
            prepared = prepare(loose)
        except InputError as exc:
            schema_errors = exc.errors
        violations = [Violation(e.path, e.reason) for e in errors]
        seen = {v.field for v in violations}
        for e in schema_errors:
            path = rename(e.path)
            if path not in seen:
                violations.append(Violation(path, e.reason))
                seen.add(path)
        if violations:
            raise InvalidArgument(violations)
        return prepared


# -- the checking path's helpers ------------------------------------------------------------------


def _loose_message(msg: Any, path: str, errors: list[FieldError]) -> dict[str, Any]:
    """The fields of a message that were given, as the loose values the schema reads."""
    out: dict[str, Any] = {}
    for fd in msg.DESCRIPTOR.fields:
        name = fd.name
        if name == "attributes":
            continue
        value = getattr(msg, name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            continue
        if fd.is_repeated:
            if fd.message_type is not None:
                out[name] = [
                    _loose_message(v, f"{path}.{name}[{i}]", errors) for i, v in enumerate(value)
                ]
            else:
                out[name] = list(value)
        elif fd.message_type is not None:
            if fd.message_type.full_name == _TIMESTAMP:
                if msg.HasField(name):
                    try:
                        out[name] = timestamp_to_datetime(value)
                    except ValueError as exc:
                        errors.append(FieldError(f"{path}.{name}", str(exc)))
            else:
                out[name] = _loose_message(value, f"{path}.{name}", errors)
        elif fd.has_presence:
            if msg.HasField(name):
                out[name] = value
        elif fd.type in _STRING_TYPES:
            if value:
                out[name] = value
        else:
            out[name] = value
    return out


def _customer_path(path: str) -> str:
    name = re.split(r"[.\[]", path, maxsplit=2)[1] if path.startswith("customer.") else ""
    if not name or name in _CUSTOMER_FIELDS:
        return path
    return "customer.attributes." + path[len("customer.") :]


def _event_path(path: str, kind: str, details_fields: set[str]) -> str:
    if not path.startswith("event."):
        return path
    rest = path[len("event.") :]
    name = re.split(r"[.\[]", rest, maxsplit=1)[0]
    if name in _EVENT_OWN or rest.startswith(("attributes.", f"{kind}.")):
        return path
    if name in details_fields:
        return f"event.{kind}.{rest}"
    return f"event.attributes.{rest}"


# -- the fast path: generated per schema --------------------------------------------------------------


def _refuses_empty_details(fast: Callable[[pb.Event], Any], kind: str) -> bool:
    """Whether ``fast`` gives up on an event of ``kind`` whose details are not set.

    The generated function is straight-line code whose checks on the details message
    depend on nothing else, so if it gives up on one such event with valid common
    fields, it gives up on every event whose details are not set (another kind's, or
    none): dispatching on ``kind`` alone is then safe.
    """
    probe = pb.Event(id="probe", kind=kind, time=timestamp_pb2.Timestamp(seconds=86400))
    try:
        fast(probe)
    except Exception:
        return True
    return False


class _FastPathGenerator:
    """Writes one Python function per record (customer, each event kind) for a schema.

    Names in the generated source come from the schema (checked there against
    ``[a-z][a-z0-9_]*``) and the proto descriptors; every other value is passed in
    the namespace as a constant, never spliced into the source as text.

    The functions are straight-line code on the hot path, so they read each field
    once, keep conversions inline (a cached date or instant is one dict lookup, a
    decimal one constructor call), and check a number's range in one chained
    comparison (``K0 <= v < INF`` also refuses NaN and infinities). Whatever they
    do not accept exactly as the schema would, they give up on (``raise SLOW``).
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {
            "SLOW": _Slow,
            "Decimal": Decimal,
            "TS": _ts,
            "INSTANT": _INSTANTS.get,
            "NEW_INSTANT": _instant,
            "DATE": _date,
            "DATE_GET": _DATES.get,
            "ATTR": self._attr,
            "AIRPORTS": airports.airport_codes(),
            "CURRENCIES": currency_codes(),
        }
        self._decimals: dict[Any, str] = {}
        self._consts: dict[int, str] = {}
        self._counter = 0
        self._helpers: dict[str, str] = {}
        self._non_negative: list[str] = []

    # -- public -----------------------------------------------------------------------------------

    def customer(self) -> Callable[[pb.Customer], dict[str, Any]]:
        """The fast customer function: ``fast_customer(message) -> prepared dict``."""
        known = {n for n in self.schema.customer if n not in _CUSTOMER_FIELDS}
        name = "fast_customer"
        body = self._function(name, ["m"])
        body.append("    attrs = m.attributes")
        body.append(f"    if attrs and not {self._const(frozenset(known))}.issuperset(attrs): raise SLOW")
        result = self._record(body, self.schema.customer, "m", pb.Customer.DESCRIPTOR, "attrs", "customer", 1)
        body.append(f"    return {result}")
        self.lines += body
        return self._compile(name)

    def events(self) -> dict[tuple[str, str | None], Callable[[pb.Event], dict[str, Any]]]:
        """The fast event functions (``fast(message) -> prepared dict``), keyed by (kind,
        details oneof name or None). They read the kind's details message without asking
        whether it is the one set, and never read ``kind``: the caller dispatches (see
        :meth:`Converter.event_function`)."""
        out: dict[tuple[str, str | None], Callable[[pb.Event], dict[str, Any]]] = {}
        for kind, kind_fields in self.schema.events.items():
            details = _DETAILS.get(kind)
            fields = {**self.schema.event_common, **kind_fields}
            known = {
                n for n in fields
                if n not in _EVENT_OWN and (details is None or n not in details.fields_by_name)
            }
            name = f"fast_event_{kind}"
            body = self._function(name, ["e"])
            if details is not None:  # the caller has checked that these are the details set
                body.append(f"    m = e.{kind}")
            body.append("    attrs = e.attributes")
            body.append(f"    if attrs and not {self._const(frozenset(known))}.issuperset(attrs): raise SLOW")
            result = self._event_record(body, fields, kind, details)
            body.append(f"    return {result}")
            self.lines += body
            out[(kind, kind if details is not None else None)] = self._compile(name)
        return out

    def source(self) -> str:
        """The generated source, for debugging and tests."""
        return "\n".join(self.lines)

    # -- generation ---------------------------------------------------------------------------------

    def _function(self, name: str, params: list[str]) -> list[str]:
        return [f"def {name}({', '.join(params)}):"]

    def _compile(self, name: str) -> Callable[..., Any]:
        code = compile("\n".join(self.lines), f"<fast path for schema {self.schema.digest}>", "exec")
        exec(code, self.ns)
        return self.ns[name]  # type: ignore[no-any-return]

    def _const(self, value: Any) -> str:
        key = id(value)
        if key not in self._consts:
            self._counter += 1
            name = f"K{self._counter}"
            self.ns[name] = value
            self._consts[key] = name
            self.ns.setdefault("_keep", []).append(value)  # ids stay unique while referenced
        return self._consts[key]

    def _var(self) -> str:
        self._counter += 1
        return f"v{self._counter}"

    def _event_record(
        self, body: list[str], fields: dict[str, Field], kind: str, details: Any
    ) -> str:
        items: list[tuple[str, str]] = []
        derived: list[tuple[str, Field]] = []
        for name, f in fields.items():
            if f.derived:
                derived.append((name, f))
                continue
            if name == "kind":
                items.append((name, self._const(kind)))
                continue
            if name in _EVENT_OWN:
                src, msg, desc = "proto", "e", pb.Event.DESCRIPTOR
            elif details is not None and name in details.fields_by_name:
                src, msg, desc = "proto", "m", details
            else:
                src, msg, desc = "attr", "", None
            var = self._field(body, f, src, msg, desc, "attrs", 1)
            items.append((name, var))
        return self._finish(body, items, derived, 1)

    def _record(
        self,
        body: list[str],
        fields: dict[str, Field],
        msg: str,
        desc: Any,
        attrs: str | None,
        path: str,
        depth: int,
    ) -> str:
        items: list[tuple[str, str]] = []
        derived: list[tuple[str, Field]] = []
        for name, f in fields.items():
            if f.derived:
                derived.append((name, f))
                continue
            if desc is not None and name in desc.fields_by_name:
                src = "proto"
            elif attrs is not None:
                src = "attr"
            else:
                src = "none"
            var = self._field(body, f, src, msg, desc, attrs, depth)
            items.append((name, var))
        return self._finish(body, items, derived, depth)

    def _finish(
        self, body: list[str], items: list[tuple[str, str]], derived: list[tuple[str, Field]], depth: int
    ) -> str:
        pad = "    " * depth
        if self._non_negative:
            body.append(f"{pad}if ({' | '.join(self._non_negative)}) < 0: raise SLOW")
            self._non_negative.clear()
        vars_by_name = dict(items)
        for name, f in derived:
            var = self._var()
            source = vars_by_name.get(f.derived)
            if source is None:
                body.append(f"{pad}{var} = None")
            else:
                body.append(f"{pad}{var} = {source}.date() if {source} is not None else None")
            items.append((name, var))
        return "{" + ", ".join(f"{name!r}: {var}" for name, var in items) + "}"

    def _field(
        self,
        body: list[str],
        f: Field,
        src: str,
        msg: str,
        desc: Any,
        attrs: str | None,
        depth: int,
    ) -> str:
        """Read, convert and check one field into a new variable; returns its name.

        Every path ends in one of three ways: the value (converted), the default or
        None for a field that was not given (empty string, unset optional number or
        timestamp), or ``raise SLOW``.
        """
        pad = "    " * depth
        var = self._var()
        t = f.type
        kind = t.kind
        missing: str  # what an absent value becomes: a constant, "None", or "raise SLOW"
        if f.has_default:
            missing = "[]" if f.default == [] else self._const(f.default)
        elif t.optional:
            missing = "None"
        else:
            missing = "raise SLOW"

        def fail() -> str:
            body.append(f"{pad}raise SLOW")
            return var

        if src == "none":  # a field the message cannot carry
            if missing == "raise SLOW":
                return fail()
            body.append(f"{pad}{var} = {missing}")
            return var
        if src == "attr":
            body.append(f"{pad}{var} = {attrs}.get({f.name!r}) if {attrs} else None")
            body.append(f"{pad}if {var} is not None: {var} = ATTR({var}, {self._const(t)})")
            if missing == "raise SLOW":
                body.append(f"{pad}if {var} is None: raise SLOW")
            elif missing != "None":
                body.append(f"{pad}if {var} is None: {var} = {missing}")
            # ATTR converted by the schema itself; only the least value is left to check.
            if f.minimum is not None:
                guard = f"{var} is not None and " if missing == "None" else ""
                body.append(f"{pad}if {guard}{var} < {self._const(f.minimum)}: raise SLOW")
            return var

        fd = desc.fields_by_name[f.name]
        name = f.name
        if fd.is_repeated:
            if fd.message_type is None or kind != "list" or t.elem is None or t.elem.kind != "record":
                return fail()
            helper = self._record_helper(t.elem.name, fd.message_type)
            body.append(f"{pad}{var} = [{helper}(x) for x in {msg}.{name}]")
            return var
        if fd.message_type is not None:
            if fd.message_type.full_name == _TIMESTAMP:
                if kind != "datetime":
                    return fail()
                # A whole-second instant is one cached lookup. HasField costs as much as a
                # conversion, so it is asked only for the zero instant (unset, or the epoch).
                ts = self._var()
                body.append(f"{pad}{ts} = {msg}.{name}")
                body.append(f"{pad}{var} = {ts}.seconds")
                body.append(f"{pad}if {var} and not {ts}.nanos:")
                body.append(f"{pad}    {var} = INSTANT({var}) or NEW_INSTANT({var})")
                body.append(f"{pad}elif {var} or {ts}.nanos or {msg}.HasField({name!r}):")
                body.append(f"{pad}    {var} = TS({ts})")
                body.append(f"{pad}else:")
                body.append(f"{pad}    {missing if missing == 'raise SLOW' else f'{var} = {missing}'}")
                return var
            if kind == "record":
                sub = self._var()
                body.append(f"{pad}{sub} = {msg}.{name}")
                record = self.schema.record_fields(t.name)
                result = self._record(body, record, sub, fd.message_type, None, "", depth)
                body.append(f"{pad}{var} = {result}")
                return var
            return fail()
        if fd.type in _STRING_TYPES:
            # A proto string: "" is not given.
            conv: list[str]
            if kind == "string":
                conv = []
            elif kind == "enum":
                conv = [f"if {var} not in {self._const(frozenset(t.values))}: raise SLOW"]
            elif kind == "airport":
                conv = [f"if {var} not in AIRPORTS: raise SLOW"]
            elif kind == "currency_code":
                conv = [f"if {var} not in CURRENCIES: raise SLOW"]
            elif kind == "date":
                conv = [f"{var} = DATE_GET({var}) or DATE({var})"]
            elif kind == "decimal":  # a hit is the conversion and the check (a zero is falsy)
                cache = self._decimal_cache(f.minimum)
                text = self._var()
                conv = [f"{text} = {var}", f"{var} = {cache}_GET({text})",
                        f"if {var} is None: {var} = {cache}({text})"]
            else:
                return fail()
            body.append(f"{pad}{var} = {msg}.{name}")
            if missing == "raise SLOW":
                if kind == "string":  # every other kind's conversion refuses "" by itself
                    body.append(f"{pad}if not {var}: raise SLOW")
                body += [f"{pad}{c}" for c in conv]
            elif conv:
                body.append(f"{pad}if {var}:")
                body += [f"{pad}    {c}" for c in conv]
                body.append(f"{pad}else:")
                body.append(f"{pad}    {var} = {missing}")
            else:
                body.append(f"{pad}if not {var}: {var} = {missing}")
            if kind == "decimal" and f.has_default and not self._decimal_ok(f.default, f.minimum):
                body.append(f"{pad}if {var} is {missing}: raise SLOW")  # the schema refuses its default
            return var
        if fd.type in _INT_TYPES:
            if kind not in ("int", "decimal"):
                return fail()
            body.append(f"{pad}{var} = {msg}.{name}")
            present = True
            if fd.has_presence:  # HasField only for a zero (unset, or set to 0)
                if missing == "raise SLOW":
                    body.append(f"{pad}if not {var} and not {msg}.HasField({name!r}): raise SLOW")
                else:
                    body.append(f"{pad}if not {var} and not {msg}.HasField({name!r}): {var} = {missing}")
                    present = missing != "None"
            if kind == "decimal":
                body.append(f"{pad}{var} = Decimal({var})" if present else
                            f"{pad}if {var} is not None: {var} = Decimal({var})")
            if f.minimum is not None:
                if f.minimum == 0 and present and kind == "int" and not fd.has_presence:
                    self._non_negative.append(var)  # checked together: (a | b | c) < 0
                else:
                    guard = "" if present else f"{var} is not None and "
                    body.append(f"{pad}if {guard}{var} < {self._const(f.minimum)}: raise SLOW")
            return var
        if fd.type == _FD.TYPE_BOOL:
            if kind != "bool":
                return fail()
            body.append(f"{pad}{var} = {msg}.{name}")
            return var
        return fail()

    def _decimal_cache(self, minimum: int | Decimal | None) -> str:
        """The name of the decimal cache for fields with ``minimum`` (one per least value)."""
        key = (minimum.__class__, str(minimum))
        name = self._decimals.get(key)
        if name is None:
            self._counter += 1
            name = self._decimals[key] = f"DEC{self._counter}"
            self.ns[f"{name}_GET"], self.ns[name] = _decimals(minimum)
        return name

    @staticmethod
    def _decimal_ok(value: Any, minimum: int | Decimal | None) -> bool:
        return isinstance(value, Decimal) and value.is_finite() and (minimum is None or value >= minimum)

    def _record_helper(self, record: str, desc: Any) -> str:
        key = f"{record}:{desc.full_name}"
        if key in self._helpers:
            return self._helpers[key]
        self._counter += 1
        name = f"rec_{self._counter}"
        self._helpers[key] = name
        body = self._function(name, ["m"])
        result = self._record(body, self.schema.record_fields(record), "m", desc, None, "", 1)
        body.append(f"    return {result}")
        self.lines += body
        return name

    def _attr(self, value: pb.Value, t: Type) -> Any:
        errors: list[FieldError] = []
        loose = value_to_loose(value, t, self.schema, "", errors)
        if errors or t.kind in ("list", "record"):
            raise _Slow
        if loose is None:
            return None
        try:
            return convert_scalar(t.required(), loose)
        except ValueError:
            raise _Slow from None
