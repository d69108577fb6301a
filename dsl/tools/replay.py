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
"""

from __future__ import annotations

import heapq
import json
import pickle
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from dsl.decision import Decision
from dsl.errors import EvaluationError, InputError
from dsl.input.request import MappingDecoder, RequestLayout
from dsl.policyset import PolicySet
from dsl.schema.types import Type
from dsl.tools.history import Chunk

__all__ = ["MAX_PROBLEMS", "Replay", "replay_chunk"]

Amount = int | Decimal

#: Bad rows reported in full (the rest are counted).
MAX_PROBLEMS = 20
#: Changed events kept as examples.
MAX_EXAMPLES = 10
#: Gainers and losers listed per currency.
TOP = 10


@dataclass
class Replay:
    """The figures of a replayed history (or of one chunk of it).

    ``customers`` maps the id of every customer with a changed decision to
    ``[changed events, delta of currency 1, delta of currency 2, ...]`` in the order of
    ``currencies``. ``tiers`` counts events by (tier before, tier after) among those whose
    tier changed; ``benefit_moves`` counts events by (benefit, "gained" or "lost");
    ``fired_*`` count events in which each (policy, rule) fired; ``months`` sums awards by
    the event's month: ``{"2026-03": {"miles": [before, after]}}``. ``problems`` and
    ``examples`` are kept with a sort key (chunk, position) so merging keeps file order.
    """

    currencies: tuple[str, ...] = ()
    events: int = 0
    bad_rows: int = 0
    changed: int = 0
    errors_before: int = 0
    errors_after: int = 0
    totals_before: dict[str, Amount] = field(default_factory=dict)
    totals_after: dict[str, Amount] = field(default_factory=dict)
    months: dict[str, dict[str, list[Amount]]] = field(default_factory=dict)
    customers: dict[str, list[Amount]] = field(default_factory=dict)
    tiers: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)
    benefits_before: Counter[str] = field(default_factory=Counter)
    benefits_after: Counter[str] = field(default_factory=Counter)
    benefit_moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    fired_before: Counter[tuple[str, str]] = field(default_factory=Counter)
    fired_after: Counter[tuple[str, str]] = field(default_factory=Counter)
    problems: list[tuple[tuple[int, int], str]] = field(default_factory=list)
    examples: list[tuple[tuple[int, int], dict[str, Any]]] = field(default_factory=list)
    _spill: _Spill | None = field(default=None, repr=False, compare=False)
    _summary: _Summary | None = field(default=None, repr=False, compare=False)

    def merge(self, other: Replay) -> Replay:
        """Add ``other``'s figures to these (in place) and return self."""
        self.currencies = self.currencies or other.currencies
        self.events += other.events
        self.bad_rows += other.bad_rows
        self.changed += other.changed
        self.errors_before += other.errors_before
        self.errors_after += other.errors_after
        for mine, theirs in ((self.totals_before, other.totals_before),
                             (self.totals_after, other.totals_after)):
            for currency, amount in theirs.items():
                mine[currency] = mine.get(currency, 0) + amount
        for month, by_currency in other.months.items():
            into = self.months.setdefault(month, {})
            for currency, (before, after) in by_currency.items():
                pair = into.setdefault(currency, [0, 0])
                pair[0] += before
                pair[1] += after
        if other._spill is not None:
            raise ValueError("a spilled Replay merges into others only as their total")
        customers = self.customers
        for cid, sums in other.customers.items():
            mine_sums = customers.get(cid)
            if mine_sums is None:
                customers[cid] = sums
            else:
                for i, value in enumerate(sums):
                    mine_sums[i] += value
        if len(customers) >= SPILL_AT:
            if self._spill is None:
                self._spill = _Spill()
            self._spill.write(customers)
            customers.clear()
        self._summary = None
        for counter in ("tiers", "benefits_before", "benefits_after", "benefit_moves",
                        "fired_before", "fired_after"):
            getattr(self, counter).update(getattr(other, counter))
        self.problems = sorted(self.problems + other.problems)[:MAX_PROBLEMS]
        self.examples = sorted(self.examples + other.examples, key=lambda e: e[0])[:MAX_EXAMPLES]
        return self

    @property
    def differs(self) -> bool:
        """Whether any event's decision changed."""
        return self.changed > 0

    @property
    def customers_changed(self) -> int:
        """How many distinct customers had a changed decision."""
        return self._summarise().customers

    def deltas(self, currency: str) -> list[tuple[Amount, int]]:
        """(delta, how many customers) for every per-customer delta of ``currency`` among the
        customers with a changed decision, smallest delta first."""
        return [(value, n) for (value, _), n in
                sorted(self._summarise().values[self.currencies.index(currency)].items())]

    def currency_report(self, currency: str) -> dict[str, Any]:
        """Totals, the per-customer delta distribution and the top gainers and losers."""
        before = self.totals_before.get(currency, 0)
        after = self.totals_after.get(currency, 0)
        summary = self._summarise()
        i = self.currencies.index(currency)
        counted = self.deltas(currency)
        out: dict[str, Any] = {
            "before": before, "after": after, "delta": after - before,
            "customers_gaining": sum(n for v, n in counted if v > 0),
            "customers_losing": sum(n for v, n in counted if v < 0),
            "percentiles": {f"p{q}": _nearest_rank(counted, summary.customers, q)
                            for q in (0, 1, 5, 25, 50, 75, 95, 99, 100)} if counted else {},
            "gainers": [{"customer": cid, "delta": d} for d, cid in
                        sorted(summary.gainers[i], key=lambda p: (-p[0], p[1]))],
            "losers": [{"customer": cid, "delta": d} for d, cid in sorted(summary.losers[i])],
        }
        return out

    def _summarise(self) -> _Summary:
        """The per-customer figures, computed once (one spilled partition at a time)."""
        if self._summary is None:
            summary = _Summary(len(self.currencies))
            if self._spill is None:
                summary.add(self.customers)
            else:
                self._spill.write(self.customers)
                self.customers.clear()
                for part in self._spill.partitions():
                    summary.add(part)
            self._summary = summary
        return self._summary

    def counter_changes(self, before: Counter[Any], after: Counter[Any]) -> list[tuple[Any, int, int]]:
        """(key, before, after) for every key whose count differs, sorted by key."""
        keys = sorted(before.keys() | after.keys(), key=str)
        return [(k, before[k], after[k]) for k in keys if before[k] != after[k]]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-friendly data (amounts exact: decimals as strings)."""
        return _plain({
            "events": self.events,
            "bad_rows": self.bad_rows,
            "events_changed": self.changed,
            "customers_changed": self.customers_changed,
            "errors": {"before": self.errors_before, "after": self.errors_after},
            "currencies": {c: self.currency_report(c) for c in self.awarded()},
            "months": {m: {c: {"before": b, "after": a} for c, (b, a) in sorted(cs.items())}
                       for m, cs in sorted(self.months.items())},
            "tiers": [{"before": b, "after": a, "events": n}
                      for (b, a), n in sorted(self.tiers.items(), key=str)],
            "benefits": {k: {"before": b, "after": a} for k, b, a in
                         self.counter_changes(self.benefits_before, self.benefits_after)},
            "benefit_transitions": [{"benefit": name, "change": move, "events": n}
                                    for (name, move), n in sorted(self.benefit_moves.items())],
            "rules": {f"{p}.{r}": {"before": b, "after": a} for (p, r), b, a in
                      self.counter_changes(self.fired_before, self.fired_after)},
            "problems": [text for _, text in self.problems],
            "examples": [example for _, example in self.examples],
        })

    def awarded(self) -> list[str]:
        """Every currency awarded before or after, in schema order."""
        return [c for c in self.currencies
                if c in self.totals_before or c in self.totals_after]


def _nearest_rank(counted: list[tuple[Amount, int]], n: int, q: int) -> Amount:
    """The q-th percentile by nearest rank of ``n`` values given as sorted (value, count)
    pairs: always one of the values."""
    rank = max(-(-q * n // 100), 1)  # ceil(q/100 * n), exact
    seen = 0
    for value, count in counted:
        seen += count
        if seen >= rank:
            return value
    return counted[-1][0]


class _Summary:
    """What the report needs of the per-customer sums, built one partition at a time.

    Per currency: how many customers have each delta (exact percentiles and histograms
    from value counts: memory grows with the distinct deltas, not with the customers), and
    the :data:`TOP` gainers and losers (ties by id). A delta is counted with whether it is a
    Decimal, so an untouched ``0`` and a ``Decimal("0.00")`` stay apart in every run order.
    """

    def __init__(self, width: int) -> None:
        self.customers = 0
        self.values: list[Counter[tuple[Amount, bool]]] = [Counter() for _ in range(width)]
        self.gainers: list[list[tuple[Amount, str]]] = [[] for _ in range(width)]
        self.losers: list[list[tuple[Amount, str]]] = [[] for _ in range(width)]

    def add(self, customers: dict[str, list[Amount]]) -> None:
        """Count a group of customers (each customer is in one group only)."""
        self.customers += len(customers)
        for i, counter in enumerate(self.values):
            column = [(sums[i + 1], cid) for cid, sums in customers.items()]
            counter.update((d, isinstance(d, Decimal)) for d, _ in column)
            self.gainers[i] = heapq.nsmallest(
                TOP, self.gainers[i] + [p for p in column if p[0] > 0], key=lambda p: (-p[0], p[1]))
            self.losers[i] = heapq.nsmallest(TOP, self.losers[i] + [p for p in column if p[0] < 0])


#: Customers the merged total keeps in memory before it writes them out (about 250 bytes
#: each: about 12 MB).
SPILL_AT = 50_000
#: Files the spilled customers are hash-partitioned into; a partition larger than
#: :data:`PARTITION_BYTES` when read back is split again with another hash, so one
#: partition in memory stays about :data:`SPILL_AT` customers whatever the history's size.
PARTITIONS = 32
PARTITION_BYTES = 16 << 20


class _Spill:
    """Per-customer sums written to temporary files, partitioned by a hash of the id.

    One customer's sums may be written many times (once per spill that held it); all its
    records land in the same partition, so a partition read back alone sums them exactly.
    Records are pickled lists of (id, sums): amounts stay exact ints and Decimals.
    """

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="loyalty-replay-")
        self.paths = [Path(self.dir.name) / f"part-{i}" for i in range(PARTITIONS)]

    def write(self, customers: dict[str, list[Amount]]) -> None:
        """Append these customers' sums to their partitions."""
        _split(customers.items(), self.paths, 0)

    def partitions(self) -> Iterator[dict[str, list[Amount]]]:
        """Each partition's customers with their sums added up, one partition at a time."""
        yield from _read(self.paths, 0)


