"""The checking path of both request forms: an interpreter of the field plans that reads a
request written as plain mappings (or a message seen as one) and names every problem.

It runs in two steps, both read from the one table the generated fast paths are written from
(:class:`~dsl.input.layout.RequestLayout` and its plans, :mod:`dsl.input.plans`):

- **reading** (:class:`_Reader`) follows the request as the caller wrote it, key by key: names
  the message does not have, a field given twice, a field in the wrong message, the form of
  each value (text, a whole number, a typed ``Value`` of a kind its field takes), list lengths
  and the request's total of list elements (:data:`~dsl.schema.schema.MAX_REQUEST_ITEMS`),
  how deeply values nest (:data:`~dsl.schema.schema.MAX_VALUE_DEPTH`);
- **judging** (:class:`_Judge`) walks the plans in their order: what a missing value becomes
  (its default, None, an empty record, or "is required"), text length, the conversion of each
  value (``convert_scalar``: the same reading the fast paths call), the least value, and the
  derived fields.

Every problem is named by the request path the caller wrote (``customer.memberSince`` when the
caller wrote camelCase), the reading's problems first, in the order the caller wrote the keys,
then the judging's, in the plans' order, each field at most once. :class:`MappingDecoder` puts
the generated fast path (:mod:`dsl.input.decoders`) in front of it.

The reference the differential tests hold both paths to, ``prepare_customer`` and
``prepare_event`` over the schema's flat records, lives in the tests
(``tests/dsl/input/reference.py``): an independent reader written without plans, so that the
tests compare two readings rather than one reading twice.

Bounds (docs/language.md, "Input bounds") are checked before anything is converted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from dsl.errors import FieldError, InputError, did_you_mean
from dsl.input.decoders import MappingFastPath, fast_or_check
from dsl.input.layout import (
    ACCEPTS,
    DETAILS_MESSAGES,
    VALUE_KINDS,
    MessageLayout,
    RequestLayout,
    Slot,
    json_name,
)
from dsl.input.plans import DERIVED, REQUIRED, Plan, event_plans, record_plans
from dsl.input.scalars import InvalidValue
from dsl.schema.schema import (
    MAX_LIST,
    MAX_NUMBER_TEXT,
    MAX_REQUEST_ITEMS,
    MAX_VALUE_DEPTH,
    Schema,
    convert_scalar,
)
from dsl.schema.schema import shorten as _short
from dsl.schema.types import Type

# -- reading the mapping form -------------------------------------------------------------------


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


class ItemBudget:
    """The list elements a request may still carry (:data:`~dsl.schema.schema.MAX_REQUEST_ITEMS` in
    all): one per request, shared by every item of a batch."""

    __slots__ = ("messages_counted", "remaining")

    def __init__(self, remaining: int = MAX_REQUEST_ITEMS, messages_counted: bool = False) -> None:
        self.remaining = remaining
        #: Whether lists of messages (purchase items) were counted already, before decoding
        #: (a batch counts them up front); typed values' lists always count as they are read.
        self.messages_counted = messages_counted


class _Given:
    """One message as the caller gave it: each field's loose value and the request path it was
    written at, by schema name (the fields of an event and of its details share one)."""

    __slots__ = ("paths", "values")

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.paths: dict[str, str] = {}


class _Reader:
    """Reads one request's mappings into :class:`_Given` messages, noting every problem of form
    (with the request path as written)."""

    def __init__(self, layout: RequestLayout, budget: ItemBudget | None = None) -> None:
        self.layout = layout
        self.errors: list[FieldError] = []
        self.budget = budget if budget is not None else ItemBudget()
        #: Request paths a misplaced field was told to move to: the schema's "is required"
        #: for them would only repeat the advice.
        self.misplaced: set[str] = set()

    def fail(self, path: str, reason: str) -> None:
        self.errors.append(FieldError(path, reason))

    # -- messages -------------------------------------------------------------------------------

    def message(self, data: Any, layout: MessageLayout, path: str, out: _Given,
                skip: tuple[str, ...] = (), elsewhere: MessageLayout | None = None,
                elsewhere_path: str = "") -> None:
        """Read a message's own fields and its ``attributes`` into ``out`` (schema names)."""
        if not isinstance(data, Mapping):
            self.fail(path, "must be an object")
            return
        seen: dict[str, str] = {}
        for key, value in data.items():
            if key in skip:
                continue
            if not isinstance(key, str):
                self.fail(path, "has a key that is not a string")
                continue
            if key == "attributes":
                self.attributes(value, layout, f"{path}.attributes", out)
                continue
            slot = layout.by_wire_name.get(key)
            if slot is None:
                names = [s.name for s in layout.message_slots()] + ["attributes"]
                if elsewhere is not None and key in elsewhere.by_wire_name:
                    self.misplaced.add(f"{elsewhere_path}.{key}")
                    self.fail(f"{path}.{key}", f"belongs in {elsewhere_path}: write it as "
                                               f"{elsewhere_path}.{key}")
                    continue
                hint = self._hint(key, layout)
                self.fail(f"{path}.{_short(key)}",
                          f"is not a field of {layout.message or 'this record'}"
                          + (f"; {hint}" if hint else f" (fields: {', '.join(names)})"))
                continue
            if slot.name in seen:
                self.fail(f"{path}.{key}", f"is given twice (also as {seen[slot.name]})")
                continue
            seen[slot.name] = key
            if value is None:  # JSON null: not given
                continue
            self.wire_value(value, slot, f"{path}.{key}", out)

    def _hint(self, key: str, layout: MessageLayout) -> str | None:
        if len(key) > 64:
            return None
        attrs = layout.attribute_slots()
        if key in attrs or json_name(key) in {json_name(n) for n in attrs}:
            return f"{key} is an extension field: send it in attributes"
        # Suggest in the caller's own spelling: camelCase only to someone writing camelCase.
        camel = any(c.isupper() for c in key)
        return did_you_mean(key, [s.json_name if camel else s.name for s in layout.message_slots()])

    def wire_value(self, value: Any, slot: Slot, path: str, given: _Given) -> None:
        """A message field's value as the judging reads it (proto3 JSON forms)."""
        t = slot.field.type
        given.paths[slot.name] = path
        out = given.values
        if isinstance(value, InvalidValue):
            self.fail(path, value.reason)
            return
        if t.kind == "record":
            sub = _Given()
            self.message(value, self.layout.record(t.name), path, sub)
            out[slot.name] = sub
            return
        if t.kind == "list":
            if not _is_list(value):
                self.fail(path, "must be a list")
                return
            if len(value) > MAX_LIST:  # before a single item is read
                self.fail(path, f"has more than {MAX_LIST} items")
                return
            if not self.budget.messages_counted and not self.take(len(value), path):
                return
            assert t.elem is not None and t.elem.kind == "record"
            record = self.layout.record(t.elem.name)
            items = []
            for i, item in enumerate(value):
                sub = _Given()
                self.message(item, record, f"{path}[{i}]", sub)
                items.append(sub)
            out[slot.name] = items
            return
        if t.is_stringy or t.kind in ("decimal", "date"):
            # A string field of the message: "" is not given.
            if value == "":
                return
            if t.kind == "date" and isinstance(value, date) and not isinstance(value, datetime):
                out[slot.name] = value  # TOML and Python callers have dates of their own
                return
            if t.kind == "decimal" and isinstance(value, float):
                out[slot.name] = value  # judged: refused, saying how to write it exactly
                return
            if t.kind == "decimal" and isinstance(value, int) and not isinstance(value, bool):
                self.fail(path, f"must be a decimal written as a string (for example \"{value}\")")
                return
            if not isinstance(value, str) and not (t.kind == "decimal" and _is_decimal(value)):
                self.fail(path, f"must be a string, not {_kind_of(value)}")
                return
            out[slot.name] = value
            return
        if t.kind == "int":  # int64: a JSON number or a string of digits
            if isinstance(value, bool) or not isinstance(value, int | str):
                self.fail(path, f"must be a whole number, not {_kind_of(value)}")
                return
            out[slot.name] = value
            return
        if t.kind == "bool":
            if not isinstance(value, bool):
                self.fail(path, f"must be true or false, not {_kind_of(value)}")
                return
            out[slot.name] = value
            return
        if t.kind == "datetime":  # a Timestamp: RFC 3339 text
            if not isinstance(value, str | datetime):
                self.fail(path, f"must be a date and time such as \"2026-03-01T09:30:00Z\", "
                                f"not {_kind_of(value)}")
                return
            out[slot.name] = value
            return
        out[slot.name] = value

    def attributes(self, data: Any, layout: MessageLayout, path: str, out: _Given) -> None:
        if not isinstance(data, Mapping):
            self.fail(path, "must be an object of field name -> typed value")
            return
        if layout.message and not layout.has_attributes:
            self.details_attributes(data, layout, path)
            return
        declared = layout.attribute_slots()
        for name, value in data.items():
            vpath = f"{path}.{_short(str(name))}"
            slot = declared.get(name)
            if slot is None:
                if name in layout.slots or name in layout.by_wire_name:
                    self.fail(vpath, f"is a field of {layout.message}; set it there, not in attributes")
                else:
                    hint = did_you_mean(str(name), declared) if len(str(name)) <= 64 else None
                    self.fail(vpath, "is not a field in the schema" + (f"; {hint}" if hint else ""))
                continue
            out.paths[name] = vpath
            loose = self.value(value, slot.field.type, vpath, 1)
            if loose is not None:
                out.values[name] = loose

    def details_attributes(self, data: Mapping[str, Any], layout: MessageLayout, path: str) -> None:
        """``event.purchase.attributes``: a kind's details message carries no attributes; the
        fields a directory adds to the kind travel in the event's own (``event.attributes``)."""
        kind = path.split(".")[1] if path.count(".") == 2 else ""
        own = self.layout.events[kind][0].attribute_slots() if kind in self.layout.events else {}
        for name in data:
            vpath = f"{path}.{_short(str(name))}"
            if name in layout.slots or name in layout.by_wire_name:
                self.fail(vpath, f"is a field of {layout.message}; set it there, not in attributes")
            elif name in own:
                self.fail(vpath, f"belongs in event.attributes ({layout.message} carries no "
                                 f"attributes): write it as event.attributes.{name}")
            else:
                hint = did_you_mean(str(name), own) if len(str(name)) <= 64 else None
                self.fail(vpath, "is not a field in the schema" + (f"; {hint}" if hint else "")
                          + f" (a field the directory adds to {kind} events is declared in "
                            f"schema.toml under [events.{kind}] and sent in event.attributes)")

    # -- typed values ---------------------------------------------------------------------------

    def value(self, data: Any, t: Type, path: str, depth: int) -> Any:
        """A ``Value`` in its JSON form (``{"stringValue": "x"}``) as a loose value, its kind
        checked against the declared type ``t``."""
        if depth > MAX_VALUE_DEPTH:
            self.fail(path, f"nests deeper than {MAX_VALUE_DEPTH} levels")
            return None
        if data is None:
            return None
        if not isinstance(data, Mapping) or len(data) > 1:
            self.fail(path, 'must be a typed value such as {"stringValue": "S1"} or {"intValue": "5"}')
            return None
        if not data:
            return None
        ((key, inner),) = data.items()
        kind = _VALUE_KEYS.get(key)
        if kind is None:
            self.fail(path, f"{_short(str(key))} is not a kind of value (one of: "
                            f"{', '.join(json_name(k) for k in VALUE_KINDS)})")
            return None
        accepted = ACCEPTS.get(t.kind, ())
        if kind not in accepted:
            spell = json_name if key != kind else str  # the caller's own spelling of the kinds
            want = " or ".join(spell(k) for k in accepted)
            what = str(t.required())
            article = "an" if what[:1] in "aeiou" else "a"
            self.fail(path, f"expects {article} {what} value ({want}), not {spell(kind)}")
            return None
        if inner is None:
            return None
        if kind == "string_value" and inner == "" and depth == 1:
            return None  # proto3's convention for an attribute too: an empty string is not given
        if isinstance(inner, InvalidValue):
            self.fail(path, inner.reason)
            return None
        if kind == "list_value":
            return self.list_value(inner, t, path, depth)
        if kind == "record_value":
            return self.record_value(inner, t, path, depth)
        if kind == "int_value":
            if isinstance(inner, bool) or not isinstance(inner, int | str):
                self.fail(path, f"must be a whole number, not {_kind_of(inner)}")
                return None
            try:
                return convert_scalar(Type("int"), inner)
            except ValueError as exc:
                if t.kind == "decimal" and _is_whole(inner):
                    return int(inner)  # a whole number past 18 digits: the judging says why, as a decimal
                self.fail(path, str(exc))
                return None
        if kind == "bool_value":
            if not isinstance(inner, bool):
                self.fail(path, f"must be true or false, not {_kind_of(inner)}")
                return None
            return inner
        if kind == "date_value" and isinstance(inner, date) and not isinstance(inner, datetime):
            return inner
        if kind == "time_value" and isinstance(inner, datetime):
            return inner
        if kind == "duration_value" and isinstance(inner, timedelta):
            return inner
        if kind == "decimal_value" and isinstance(inner, float):
            return inner  # judged: refused, saying how to write it exactly
        if not isinstance(inner, str):
            self.fail(path, f"must be a string, not {_kind_of(inner)}")
            return None
        return inner

    def list_value(self, inner: Any, t: Type, path: str, depth: int) -> Any:
        """A ``list_value``'s items, its length bounded before any is read."""
        values = inner.get("values", []) if isinstance(inner, Mapping) else None
        if not _is_list(values):
            self.fail(path, 'must be {"values": [...]}')
            return None
        if len(values) > MAX_LIST:
            self.fail(path, f"has more than {MAX_LIST} items")
            return None
        if not self.take(len(values), path):
            return None
        assert t.elem is not None
        return [self.value(v, t.elem, f"{path}[{i}]", depth + 1) for i, v in enumerate(values)]

    def record_value(self, inner: Any, t: Type, path: str, depth: int) -> Any:
        """A ``record_value``'s fields, each a declared field of the record."""
        fields = inner.get("fields", {}) if isinstance(inner, Mapping) else None
        if not isinstance(fields, Mapping):
            self.fail(path, 'must be {"fields": {...}}')
            return None
        declared = self.layout.schema.record_fields(t.name)
        out = {}
        for name, v in fields.items():
            f = declared.get(name)
            if f is None:
                hint = did_you_mean(str(name), declared) if len(str(name)) <= 64 else None
                self.fail(f"{path}.{_short(str(name))}",
                          "is not a field in the schema" + (f"; {hint}" if hint else ""))
                continue
            out[name] = self.value(v, f.type, f"{path}.{name}", depth + 1)
        return out

    def take(self, count: int, path: str) -> bool:
        """Spend ``count`` of the request's list elements; False (and an error) past the bound."""
        self.budget.remaining -= count
        if self.budget.remaining < 0:
            self.fail(path, f"takes the request past {MAX_REQUEST_ITEMS:,} list elements in all")
            return False
        return True


