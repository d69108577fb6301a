"""Replaying a recorded history through two policy sets, in chunks whose sums merge.

:func:`replay_chunk` evaluates one :class:`~dsl.tools.history.Chunk` of a history with the old
and the new set and returns a :class:`Replay`: the chunk's figures. Replays of separate
chunks :meth:`~Replay.merge` in any order into the figures of the whole history, so chunks
can run on any number of processes or machines (``loyalty replay`` runs them on a local
process pool or a Dask cluster) and the parent keeps only sums.

Every row goes through the sets' :class:`~dsl.input.request.MappingDecoder` (its generated fast
path, and its checking path for anything unusual, which names the field at fault): the
same bounds and the same request text as the service, ``loyalty eval`` and ``loyalty
diff``. A customer that several events of a chunk share is prepared once.

Memory: a chunk's rows are decoded one at a time; what a :class:`Replay` keeps grows
only with the customers whose decisions changed (one short list per customer: changed
events and one delta per currency, about 250 bytes with its id), never with the events.

The figures live in :mod:`dsl.tools.replay_figures`, the reading of a chunk's rows in
:mod:`dsl.tools.replay_rows`; this module evaluates.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from dsl.decision import Decision, decision_changed, plain
from dsl.errors import EvaluationError, InputError
from dsl.input.decoders import fast_or_check
from dsl.input.request import MappingDecoder
from dsl.periods import MemoryStore
from dsl.policyset import PolicySet
from dsl.tools.history import Chunk
from dsl.tools.replay_figures import MAX_EXAMPLES, MAX_PROBLEMS, Replay
from dsl.tools.replay_ledger import needs_order, new_ledger
from dsl.tools.replay_rows import Row, column_rows, failing, json_rows

__all__ = ["MAX_PROBLEMS", "Replay", "has_counters", "in_order", "partition_of", "replay_chunk",
           "replay_partition"]


# -- evaluating a chunk ----------------------------------------------------------------------------


class _Side:
    """One policy set with its decoder's two fast halves and a per-chunk customer cache."""

    def __init__(self, policy_set: PolicySet) -> None:
        self.set = policy_set
        self.decoder: MappingDecoder = policy_set.decoder
        self.customer_fn, self.event_fn = self.decoder.fast_parts()
        self.cache: dict[Any, dict[str, Any]] = {}


def replay_chunk(old: PolicySet, new: PolicySet, chunk: Chunk, *, columnar: bool = True,
                 as_of: datetime | None = None) -> Replay:
    """Evaluate every request of ``chunk`` with both sets: the chunk's :class:`Replay`.

    A Parquet or CSV chunk goes through the columnar backend (:mod:`dsl.tools.replay_columnar`)
    when polars is installed, ``columnar`` is true and neither set has counters; the rows it
    leaves, and every row of a JSON-lines chunk, take the row path below. Both give the same
    figures.

    When either set has counters, each customer's events are evaluated in time order (then
    in file order) against a simulated store per set (:class:`~dsl.periods.MemoryStore`): each
    decision reads its windows and appends what it counted at the event's instant, so a
    changed cap or period moves the later decisions too. A customer's state is the chunk's:
    ``loyalty replay`` reads such a history as one chunk.

    Given ``as_of``, and when a side has a currency with a validity or a qualification, the
    figures include the ledger's (:mod:`dsl.tools.replay_ledger`), judged at ``as_of``: chunks
    replayed apart merge when each is given the same one (``loyalty replay`` finds the
    history's last event time before it starts: :func:`last_event_time`).
    """
    currencies = tuple(sorted(old.schema.currencies.keys() | new.schema.currencies.keys()))
    if columnar and chunk.batch is not None and not (in_order(old) or in_order(new)):
        from dsl.tools.replay_columnar import columnar_pair, replay_columns

        pair = columnar_pair(old, new)
        if pair is not None:
            done, rest = replay_columns(old, new, chunk, pair, currencies, as_of)
            done.columnar_events = done.events
            if rest:
                import pyarrow as pa

                part = Chunk(chunk.file, chunk.number, chunk.first, chunk.form,
                             batch=chunk.batch.take(pa.array(rest, type=pa.int64())))
                done.merge(_replay_rows(old, new, part, currencies, rest, as_of))
            return done
    return _replay_rows(old, new, chunk, currencies, None, as_of)