def _split(records: Iterable[tuple[str, list[Amount]]], paths: list[Path], salt: int) -> None:
    groups: list[list[tuple[str, list[Amount]]]] = [[] for _ in paths]
    seed = salt.to_bytes(4, "little")
    for record in records:
        groups[zlib.crc32(record[0].encode(), zlib.crc32(seed)) % len(paths)].append(record)
    for path, group in zip(paths, groups, strict=True):
        if group:
            with path.open("ab") as f:
                pickle.dump(group, f, protocol=pickle.HIGHEST_PROTOCOL)


def _records(path: Path) -> Iterator[list[tuple[str, list[Amount]]]]:
    if not path.exists():
        return
    with path.open("rb") as f:
        while True:
            try:
                yield pickle.load(f)
            except EOFError:
                return


def _read(paths: list[Path], salt: int) -> Iterator[dict[str, list[Amount]]]:
    for path in paths:
        if path.exists() and path.stat().st_size > PARTITION_BYTES and salt < 8:
            inner = [path.with_name(f"{path.name}.{i}") for i in range(PARTITIONS)]
            for part in inner:
                part.unlink(missing_ok=True)
            for group in _records(path):
                _split(group, inner, salt + 1)
            yield from _read(inner, salt + 1)
            for part in inner:
                part.unlink(missing_ok=True)
            continue
        merged: dict[str, list[Amount]] = {}
        for group in _records(path):
            for cid, sums in group:
                mine = merged.get(cid)
                if mine is None:
                    merged[cid] = sums
                else:
                    for i, value in enumerate(sums):
                        mine[i] += value
        yield merged


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- evaluating a chunk ----------------------------------------------------------------------------


