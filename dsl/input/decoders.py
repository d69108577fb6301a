"""The fast paths of both request forms, loaded, and the one rule that joins them to the
checking path: :func:`fast_or_check`.

:class:`MappingFastPath` and :class:`MessageFastPath` are the functions
:class:`~dsl.input.generate.DecoderSource` writes for a schema, with the dispatch on an
event's kind that each form needs. Each function raises (anything) where the checking path
must judge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from dsl.input.generate import DecoderSource, MappingAccess, MessageAccess
from dsl.input.layout import DETAILS_MESSAGES, RequestLayout
from dsl.input.plans import REQUIRED, event_plans
from dsl.input.scalars import Slow
from dsl.schema.schema import Schema

T = TypeVar("T")


def fast_or_check(fast: Callable[..., T], check: Callable[..., T], *args: Any) -> T:
    """``fast(*args)``; on any failure, ``check(*args)``: the checking path judges what the
    fast path gave up on (or tripped over) and says precisely why.

    Every place that decodes a request goes through here, so the fast path can never be the
    one to refuse a request, nor let a bug of its own reach the caller.
    """
    try:
        return fast(*args)
    except Exception:  # anything unusual: the checking path judges it and says why
        return check(*args)


Decode = Callable[[Any], dict[str, Any]]


class MappingFastPath:
    """The mapping form's fast path for one schema: ``customer(mapping)``, ``event(mapping)``
    and ``request(mapping)`` (an ``EvaluateRequest``'s customer and event)."""

    def __init__(self, schema: Schema, layout: RequestLayout | None = None) -> None:
        self.generator = DecoderSource(schema, MappingAccess(), layout)
        self.customer: Decode = self.generator.customer()
        self.events = self.generator.events()
        #: ``request(mapping)``: both records of a request, in one generated function (the
        #: customer's fields inline, the event's function by its kind or :meth:`event_function`).
        self.request = self.generator.inputs(self.events.get, self.event_function)
        self.event = self._event()

    def event_function(self, data: Any) -> Decode:
        """The function for an event mapping: by its kind, or by the one details message it
        carries; raises where only the checking path can judge."""
        kind = data.get("kind")
        if not kind:
            kind = next(k for k in DETAILS_MESSAGES if k in data)
        return self.events[kind]

    def _event(self) -> Decode:
        """``event(mapping)``, prepared (as :meth:`event_function` picks its function). Once
        per event in ``loyalty replay``, so it closes over what it calls."""
        events, details = self.events, tuple(DETAILS_MESSAGES)

        def event(data: Any) -> dict[str, Any]:
            kind = data.get("kind")
            if not kind:
                kind = next(k for k in details if k in data)
            return events[kind](data)

        return event


class MessageFastPath:
    """The message form's fast path for one schema: ``customer(message)`` and
    :meth:`event_function` (the function for an ``Event`` message, by its kind and the
    ``details`` oneof it sets)."""

    def __init__(self, schema: Schema, layout: RequestLayout | None = None) -> None:
        self.generator = DecoderSource(schema, MessageAccess(), layout)
        self.customer: Decode = self.generator.customer()
        events = self.generator.events()
        standard = {kind for kind, (_own, details) in self.generator.layout.events.items() if details}
        #: By the details oneof's name (the kind), for events whose kind is empty or the same.
        self.by_details = {kind: fn for kind, fn in events.items() if kind in standard}
        #: Extension kinds (no details message), by kind.
        self.extension = {kind: fn for kind, fn in events.items() if kind not in standard}
        #: By ``kind`` alone, without asking which details are set: only for kinds whose
        #: function refuses an event without its details, so that another kind's details can
        #: never pass as this kind's.
        self.by_kind = {kind: fn for kind, fn in self.by_details.items()
                        if _refuses_empty_details(schema, self.generator.layout, kind)}
        #: ``inputs(customer, event, budget=None)``: both records (``budget`` is the checking
        #: path's; the fast path counts nothing), the customer decoded inline and the event's
        #: function chosen as :meth:`event_function` chooses it, without the call where
        #: ``kind`` alone decides.
        self.inputs = self.generator.inputs(self.by_kind.get, self.event_function)

    def event_function(self, msg: Any) -> Decode:
        """The function for ``msg``; raises where only the checking path can judge (no kind
        at all, an unknown kind, a kind that does not match the details set)."""
        kind = msg.kind
        fast = self.by_kind.get(kind)
        if fast is not None:
            return fast
        which = msg.WhichOneof("details")
        if which is None:
            return self.extension[kind]
        if kind and kind != which:
            raise Slow
        return self.by_details[which]

    def event(self, msg: Any) -> dict[str, Any]:
        """An ``Event`` message, prepared."""
        return self.event_function(msg)(msg)


def _refuses_empty_details(schema: Schema, layout: RequestLayout, kind: str) -> bool:
    """Whether ``kind``'s function gives up on every event whose details are not set: some
    details field is required and travels where an unset message reads as "not given" (a
    string, a timestamp, an optional counter). Its checks on the details depend on nothing
    else, so dispatching on ``kind`` alone is then safe."""
    return any(p.path.startswith(f"event.{kind}.") and p.missing is REQUIRED
               and p.wire in ("string", "timestamp", "optional int64")
               for p in event_plans(schema, layout, kind))


__all__ = ["MappingFastPath", "MessageFastPath", "Slow", "fast_or_check"]