def _replay_rows(old: PolicySet, new: PolicySet, chunk: Chunk, currencies: tuple[str, ...],
                 positions: list[int] | None, as_of: datetime | None) -> Replay:
    """The row path: every request decoded and evaluated by the compiled Python code.

    ``positions`` maps a row of a chunk taken from a larger one back to its position there.
    """
    out = Replay(currencies=currencies, ledger=new_ledger(old, new, as_of))
    sides = [_Side(old)]
    if new.schema.digest != old.schema.digest:
        sides.append(_Side(new))
    rows = json_rows(chunk) if chunk.lines is not None else column_rows(chunk, old)
    index = {c: i + 1 for i, c in enumerate(currencies)}
    decoded = _decoded(out, chunk, sides, rows, positions)
    if not (in_order(old) or in_order(new)):
        for position, c_old, e_old, c_new, e_new, only in decoded:
            before, before_error = _decide(old, c_old, e_old, only)
            after, after_error = _decide(new, c_new, e_new, only)
            _compare(out, chunk, position, index, c_old, e_old, before, after, before_error,
                     after_error)
        return out
    _replay_in_time_order(out, old, new, [(chunk, *row) for row in decoded], index)
    return out


def _replay_in_time_order(out: Replay, old: PolicySet, new: PolicySet, decoded: list[tuple[Any, ...]],
                          index: dict[str, int]) -> None:
    """Evaluate ``(chunk, position, old customer, old event, new customer, new event, only)``
    rows customer by customer, each customer's in time order (then file order), against a
    simulated store per set."""
    stores = (MemoryStore(), MemoryStore())
    decoded.sort(key=lambda r: (str(r[2].get("id") or ""), r[3]["time"], r[0].number, r[1]))
    for chunk, position, c_old, e_old, c_new, e_new, only in decoded:
        before, before_error = _decide(old, c_old, e_old, only, stores[0])
        after, after_error = _decide(new, c_new, e_new, only, stores[1])
        _compare(out, chunk, position, index, c_old, e_old, before, after, before_error,
                 after_error, reordered=True)
    out.examples.sort(key=lambda e: e[0])


def partition_of(customer_id: str, parts: int) -> int:
    """The partition (0 to ``parts - 1``) of a customer: a stable hash of its id (CRC-32 of its
    UTF-8 bytes), the same in every process and every run, unlike Python's ``hash``."""
    return zlib.crc32(customer_id.encode("utf-8", "surrogatepass")) % parts


def replay_partition(old: PolicySet, new: PolicySet, stream: Iterable[Chunk], part: int,
                     parts: int, as_of: datetime | None = None) -> Replay:
    """The figures of the rows of ``stream`` (the whole history, in its bounded chunks) whose
    customer falls in partition ``part`` of ``parts`` (:func:`partition_of` of the id as the
    row gives it), replayed as :func:`replay_chunk` replays a history with counters: each
    customer's events in time order against a simulated store.

    A customer's events are all in one partition, so the partitions' :class:`Replay` values
    merge into exactly the figures of the history replayed as one chunk, while each holds
    only its own customers' rows (about 1/``parts`` of the history). A row without a text
    customer id (it will not decode, or says so) belongs to partition 0, so every bad row
    is counted once.

    Given ``as_of``, the ledger's figures (:mod:`dsl.tools.replay_ledger`) are judged at it, as
    for :func:`replay_chunk`.
    """
    currencies = tuple(sorted(old.schema.currencies.keys() | new.schema.currencies.keys()))
    out = Replay(currencies=currencies)
    index = {c: i + 1 for i, c in enumerate(currencies)}
    decoded: list[tuple[Any, ...]] = []
    for chunk in stream:
        sides = [_Side(old)]
        if new.schema.digest != old.schema.digest:
            sides.append(_Side(new))
        rows = json_rows(chunk) if chunk.lines is not None else column_rows(chunk, old)
        mine = (row for row in rows if _row_partition(row, parts) == part)
        decoded.extend((chunk, *row) for row in _decoded(out, chunk, sides, mine, None))
    out.ledger = new_ledger(old, new, as_of)
    _replay_in_time_order(out, old, new, decoded, index)
    return out