_VALUE_KEYS = {**{k: k for k in VALUE_KINDS}, **{json_name(k): k for k in VALUE_KINDS}}


_WHOLE_TEXT = re.compile(r"-?[0-9]+\Z")


def _is_whole(value: Any) -> bool:
    """A whole number, or the text of one short enough to read (ASCII digits only)."""
    if isinstance(value, str):
        return len(value) <= MAX_NUMBER_TEXT and _WHOLE_TEXT.match(value) is not None
    return isinstance(value, int) and not isinstance(value, bool)


def _is_decimal(value: Any) -> bool:
    return isinstance(value, Decimal)


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


# -- judging: the plans, interpreted ----------------------------------------------------------


class _Judge:
    """Walks the plans of a record over what the reader gave (:class:`_Given` for a message, a
    plain mapping for a ``record_value``), noting each problem in ``errors`` and building the
    prepared record: the same plans the generated fast paths are written from, read one field
    at a time, each problem said in full."""

    def __init__(self, schema: Schema, layout: RequestLayout) -> None:
        self.schema = schema
        self.layout = layout
        #: A record's plans by its name, their paths relative to where the record is given.
        self._records: dict[str, list[Plan]] = {}

    def record_plans(self, name: str) -> list[Plan]:
        plans = self._records.get(name)
        if plans is None:
            plans = self._records[name] = record_plans(self.schema, self.layout.record(name), name, "")
        return plans

    def record(self, plans: list[Plan], given: Any, prefix: str, errors: list[FieldError]) -> dict[str, Any]:
        """The prepared record; ``prefix`` is its request path (plans' paths follow it)."""
        if isinstance(given, _Given):
            values, paths = given.values, given.paths
        elif isinstance(given, Mapping):
            values, paths = given, {}
            self._derived_given(plans, values, prefix, errors)
        else:
            errors.append(FieldError(prefix, "must be an object"))
            return {}
        out: dict[str, Any] = {}
        for plan in plans:
            if plan.source == DERIVED:
                source = out.get(plan.derived_from)
                out[plan.name] = source.astimezone(UTC).date() if isinstance(source, datetime) else None
                continue
            path = paths.get(plan.name) or prefix + plan.path
            value = values.get(plan.name)
            if value is None:
                missing = plan.missing
                if missing is None:
                    out[plan.name] = None
                    continue
                if missing is REQUIRED:
                    if plan.kind != "record":
                        errors.append(FieldError(path, "is required"))
                        continue
                    missing = {}  # a record that may not be missing: its defaults
                value = missing
            out[plan.name] = self.field(plan, value, path, errors)
        return out

    def field(self, plan: Plan, value: Any, path: str, errors: list[FieldError]) -> Any:
        """One given (or default) value: its length, its conversion, its least and greatest values."""
        f = plan.field
        if f.type.is_stringy and isinstance(value, str) and len(value) > f.max_length:
            errors.append(FieldError(path, f"is longer than {f.max_length} characters"))
            return None
        converted = self.value(f.type, value, path, errors)
        if f.minimum is not None and converted is not None and converted < f.minimum:
            reason = "must not be negative" if f.minimum == 0 else f"must be at least {f.minimum}"
            errors.append(FieldError(path, f"{reason}, not {converted}"))
        elif f.maximum is not None and converted is not None and converted > f.maximum:
            errors.append(FieldError(path, f"must be at most {f.maximum}, not {converted}"))
        return converted

    def value(self, t: Type, value: Any, path: str, errors: list[FieldError]) -> Any:
        if t.kind == "record":
            return self.record(self.record_plans(t.name), value, path, errors)
        if t.kind == "list":
            if not isinstance(value, list | tuple):
                errors.append(FieldError(path, "must be a list"))
                return []
            if len(value) > MAX_LIST:
                errors.append(FieldError(path, f"has more than {MAX_LIST} items"))
                return []
            assert t.elem is not None
            return [self.value(t.elem, v, f"{path}[{i}]", errors) for i, v in enumerate(value)]
        try:
            return convert_scalar(t, value)
        except ValueError as exc:
            errors.append(FieldError(path, str(exc)))
            return None

    @staticmethod
    def _derived_given(plans: list[Plan], values: Mapping[str, Any], prefix: str,
                       errors: list[FieldError]) -> None:
        """A ``record_value`` that sends a derived field (the reader let every declared name by)."""
        derived = {plan.name: plan for plan in plans if plan.source == DERIVED}
        for name in values:
            plan = derived.get(name)
            if plan is not None:
                errors.append(FieldError(prefix + plan.path,
                                         f"is derived from {plan.derived_from}; do not send it"))