class _Side:
    """One policy set with its decoder's two fast halves and a per-chunk customer cache."""

    def __init__(self, policy_set: PolicySet) -> None:
        self.set = policy_set
        self.decoder: MappingDecoder = policy_set.decoder
        self.customer_fn, self.event_fn = self.decoder.fast_parts()
        self.cache: dict[Any, dict[str, Any]] = {}


def replay_chunk(old: PolicySet, new: PolicySet, chunk: Chunk) -> Replay:
    """Evaluate every request of ``chunk`` with both sets: the chunk's :class:`Replay`."""
    currencies = tuple(sorted(old.schema.currencies.keys() | new.schema.currencies.keys()))
    out = Replay(currencies=currencies)
    sides = [_Side(old)]
    if new.schema.digest != old.schema.digest:
        sides.append(_Side(new))
    rows = _json_rows(chunk) if chunk.lines is not None else _column_rows(chunk, old)
    index = {c: i + 1 for i, c in enumerate(currencies)}
    for position, key, customer, event, only, reparse in rows:
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
        c_old, e_old = prepared[0]
        c_new, e_new = prepared[-1]
        out.events += 1
        before, before_error = _decide(old, c_old, e_old, only)
        after, after_error = _decide(new, c_new, e_new, only)
        _account(out, before, after, before_error, after_error, e_old, index)
        if (before_error != after_error or before.awards != after.awards
                or before.tier != after.tier or before.tags != after.tags
                or _benefits(before) != _benefits(after)):
            out.changed += 1
            cid = str(c_old.get("id") or "")
            sums = out.customers.get(cid)
            if sums is None:
                sums = out.customers[cid] = [0] * (len(currencies) + 1)
            sums[0] += 1
            for currency in before.awards.keys() | after.awards.keys():
                sums[index[currency]] += after.awards.get(currency, 0) - before.awards.get(currency, 0)
            if before.tier != after.tier:
                out.tiers[(before.tier, after.tier)] += 1
            if len(out.examples) < MAX_EXAMPLES:
                out.examples.append(((chunk.number, position), {
                    "where": _where(chunk, position), "customer": cid, "event": str(e_old.get("id") or ""),
                    "before": _summary(before, before_error),
                    "after": _summary(after, after_error)}))
    return out


