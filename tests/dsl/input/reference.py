"""The reference reader of input: the schema's flat records checked and converted field by
field, written without the request layout or the plans (``dsl.input``).

``prepare_customer(schema, mapping)`` and ``prepare_event(schema, mapping)`` read the schema's
*flat* form: ``kind`` on the event, a kind's fields and extension fields beside the standard
ones, snake_case names, loose values (JSON, TOML or Python). They raise
:class:`~dsl.errors.InputError` listing every problem by its schema path (``event.origin``).

This was ``Schema.prepare_customer`` / ``prepare_event`` in the product. The product's checking
path now interprets the same plans the generated fast paths are written from
(``dsl/input/request.py``); this reader stays here, on its own, so that the boundary
differential test (tests/service/test_boundary_differential.py) compares two independent
readings of a request rather than one reading twice. Tests and benchmarks that need prepared
input without writing a request (policy runtime tests, the benchmark data) build it here.

:func:`request_path` names a schema path's field by its request path (``event.origin`` ->
``event.flight.origin``), so that the reference's problems compare with the decoders'.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dsl.errors import FieldError, InputError, did_you_mean
from dsl.input.layout import MessageLayout, RequestLayout, Slot
from dsl.schema.schema import MAX_LIST, MAX_REQUEST_ITEMS, Field, Schema, convert_scalar, shorten
from dsl.schema.types import Type


def prepare_customer(schema: Schema, data: Mapping[str, Any]) -> dict[str, Any]:
    """Check and convert a customer; raises :class:`InputError` listing every bad field."""
    errors: list[FieldError] = []
    out = _prepare_record(schema, schema.customer, data, "customer", errors, [MAX_REQUEST_ITEMS])
    if errors:
        raise InputError(errors)
    return out


def prepare_event(schema: Schema, data: Mapping[str, Any]) -> dict[str, Any]:
    """Check and convert an event of a declared kind; raises :class:`InputError`."""
    errors: list[FieldError] = []
    if not isinstance(data, Mapping):
        raise InputError([FieldError("event", "must be an object")])
    kind = data.get("kind")
    if not isinstance(kind, str) or not kind:
        raise InputError([FieldError("event.kind", "is required")])
    if kind not in schema.events:
        hint = did_you_mean(kind, schema.events) if len(kind) <= 64 else None
        known = ", ".join(sorted(schema.events))
        reason = f'unknown event kind "{shorten(kind)}" (known: {known})'
        raise InputError([FieldError("event.kind", reason + (f"; {hint}" if hint else ""))])
    fields = {**schema.event_common, **schema.events[kind]}
    out = _prepare_record(schema, fields, data, "event", errors, [MAX_REQUEST_ITEMS])
    if errors:
        raise InputError(errors)
    return out


def _prepare_record(
    schema: Schema, fields: Mapping[str, Field], data: Any, path: str, errors: list[FieldError],
    budget: list[int],
) -> dict[str, Any]:
    """One record; ``budget`` holds the list elements the record may still carry (one
    record is bounded like a whole request: docs/language.md, "Input bounds")."""
    if not isinstance(data, Mapping):
        errors.append(FieldError(path, "must be an object"))
        return {}
    out: dict[str, Any] = {}
    for key in data:
        if key not in fields or fields[key].derived:
            if key in fields:
                reason = f"is derived from {fields[key].derived}; do not send it"
            else:
                hint = did_you_mean(str(key), fields) if len(str(key)) <= 64 else None
                reason = "is not a field in the schema" + (f"; {hint}" if hint else "")
            errors.append(FieldError(f"{path}.{shorten(str(key))}", reason))
    for name, f in fields.items():
        if f.derived:
            continue
        value = data.get(name)
        fpath = f"{path}.{name}"
        if value is None:
            if f.has_default:
                value = f.default
            elif f.type.optional:
                out[name] = None
                continue
            elif f.type.kind == "record":  # a record that may not be missing: its defaults
                value = {}
            else:
                errors.append(FieldError(fpath, "is required"))
                continue
        if f.type.is_stringy and isinstance(value, str) and len(value) > f.max_length:
            errors.append(FieldError(fpath, f"is longer than {f.max_length} characters"))
            continue
        converted = _convert(schema, f.type, value, fpath, errors, budget)
        if f.minimum is not None and converted is not None and converted < f.minimum:
            reason = ("must not be negative" if f.minimum == 0
                      else f"must be at least {f.minimum}")
            errors.append(FieldError(fpath, f"{reason}, not {converted}"))
        elif f.maximum is not None and converted is not None and converted > f.maximum:
            errors.append(FieldError(fpath, f"must be at most {f.maximum}, not {converted}"))
        out[name] = converted
    for name, f in fields.items():
        if f.derived:
            source = out.get(f.derived)
            out[name] = source.astimezone(UTC).date() if isinstance(source, datetime) else None
    return out


def _convert(schema: Schema, t: Type, value: Any, path: str, errors: list[FieldError],
             budget: list[int]) -> Any:
    kind = t.kind
    if kind == "record":
        return _prepare_record(schema, schema.records.get(t.name, {}), value, path, errors, budget)
    if kind == "list":
        if not isinstance(value, list | tuple):
            errors.append(FieldError(path, "must be a list"))
            return []
        if len(value) > MAX_LIST:
            errors.append(FieldError(path, f"has more than {MAX_LIST} items"))
            return []
        budget[0] -= len(value)  # counted before the items are read, as the request reader does
        if budget[0] < 0:
            errors.append(FieldError(path, f"takes the request past {MAX_REQUEST_ITEMS:,} list "
                                           "elements in all"))
            return []
        assert t.elem is not None
        return [_convert(schema, t.elem, v, f"{path}[{i}]", errors, budget) for i, v in enumerate(value)]
    try:
        return convert_scalar(t, value)
    except ValueError as exc:
        errors.append(FieldError(path, str(exc)))
        return None


# -- schema paths as request paths ---------------------------------------------------------------

_SEGMENT = re.compile(r"([^.\[]+)((?:\[\d+\])*)")


def request_path(layout: RequestLayout, schema_path: str, details: str | None,
                 written: Mapping[str, str] | None = None) -> str:
    """The request path of a field the schema names by ``schema_path`` (``event.origin`` ->
    ``event.flight.origin``); ``details`` is the event's details message name, if any.

    A name the schema does not declare (``customer.bogus``) could only have travelled in the
    ``attributes`` of its message: ``customer.attributes.bogus``.

    ``written`` maps schema paths the caller gave to the paths as written: the longest
    such prefix is kept, so a missing field inside a given list item reads
    ``event.purchase.items[2].sku`` even when the caller wrote camelCase elsewhere.
    """
    parts = _split_path(schema_path)
    root = parts[0]
    if root == "customer":
        message = layout.customer
        out = "customer"
    elif root == "event":
        kind_layouts = layout.events.get(details or "")
        # An unknown kind: the schema names event.kind alone, and nothing is an attribute.
        message = kind_layouts[0] if kind_layouts else MessageLayout("", {})
        out = "event"
    else:
        return schema_path
    done = root
    rest = parts[1:]
    for i, part in enumerate(rest):
        m = _SEGMENT.fullmatch(part)
        name, index = (m[1], m[2]) if m else (part, "")
        done = f"{done}.{part}"
        if written and done in written:
            out = written[done]
        else:
            slot = message.slots.get(name)
            if slot is None and root == "event" and i == 0 and details:
                kind_layouts = layout.events.get(details)
                if kind_layouts and kind_layouts[1] is not None and name in kind_layouts[1].slots:
                    out = f"{out}.{details}.{name}{index}"
                    slot = kind_layouts[1].slots[name]
                elif message.message:  # a name the schema does not declare: only attributes could carry it
                    out = f"{out}.attributes.{name}{index}"
                else:
                    out = f"{out}.{name}{index}"
            elif slot is None and message.message:  # likewise
                out = f"{out}.attributes.{name}{index}"
            elif slot is None or slot.in_message or not message.message:
                out = f"{out}.{name}{index}"
            else:
                out = f"{out}.attributes.{name}{index}"
            if slot is None:
                continue
        t = (message.slots.get(name) or _details_slot(layout, details, name, root, i) or _NO_SLOT).field.type
        elem = t.elem if t.kind == "list" else t
        if elem is not None and elem.kind == "record":
            message = layout.record(elem.name)
    return out


def _split_path(path: str) -> list[str]:
    """A schema path's segments; a name cut short (``dsl.schema.schema.shorten``: it ends in "...") is
    always the last segment, and kept whole."""
    cut = path.find("...")
    if cut < 0:
        return path.split(".")
    start = path.rfind(".", 0, cut)
    return [*path[:start].split("."), path[start + 1:]]


def _details_slot(layout: RequestLayout, details: str | None, name: str, root: str, i: int) -> Slot | None:
    if root != "event" or i != 0 or not details:
        return None
    kind_layouts = layout.events.get(details)
    if not kind_layouts or kind_layouts[1] is None:
        return None
    return kind_layouts[1].slots.get(name)


_NO_SLOT = Slot("", Field("", Type("any")), False)
