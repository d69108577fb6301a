"""The policy language's types, shared by the schema, the checker and the code generator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Type:
    """A value type.

    ``kind`` is one of ``int``, ``decimal``, ``string``, ``bool``, ``date``,
    ``datetime``, ``duration``, ``airport`` (an IATA code, a kind of string),
    ``currency_code`` (an ISO 4217 money code such as ``USD``, a kind of string),
    ``timezone`` (an IANA time zone name such as ``Europe/London``, a kind of string),
    ``enum`` (strings from ``values``), ``list`` (of ``elem``), ``record`` (named
    by ``name``, fields in the schema), ``null`` (the literal missing value) and
    ``any`` (the type of an expression that already failed to check, so that
    one mistake does not cascade into many diagnostics).
    ``optional`` marks a value that may be missing.
    """

    kind: str
    optional: bool = False
    elem: Type | None = None
    values: tuple[str, ...] = ()
    name: str = ""

    def __reduce__(self) -> tuple[type[Type], tuple[Any, ...]]:
        # Rebuilt by its constructor (see Span.__reduce__: the compiled-policy disk cache).
        return (Type, (self.kind, self.optional, self.elem, self.values, self.name))

    def __str__(self) -> str:
        if self.kind == "list":
            text = f"list of {self.elem}"
        elif self.kind == "enum":
            text = self.name or "string"
        elif self.kind == "record":
            text = self.name
        else:
            text = self.kind
        return text + ("?" if self.optional else "")

    def required(self) -> Type:
        """The same type, never missing."""
        if not self.optional:
            return self
        return Type(self.kind, False, self.elem, self.values, self.name)

    def maybe(self) -> Type:
        """The same type, possibly missing."""
        if self.optional:
            return self
        return Type(self.kind, True, self.elem, self.values, self.name)

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("int", "decimal")

    @property
    def is_stringy(self) -> bool:
        return self.kind in ("string", "enum", "airport", "currency_code", "timezone")


INT = Type("int")
DECIMAL = Type("decimal")
STRING = Type("string")
BOOL = Type("bool")
DATE = Type("date")
DATETIME = Type("datetime")
DURATION = Type("duration")
AIRPORT = Type("airport")
CURRENCY_CODE = Type("currency_code")
TIMEZONE = Type("timezone")
NULL = Type("null", optional=True)
ANY = Type("any")

SCALARS = {
    t.kind: t for t in (INT, DECIMAL, STRING, BOOL, DATE, DATETIME, DURATION, AIRPORT, CURRENCY_CODE,
              TIMEZONE)
}


def list_of(elem: Type) -> Type:
    """The type of a list whose elements are ``elem``."""
    return Type("list", elem=elem)


def numeric_result(a: Type, b: Type) -> Type:
    """The type of ``a op b`` for + - *: int only when both are int."""
    if a.kind == "any" or b.kind == "any":
        return ANY
    return INT if a.kind == "int" and b.kind == "int" else DECIMAL


def comparable(a: Type, b: Type) -> bool:
    """Whether values of the two types can be ordered or compared for equality."""
    if a.kind == "any" or b.kind == "any" or a.kind == "null" or b.kind == "null":
        return True
    if a.is_numeric and b.is_numeric:
        return True
    if a.is_stringy and b.is_stringy:
        return True
    return a.kind == b.kind


def unify(a: Type, b: Type) -> Type | None:
    """The type of a value that is either ``a`` or ``b`` (if-branches, table rows), or None."""
    if a.kind == "any":
        return b
    if b.kind == "any":
        return a
    if a.kind == "null":
        return b.maybe()
    if b.kind == "null":
        return a.maybe()
    optional = a.optional or b.optional
    if a.is_numeric and b.is_numeric:
        t = INT if a.kind == b.kind == "int" else DECIMAL
    elif a.is_stringy and b.is_stringy:
        t = a.required() if a.kind == b.kind and a.values == b.values else STRING
    elif a.kind == b.kind == "list":
        assert a.elem is not None and b.elem is not None
        elem = unify(a.elem, b.elem)
        if elem is None:
            return None
        t = list_of(elem)
    elif a.kind == b.kind:
        t = a.required()
    else:
        return None
    return t.maybe() if optional else t