_NO_DECISION = Decision("", {}, [], None, [], [], [], None)


def _decide(policy_set: PolicySet, customer: dict[str, Any], event: dict[str, Any],
            only: tuple[str, ...] | None) -> tuple[Decision, str | None]:
    try:
        return policy_set.evaluate(customer, event, only=only), None
    except EvaluationError as exc:
        return _NO_DECISION, f"{exc.file}:{exc.line}: policy {exc.policy}: {exc.message}"


def _benefits(d: Decision) -> list[tuple[str, Any]]:
    return [(b.name, b.params) for b in d.benefits] if d.benefits else []


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
    return {"awards": {k: _plain(v) for k, v in sorted(d.awards.items())},
            "benefits": sorted({b.name for b in d.benefits}), "tier": d.tier, "tags": list(d.tags)}


def _decode(side: _Side, key: Any, customer: Any, event: Any, reparse: Any
            ) -> tuple[dict[str, Any], dict[str, Any]] | InputError:
    """The prepared pair, or the InputError the checking path raises (naming every field)."""
    try:
        c = side.cache.get(key) if key is not None else None
        if c is None:
            customer = customer()
            c = side.customer_fn(customer)
            if key is not None:
                side.cache[key] = c
        return c, side.event_fn(event)
    except Exception:  # anything unusual: the checking path judges it and says why
        pass
    if reparse is None:
        customer = customer() if callable(customer) else customer
        if isinstance(customer, str):  # a column layout problem, from _build
            return _failing(customer)()
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


# Each row: (position in the chunk, customer cache key, customer, event, only, reparse) where
# ``reparse`` (or None) gives the request again for the checking path (JSON-lines: parsed
# by the standard library with exact decimals, as loyalty diff reads a case).
Row = tuple[int, Any, Any, Any, "tuple[str, ...] | None", Any]

_REQUEST_KEYS = frozenset(("customer", "event", "explain", "onlyPolicies", "only_policies", "name"))


