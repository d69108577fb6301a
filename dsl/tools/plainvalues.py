"""Attribute values written plainly in policy test files and ``loyalty eval`` input, typed by the
schema: ``nights = 4`` where the API's JSON form says ``nights = { intValue = "4" }``.

A field a directory's schema adds travels in an ``attributes`` map as a typed ``Value``
(docs/language.md, "Requests"). A person writing a test case or an eval file knows the
field's type from the schema, and so does the schema: :func:`type_plain_values` wraps each
plain attribute value in the typed form its field's type calls for (``int`` -> ``intValue``,
``decimal`` -> ``decimalValue``, an enum -> ``stringValue``, a list -> ``listValue``, a
record -> ``recordValue``, its fields likewise), and leaves a typed value as it is. The
request decoder then judges the wrapped value exactly as it judges a typed one: the same
bounds, the same messages, by the same request path. Only the shape a type needs and a value
cannot have (a list for a ``list`` field, a date without a time for a ``datetime``) is
refused here, by that path.

A one-key table whose key names a kind of value (``stringValue`` or ``string_value``, ...)
is a typed value; anything else under ``attributes`` is plain. The service's own requests
are never read this way: the API stays the proto3 JSON mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from dsl.errors import FieldError
from dsl.input.layout import DETAILS_MESSAGES, VALUE_KINDS, MessageLayout, RequestLayout, json_name
from dsl.schema.schema import shorten
from dsl.schema.types import Type

#: Both spellings of every kind of value, the keys that make a one-key table a typed value.
_VALUE_KEYS = frozenset({*VALUE_KINDS, *(json_name(k) for k in VALUE_KINDS)})

#: The typed-value key (JSON spelling) a plain scalar of each type kind is wrapped in.
_SCALAR_KEY = {
    "int": "intValue", "decimal": "decimalValue", "string": "stringValue",
    "enum": "stringValue", "airport": "stringValue", "currency_code": "stringValue",
    "timezone": "stringValue", "tier": "stringValue", "bool": "boolValue",
    "date": "dateValue", "datetime": "timeValue", "duration": "durationValue",
}


def is_typed(value: Any) -> bool:
    """Whether ``value`` is already a typed value (``{"intValue": "4"}``) or "not given" (``{}``)."""
    if not isinstance(value, Mapping):
        return False
    return not value or (len(value) == 1 and next(iter(value)) in _VALUE_KEYS)


def type_plain_values(layout: RequestLayout, root: str, data: Any) -> tuple[Any, list[FieldError]]:
    """``data`` (a ``Customer`` when ``root`` is ``"customer"``, an ``Event`` when ``"event"``)
    with every plain attribute value wrapped in its typed form, and the problems found (each
    by its request path). Anything the decoder must judge (an unknown kind, an unknown field,
    a message that is not a mapping) is left as it is, for the decoder to name."""
    errors: list[FieldError] = []
    if not isinstance(data, Mapping):
        return data, errors
    if root == "customer":
        return _message(layout, layout.customer, data, "customer", errors), errors
    kind = data.get("kind") or next((k for k in data if k in DETAILS_MESSAGES), None)
    layouts = layout.events.get(kind) if isinstance(kind, str) else None
    if layouts is None:
        return data, errors
    own, details = layouts
    out = _message(layout, own, data, "event", errors)
    if details is not None and isinstance(out.get(kind), Mapping):
        out[kind] = _message(layout, details, out[kind], f"event.{kind}", errors)
    return out, errors


def _message(layout: RequestLayout, message: MessageLayout, data: Mapping[str, Any], path: str,
             errors: list[FieldError]) -> dict[str, Any]:
    """One message: its ``attributes`` typed, and its records (``lifetime``, ``items``) likewise."""
    out = dict(data)
    attributes = out.get("attributes")
    if isinstance(attributes, Mapping):
        declared = message.attribute_slots()
        out["attributes"] = {
            name: _typed(layout, value, declared[name].field.type,
                         f"{path}.attributes.{shorten(str(name))}", errors)
            if name in declared else value
            for name, value in attributes.items()
        }
    for key, value in data.items():
        slot = message.by_wire_name.get(key)
        if slot is None:
            continue
        t = slot.field.type
        elem = t.elem if t.kind == "list" else t
        if elem is None or elem.kind != "record":
            continue
        inner = layout.record(elem.name)
        if t.kind == "record" and isinstance(value, Mapping):
            out[key] = _message(layout, inner, value, f"{path}.{key}", errors)
        elif t.kind == "list" and isinstance(value, list):
            out[key] = [_message(layout, inner, v, f"{path}.{key}[{i}]", errors)
                        if isinstance(v, Mapping) else v for i, v in enumerate(value)]
    return out


def _typed(layout: RequestLayout, value: Any, t: Type, path: str, errors: list[FieldError]) -> Any:
    """A plain value as the typed value ``t`` calls for; a typed value as it is."""
    if value is None or is_typed(value):
        return value
    kind = t.kind
    if kind == "list":
        if not isinstance(value, list):
            errors.append(FieldError(path, f"is a {t.required()}: write [...], not {_what(value)}"))
            return None
        assert t.elem is not None
        elem = t.elem
        return {"listValue": {"values": [_typed(layout, v, elem, f"{path}[{i}]", errors)
                                         for i, v in enumerate(value)]}}
    if kind == "record":
        if not isinstance(value, Mapping):
            errors.append(FieldError(path, f"is a record ({t.required()}): write a table of its "
                                           f"fields, not {_what(value)}"))
            return None
        declared = layout.schema.record_fields(t.name)
        return {"recordValue": {"fields": {
            name: _typed(layout, v, declared[name].type, f"{path}.{shorten(str(name))}", errors)
            if name in declared else v
            for name, v in value.items()}}}
    if isinstance(value, Mapping | list):
        errors.append(FieldError(path, f"is {_article(t)} {t.required()}: write the value itself, "
                                       f"not {_what(value)}"))
        return None
    if kind == "datetime" and isinstance(value, date) and not isinstance(value, datetime):
        errors.append(FieldError(path, f"is a date and time: write the time and its zone too, "
                                       f"such as {value.isoformat()}T09:30:00Z"))
        return None
    if kind == "date" and isinstance(value, datetime):
        errors.append(FieldError(path, f"is a date: write {value.date().isoformat()}, without a time"))
        return None
    if kind == "duration" and not isinstance(value, str):
        errors.append(FieldError(path, f'is a duration: write it as text such as "15 minutes" '
                                       f'or "900s", not {_what(value)}'))
        return None
    if kind == "decimal" and isinstance(value, int) and not isinstance(value, bool):
        return {"intValue": value}  # a whole number is an exact decimal as it is
    return {_SCALAR_KEY.get(kind, "stringValue"): value}


def _article(t: Type) -> str:
    return "an" if str(t.required())[:1] in "aeiou" else "a"


def _what(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, datetime):
        return f"the date and time {value.isoformat()}"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    return "text"
