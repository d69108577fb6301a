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

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import descriptor as _descriptor
from google.protobuf import duration_pb2, timestamp_pb2

from dsl.errors import InputError
from dsl.input.decoders import DecoderGenerator, Slow
from dsl.input.request import ACCEPTS, EVENT_OWN, InvalidValue, ItemBudget, MappingDecoder
from dsl.schema.schema import (
    MAX_LIST,
    MAX_MAGNITUDE,
    Field,
    Schema,
    convert_scalar,
)
from dsl.schema.types import Type
from service.errors import InvalidArgument, input_violations
from service.gen.loyalty.v1 import loyalty_pb2 as pb

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_NANOS = 999_999_999
_FD = _descriptor.FieldDescriptor
_STRING_TYPES = {_FD.TYPE_STRING}
_INT_TYPES = {_FD.TYPE_INT64, _FD.TYPE_INT32, _FD.TYPE_UINT32, _FD.TYPE_UINT64, _FD.TYPE_SINT64}
_TIMESTAMP = timestamp_pb2.Timestamp.DESCRIPTOR.full_name
_DETAILS = {f.name: f.message_type for f in pb.Event.DESCRIPTOR.oneofs_by_name["details"].fields}


_Slow = Slow


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


# -- messages as mappings: the checking path --------------------------------------------------


class _MessageView(Mapping[str, Any]):
    """A request message as the mapping the request reader takes (``dsl.input.request``): the fields
    that are set (``ListFields``: a proto3 "" or 0 is not given), nested messages as views,
    timestamps as datetimes. Nothing is converted before the reader asks for it, so the
    reader's bounds (list lengths, the request's total elements) hold before any work."""

    __slots__ = ("_msg", "_names")

    def __init__(self, msg: Any) -> None:
        self._msg = msg
        self._names = [fd.name for fd, _ in msg.ListFields()]

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        return _view(self._msg.DESCRIPTOR.fields_by_name[name], getattr(self._msg, name))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class _ListView(Sequence[Any]):
    """A repeated message field, each element a view on demand (``len`` costs nothing)."""

    __slots__ = ("_items", "_wrap")

    def __init__(self, items: Any, wrap: Callable[[Any], Any]) -> None:
        self._items = items
        self._wrap = wrap

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._wrap(v) for v in self._items[index]]
        return self._wrap(self._items[index])

    def __len__(self) -> int:
        return len(self._items)