def _json_rows(chunk: Chunk) -> Iterator[Row]:
    import orjson

    assert chunk.lines is not None
    for offset, line in enumerate(chunk.lines):
        if not line.strip():
            continue
        try:
            raw = orjson.loads(line)
        except orjson.JSONDecodeError:
            raw = None
        if not isinstance(raw, dict) or not raw.keys() <= _REQUEST_KEYS or \
                not isinstance(raw.get("customer"), dict) or not isinstance(raw.get("event"), dict):
            # Unusual: let the checking path's reading (and its words) decide.
            yield offset, None, None, None, None, _reparser(line)
            continue
        customer = raw["customer"]
        only = raw.get("onlyPolicies", raw.get("only_policies"))
        if only is not None:
            if not isinstance(only, list) or not all(isinstance(p, str) for p in only):
                yield offset, None, None, None, None, _reparser(line)
                continue
            only = tuple(only) or None
        try:
            key: Any = orjson.dumps(customer)
        except TypeError:
            key = None
        yield offset, key, partial(_given, customer), raw["event"], only, _reparser(line)


def _given(value: Any) -> Any:
    return value


def _reparser(line: bytes) -> Any:
    def reparse() -> dict[str, Any] | InputError:
        from dsl.errors import FieldError

        try:
            raw = json.loads(line, parse_float=str)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            reason = f"not valid JSON: {exc.msg} (column {exc.colno})" \
                if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
            return InputError([FieldError("line", reason)])
        except RecursionError:
            return InputError([FieldError("line", "nests too deeply to be a request")])
        if not isinstance(raw, dict):
            return InputError([FieldError("line", 'a request is a JSON object with "customer" '
                                                  'and "event"')])
        unknown = [k for k in raw if k not in _REQUEST_KEYS]
        if unknown:
            return InputError([FieldError(str(k)[:64], 'unknown key (a request is an EvaluateRequest '
                                          'body: "customer", "event", "explain", "onlyPolicies", '
                                          'and an optional "name")') for k in unknown])
        only = raw.get("onlyPolicies", raw.get("only_policies"))
        if only is not None and (not isinstance(only, list)
                                 or not all(isinstance(p, str) for p in only)):
            return InputError([FieldError("onlyPolicies", "must be a list of policy names")])
        return raw

    return reparse


# -- columnar rows ---------------------------------------------------------------------------------


#: Rows of a columnar chunk turned into Python values at a time: the chunk's columns as
#: Python objects would be most of a worker's memory (about 2 KB a row), while the chunk's
#: customer cache still spans the whole chunk.
SLICE_ROWS = 2_000


def _column_rows(chunk: Chunk, policy_set: PolicySet) -> Iterator[Row]:
    for start in range(0, chunk.batch.num_rows, SLICE_ROWS):
        for i, *rest in _slice_rows(chunk.batch.slice(start, SLICE_ROWS), chunk.form, policy_set):
            yield (start + i, *rest)  # type: ignore[misc]


def _slice_rows(batch: Any, form: str, policy_set: PolicySet) -> Iterator[Row]:
    import pyarrow as pa

    layout = policy_set.decoder.layout
    paths = [tuple(name.split(".")) for name in batch.schema.names]
    text = form == "csv"
    nested = {path for col, path in zip(batch.columns, paths, strict=True) if pa.types.is_nested(col.type)}
    values = [_column_values(col, path, layout, text)
              for col, path in zip(batch.columns, paths, strict=True)]
    plans = {}
    for side in ("customer", "event"):
        columns = [(path[1:], vals) for path, vals in zip(paths, values, strict=True) if path[0] == side]
        # The common case (scalar columns, no numbered list elements) takes a straight plan.
        simple = all(p and not any(step.isdigit() for step in p) and (side, *p) not in nested
                     for p, _ in columns)
        plans[side] = (columns, [(p[:-1], p[-1], vals) for p, vals in columns] if simple else None)
    customer_values = [vals for _, vals in plans["customer"][0]]
    for i in range(batch.num_rows):
        key: Any = tuple([vals[i] for vals in customer_values])
        try:
            hash(key)
        except TypeError:  # nested (struct) columns: no cache
            key = None
        event = _build(plans["event"], i)
        if isinstance(event, str):
            yield i, None, None, None, None, _failing(event)
            continue
        # Built only when the customer is not in the chunk's cache already.
        yield i, key, partial(_build, plans["customer"], i), event, None, None


