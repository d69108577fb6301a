"""Where each schema field travels in a request: the one table every reader follows.

A caller never sends the schema's flat records. It sends ``loyalty.v1`` request
messages (over gRPC) or their proto3 JSON mapping (grpcurl, ``loyalty eval``, policy
tests, ``loyalty diff`` case files): one request text everywhere. Where a field
travels follows from the schema alone, by one rule:

- a field of the **standard** schema (``dsl/schema/schema.toml``) is a field of the request
  message of the same name: ``customer.member_since``, ``customer.lifetime.miles``,
  ``event.time``; a standard event kind's fields sit in its details message
  (``event.flight.origin``, the oneof ``details`` field named after the kind), and a
  purchase item's in ``Item``; its proto type follows from its schema type
  (:func:`wire_type`);
- a field a **directory's** schema adds travels in the ``attributes`` map of the
  message it extends (``customer.attributes.home_store``,
  ``customer.lifetime.attributes.regular_visits``, ``event.attributes.table``,
  ``event.purchase.items[0].attributes.brand``), as a typed ``Value``; an extension
  event kind's fields all travel in ``event.attributes``.

:class:`RequestLayout` is that rule as a table. The generated decoders of both forms
(:mod:`dsl.input.generate`) and the checking path (:mod:`dsl.input.request`) read it,
through the field plans (:mod:`dsl.input.plans`), and a test holds the standard half of the table to the
proto's descriptors. Nothing here imports protobuf: the message form is read by the
attribute names the table gives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from dsl.schema.schema import Field, Schema

#: Which ``Value`` kinds a schema type accepts (the same on every path).
ACCEPTS: dict[str, tuple[str, ...]] = {
    "int": ("int_value",),
    "decimal": ("decimal_value", "int_value"),
    "string": ("string_value",),
    "enum": ("string_value",),
    "airport": ("string_value",),
    "currency_code": ("string_value",),
    "timezone": ("string_value",),
    "bool": ("bool_value",),
    "date": ("date_value", "string_value"),
    "datetime": ("time_value", "string_value"),
    "duration": ("duration_value", "string_value"),
    "list": ("list_value",),
    "record": ("record_value",),
}
VALUE_KINDS = ("string_value", "int_value", "decimal_value", "bool_value", "date_value",
               "time_value", "duration_value", "list_value", "record_value")
#: The fields an event message has of its own (the rest is kind-specific or an attribute).
EVENT_OWN = ("id", "kind", "time")


def json_name(name: str) -> str:
    """A field's proto3 JSON name: ``member_since`` -> ``memberSince``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@cache
def _standard_schema() -> Schema:
    return Schema.load()


def wire_type(standard: Field) -> str:
    """How the request message carries a standard field (the proto's field type): ``string``
    (every text kind, dates and decimals), ``int64``, ``optional int64`` (a counter whose
    absence is not zero), ``bool``, ``timestamp``, ``message`` or ``repeated`` (messages).
    A test holds this rule to the proto's descriptors."""
    kind = standard.type.kind
    if kind == "int":
        return "int64" if standard.has_default and standard.default == 0 else "optional int64"
    return {"bool": "bool", "datetime": "timestamp", "record": "message",
            "list": "repeated"}.get(kind, "string")


@dataclass(frozen=True, slots=True)
class Slot:
    """One schema field as it travels: in the message (``in_message``: the proto field of
    the same name, of type ``wire``) or in its ``attributes`` (``wire`` is "")."""

    name: str
    field: Field
    in_message: bool
    wire: str = ""

    @property
    def json_name(self) -> str:
        return json_name(self.name)


@dataclass(frozen=True, slots=True)
class MessageLayout:
    """One request message: the schema fields it carries itself, and those in its attributes.

    ``message`` is the proto message's name (``Customer``, ``Flight``...), or "" for a
    record that only travels as a ``Value`` (every field then in ``fields``).
    """

    message: str
    slots: dict[str, Slot]
    #: Message field names (and JSON names) -> the slot, for reading.
    by_wire_name: dict[str, Slot] = field(default_factory=dict)

    @property
    def has_attributes(self) -> bool:
        """Whether the message has an ``attributes`` map (extension fields travel there)."""
        return self.message in WITH_ATTRIBUTES

    def message_slots(self) -> list[Slot]:
        return [s for s in self.slots.values() if s.in_message]

    def attribute_slots(self) -> dict[str, Slot]:
        return {n: s for n, s in self.slots.items() if not s.in_message}


def _layout(message: str, fields: Mapping[str, Field], standard: Mapping[str, Field]) -> MessageLayout:
    slots = {
        name: Slot(name, f, True, wire_type(standard[name])) if message and name in standard
        else Slot(name, f, False)
        for name, f in fields.items() if not f.derived
    }
    by_wire: dict[str, Slot] = {}
    for s in slots.values():
        if s.in_message:
            by_wire[s.name] = s
            by_wire[s.json_name] = s
    return MessageLayout(message, slots, by_wire)


#: The details message of each standard event kind (``Event``'s oneof ``details``: the
#: oneof field is named after the kind).
DETAILS_MESSAGES = {"flight": "Flight", "purchase": "Purchase", "visit": "Visit",
                     "appointment": "Appointment", "donation": "Donation"}
_RECORD_MESSAGES = {"customer.lifetime": "Lifetime", "item": "Item"}
#: The messages that carry a ``map<string, Value> attributes``.
WITH_ATTRIBUTES = frozenset({"Customer", "Lifetime", "Item", "Event"})


class RequestLayout:
    """Where every field of a schema travels in a request (see the module's docstring)."""

    def __init__(self, schema: Schema) -> None:
        base = _standard_schema()
        self.schema = schema
        self.customer = _layout("Customer", schema.customer, base.customer)
        #: Per event kind: the fields of the event message itself (id, kind, time, and the
        #: common extension fields as attributes) and the kind's details message, if any.
        self.events: dict[str, tuple[MessageLayout, MessageLayout | None]] = {}
        for kind, kind_fields in schema.events.items():
            standard_kind = kind in base.events and kind in DETAILS_MESSAGES
            own = {**schema.event_common}
            details_fields: dict[str, Field] = {}
            for name, f in kind_fields.items():
                if standard_kind and name in base.events[kind]:
                    details_fields[name] = f
                else:
                    own[name] = f
            event = _layout("Event", own, base.event_common)
            details = (_layout(DETAILS_MESSAGES[kind], details_fields, base.events[kind])
                       if standard_kind else None)
            self.events[kind] = (event, details)
        self.records = {
            name: _layout(_RECORD_MESSAGES.get(name, "") if name in base.records else "",
                          fields, base.records.get(name, {}))
            for name, fields in schema.records.items()
        }

    def record(self, name: str) -> MessageLayout:
        return self.records.get(name) or MessageLayout("", {})