class _ValuesView(Mapping[str, Any]):
    """A ``map<string, Value>`` (attributes, record fields): values as :func:`_value_view`."""

    __slots__ = ("_map",)

    def __init__(self, values: Any) -> None:
        self._map = values

    def __getitem__(self, key: str) -> Any:
        return _value_view(self._map[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)


def _value_view(value: pb.Value) -> dict[str, Any]:
    """A ``Value`` as its one-key mapping (``{"int_value": 5}``); lists and records lazily."""
    which = value.WhichOneof("kind")
    if which is None:
        return {}
    inner = getattr(value, which)
    if which == "list_value":
        return {which: {"values": _ListView(inner.values, _value_view)}}
    if which == "record_value":
        return {which: {"fields": _ValuesView(inner.fields)}}
    if which == "time_value":
        return {which: _timestamp_or_problem(inner)}
    if which == "duration_value":
        return {which: _duration_or_problem(inner)}
    return {which: inner}


def _view(fd: Any, value: Any) -> Any:
    if fd.message_type is None:
        return value
    if fd.message_type.GetOptions().map_entry:
        return _ValuesView(value)
    if fd.is_repeated:
        return _ListView(value, _MessageView)
    if fd.message_type.full_name == _TIMESTAMP:
        return _timestamp_or_problem(value)
    return _MessageView(value)


def _timestamp_or_problem(ts: timestamp_pb2.Timestamp) -> datetime | InvalidValue:
    try:
        return timestamp_to_datetime(ts)
    except ValueError as exc:
        return InvalidValue(str(exc))


def _duration_or_problem(d: duration_pb2.Duration) -> timedelta | InvalidValue:
    if not -_MAX_NANOS <= d.nanos <= _MAX_NANOS or (d.seconds < 0 < d.nanos) or (d.nanos < 0 < d.seconds):
        return InvalidValue("is not a valid duration (nanos out of range)")
    # Nanoseconds are cut to microseconds toward zero, as the JSON form's digits are ("-0.0000015s").
    micros = abs(d.nanos) // 1000
    try:
        return timedelta(seconds=d.seconds, microseconds=-micros if d.nanos < 0 else micros)
    except OverflowError:
        return InvalidValue("is out of range (at most 100,000 days)")


# -- the converter ------------------------------------------------------------------------------------


class Converter:
    """Turns ``loyalty.v1`` messages into prepared input for one schema.

    Build one per policy set (the policy store does, off the request path); it is
    immutable afterwards and safe to share between threads.
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._mapping = MappingDecoder(schema)
        gen = _FastPathGenerator(schema)
        customer_name = gen.customer()
        event_names = gen.events()
        self._fast_customer: Callable[[pb.Customer], dict[str, Any]] = gen.function(customer_name)
        #: (kind, details oneof name or None) -> fast event function
        self._fast_events: dict[tuple[str, str | None], Callable[[pb.Event], dict[str, Any]]] = {
            key: gen.function(name) for key, name in event_names.items()}
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
        self, customer: pb.Customer, event: pb.Event, budget: ItemBudget | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Both records by the checking path: the request reader (``dsl.input.request``) over the
        messages, judged by the schema; one :class:`InvalidArgument` lists every problem of
        both, by request path. ``budget``: the list elements the request may still carry
        (a batch passes one for all its items)."""
        try:
            return self._mapping.check(
                {"customer": _MessageView(customer), "event": _MessageView(event)}, budget)
        except InputError as exc:
            raise InvalidArgument(input_violations(exc)) from None

    def check_customer(self, msg: pb.Customer) -> dict[str, Any]:
        """The checking path for a customer (always judged by the schema itself)."""
        try:
            return self._mapping.customer(_MessageView(msg))
        except InputError as exc:
            raise InvalidArgument(input_violations(exc)) from None

    def check_event(self, msg: pb.Event) -> dict[str, Any]:
        """The checking path for an event (always judged by the schema itself)."""
        try:
            return self._mapping.event(_MessageView(msg))
        except InputError as exc:
            raise InvalidArgument(input_violations(exc)) from None


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


class _FastPathGenerator(DecoderGenerator):
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
        super().__init__(schema, {
            "TS": _ts,
            "INSTANT": _INSTANTS.get,
            "NEW_INSTANT": _instant,
            "ATTR": self._attr,
        })
        self._non_negative: list[str] = []
        #: The attribute names the generated code reads: the messages' fields and a few more.
        self.attributes |= {"attributes", "seconds", "nanos", "HasField"}

    # -- public -----------------------------------------------------------------------------------

    def customer(self) -> str:
        """Generate the fast customer function (``decode_customer(message) -> prepared dict``);
        returns its name."""
        name = "decode_customer"
        body = self._function(name, ["m"])
        attrs = self._attributes_of(body, "m", pb.Customer.DESCRIPTOR, self.schema.customer, 1)
        result = self._record(body, self.schema.customer, "m", pb.Customer.DESCRIPTOR, attrs, "customer", 1)
        body.append(f"    return {result}")
        self.lines += body
        return self._compile(name)

    def events(self) -> dict[tuple[str, str | None], str]:
        """Generate the fast event functions (``fast(message) -> prepared dict``); their names
        by (kind, details oneof name or None). They read the kind's details message without asking
        whether it is the one set, and never read ``kind``: the caller dispatches (see
        :meth:`Converter.event_function`)."""
        out: dict[tuple[str, str | None], str] = {}
        for kind, kind_fields in self.schema.events.items():
            details = _DETAILS.get(kind)
            fields = {**self.schema.event_common, **kind_fields}
            known = {
                n for n in fields
                if n not in EVENT_OWN and (details is None or n not in details.fields_by_name)
            }
            name = f"decode_event_{kind}"
            body = self._function(name, ["e"])
            if details is not None:  # the caller has checked that these are the details set
                body.append(f"    m = e.{kind}")
                self.attributes.add(kind)
            attrs = self.var()
            body.append(f"    {attrs} = e.attributes")
            known_const = self.const(frozenset(known))
            body.append(f"    if {attrs} and not {known_const}.issuperset({attrs}): raise SLOW")
            result = self._event_record(body, fields, kind, details, attrs)
            body.append(f"    return {result}")
            self.lines += body
            out[(kind, kind if details is not None else None)] = self._compile(name)
        return out

    # -- generation ---------------------------------------------------------------------------------

    def _function(self, name: str, params: list[str]) -> list[str]:
        return [f"def {name}({', '.join(params)}):"]

    def _compile(self, name: str) -> str:
        """Note a generated function's name; :meth:`function` loads them all at once."""
        self.functions.add(name)
        return name

    def function(self, name: str) -> Callable[..., Any]:
        """The generated function ``name``. The first call verifies and loads everything
        generated so far (``dsl.backend.compiler.load_decoder``: the policies' checks and a closed
        allow-list of names), so call it only once every function is generated."""
        return self.load("protobuf")[name]  # type: ignore[no-any-return]

    def _attributes_of(self, body: list[str], msg: str, desc: Any, fields: dict[str, Field],
                       depth: int) -> str | None:
        """Read a message's ``attributes`` map, refusing (to the checking path) names the schema
        does not declare as its extension fields; the variable holding the map, or None."""
        if "attributes" not in desc.fields_by_name:
            return None
        pad = "    " * depth
        known = frozenset(n for n, f in fields.items() if n not in desc.fields_by_name and not f.derived)
        attrs = self.var()
        body.append(f"{pad}{attrs} = {msg}.attributes")
        body.append(f"{pad}if {attrs} and not {self.const(known)}.issuperset({attrs}): raise SLOW")
        return attrs

    def _event_record(
        self, body: list[str], fields: dict[str, Field], kind: str, details: Any, attrs: str
    ) -> str:
        items: list[tuple[str, str]] = []
        derived: list[tuple[str, Field]] = []
        for name, f in fields.items():
            if f.derived:
                derived.append((name, f))
                continue
            if name == "kind":
                items.append((name, self.const(kind)))
                continue
            if name in EVENT_OWN:
                src, msg, desc = "proto", "e", pb.Event.DESCRIPTOR
            elif details is not None and name in details.fields_by_name:
                src, msg, desc = "proto", "m", details
            else:
                src, msg, desc = "attr", "", None
            var = self._field(body, f, src, msg, desc, attrs, 1)
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
            # OR-ing never gives less than the largest operand, and is negative when any
            # operand is: one comparison bounds them all (a false alarm only costs the
            # checking path, which then judges each alone).
            body.append(f"{pad}if not 0 <= ({' | '.join(self._non_negative)}) < {MAX_MAGNITUDE}: raise SLOW")
            self._non_negative.clear()
        vars_by_name = dict(items)
        for name, f in derived:
            var = self.var()
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
        var = self.var()
        t = f.type
        kind = t.kind
        missing: str  # what an absent value becomes: a constant, "None", or "raise SLOW"
        if f.has_default:
            missing = "[]" if f.default == [] else self.const(f.default)
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
            body.append(f"{pad}if {var} is not None: {var} = ATTR({var}, {self.const(t)}, {f.max_length})")
            if missing == "raise SLOW":
                body.append(f"{pad}if {var} is None: raise SLOW")
            elif missing != "None":
                body.append(f"{pad}if {var} is None: {var} = {missing}")
            # ATTR converted by the schema itself; only the least value is left to check.
            if f.minimum is not None:
                guard = f"{var} is not None and " if missing == "None" else ""
                body.append(f"{pad}if {guard}{var} < {self.const(f.minimum)}: raise SLOW")
            return var

        fd = desc.fields_by_name[f.name]
        name = f.name
        self.attributes.add(name)
        if fd.is_repeated:
            if fd.message_type is None or kind != "list" or t.elem is None or t.elem.kind != "record":
                return fail()
            helper = self._record_helper(t.elem.name, fd.message_type)
            items = self.var()
            # The length first: a list past the bound is not read at all (the request's total
            # of list elements is the servicer's to bound, before any item is decoded).
            body.append(f"{pad}{items} = {msg}.{name}")
            body.append(f"{pad}if LEN({items}) > {MAX_LIST}: raise SLOW")
            body.append(f"{pad}{var} = [{helper}(x) for x in {items}]")
            return var
        if fd.message_type is not None:
            if fd.message_type.full_name == _TIMESTAMP:
                if kind != "datetime":
                    return fail()
                # A whole-second instant is one cached lookup. HasField costs as much as a
                # conversion, so it is asked only for the zero instant (unset, or the epoch).
                ts = self.var()
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
                sub = self.var()
                body.append(f"{pad}{sub} = {msg}.{name}")
                record = self.schema.record_fields(t.name)
                sub_attrs = self._attributes_of(body, sub, fd.message_type, record, depth)
                result = self._record(body, record, sub, fd.message_type, sub_attrs, "", depth)
                body.append(f"{pad}{var} = {result}")
                return var
            return fail()
        if fd.type in _STRING_TYPES:
            # A proto string: "" is not given.
            if not t.is_stringy and kind not in ("date", "decimal"):
                return fail()
            conv = self.text_conversion(var, f)
            body.append(f"{pad}{var} = {msg}.{name}")
            if missing == "raise SLOW":
                if kind == "string":  # every other kind's conversion refuses "" by itself
                    body.append(f"{pad}if not {var}: raise SLOW")
                body += [f"{pad}{c}" for c in conv]
            else:
                body.append(f"{pad}if {var}:")
                body += [f"{pad}    {c}" for c in conv]
                body.append(f"{pad}else:")
                body.append(f"{pad}    {var} = {missing}")
            if kind == "decimal" and f.has_default and not self.decimal_ok(f.default, f.minimum):
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
            # An int64 may hold 19 digits: the bound is checked before anything else reads it.
            if f.minimum == 0 and present and kind == "int" and not fd.has_presence:
                self._non_negative.append(var)  # checked together: 0 <= (a | b | c) < 10**18
            else:
                low = self.const(max(f.minimum, -MAX_MAGNITUDE + 1) if f.minimum is not None
                                  else -MAX_MAGNITUDE + 1)
                guard = "" if present else f"{var} is not None and "
                body.append(f"{pad}if {guard}not {low} <= {var} < {MAX_MAGNITUDE}: raise SLOW")
            if kind == "decimal":
                body.append(f"{pad}{var} = INT_DECIMAL({var})" if present else
                            f"{pad}if {var} is not None: {var} = INT_DECIMAL({var})")
            return var
        if fd.type == _FD.TYPE_BOOL:
            if kind != "bool":
                return fail()
            body.append(f"{pad}{var} = {msg}.{name}")
            return var
        return fail()

    def _record_helper(self, record: str, desc: Any) -> str:
        key = f"{record}:{desc.full_name}"
        if key in self.helpers:
            return self.helpers[key]
        name = self.helpers[key] = self.helper_name()
        body = self._function(name, ["m"])
        pending, self._non_negative = self._non_negative, []  # the caller's, checked in its body
        fields = self.schema.record_fields(record)
        attrs = self._attributes_of(body, "m", desc, fields, 1)
        result = self._record(body, fields, "m", desc, attrs, "", 1)
        body.append(f"    return {result}")
        self._non_negative = pending
        self.lines += body
        return name

    @staticmethod
    def _attr(value: pb.Value, t: Type, max_length: int) -> Any:
        """A scalar extension field, converted by the schema's own ``convert_scalar`` (lists and
        records, and anything it refuses, go to the checking path)."""
        which = value.WhichOneof("kind")
        if which is None or (which == "string_value" and not value.string_value):
            return None  # an empty string is not given (proto3's convention, attributes included)
        if t.kind in ("list", "record") or which not in ACCEPTS.get(t.kind, ()):
            raise _Slow
        inner = getattr(value, which)
        if which == "time_value":
            inner = _timestamp_or_problem(inner)
        elif which == "duration_value":
            inner = _duration_or_problem(inner)
        elif which == "string_value" and len(inner) > max_length:
            raise _Slow
        if isinstance(inner, InvalidValue):
            raise _Slow
        return convert_scalar(t.required(), inner)  # ValueError: the checking path says why