def _row_partition(row: Row, parts: int) -> int:
    customer, reparse = row[2], row[5]
    if customer is not None:
        raw = customer()
    else:  # an unusual line the checking path reads: its customer, if it has one
        request = reparse() if reparse is not None else None
        raw = request.get("customer") if isinstance(request, dict) else None
    cid = raw.get("id") if isinstance(raw, dict) else None
    return partition_of(cid, parts) if isinstance(cid, str) else 0


def has_counters(policy_set: PolicySet) -> bool:
    """Whether any policy of the set declares a counter (its replay needs a store)."""
    return any(p.counters for p in policy_set.compiled)


def in_order(policy_set: PolicySet) -> bool:
    """Whether a replay with the set takes each customer's events together and in time order:
    it has counters, or its tiers are earned in anniversary years (counted from a customer's
    first award: :func:`dsl.tools.replay_ledger.needs_order`)."""
    return has_counters(policy_set) or needs_order(policy_set)


def _decoded(out: Replay, chunk: Chunk, sides: list[_Side], rows: Any,
             positions: list[int] | None) -> list[tuple[Any, ...]]:
    """(position, old customer, old event, new customer, new event, only) of every row that
    decodes; every other row counted and described in ``out`` (``positions``: as for
    :func:`_replay_rows`)."""
    found: list[tuple[Any, ...]] = []
    for position, key, customer, event, only, reparse in rows:
        if positions is not None:
            position = positions[position]
        prepared = []
        for side in sides:
            got = _decode(side, key, customer, event, reparse)
            if isinstance(got, InputError):
                prepared = None
                out.bad_rows += 1
                if len(out.problems) < MAX_PROBLEMS:
                    reasons = "; ".join(f"{e.path}: {e.reason}" for e in got.errors)
                    note = "" if len(sides) == 1 else (" (old schema)" if side is sides[0]
                                                       else " (new schema)")
                    out.problems.append(((chunk.number, position),
                                         f"{_where(chunk, position)}: {reasons}{note}"))
                break
            prepared.append(got)
        if prepared is None:
            continue
        (c_old, e_old), (c_new, e_new) = prepared[0], prepared[-1]
        found.append((position, c_old, e_old, c_new, e_new, only))
    return found


def _compare(out: Replay, chunk: Chunk, position: int, index: dict[str, int],
             c_old: dict[str, Any], e_old: dict[str, Any], before: Decision, after: Decision,
             before_error: str | None, after_error: str | None, reordered: bool = False) -> None:
    """Add one event's two decisions to the figures (``reordered``: events come by customer,
    not in file order)."""
    out.events += 1
    _account(out, before, after, before_error, after_error, e_old, index)
    if out.ledger is not None:
        out.ledger.add(str(c_old.get("id") or ""), e_old["time"], before.awards, after.awards)
    if decision_changed(before, after, before_error, after_error):
        out.changed += 1
        cid = str(c_old.get("id") or "")
        sums = out.customers.get(cid)
        if sums is None:
            sums = out.customers[cid] = [0] * (len(index) + 1)
        sums[0] += 1
        for currency in before.awards.keys() | after.awards.keys():
            sums[index[currency]] += after.awards.get(currency, 0) - before.awards.get(currency, 0)
        if before.tier != after.tier:
            out.tiers[(before.tier, after.tier)] += 1
        key = (chunk.number, position)
        examples = out.examples
        if len(examples) >= MAX_EXAMPLES:
            if not reordered:
                return  # file order: the first ones kept are the earliest
            # Evaluated by customer (with counters): keep the earliest in file order, as
            # the file-order path does and whatever the partition.
            latest = max(range(len(examples)), key=lambda i: examples[i][0])
            if key > examples[latest][0]:
                return
            del examples[latest]
        examples.append((key, {
            "where": _where(chunk, position), "customer": cid,
            "event": str(e_old.get("id") or ""),
            "before": _summary(before, before_error),
            "after": _summary(after, after_error)}))


