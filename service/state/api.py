"""The state store's one interface: what it stores, what it answers, and how it fails.

Counters are append-only entries (customer, counter, instant, exact amount, the event that
wrote them). A period is a window ``[start, end)`` the caller computes (a calendar quarter in
the programme's zone, the last 7 days); the store sums the entries in it. Applying an event
and reversing it are each one transaction, serialised per customer, exactly once by id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Literal, Protocol, runtime_checkable

#: An exact amount: an integer (minor units, counts) or a Decimal; never a float.
Amount = int | Decimal

#: Longest customer id, event id, reversal id and counter name, in characters.
MAX_ID_CHARS = 128
#: Largest magnitude of one entry's amount (exclusive) and most decimal places it may have.
MAX_AMOUNT = 10**18
MAX_AMOUNT_PLACES = 9
#: Longest stored decision, in bytes.
MAX_DECISION_BYTES = 1 << 20

EntryKind = Literal["apply", "reverse"]


# -- errors ---------------------------------------------------------------------------------


class StateError(Exception):
    """Base of the store's errors; each maps to one gRPC status in the service."""


class StateUnavailable(StateError):
    """The database cannot be reached now (refused, restarting, busy): retry later (UNAVAILABLE)."""


class StateWriteFailed(StateError):
    """The database answers reads but refuses writes (disk full, read-only file)."""


class InvalidStateInput(StateError, ValueError):
    """An id, a counter name, an instant or an amount out of bounds; refused before any SQL."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class AlreadyApplied(StateError):
    """The id was applied before with another body (ALREADY_EXISTS naming both digests)."""

    def __init__(self, id: str, stored_digest: str, new_digest: str, what: str = "event") -> None:
        super().__init__(
            f"{what} {id!r} was already applied with body digest {stored_digest}; "
            f"this request's digest is {new_digest}"
        )
        self.id = id
        self.stored_digest = stored_digest
        self.new_digest = new_digest
        self.what = what

    @property
    def event_id(self) -> str:
        """The id that was applied before (an event id, or a reversal id for a reversal)."""
        return self.id


class EventNotFound(StateError):
    """A reversal names an event the store never applied (NOT_FOUND)."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"event {event_id!r} was never applied")
        self.event_id = event_id


# -- values ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """The entries of one counter with ``start <= at < end`` (aware instants)."""

    counter: str
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry an outcome appends: ``amount`` on ``counter`` at the instant ``at``."""

    counter: str
    at: dt.datetime
    amount: Amount


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored counter entry; ``reversal_id`` is ``""`` for the entries of an apply."""

    customer_id: str
    counter: str
    at: dt.datetime
    amount: Amount
    event_id: str
    kind: EntryKind
    reversal_id: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What ``decide`` returns: the decision to store (and return on retry), its entries, and
    its ledger postings (:mod:`service.state.ledger`: lots, take-backs), written in the same
    transaction."""

    decision: bytes | str
    entries: Sequence[NewEntry] = ()
    ledger: Sequence[object] = ()


@dataclass(frozen=True, slots=True)
class StoredReversal:
    """A reversal as stored: its id, its decision and the negative entries it appended."""

    reversal_id: str
    event_id: str
    decision: bytes
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An applied event: its body digest, decision, entries and the reversals made so far."""

    event_id: str
    customer_id: str
    body_digest: str
    decision: bytes
    entries: tuple[Entry, ...]
    reversals: tuple[StoredReversal, ...] = ()


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The stored decision of an event; ``replayed`` when a retry returned it without deciding."""

    event_id: str
    decision: bytes
    replayed: bool
    entries: tuple[Entry, ...] = ()


@dataclass(frozen=True, slots=True)
class ReverseResult:
    """The stored decision of a reversal; ``replayed`` when the same reversal id came again."""

    reversal_id: str
    event_id: str
    decision: bytes
    replayed: bool
    entries: tuple[Entry, ...] = ()


class Reader(Protocol):
    """What ``decide`` may read: sums for the customer being applied, inside the transaction."""

    def sums(self, windows: Sequence[Window]) -> list[Amount]:
        """The exact sum of the customer's entries in each window, in order."""
        ...


Decide = Callable[[Reader], Outcome]
DecideReversal = Callable[[StoredEvent], Outcome]


@dataclass(frozen=True, slots=True)
class ApplyItem:
    """One item of ``apply_many``."""

    customer_id: str
    event_id: str
    body_digest: str
    decide: Decide


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One item's result of ``apply_many``: either ``result`` or ``error`` is set."""

    result: ApplyResult | None = None
    error: Exception | None = field(default=None)


