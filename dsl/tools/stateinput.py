"""A customer's state written by hand: what policy tests and ``loyalty eval`` read.

Two forms, usable together (docs/language.md, "Periods and counters"):

- ``state = { quarterly_spend = "1400.00" }``: the sum of every window of the counter that
  the event reads (exact: an integer, or a decimal written as a string);
- ``history = [...]``: what came before, in time order. Each item is a counter entry
  ``{ counter = "drinks_today", at = 2026-03-04T09:00:00Z, amount = 1 }`` or an earlier
  event of the same customer ``{ event = { kind = "order", time = ... } }``, which is
  evaluated against the entries before it and appends what it counted.

:func:`state_for` turns them into the ``state`` :meth:`dsl.policyset.PolicySet.evaluate`
takes, summing windows with :class:`dsl.periods.MemoryStore` as the service's store does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from dsl.periods import MemoryStore, Window
from dsl.policyset import PolicySet
from dsl.schema.schema import parse_datetime, parse_decimal

#: The most history items one case or request may hold.
MAX_HISTORY = 1000


def parse_amount(value: Any) -> int | Decimal:
    """An exact amount: an int, or a decimal written as a string (never a float)."""
    if isinstance(value, bool | float):
        raise ValueError(f"{value!r} is not exact: write a whole number, or a decimal in quotes "
                         'such as "1400.00"')
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        d = parse_decimal(value)
        return int(d) if "." not in value and d == d.to_integral_value() else d
    raise ValueError(f"{value!r} is not an amount")


def parse_state(raw: Any) -> dict[str, int | Decimal]:
    """``state = { counter = amount, ... }``; ValueError with the reason."""
    if not isinstance(raw, Mapping):
        raise ValueError('state must be a table such as { quarterly_spend = "1400.00" }')
    out: dict[str, int | Decimal] = {}
    for name, value in raw.items():
        try:
            out[str(name)] = parse_amount(value)
        except ValueError as exc:
            raise ValueError(f"state.{name}: {exc}") from None
    return out


def parse_history(raw: Any) -> tuple[dict[str, Any], ...]:
    """``history = [ {counter, at, amount} | {event = {...}}, ... ]``; ValueError with the reason."""
    if not isinstance(raw, list):
        raise ValueError("history must be a list of entries and earlier events")
    if len(raw) > MAX_HISTORY:
        raise ValueError(f"history holds {len(raw)} items; the limit is {MAX_HISTORY}")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        where = f"history[{i}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where} must be a table")
        if set(item) == {"event"}:
            if not isinstance(item["event"], Mapping):
                raise ValueError(f"{where}.event must be a table (an event as a case writes it)")
            earlier = dict(item["event"])
            earlier.setdefault("id", f"history-{i + 1}")
            out.append({"event": earlier})
            continue
        if set(item) != {"counter", "at", "amount"}:
            raise ValueError(f"{where} is either {{ counter = ..., at = ..., amount = ... }} or "
                             "{ event = { ... } }")
        counter = item["counter"]
        if not isinstance(counter, str) or not counter:
            raise ValueError(f"{where}.counter must be a counter's name")
        try:
            at = parse_datetime(item["at"])
            amount = parse_amount(item["amount"])
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        out.append({"counter": counter, "at": at, "amount": amount})
    return tuple(out)


def state_for(policy_set: PolicySet, customer_request: Mapping[str, Any],
              customer: dict[str, Any], event: dict[str, Any],
              state: Mapping[str, int | Decimal], history: Sequence[Mapping[str, Any]]
              ) -> dict[Window, int | Decimal] | None:
    """The window sums ``event`` reads, from ``history`` (replayed in order) and ``state``
    (which sets every window of the counters it names); None when both are empty.

    An earlier event is decoded with ``customer_request`` (the request form) and may raise
    :class:`~dsl.errors.InputError` or :class:`~dsl.errors.EvaluationError`.
    """
    if not state and not history:
        return None
    cid = str(customer.get("id", ""))
    store = MemoryStore()
    for item in history:
        if "event" in item:
            c, e = policy_set.decoder.request({"customer": dict(customer_request),
                                               "event": item["event"]})
            earlier = policy_set.evaluate(c, e, state=store.sums(cid, policy_set.windows(c, e)))
            at: datetime = e["time"]
            for counter, amount in earlier.counted.items():
                store.append(cid, counter, at, amount)
        else:
            store.append(cid, item["counter"], item["at"], item["amount"])
    sums = store.sums(cid, policy_set.windows(customer, event))
    for w in sums:
        if w.counter in state:
            sums[w] = state[w.counter]
    return sums