_NO_DECISION = Decision("", {}, [], None, [], [], [], None)


def _decide(policy_set: PolicySet, customer: dict[str, Any], event: dict[str, Any],
            only: tuple[str, ...] | None, store: MemoryStore | None = None
            ) -> tuple[Decision, str | None]:
    try:
        if store is None:
            return policy_set.evaluate(customer, event, only=only), None
        cid = str(customer.get("id") or "")
        state = store.sums(cid, policy_set.windows(customer, event))
        decision = policy_set.evaluate(customer, event, only=only, state=state)
        for counter, amount in decision.counted.items():
            store.append(cid, counter, event["time"], amount)
        return decision, None
    except EvaluationError as exc:
        return _NO_DECISION, f"{exc.file}:{exc.line}: policy {exc.policy}: {exc.message}"


def _account(out: Replay, before: Decision, after: Decision, before_error: str | None,
             after_error: str | None, event: dict[str, Any], index: dict[str, int]) -> None:
    """Add one event's two decisions to the totals, months and counters."""
    if before_error is not None:
        out.errors_before += 1
    if after_error is not None:
        out.errors_after += 1
    month = None
    for decision, totals, slot in ((before, out.totals_before, 0), (after, out.totals_after, 1)):
        if not decision.awards:
            continue
        if month is None:
            when = event.get("date")
            month = out.months.setdefault(when.isoformat()[:7] if when else "unknown", {})
        for currency, amount in decision.awards.items():
            totals[currency] = totals.get(currency, 0) + amount
            pair = month.get(currency)
            if pair is None:
                pair = month[currency] = [0, 0]
            pair[slot] += amount
    if before.fired:
        out.fired_before.update(set(before.fired))
    if after.fired:
        out.fired_after.update(set(after.fired))
    if before.benefits or after.benefits:
        had = {b.name for b in before.benefits}
        has = {b.name for b in after.benefits}
        out.benefits_before.update(had)
        out.benefits_after.update(has)
        for name in has - had:
            out.benefit_moves[(name, "gained")] += 1
        for name in had - has:
            out.benefit_moves[(name, "lost")] += 1


def _summary(d: Decision, error: str | None) -> dict[str, Any]:
    if error is not None:
        return {"error": error}
    return {"awards": {k: plain(v) for k, v in sorted(d.awards.items())},
            "benefits": sorted({b.name for b in d.benefits}), "tier": d.tier, "tags": list(d.tags)}


def _decode(side: _Side, key: Any, customer: Any, event: Any, reparse: Any
            ) -> tuple[dict[str, Any], dict[str, Any]] | InputError:
    """The prepared pair, or the InputError the checking path raises (naming every field)."""
    return fast_or_check(_decode_fast, _decode_checked, side, key, customer, event, reparse)


def _decode_fast(side: _Side, key: Any, customer: Any, event: Any, reparse: Any
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fast path, one customer decoded once per chunk (raises where it gives up)."""
    c = side.cache.get(key) if key is not None else None
    if c is None:
        c = side.customer_fn(customer())
        if key is not None:
            side.cache[key] = c
    return c, side.event_fn(event)


def _decode_checked(side: _Side, key: Any, customer: Any, event: Any, reparse: Any
                    ) -> tuple[dict[str, Any], dict[str, Any]] | InputError:
    """The checking path: the pair, or the InputError naming every field."""
    if reparse is None:
        customer = customer() if callable(customer) else customer
        if isinstance(customer, str):  # a column layout problem, from _build
            return failing(customer)()
        data: Any = {"customer": customer, "event": event}
    else:
        data = reparse()
    if isinstance(data, InputError):
        return data
    try:
        return side.decoder.check(data)
    except InputError as exc:
        return exc


def _where(chunk: Chunk, position: int) -> str:
    """Where a row is, for people: ``file:line`` (JSON-lines, CSV) or ``file:row N`` (Parquet)."""
    number = chunk.first + position
    if chunk.form == "jsonl":
        return f"{chunk.file}:{number}"
    if chunk.form == "csv":  # the header is line 1 (a quoted cell holding a line break shifts this)
        return f"{chunk.file}:line {number + 1}"
    return f"{chunk.file}:row {number}"
