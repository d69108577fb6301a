"""Each field of a request as a small plan: where it travels, what a missing value becomes, its
bounds and constants.

:mod:`dsl.input.generate` turns plans into code, the same plan through either request form's
accessor; the plans themselves follow from the schema and :class:`~dsl.input.layout.RequestLayout`
alone, so both forms' decoders check the same bounds in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dsl.input.layout import EVENT_OWN, MessageLayout, RequestLayout, json_name
from dsl.schema.schema import MAX_MAGNITUDE, Field, Schema


class _Required:
    """What a required field's missing value becomes: a refusal (to the checking path)."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

#: Where a field's value comes from.
MESSAGE, ATTRIBUTE, ABSENT, CONSTANT, DERIVED = "message", "attribute", "absent", "constant", "derived"

#: The schema kinds each wire type of a message field can carry (any other pairing is refused).
WIRE_KINDS = {
    "string": frozenset({"string", "enum", "airport", "currency_code", "timezone", "date", "decimal"}),
    "int64": frozenset({"int", "decimal"}),
    "optional int64": frozenset({"int", "decimal"}),
    "bool": frozenset({"bool"}),
    "timestamp": frozenset({"datetime"}),
    "message": frozenset({"record"}),
    "repeated": frozenset({"list"}),
}


@dataclass(frozen=True, slots=True)
class Plan:
    """How one field of the prepared record is read.

    ``source`` is :data:`MESSAGE` (a field of the message, named ``name`` or ``json_name``, of
    type ``wire``), :data:`ATTRIBUTE` (a typed ``Value`` in the message's attributes),
    :data:`ABSENT` (the message cannot carry it), :data:`CONSTANT` (the event's kind) or
    :data:`DERIVED` (the date of ``derived_from``).
    """

    name: str
    path: str
    field: Field
    source: str
    wire: str = ""
    missing: Any = REQUIRED
    derived_from: str = ""

    @property
    def kind(self) -> str:
        return self.field.type.kind

    @property
    def json_name(self) -> str:
        return json_name(self.name)

    @property
    def low(self) -> int | Decimal | None:
        """The least value a number may take: the schema's, and for an int the input bound."""
        minimum = self.field.minimum
        if self.kind == "int":
            return max(minimum, -MAX_MAGNITUDE + 1) if minimum is not None else -MAX_MAGNITUDE + 1
        return minimum

    @property
    def carried(self) -> bool:
        """Whether a message field's wire type can carry the field's kind at all."""
        return self.kind in WIRE_KINDS.get(self.wire, frozenset())

    def describe(self) -> str:
        """The plan in one line, for the generated code's comment on it."""
        t = self.field.type
        where = {MESSAGE: f"{self.wire} field", ATTRIBUTE: "typed Value", ABSENT: "not carried",
                 CONSTANT: "the event's kind", DERIVED: f"the date of {self.derived_from}"}[self.source]
        bounds = []
        if self.field.minimum is not None:
            bounds.append(f"at least {self.field.minimum}")
        if self.field.maximum is not None:
            bounds.append(f"at most {self.field.maximum}")
        if t.kind == "string":
            bounds.append(f"at most {self.field.max_length} characters")
        if t.kind == "int":
            bounds.append(f"below 10**{len(str(MAX_MAGNITUDE)) - 1} in size")
        missing = ("an empty message" if t.kind == "record" else
                   "required" if self.missing is REQUIRED else
                   "None" if self.missing is None else repr(self.missing))
        text = f"{self.path}: {where} -> {t}"
        if bounds:
            text += f", {', '.join(bounds)}"
        if self.source in (MESSAGE, ATTRIBUTE, ABSENT):
            text += f"; missing: {missing}"
        return text


def _missing(f: Field) -> Any:
    if f.has_default:
        return f.default
    if f.type.optional:
        return None
    return REQUIRED


def _plan(name: str, f: Field, layout: MessageLayout, path: str) -> Plan:
    slot = layout.slots.get(name)
    if slot is not None and slot.in_message:
        return Plan(name, f"{path}.{name}", f, MESSAGE, slot.wire, _missing(f))
    if layout.has_attributes:
        return Plan(name, f"{path}.attributes.{name}", f, ATTRIBUTE, "", _missing(f))
    return Plan(name, f"{path}.{name}", f, ABSENT, "", _missing(f))


def _ordered(fields: dict[str, Field], plan: Any, path: str) -> list[Plan]:
    """Plans in the schema's order, derived fields last (they read the others)."""
    out = [plan(name, f) for name, f in fields.items() if not f.derived]
    for name, f in fields.items():
        if f.derived:
            out.append(Plan(name, f"{path}.{name}", f, DERIVED, derived_from=f.derived))
    return out


def record_plans(schema: Schema, layout: MessageLayout, record: str, path: str) -> list[Plan]:
    """The plans of a record carried in ``layout``'s message (the customer, a lifetime, an item)."""
    fields = schema.customer if record == "customer" else schema.record_fields(record)
    return _ordered(fields, lambda name, f: _plan(name, f, layout, path), path)


def event_plans(schema: Schema, layout: RequestLayout, kind: str) -> list[Plan]:
    """The plans of one event kind: its own message's fields, its details' and its attributes."""
    own, details = layout.events[kind]

    def plan(name: str, f: Field) -> Plan:
        if name == "kind":
            return Plan(name, "event.kind", f, CONSTANT)
        if details is not None and name in details.slots and name not in EVENT_OWN:
            return _plan(name, f, details, f"event.{kind}")
        return _plan(name, f, own, "event")

    return _ordered({**schema.event_common, **schema.events[kind]}, plan, "event")
