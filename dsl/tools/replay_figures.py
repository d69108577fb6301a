"""What a replay found: the figures of a history, merged across chunks, spilt to disk when large.

A :class:`Replay` holds one chunk's (or a whole history's) counts, totals and per-customer
sums; :meth:`Replay.merge` adds another in any order. Past :data:`SPILL_AT` customers the
merged sums go to hash-partitioned temporary files, so the parent's memory stays bounded
whatever the history's size.
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from dsl.decision import plain
from dsl.tools.replay_ledger import Ledger

__all__ = ["MAX_EXAMPLES", "MAX_PROBLEMS", "Amount", "Replay"]

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
    #: Events the columnar backend left to the row path, by why (an event kind whose
    #: policies it refuses, and the construct): empty when every row ran columnar or when
    #: the columnar backend was not used at all (``columnar_events`` is then 0).
    row_path: Counter[str] = field(default_factory=Counter)
    columnar_events: int = 0
    problems: list[tuple[tuple[int, int], str]] = field(default_factory=list)
    examples: list[tuple[tuple[int, int], dict[str, Any]]] = field(default_factory=list)
    #: Expiry and tier status (:mod:`dsl.tools.replay_ledger`): None when neither side has a
    #: currency with a validity or a qualification.
    ledger: Ledger | None = None
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
        self.columnar_events += other.columnar_events
        for counter in ("tiers", "benefits_before", "benefits_after", "benefit_moves",
                        "fired_before", "fired_after", "row_path"):
            getattr(self, counter).update(getattr(other, counter))
        if other.ledger is not None:
            self.ledger = other.ledger if self.ledger is None else self.ledger.merge(other.ledger)
        self.problems = sorted(self.problems + other.problems)[:MAX_PROBLEMS]
        self.examples = sorted(self.examples + other.examples, key=lambda e: e[0])[:MAX_EXAMPLES]
        return self

    @property
    def differs(self) -> bool:
        """Whether any event's decision changed, or (with a ledger) what would have expired or a
        customer's tier status at a window's end or at the as-of instant."""
        return self.changed > 0 or (self.ledger is not None and self.ledger.differs)

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
        """The report as JSON-friendly data (amounts exact: decimals as strings). ``expiry``
        and ``tier_status`` are there only when a side has a validity or a qualification."""
        out = plain({
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
            "engine": {"columnar_events": self.columnar_events,
                       "row_path": dict(sorted(self.row_path.items()))},
        })
        ledger = self.ledger
        if ledger is not None:
            expiry, tiers = ledger.expiry_report(), ledger.tier_report()
            if expiry is not None:
                out["expiry"] = plain(expiry)
            if tiers is not None:
                out["tier_status"] = plain(tiers)
            # Which path accounted for the awards behind them (the columnar backend from its
            # per-row awards, the row path from its decisions).
            out["engine"]["ledger"] = {"columnar_events": ledger.columnar_events,
                                       "row_events": ledger.row_events}
        return out

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