class MappingDecoder:
    """Reads requests written as plain mappings (the proto3 JSON mapping of ``loyalty.v1``
    requests: camelCase or snake_case names) into prepared input for one schema.

    Every method raises :class:`~dsl.errors.InputError` listing every problem, each
    with its request path as the caller wrote it.
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.layout = RequestLayout(schema)
        self._fast: MappingFastPath | None = None  # generated on first use
        #: The checking path's plans: the customer's, and each event kind's.
        self._judge = _Judge(schema, self.layout)
        self._customer_plans = record_plans(schema, self.layout.customer, "customer", "customer")
        self._event_plans = {kind: event_plans(schema, self.layout, kind) for kind in self.layout.events}

    @property
    def fast(self) -> MappingFastPath:
        """The generated fast path (:mod:`dsl.input.generate`), generated on first use: the
        service's checking path (``service.convert``) never needs it."""
        if self._fast is None:
            self._fast = MappingFastPath(self.schema, self.layout)
        return self._fast

    def fast_request(self, data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The fast path alone: raises (anything) where the checking path must judge."""
        return (self._fast or self.fast).request(data)

    def fast_parts(self) -> tuple[Any, Any]:
        """The fast path in two halves, ``customer(mapping)`` and ``event(mapping)``, for a
        caller that prepares one customer once for many events (``loyalty replay``). Each
        raises (anything) where :meth:`check` must judge the whole request, as
        :meth:`fast_request` does; together they are :meth:`fast_request`."""
        return self.fast.customer, self.fast.event

    def request(self, data: Any, budget: ItemBudget | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """An ``EvaluateRequest`` (or batch item, or case) mapping: its customer and event.
        ``budget`` is the list elements the request may still carry (a batch shares one; given
        one, only the checking path runs)."""
        if budget is None:
            return fast_or_check((self._fast or self.fast).request, self.check, data)
        return self.check(data, budget)

    def check(self, data: Any, budget: ItemBudget | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """:meth:`request` by the checking path alone (what the fast path gives up on)."""
        if not isinstance(data, Mapping):
            raise InputError([FieldError("request", "must be an object with customer and event")])
        reader = _Reader(self.layout, budget)
        customer = event = None
        missing = [FieldError(name, "is required") for name in ("customer", "event")
                   if data.get(name) is None]
        if data.get("customer") is not None:
            customer = self._customer(reader, data["customer"])
        if data.get("event") is not None:
            event = self._event(reader, data["event"])
        errors = missing + reader.errors
        if errors or customer is None or event is None:
            raise InputError(errors)
        return customer, event

    def customer(self, data: Any) -> dict[str, Any]:
        """A ``Customer`` mapping, prepared."""
        reader = _Reader(self.layout)
        customer = self._customer(reader, data)
        if reader.errors or customer is None:
            raise InputError(reader.errors)
        return customer

    def event(self, data: Any) -> dict[str, Any]:
        """An ``Event`` mapping, prepared."""
        reader = _Reader(self.layout)
        event = self._event(reader, data)
        if reader.errors or event is None:
            raise InputError(reader.errors)
        return event

    # -- the two records ----------------------------------------------------------------------

    def _customer(self, reader: _Reader, data: Any) -> dict[str, Any] | None:
        given = _Given()
        start = len(reader.errors)
        reader.message(data, self.layout.customer, "customer", given)
        return self._judged(reader, start, self._customer_plans, given)

    def _event(self, reader: _Reader, data: Any) -> dict[str, Any] | None:
        if not isinstance(data, Mapping):
            reader.fail("event", "must be an object")
            return None
        kind = data.get("kind")
        details_keys = [k for k in data if k in DETAILS_MESSAGES and data[k] is not None]
        which = details_keys[0] if details_keys else None
        start = len(reader.errors)
        if len(details_keys) > 1:
            reader.fail("event", f"carries {' and '.join(details_keys)} details; send one kind")
            return None
        if kind in (None, ""):
            kind = which
        if not isinstance(kind, str) or not kind:
            reader.fail("event.kind", "is required (or send one of: "
                        + ", ".join(k for k in DETAILS_MESSAGES if k in self.layout.events) + ")")
            return None
        if which and kind != which:
            reader.fail("event.kind", f'is "{_short(kind)}" but the event carries {which} details')
            return None
        layouts = self.layout.events.get(kind)
        if layouts is None:
            hint = did_you_mean(kind, self.layout.events) if len(kind) <= 64 else None
            reader.fail("event.kind", f"unknown event kind \"{_short(kind)}\" (known: "
                        f"{', '.join(sorted(self.layout.events))})" + (f"; {hint}" if hint else ""))
            return None
        own, details = layouts
        given = _Given()
        given.values["kind"] = kind
        skip = ("kind", *DETAILS_MESSAGES)
        reader.message(data, own, "event", given, skip=skip,
                       elsewhere=details, elsewhere_path=f"event.{kind}")
        for other in DETAILS_MESSAGES:  # a kind's details under another kind's name
            if other in data and other != which and data[other] is not None:
                reader.fail(f"event.{other}", f"is not for a {kind} event")
        if details is not None and which is not None:
            reader.message(data[which], details, f"event.{which}", given)
        return self._judged(reader, start, self._event_plans[kind], given)

    def _judged(self, reader: _Reader, start: int, plans: list[Plan], given: _Given
                ) -> dict[str, Any] | None:
        """The record judged by its plans, or None. A field the reader refused, or told to move,
        is not judged again: each field's problem is said once."""
        errors: list[FieldError] = []
        prepared = self._judge.record(plans, given, "", errors)
        seen = {e.path for e in reader.errors[start:]} | reader.misplaced
        for e in errors:
            if e.path not in seen:
                reader.errors.append(e)
                seen.add(e.path)
        if len(reader.errors) > start:
            return None
        return prepared