@runtime_checkable
class StateStore(Protocol):
    """Customer state behind one interface: SQLite (embedded) and PostgreSQL implement it."""

    backend: str

    def apply(self, customer_id: str, event_id: str, body_digest: str, decide: Decide) -> ApplyResult:
        """Apply an event exactly once: the stored decision on a retry, ``decide`` otherwise."""
        ...

    def apply_many(self, items: Sequence[ApplyItem], operation: str = "apply_many") -> list[ItemResult]:
        """Apply many events in one transaction; each item's result or error. ``operation``
        names the transaction in the metrics."""
        ...

    def reverse(self, event_id: str, reversal_id: str, decide: DecideReversal) -> ReverseResult:
        """Reverse (part of) an applied event exactly once, keyed by ``reversal_id``."""
        ...

    def sums(self, customer_id: str, windows: Sequence[Window]) -> list[Amount]:
        """The exact sum of the customer's entries in each window (a quote: writes nothing)."""
        ...

    def events(self, customer_id: str) -> list[StoredEvent]:
        """The customer's applied events in the order they were applied."""
        ...

    def counter_entries(self, customer_id: str) -> list[Entry]:
        """The customer's entries by counter and instant."""
        ...

    def export(self, stream: IO[str]) -> int:
        """Write everything as JSON lines (exact amounts as strings); returns the line count."""
        ...

    def import_(self, lines: Iterable[str]) -> int:
        """Read what ``export`` wrote; rows already present are kept. Returns rows added."""
        ...

    def compact(self, older_than: dt.datetime) -> int:
        """Delete the entries before ``older_than`` (no window reads them); returns how many."""
        ...

    def close(self) -> None:
        """Close every connection."""
        ...


# -- bounds, checked before any SQL -----------------------------------------------------------


def check_id(field: str, value: object) -> str:
    """``value`` if it is a usable id: 1 to 128 characters of text, no NUL, valid Unicode."""
    if not isinstance(value, str):
        raise InvalidStateInput(field, f"must be text, not {type(value).__name__}")
    if not value:
        raise InvalidStateInput(field, "must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise InvalidStateInput(field, f"is {len(value)} characters; at most {MAX_ID_CHARS} are allowed")
    if "\x00" in value:
        raise InvalidStateInput(field, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidStateInput(field, "is not valid Unicode (a lone surrogate)") from None
    return value


def check_instant(field: str, value: object) -> dt.datetime:
    """``value`` in UTC if it is an aware datetime."""
    if type(value) is dt.datetime and value.tzinfo is dt.UTC:
        return value  # already an aware UTC instant: the usual case, checked in one step
    if not isinstance(value, dt.datetime):
        raise InvalidStateInput(field, f"must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidStateInput(field, "must be an aware instant (with a time zone)")
    return value.astimezone(dt.UTC)


def check_amount(field: str, value: object) -> Amount:
    """``value`` if it is an exact amount within the bounds (an int or a finite Decimal)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise InvalidStateInput(field, f"must be an int or a Decimal, not {type(value).__name__}")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidStateInput(field, "must be finite")
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -MAX_AMOUNT_PLACES:
            raise InvalidStateInput(field, f"has more than {MAX_AMOUNT_PLACES} decimal places")
    if not -MAX_AMOUNT < value < MAX_AMOUNT:
        raise InvalidStateInput(field, f"must be below 10**18 in magnitude, not {value}")
    return value


def check_window(index: int, window: object) -> Window:
    """``window`` with its counter name checked and its bounds in UTC."""
    if not isinstance(window, Window):
        raise InvalidStateInput(f"windows[{index}]", "must be a Window")
    check_id(f"windows[{index}].counter", window.counter)
    start = check_instant(f"windows[{index}].start", window.start)
    end = check_instant(f"windows[{index}].end", window.end)
    return Window(window.counter, start, end)


def check_outcome(field: str, outcome: object) -> tuple[bytes, tuple[NewEntry, ...]]:
    """The decision as bytes and the checked entries of what ``decide`` returned."""
    if not isinstance(outcome, Outcome):
        raise InvalidStateInput(field, f"decide must return an Outcome, not {type(outcome).__name__}")
    decision = outcome.decision
    if isinstance(decision, str):
        decision = decision.encode("utf-8")
    if not isinstance(decision, bytes):
        raise InvalidStateInput(f"{field}.decision", "must be bytes or text")
    if len(decision) > MAX_DECISION_BYTES:
        raise InvalidStateInput(f"{field}.decision", f"is over {MAX_DECISION_BYTES} bytes")
    entries = []
    for i, entry in enumerate(outcome.entries):
        where = f"{field}.entries[{i}]"
        if not isinstance(entry, NewEntry):
            raise InvalidStateInput(where, "must be a NewEntry")
        entries.append(NewEntry(check_id(f"{where}.counter", entry.counter),
                                check_instant(f"{where}.at", entry.at),
                                check_amount(f"{where}.amount", entry.amount)))
    return decision, tuple(entries)


def exact(total: Decimal) -> Amount:
    """A sum as the caller expects it: an int when it has no fractional digits, else a Decimal.

    Both backends sum Decimals (SQLite in Python, PostgreSQL in NUMERIC), which keep the
    largest scale of their addends, so the same entries give the same type on both.
    """
    exponent = total.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(total)
    return total


def amount_text(amount: Amount) -> str:
    """The exact text an amount is stored and exported as (``str`` of the int or Decimal)."""
    return str(amount) if isinstance(amount, int) else format(amount, "f")


def parse_amount(text: str) -> Amount:
    """The amount ``amount_text`` wrote."""
    return int(text) if "." not in text else Decimal(text)
