"""The logic both SQL backends share: apply, reverse, sums, export, import, compact.

A backend supplies a transaction (serialised per customer by ``lock_customers``), its
statements (parameters only: every value travels as a bound parameter), the conversion of
instants and amounts to its columns, and the translation of its errors into the store's.
The statements are written with ``?`` placeholders; PostgreSQL's class rewrites them to
``%s`` once, when it is defined.
"""

from __future__ import annotations

import abc
import base64
import datetime as dt
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import IO, Any

from service.state import ledger, metrics
from service.state.api import (
    AlreadyApplied,
    Amount,
    ApplyItem,
    ApplyResult,
    Decide,
    DecideReversal,
    Entry,
    EventNotFound,
    InvalidStateInput,
    ItemResult,
    NewEntry,
    ReverseResult,
    StateError,
    StateUnavailable,
    StoredEvent,
    StoredReversal,
    Window,
    amount_text,
    check_amount,
    check_id,
    check_instant,
    check_outcome,
    check_window,
    exact,
    parse_amount,
)

#: How often a transaction that lost a race (deadlock, unique violation) is run again.
MAX_ATTEMPTS = 5


class Statements:
    """The statements both backends run as written (``?`` placeholders)."""

    insert_event = "INSERT INTO events (event_id, customer_id, body_digest, decision) VALUES (?, ?, ?, ?)"
    insert_reversal = "INSERT INTO reversals (reversal_id, event_id, decision) VALUES (?, ?, ?)"
    insert_entry = (
        "INSERT INTO entries (event_id, reversal_id, line, customer_id, counter, at, amount, kind) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    event = "SELECT event_id, customer_id, body_digest, decision FROM events WHERE event_id = ?"
    reversal = "SELECT reversal_id, event_id, decision FROM reversals WHERE reversal_id = ?"
    event_entries = (
        "SELECT customer_id, counter, at, amount, event_id, kind, reversal_id, line FROM entries "
        "WHERE event_id = ? ORDER BY reversal_id, line"
    )
    customer_entries = (
        "SELECT customer_id, counter, at, amount, event_id, kind, reversal_id, line FROM entries "
        "WHERE customer_id = ? ORDER BY counter, at, event_id, reversal_id, line"
    )
    compact = "DELETE FROM entries WHERE at < ?"
    all_customers = "SELECT customer_id FROM customers ORDER BY customer_id"
    import_customer = "INSERT INTO customers (customer_id) VALUES (?) ON CONFLICT DO NOTHING"
    import_event = (
        "INSERT INTO events (event_id, customer_id, body_digest, decision) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING"
    )
    import_reversal = (
        "INSERT INTO reversals (reversal_id, event_id, decision) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
    )
    import_entry = (
        "INSERT INTO entries (event_id, reversal_id, line, customer_id, counter, at, amount, kind) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    )
    # Backend-specific: window sums, events by a list of ids, a customer's events and
    # reversals in the order they were written.
    window_sums = ""  # the same window for a list of customers: (customer_id, sum) rows
    # Many windows of one customer in one statement (a quote, a customer's first reads in an
    # apply): one sum per window, in order; the windows travel as one parameter
    # (``_windows_params``), so the text never changes.
    windows_sum = ""
    events_by_ids = ""
    customer_events = ""
    event_reversals = ""


#: Windows already checked (equal windows check the same), so that quotes reading the same
#: periods over and over skip the checks; bounded: cleared when full.
_CHECKED: dict[Window, Window] = {}
_CHECKED_MAX = 4096


def _checked_window(index: int, window: Window) -> Window:
    checked = _CHECKED.get(window) if isinstance(window, Window) else None
    if checked is None:
        checked = check_window(index, window)
        if len(_CHECKED) >= _CHECKED_MAX:
            _CHECKED.clear()
        _CHECKED[window] = checked
    return checked


class Retry(Exception):
    """Raised by a backend's translation when the transaction lost a race and may run again."""


class _Group:
    """One customer's reads and pending writes inside a transaction.

    The customer is locked for the whole transaction, so a window summed once stays right
    as long as this transaction's own pending entries are added to it: decisions later in a
    batch see the entries of the decisions before them without another query.
    """

    def __init__(self, store: SqlStore, db: Any, customer_id: str, batch: _Batch) -> None:
        self.store = store
        self.db = db
        self.customer_id = customer_id
        self.batch = batch
        self.pending: list[NewEntry] = []
        self.cache: dict[Window, Decimal] = {}

    def sums(self, windows: Sequence[Window]) -> list[Amount]:
        cache = self.cache
        # A window equal to a cached one was checked when it was cached (equal instants hash
        # equal whatever their zone), so a batch's repeated reads skip the checks.
        checked = [w if isinstance(w, Window) and w in cache else _checked_window(i, w)
                   for i, w in enumerate(windows)]
        missing = [w for w in dict.fromkeys(checked) if w not in cache]
        if missing:
            self.batch.read(self, missing)
        return [exact(cache[w]) for w in checked]

    def seed(self, window: Window, stored: Decimal) -> None:
        """Cache ``window``: the stored sum plus this transaction's pending entries in it."""
        for entry in self.pending:
            if entry.counter == window.counter and window.start <= entry.at < window.end:
                stored += Decimal(entry.amount)
        self.cache[window] = stored

    def add(self, entries: Iterable[NewEntry]) -> None:
        for entry in entries:
            self.pending.append(entry)
            for window in self.cache:
                if entry.counter == window.counter and window.start <= entry.at < window.end:
                    self.cache[window] += Decimal(entry.amount)


class _Batch:
    """The customers of one transaction, all locked, and the windows their decisions read.

    The first read of a window sums it for one customer. A second customer reading the same
    window (a calendar period shared by the batch) sums it for every customer of the batch
    still without it, in one query: a batch over many customers then costs one query per
    window, not one per customer and window, while a window only one decision reads (a
    rolling period ending at its event) is never summed for the others.
    """

    def __init__(self, store: SqlStore, db: Any, customer_ids: Iterable[str]) -> None:
        self.store = store
        self.db = db
        self.groups = {c: _Group(store, db, c, self) for c in customer_ids}
        self.seen: set[Window] = set()

    def read(self, group: _Group, windows: Sequence[Window]) -> None:
        """Seed ``group`` with ``windows`` (none of them cached): the ones no other customer
        read yet in one statement for this customer, each of the others for every customer
        still without it."""
        alone = len(self.groups) == 1
        first = [w for w in windows if alone or w not in self.seen]
        if first:
            self.seen.update(first)
            for window, stored in zip(first, self.store._windows_sums(self.db, group.customer_id, first),
                                      strict=True):
                group.seed(window, stored)
        for window in windows:
            if window in group.cache:
                continue
            peers = [g for g in self.groups.values() if window not in g.cache]
            stored_by = self.store._window_sums(self.db, [g.customer_id for g in peers], window)
            for peer in peers:
                peer.seed(window, stored_by.get(peer.customer_id, Decimal(0)))


class SqlStore(abc.ABC):
    """A state store over a SQL database; subclasses supply the connection and the dialect."""

    backend: str = ""
    sql: type[Statements] = Statements

    # -- what a backend supplies ----------------------------------------------------------

    @abc.abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """A context yielding a cursor in one write transaction: commit on exit, else roll back."""

    @abc.abstractmethod
    def _read(self, snapshot: bool = True) -> AbstractContextManager[Any]:
        """A context yielding a cursor for reads that write nothing; ``snapshot`` false when
        the reads are one statement (itself one snapshot), so no transaction is needed."""

    @abc.abstractmethod
    def _windows_params(self, customer_id: str, windows: Sequence[Window]) -> tuple[Any, ...]:
        """The parameters of ``windows_sum`` for ``windows`` of one customer."""

    @abc.abstractmethod
    def _lock_customers(self, db: Any, customer_ids: Sequence[str]) -> None:
        """Create the customers' rows if absent and hold them until the transaction ends."""

    @abc.abstractmethod
    def _translate(self, exc: Exception) -> Exception | None:
        """The store error (or ``Retry``) for a database exception, None if it is not one."""

    @abc.abstractmethod
    def _at_param(self, at: dt.datetime) -> Any:
        """An instant as the backend stores it."""

    @abc.abstractmethod
    def _at_value(self, value: Any) -> dt.datetime:
        """A stored instant as an aware UTC datetime."""

    @abc.abstractmethod
    def _amount_param(self, amount: Amount) -> Any:
        """An amount as the backend stores it."""

    @abc.abstractmethod
    def _amount_value(self, value: Any) -> Amount:
        """A stored amount, exactly."""

    @abc.abstractmethod
    def _sum_value(self, value: Any) -> Decimal:
        """A window sum's column value as a Decimal (0 for an empty window)."""

    @abc.abstractmethod
    def _ids_param(self, ids: Sequence[str]) -> Any:
        """A list of ids as one parameter for ``events_by_ids``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection."""

    # -- running a transaction ------------------------------------------------------------

    def _run(self, operation: str, body: Any) -> Any:
        """Run ``body(db)`` in a transaction, again on a lost race, timing it; errors translated."""
        started = time.perf_counter()
        try:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    with self._transaction() as db:
                        return body(db)
                except StateError:
                    raise
                except Exception as exc:
                    translated = self._translate(exc)
                    if translated is None:
                        raise
                    if isinstance(translated, Retry) and attempt + 1 < MAX_ATTEMPTS:
                        metrics.CONFLICTS.labels(self.backend, "retry").inc()
                        continue
                    if isinstance(translated, Retry):
                        translated = StateUnavailable(f"{operation} lost {MAX_ATTEMPTS} races: {exc}")
                    metrics.CONFLICTS.labels(self.backend, type(translated).__name__).inc()
                    raise translated from exc
            raise AssertionError("unreachable")
        finally:
            metrics.SECONDS.labels(self.backend, operation).observe(time.perf_counter() - started)

    def _reading(self, operation: str, body: Any, snapshot: bool = True) -> Any:
        """Run ``body(db)`` for reads, errors translated and the time observed."""
        started = time.perf_counter()
        try:
            with self._read(snapshot) as db:
                return body(db)
        except StateError:
            raise
        except Exception as exc:
            translated = self._translate(exc)
            if translated is None or isinstance(translated, Retry):
                raise
            raise translated from exc
        finally:
            metrics.SECONDS.labels(self.backend, operation).observe(time.perf_counter() - started)

    # -- the interface ----------------------------------------------------------------------

    def apply(self, customer_id: str, event_id: str, body_digest: str, decide: Decide) -> ApplyResult:
        """Apply an event exactly once (see ``StateStore.apply``)."""
        item = ApplyItem(customer_id, event_id, body_digest, decide)
        self._check_item(item)
        (result,) = self._run("apply", lambda db: self._apply_items(db, [item], raise_errors=True))
        assert result.result is not None
        return result.result

    def apply_many(self, items: Sequence[ApplyItem], operation: str = "apply_many") -> list[ItemResult]:
        """Apply many events in one transaction (see ``StateStore.apply_many``); ``operation``
        names it in the store's metrics (``apply`` for unary Applies committed together).

        A bad item (out of bounds, applied before with another body, a ``decide`` that raised)
        gets its error and writes nothing; the others commit together. A database error fails
        every item of the batch, none written. A replayed item's result carries its stored
        decision but not its entries (``apply`` returns those too), to keep batches one query
        per window.
        """
        results: list[ItemResult | None] = [None] * len(items)
        good: list[tuple[int, ApplyItem]] = []
        for i, item in enumerate(items):
            try:
                self._check_item(item)
            except StateError as exc:
                results[i] = ItemResult(error=exc)
            else:
                good.append((i, item))
        if good:
            try:
                done = self._run(operation, lambda db: self._apply_items(db, [it for _, it in good]))
            except StateError as exc:
                done = [ItemResult(error=exc)] * len(good)
            for (i, _), result in zip(good, done, strict=True):
                results[i] = result
        return [r if r is not None else ItemResult(error=AssertionError("unreachable")) for r in results]

    @staticmethod
    def _check_item(item: ApplyItem) -> None:
        check_id("customer_id", item.customer_id)
        check_id("event_id", item.event_id)
        check_id("body_digest", item.body_digest)

    def _apply_items(self, db: Any, items: Sequence[ApplyItem],
                     raise_errors: bool = False) -> list[ItemResult]:
        sql = self.sql
        # Sorted, so that two batches lock the customers they share in the same order.
        self._lock_customers(db, sorted({item.customer_id for item in items}))
        db.execute(sql.events_by_ids, (self._ids_param([item.event_id for item in items]),))
        stored: dict[str, tuple[str, str, bytes]] = {
            row[0]: (row[1], row[2], bytes(row[3])) for row in db.fetchall()
        }
        batch = _Batch(self, db, {item.customer_id: None for item in items})
        new_events: list[tuple[str, str, str, bytes]] = []
        new_entries: list[tuple[Any, ...]] = []
        postings: list[tuple[str, str, Sequence[object]]] = []
        results: list[ItemResult] = []
        for item in items:
            before = stored.get(item.event_id)
            if before is not None:
                _customer, digest, decision = before
                if digest != item.body_digest:
                    metrics.CONFLICTS.labels(self.backend, "already_applied").inc()
                    error = AlreadyApplied(item.event_id, digest, item.body_digest)
                    if raise_errors:
                        raise error
                    results.append(ItemResult(error=error))
                    continue
                metrics.CONFLICTS.labels(self.backend, "replayed").inc()
                entries = self._event_entries(db, item.event_id) if raise_errors else ()
                results.append(ItemResult(ApplyResult(item.event_id, decision, True, tuple(
                    e for e in entries if e.kind == "apply"))))
                continue
            group = batch.groups[item.customer_id]
            try:
                outcome = item.decide(group)
                decision, entries = check_outcome("outcome", outcome)
            except StateError:
                raise
            except Exception as exc:
                if self._translate(exc) is not None:
                    raise  # the database failed under decide's read: the transaction is lost
                if raise_errors:
                    raise
                results.append(ItemResult(error=exc))
                continue
            group.add(entries)
            if outcome.ledger:
                postings.append((item.customer_id, item.event_id, outcome.ledger))
            stored[item.event_id] = (item.customer_id, item.body_digest, decision)
            new_events.append((item.event_id, item.customer_id, item.body_digest, decision))
            rows = tuple(
                Entry(item.customer_id, e.counter, e.at, e.amount, item.event_id, "apply", "", line)
                for line, e in enumerate(entries)
            )
            new_entries.extend(self._entry_row(e) for e in rows)
            results.append(ItemResult(ApplyResult(item.event_id, decision, False, rows)))
        if new_events:
            db.executemany(sql.insert_event, new_events)
        if new_entries:
            db.executemany(sql.insert_entry, new_entries)
        if postings:
            ledger.post_many(self, db, postings)
        return results

    def reverse(self, event_id: str, reversal_id: str, decide: DecideReversal) -> ReverseResult:
        """Reverse (part of) an applied event exactly once (see ``StateStore.reverse``)."""
        check_id("event_id", event_id)
        check_id("reversal_id", reversal_id)
        return self._run("reverse", lambda db: self._reverse(db, event_id, reversal_id, decide))

    def _reverse(self, db: Any, event_id: str, reversal_id: str, decide: DecideReversal) -> ReverseResult:
        sql = self.sql
        db.execute(sql.event, (event_id,))
        row = db.fetchone()
        if row is None:
            raise EventNotFound(event_id)
        customer_id = row[1]
        self._lock_customers(db, [customer_id])
        db.execute(sql.reversal, (reversal_id,))
        before = db.fetchone()
        if before is not None:
            if before[1] != event_id:
                raise AlreadyApplied(reversal_id, f"reverses {before[1]!r}", f"reverses {event_id!r}",
                                     what="reversal")
            metrics.CONFLICTS.labels(self.backend, "replayed").inc()
            entries = tuple(e for e in self._event_entries(db, event_id) if e.reversal_id == reversal_id)
            return ReverseResult(reversal_id, event_id, bytes(before[2]), True, entries)
        event = self._stored_event(db, row)
        outcome = decide(event)
        decision, new = check_outcome("outcome", outcome)
        rows = tuple(
            Entry(customer_id, e.counter, e.at, e.amount, event_id, "reverse", reversal_id, line)
            for line, e in enumerate(new)
        )
        db.execute(sql.insert_reversal, (reversal_id, event_id, decision))
        if rows:
            db.executemany(sql.insert_entry, [self._entry_row(e) for e in rows])
        if outcome.ledger:
            ledger.post(self, db, customer_id, event_id, reversal_id, outcome.ledger)
        return ReverseResult(reversal_id, event_id, decision, False, rows)

    def sums(self, customer_id: str, windows: Sequence[Window]) -> list[Amount]:
        """The exact sum of the customer's entries in each window: one statement for all of
        them (an indexed range scan each), so a quote costs one round trip."""
        check_id("customer_id", customer_id)
        checked = [_checked_window(i, w) for i, w in enumerate(windows)]
        if not checked:
            return []
        return self._reading("sums", lambda db: [  # type: ignore[no-any-return]
            exact(total) for total in self._windows_sums(db, customer_id, checked)
        ], snapshot=False)

    def _windows_sums(self, db: Any, customer_id: str, windows: Sequence[Window]) -> list[Decimal]:
        """The stored sum of each of ``windows`` (checked) for one customer: one statement."""
        db.execute(self.sql.windows_sum, self._windows_params(customer_id, windows))
        return [self._sum_value(row[0]) for row in db.fetchall()]

    def _window_sums(self, db: Any, customer_ids: Sequence[str], window: Window) -> dict[str, Decimal]:
        db.execute(self.sql.window_sums, (self._ids_param(customer_ids), window.counter,
                                          self._at_param(window.start), self._at_param(window.end)))
        return {row[0]: self._sum_value(row[1]) for row in db.fetchall()}

    def events(self, customer_id: str) -> list[StoredEvent]:
        """The customer's applied events, in the order they were applied."""
        check_id("customer_id", customer_id)

        def body(db: Any) -> list[StoredEvent]:
            db.execute(self.sql.customer_events, (customer_id,))
            return [self._stored_event(db, row) for row in db.fetchall()]

        return self._reading("events", body)

    def counter_entries(self, customer_id: str) -> list[Entry]:
        """The customer's entries, by counter and instant."""
        check_id("customer_id", customer_id)

        def body(db: Any) -> list[Entry]:
            db.execute(self.sql.customer_entries, (customer_id,))
            return [self._entry(row) for row in db.fetchall()]

        return self._reading("counter_entries", body)

    def compact(self, older_than: dt.datetime) -> int:
        """Delete the entries before ``older_than``; events and reversals stay (for idempotency)."""
        horizon = check_instant("older_than", older_than)

        def body(db: Any) -> int:
            db.execute(self.sql.compact, (self._at_param(horizon),))
            return int(db.rowcount)

        return self._run("compact", body)

    # -- export and import as JSON lines --------------------------------------------------

    def export(self, stream: IO[str]) -> int:
        """Write every customer's events, reversals and entries, then their ledger (lots, lines
        in the order they were written, redemptions), as JSON lines, from one read snapshot."""

        def body(db: Any) -> int:
            db.execute(self.sql.all_customers, ())
            customers = [row[0] for row in db.fetchall()]
            count = 0
            for customer_id in customers:
                db.execute(self.sql.customer_events, (customer_id,))
                for row in db.fetchall():
                    event = self._stored_event(db, row)
                    for line in _event_lines(event):
                        stream.write(json.dumps(line, ensure_ascii=False) + "\n")
                        count += 1
                for line in ledger.export_rows(self, db, customer_id):
                    stream.write(json.dumps(line, ensure_ascii=False) + "\n")
                    count += 1
            return count

        return self._reading("export", body)

    def import_(self, lines: Iterable[str]) -> int:
        """Read ``export``'s lines in one transaction; rows already present stay as they are."""
        lots: dict[str, tuple[str, str]] = {}
        rows = [_parse_line(n, text, lots) for n, text in enumerate(lines, 1) if text.strip()]
        # The ledger's customers are locked (sorted, as Apply locks them) for the import, so
        # their lines' sequence numbers commit in order, as the balance's line index expects.
        ledger_customers = sorted({values[1] for kind, values in rows if kind in ("lot", "redemption")})

        def body(db: Any) -> int:
            added = 0
            if ledger_customers:
                self._lock_customers(db, ledger_customers)
            for kind, values in rows:
                if kind in ledger.EXPORT_TYPES:
                    added += ledger.import_row(self, db, kind, values)
                    continue
                if kind == "event":
                    db.execute(self.sql.import_customer, (values[1],))
                    db.execute(self.sql.import_event, values)
                elif kind == "reversal":
                    db.execute(self.sql.import_reversal, values)
                else:
                    entry: Entry = values
                    db.execute(self.sql.import_entry, self._entry_row(entry))
                added += max(int(db.rowcount), 0)
            return added

        return self._run("import", body)

    # -- rows -------------------------------------------------------------------------------

    def _entry_row(self, e: Entry) -> tuple[Any, ...]:
        return (e.event_id, e.reversal_id, e.line, e.customer_id, e.counter, self._at_param(e.at),
                self._amount_param(e.amount), e.kind)

    def _entry(self, row: Sequence[Any]) -> Entry:
        return Entry(row[0], row[1], self._at_value(row[2]), self._amount_value(row[3]), row[4], row[5],
                     row[6], int(row[7]))

    def _event_entries(self, db: Any, event_id: str) -> list[Entry]:
        db.execute(self.sql.event_entries, (event_id,))
        return [self._entry(row) for row in db.fetchall()]

    def _stored_event(self, db: Any, row: Sequence[Any]) -> StoredEvent:
        event_id = row[0]
        entries = self._event_entries(db, event_id)
        db.execute(self.sql.event_reversals, (event_id,))
        reversals = tuple(
            StoredReversal(r[0], event_id, bytes(r[2]),
                           tuple(e for e in entries if e.reversal_id == r[0]))
            for r in db.fetchall()
        )
        return StoredEvent(event_id, row[1], row[2], bytes(row[3]),
                           tuple(e for e in entries if e.kind == "apply"), reversals)


def _decision_json(decision: bytes) -> dict[str, str]:
    try:
        return {"decision": decision.decode("utf-8")}
    except UnicodeDecodeError:
        return {"decision_b64": base64.b64encode(decision).decode("ascii")}


def _entry_json(e: Entry) -> dict[str, Any]:
    return {"type": "entry", "event_id": e.event_id, "reversal_id": e.reversal_id, "line": e.line,
            "customer_id": e.customer_id, "counter": e.counter,
            "at": e.at.isoformat().replace("+00:00", "Z"), "amount": amount_text(e.amount), "kind": e.kind}


def _event_lines(event: StoredEvent) -> Iterator[dict[str, Any]]:
    yield {"type": "event", "event_id": event.event_id, "customer_id": event.customer_id,
           "body_digest": event.body_digest, **_decision_json(event.decision)}
    for e in event.entries:
        yield _entry_json(e)
    for r in event.reversals:
        yield {"type": "reversal", "reversal_id": r.reversal_id, "event_id": r.event_id,
               **_decision_json(r.decision)}
        for e in r.entries:
            yield _entry_json(e)


def _parse_line(number: int, text: str, lots: dict[str, tuple[str, str]]) -> tuple[str, Any]:
    """One exported line as (kind, values); a bad line is an InvalidStateInput naming it.
    ``lots`` collects the ledger lots read so far (a ledger line must follow its lot)."""
    where = f"line {number}"
    try:
        obj = json.loads(text)
        kind = obj["type"]
        if kind in ledger.EXPORT_TYPES:
            return kind, ledger.parse_export_line(where, obj, lots)
        decision = (base64.b64decode(obj["decision_b64"]) if "decision_b64" in obj
                    else obj.get("decision", "").encode("utf-8"))
        if kind == "event":
            return kind, (check_id(f"{where}.event_id", obj["event_id"]),
                          check_id(f"{where}.customer_id", obj["customer_id"]),
                          check_id(f"{where}.body_digest", obj["body_digest"]), decision)
        if kind == "reversal":
            return kind, (check_id(f"{where}.reversal_id", obj["reversal_id"]),
                          check_id(f"{where}.event_id", obj["event_id"]), decision)
        if kind == "entry":
            if obj["kind"] not in ("apply", "reverse"):
                raise InvalidStateInput(f"{where}.kind", "must be 'apply' or 'reverse'")
            at = check_instant(f"{where}.at", dt.datetime.fromisoformat(obj["at"]))
            amount = check_amount(f"{where}.amount", parse_amount(obj["amount"]))
            return kind, Entry(check_id(f"{where}.customer_id", obj["customer_id"]),
                               check_id(f"{where}.counter", obj["counter"]), at, amount,
                               check_id(f"{where}.event_id", obj["event_id"]), obj["kind"],
                               obj["reversal_id"], int(obj["line"]))
        raise InvalidStateInput(f"{where}.type", f"unknown line type {kind!r}")
    except InvalidStateInput:
        raise
    except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
        raise InvalidStateInput(where, f"not an exported state line: {exc}") from None
