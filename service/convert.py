"""Request messages -> the runtime's prepared input (responses: :mod:`service.wire`).

The policy runtime takes *prepared* dicts (docs/architecture.md): every field the schema
declares, defaults filled in, exact Python values. :class:`Converter` builds them from
``loyalty.v1`` messages for one schema through the input compiler (:mod:`dsl.input`): the
generated fast path of the message form (:class:`~dsl.input.decoders.MessageFastPath`), and
on anything it gives up on, the checking path, which reads the message through the views
below as the mapping form's reader reads JSON and lets the schema judge it.

What is left here is what only protobuf has: a message seen as a mapping of the fields that
are set (``ListFields``; nested messages, maps and repeated fields as lazy views) and the
refusal as a gRPC ``INVALID_ARGUMENT`` (:class:`~service.errors.InvalidArgument`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from google.protobuf import timestamp_pb2

from dsl.errors import InputError
from dsl.input.decoders import MessageFastPath, fast_or_check
from dsl.input.request import ItemBudget, MappingDecoder
from dsl.input.scalars import duration_or_problem, timestamp_or_problem
from dsl.schema.schema import Schema
from service.errors import InvalidArgument, input_violations
from service.gen.loyalty.v1 import loyalty_pb2 as pb

_TIMESTAMP = timestamp_pb2.Timestamp.DESCRIPTOR.full_name


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
        return {which: timestamp_or_problem(inner)}
    if which == "duration_value":
        return {which: duration_or_problem(inner)}
    return {which: inner}


def _view(fd: Any, value: Any) -> Any:
    if fd.message_type is None:
        return value
    if fd.message_type.GetOptions().map_entry:
        return _ValuesView(value)
    if fd.is_repeated:
        return _ListView(value, _MessageView)
    if fd.message_type.full_name == _TIMESTAMP:
        return timestamp_or_problem(value)
    return _MessageView(value)


# -- the converter ------------------------------------------------------------------------------------


class Converter:
    """Turns ``loyalty.v1`` messages into prepared input for one schema.

    Build one per policy set (the policy store does, off the request path); it is
    immutable afterwards and safe to share between threads.
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._mapping = MappingDecoder(schema)
        #: The generated fast path (its functions raise where the checking path must judge).
        self.fast = MessageFastPath(schema, self._mapping.layout)
        self.source = self.fast.generator.source()
        #: ``inputs(customer, event, budget=None)``: both prepared records; one
        #: :class:`InvalidArgument` lists the problems of both. ``budget``: the list elements
        #: the request may still carry (a batch passes one for all its items; the fast path
        #: counts none, since the servicer bounds them up front). A partial, not a method: it
        #: is on every evaluation's path.
        self.inputs = partial(fast_or_check, self.fast.inputs, self.checked_inputs)

    def customer(self, msg: pb.Customer) -> dict[str, Any]:
        """The prepared customer; raises :class:`InvalidArgument` listing every bad field."""
        return fast_or_check(self.fast.customer, self.check_customer, msg)

    def fast_event(self, msg: pb.Event) -> dict[str, Any]:
        """The fast path alone for an event: raises (anything) where the checking path must judge."""
        return self.fast.event(msg)

    def event(self, msg: pb.Event) -> dict[str, Any]:
        """The prepared event; raises :class:`InvalidArgument` listing every bad field."""
        return fast_or_check(self.fast.event, self.check_event, msg)

    def checked_inputs(
        self, customer: pb.Customer, event: pb.Event, budget: ItemBudget | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Both records by the checking path: the request reader (``dsl.input.request``) over the
        messages, judged by the schema; one :class:`InvalidArgument` lists every problem of
        both, by request path."""
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