def _build(plan: tuple[list[Any], list[Any] | None], i: int) -> dict[str, Any] | str:
    columns, simple = plan
    if simple is None:
        return _unflatten(columns, i)
    root: dict[str, Any] = {}
    for parents, leaf, vals in simple:
        value = vals[i]
        if value is None:
            continue
        node = root
        for step in parents:
            nxt = node.get(step)
            if nxt is None:
                nxt = node[step] = {}
            node = nxt
        node[leaf] = value
    return root


def _failing(reason: str) -> Any:
    from dsl.errors import FieldError

    def fail() -> InputError:
        path, _, why = reason.partition(": ")
        return InputError([FieldError(path, why)])

    return fail


def _unflatten(columns: list[tuple[tuple[str, ...], list[Any]]], i: int) -> dict[str, Any] | str:
    """Row ``i`` of dotted columns as a nested mapping; a string says what is wrong."""
    out: dict[str, Any] = {}
    numbered = False
    for path, vals in columns:
        value = vals[i]
        if value is None:
            continue
        if not path:  # a whole struct column
            if not isinstance(value, dict):
                return "customer: a struct column must hold objects"
            out.update(_drop_nulls(value))
            continue
        node = out
        for step in path[:-1]:
            nxt = node.get(step)
            if nxt is None:
                nxt = node[step] = {}
            elif not isinstance(nxt, dict):
                return f"{'.'.join(path)}: given twice (as a value and as a path)"
            node = nxt
            numbered = numbered or step.isdigit()
        node[path[-1]] = _drop_nulls(value) if isinstance(value, dict | list) else value
        numbered = numbered or path[-1].isdigit()
    if numbered:
        fixed = _lists(out, "")
        if isinstance(fixed, str):
            return fixed
    return out


def _lists(node: dict[str, Any], where: str) -> Any:
    """Objects keyed 0, 1, 2... turned into lists (in place); a gap is a problem."""
    for k, v in list(node.items()):
        if isinstance(v, dict):
            inner = _lists(v, f"{where}{k}.")
            if isinstance(inner, str):
                return inner
            if v and all(s.isdigit() for s in v):
                order = sorted(v, key=int)
                if [int(s) for s in order] != list(range(len(order))):
                    missing = next(n for n in range(len(order)) if str(n) not in v)
                    return (f"{where}{k}.{missing}: is empty while a later element is given "
                            f"(number a list's elements from 0 without gaps)")
                node[k] = [v[s] for s in order]
    return node


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _column_values(column: Any, path: tuple[str, ...], layout: RequestLayout, text: bool) -> list[Any]:
    """A column as Python values in the proto3 JSON mapping's types."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if text:
        values = column.to_pylist()
        if _is_bool(layout, path):
            spelled = {"true": True, "false": False}
            return [spelled.get(v, v) if v is not None else None for v in values]
        return values
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            column = pc.assume_timezone(column, "UTC")
        return [None if v is None else v.isoformat().replace("+00:00", "Z") for v in column.to_pylist()]
    if pa.types.is_date(kind) or pa.types.is_decimal(kind):
        return [None if v is None else str(v) for v in column.to_pylist()]
    return column.to_pylist()


def _is_bool(layout: RequestLayout, path: tuple[str, ...]) -> bool:
    """Whether the request path names a bool field (so CSV's "true"/"false" are booleans)."""
    if path[-1] in ("boolValue", "bool_value"):
        return True
    rest = list(path[1:])
    if path[0] == "customer":
        message = layout.customer
    else:
        if not rest:
            return False
        kind = rest[0]
        found = layout.events.get(kind)
        if found is None or found[1] is None:
            return False
        message, rest = found[1], rest[1:]
    while rest:
        slot = message.by_wire_name.get(rest.pop(0))
        if slot is None:
            return False
        t: Type = slot.field.type
        if t.kind == "list" and t.elem is not None:
            if rest and rest[0].isdigit():
                rest.pop(0)
            t = t.elem
        if t.kind == "record":
            message = layout.record(t.name)
            continue
        return t.kind == "bool" and not rest
    return False
