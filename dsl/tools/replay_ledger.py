"""What a replay says about the ledger: points that would expire, and tier status at window ends.

A programme whose currencies expire (``validity``) or whose tiers are earned
(``[qualification]``) keeps a ledger in the service (docs/state.md). Replaying a history
with two policy sets, each side's awards are that side's lots: a :class:`Ledger` adds them up
as the service would hold them at an instant ``as_of`` (``loyalty replay``: the history's
last event time, :func:`last_event_time`, unless ``--as-of`` gives one; every chunk of a
replay is judged at the same one), with each side's own schema (its validities, zone and qualification):

- **expiry**: per currency, what was awarded up to ``as_of`` and what of it has expired by
  then (its lot's expiry, :meth:`~dsl.schema.validity.Validity.expires_at`, at or before
  ``as_of``; a history holds no redemptions, so nothing was spent first). Two sums per side
  and currency: they merge by addition, across any chunks.
- **tiers**: per customer and side, what the measure earned in each window
  (:func:`dsl.tiers.window_at`), keyed by the window's end; at report time
  :func:`dsl.tiers.statuses` turns each customer's windows into the tier the service would
  hold after each window end up to ``as_of`` and at ``as_of``, and the report counts the
  customers whose tier differs between the sides, with the transitions and a few examples.

Memory grows with the customers who earned the measure (a dict of window sums per side, about
760 bytes a customer with two windows on each side, id included; every customer's window ends
are one shared object per end), never with the events. Calendar-year
and rolling windows depend only on an award's instant, so chunks merge in any order; an
anniversary year counts from the customer's first award, so a programme with one is replayed
with each customer's events together and in time order (:func:`needs_order`), as a history
with counters is (partitioned by customer: :func:`dsl.tools.replay.partition_of`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dsl.policyset import PolicySet
from dsl.schema.schema import Qualification, parse_datetime
from dsl.schema.timezones import zone as zone_of
from dsl.schema.validity import Validity
from dsl.tiers import Judge, add_months, to_units, window_at
from dsl.tools.history import Chunk

__all__ = ["Ledger", "SideRules", "last_event_time", "needs_ledger", "needs_order", "new_ledger"]

Amount = int | Decimal

#: Customers whose tier differs listed as examples (as many as the changed events kept).
MAX_TIER_EXAMPLES = 10


@dataclass(frozen=True)
class SideRules:
    """What one side's schema says about its ledger: the currencies that expire (with their
    validity), the programme's zone, and the qualification (or None)."""

    validity: tuple[tuple[str, Validity], ...] = ()
    zone: str = "UTC"
    qualification: Qualification | None = None

    @classmethod
    def of(cls, policy_set: PolicySet) -> SideRules:
        """The rules of ``policy_set``'s schema."""
        schema = policy_set.schema
        expiring = tuple((name, c.validity) for name, c in sorted(schema.currencies.items())
                         if not c.validity.never)
        return cls(expiring, schema.timezone, schema.qualification)

    @property
    def active(self) -> bool:
        """Whether the side has anything for the ledger figures to say."""
        return bool(self.validity) or self.qualification is not None


def needs_ledger(policy_set: PolicySet) -> bool:
    """Whether a replay with ``policy_set`` reports expiry or tier status (a currency with a
    validity, or a qualification)."""
    return SideRules.of(policy_set).active


def needs_order(policy_set: PolicySet) -> bool:
    """Whether the ledger figures need each customer's events together and in time order: an
    anniversary year counts from the customer's first award of the measure."""
    q = policy_set.schema.qualification
    return q is not None and q.window == "anniversary year"


def new_ledger(old: PolicySet, new: PolicySet, as_of: dt.datetime | None) -> Ledger | None:
    """An empty :class:`Ledger` for the two sets at ``as_of``, or None when neither side has a
    validity or a qualification (or there is no instant to judge at: an empty history)."""
    rules = (SideRules.of(old), SideRules.of(new))
    if not (rules[0].active or rules[1].active) or as_of is None:
        return None
    return Ledger(rules, as_of)


def _event_time(value: Any) -> dt.datetime | None:
    if isinstance(value, str):
        try:  # the C parser first (about 0.3 us; the schema's own reading takes about 5)
            at = dt.datetime.fromisoformat(value)
            if at.tzinfo is not None:
                return at.astimezone(dt.UTC)
        except ValueError:
            pass
    try:
        return parse_datetime(value) if isinstance(value, str | dt.datetime) else None
    except ValueError:
        return None


def last_event_time(stream: Iterable[Chunk]) -> dt.datetime | None:
    """The latest ``event.time`` of the rows of ``stream`` (a time that does not read as an
    instant is passed over), or None for a history without one: the default ``as_of``."""
    import orjson

    latest: dt.datetime | None = None
    for chunk in stream:
        if chunk.lines is not None:
            values: Iterable[Any] = (_json_time(orjson, line) for line in chunk.lines)
        else:
            values = _column_times(chunk)
        for value in values:
            at = _event_time(value)
            if at is not None and (latest is None or at > latest):
                latest = at
    return latest


def _json_time(orjson: Any, line: bytes) -> Any:
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    event = raw.get("event") if isinstance(raw, dict) else None
    return event.get("time") if isinstance(event, dict) else None


def _column_times(chunk: Chunk) -> list[Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    batch = chunk.batch
    names = batch.schema.names
    if "event.time" in names:
        column = batch.column(names.index("event.time"))
    elif "event" in names and pa.types.is_struct(batch.schema.field("event").type) \
            and batch.schema.field("event").type.get_field_index("time") >= 0:
        column = pc.struct_field(batch.column(names.index("event")), "time")
    else:
        return []
    if pa.types.is_timestamp(column.type) and column.type.tz is None:
        column = pc.assume_timezone(column, "UTC")
    return column.to_pylist()


@dataclass
class Ledger:
    """The ledger figures of a replay (or of one chunk of it) at ``as_of``.

    ``awarded`` and ``expired`` hold, per side (old, new), per currency that expires on that
    side, the positive awards up to ``as_of`` and the part of them expired by ``as_of``.
    ``customers`` maps a customer id to ``[old windows, new windows, old anchor, new anchor]``:
    a side's windows map a window's end to the millionths of the measure earned in it (awards
    after ``as_of`` are left out); an anchor is the first award of the measure (anniversary
    years only). ``row_events`` and ``columnar_events`` count the events whose awards each
    path accounted for.
    """

    rules: tuple[SideRules, SideRules]
    as_of: dt.datetime
    awarded: tuple[dict[str, Amount], dict[str, Amount]] = field(default_factory=lambda: ({}, {}))
    expired: tuple[dict[str, Amount], dict[str, Amount]] = field(default_factory=lambda: ({}, {}))
    customers: dict[str, list[Any]] = field(default_factory=dict)
    row_events: int = 0
    columnar_events: int = 0

    def __post_init__(self) -> None:
        self._tiers: dict[str, Any] | None = None
        #: One object per window end (every customer's windows share the few ends of a history).
        self._ends: dict[dt.datetime, dt.datetime] = {}
        self._zones = tuple(zone_of(r.zone) for r in self.rules)
        self._validity = tuple(dict(r.validity) for r in self.rules)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_zones", None)
        state.pop("_tiers", None)
        state.pop("_ends", None)
        state.pop("_validity", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def add(self, customer: str, at: dt.datetime, before: Mapping[str, Amount],
            after: Mapping[str, Amount], columnar: bool = False) -> None:
        """Add one event's two decisions' awards (``before`` old, ``after`` new) at ``at``."""
        self._tiers = None
        if columnar:
            self.columnar_events += 1
        else:
            self.row_events += 1
        if at > self.as_of:
            return
        for side, awards in enumerate((before, after)):
            if not awards:
                continue
            validity = self._validity[side]
            for currency, amount in awards.items():
                if amount <= 0:
                    continue
                found = validity.get(currency)
                if found is not None:
                    totals = self.awarded[side]
                    totals[currency] = totals.get(currency, 0) + amount
                    if found.expires_at(at, self._zones[side]) <= self.as_of:
                        gone = self.expired[side]
                        gone[currency] = gone.get(currency, 0) + amount
            q = self.rules[side].qualification
            if q is not None and awards.get(q.measure, 0) > 0:
                self._earn(side, q, customer, at, awards[q.measure])

    def _earn(self, side: int, q: Qualification, customer: str, at: dt.datetime,
              amount: Amount) -> None:
        sums = self.customers.get(customer)
        if sums is None:
            sums = self.customers[customer] = [{}, {}, None, None]
        if q.window == "rolling 12 months":
            if at < add_months(self.as_of, -12):
                return
            end = self.as_of
        else:
            if q.window == "anniversary year" and sums[2 + side] is None:
                sums[2 + side] = at
            end = window_at(q, self.rules[side].zone, at, sums[2 + side])[1]
            end = self._ends.setdefault(end, end)
        windows = sums[side]
        windows[end] = windows.get(end, 0) + to_units(amount)

    def merge(self, other: Ledger) -> Ledger:
        """Add ``other``'s figures (replayed at the same ``as_of``) to these and return self."""
        if other.as_of != self.as_of:
            raise ValueError(f"ledger figures at {other.as_of} do not merge into those at "
                             f"{self.as_of}: replay every chunk with the same as_of")
        for mine, theirs in zip(self.awarded + self.expired, other.awarded + other.expired,
                                strict=True):
            for currency, amount in theirs.items():
                mine[currency] = mine.get(currency, 0) + amount
        for cid, sums in other.customers.items():
            have = self.customers.get(cid)
            if have is None:
                self.customers[cid] = sums
                continue
            for side in (0, 1):
                for end, units in sums[side].items():
                    have[side][end] = have[side].get(end, 0) + units
                anchors = [a for a in (have[2 + side], sums[2 + side]) if a is not None]
                have[2 + side] = min(anchors) if anchors else None
        self.row_events += other.row_events
        self.columnar_events += other.columnar_events
        self._tiers = None
        return self

    @property
    def differs(self) -> bool:
        """Whether the sides differ in what expired or in any customer's tier status."""
        expiry, tiers = self.expiry_report(), self.tier_report()
        return (expiry is not None and any(r["expired"]["delta"] for r in expiry["currencies"].values())
                ) or (tiers is not None and bool(tiers["examples"]))

    # -- the report ----------------------------------------------------------------------------

    def expiry_report(self) -> dict[str, Any] | None:
        """Per currency that expires on either side: awarded and expired by ``as_of``, old and
        new, and the change in what expired; None when no side has a validity."""
        old, new = (dict(r.validity) for r in self.rules)
        if not old and not new:
            return None
        currencies = sorted(old.keys() | new.keys())
        out: dict[str, Any] = {
            "as_of": _iso(self.as_of),
            "validity": {c: {"before": old[c].text if c in old else "never",
                             "after": new[c].text if c in new else "never"} for c in currencies},
            "currencies": {},
        }
        for c in currencies:
            gone = [self.expired[s].get(c, 0) for s in (0, 1)]
            out["currencies"][c] = {
                "awarded": {"before": self.awarded[0].get(c, 0), "after": self.awarded[1].get(c, 0)},
                "expired": {"before": gone[0], "after": gone[1], "delta": gone[1] - gone[0]},
            }
        return out

    def tier_report(self) -> dict[str, Any] | None:
        """Customers whose tier differs between the sides after each window end up to
        ``as_of`` and at ``as_of``, with the transitions and a few example customers; None
        when no side has a qualification."""
        qs = [r.qualification for r in self.rules]
        if qs[0] is None and qs[1] is None:
            return None
        if self._tiers is None:
            self._tiers = self._tier_report(qs)
        return self._tiers

    def _tier_report(self, qs: list[Qualification | None]) -> dict[str, Any]:
        points: dict[str, Counter[tuple[str, str]]] = {}
        customers_at: Counter[str] = Counter()
        examples: list[dict[str, Any]] = []
        judges = [None if q is None else Judge(q, r.zone, self.as_of)
                  for q, r in zip(qs, self.rules, strict=True)]
        for cid in sorted(self.customers):
            sums = self.customers[cid]
            timelines = [([], "") if judge is None else judge.statuses(sums[side])
                         for side, judge in enumerate(judges)]
            differs = []
            ends = sorted({e for e, _ in timelines[0][0]} | {e for e, _ in timelines[1][0]})
            for end in ends:
                pair = (_tier_at(timelines[0][0], end), _tier_at(timelines[1][0], end))
                if pair[0] != pair[1]:
                    differs.append((_iso(end), pair))
            now = (timelines[0][1], timelines[1][1])
            if now[0] != now[1]:
                differs.append(("as_of", now))
            for where, pair in differs:
                points.setdefault(where, Counter())[pair] += 1
                customers_at[where] += 1
            if differs and len(examples) < MAX_TIER_EXAMPLES:
                examples.append({"customer": cid, "changes": [
                    {"at": where, "before": b, "after": a} for where, (b, a) in differs]})
        def point(where: str) -> dict[str, Any]:
            return {"at": where, "customers": customers_at[where], "transitions": [
                {"before": b, "after": a, "customers": n}
                for (b, a), n in sorted(points[where].items())]}

        return {
            "as_of": _iso(self.as_of),
            "qualification": {"before": _describe(qs[0]), "after": _describe(qs[1])},
            "customers_earning": len(self.customers),
            "window_ends": [point(w) for w in sorted(points) if w != "as_of"],
            "at_as_of": point("as_of") if "as_of" in points else
            {"at": "as_of", "customers": 0, "transitions": []},
            "examples": examples,
        }


def _tier_at(timeline: list[tuple[dt.datetime, str]], at: dt.datetime) -> str:
    """The tier a timeline of (window end, tier after it) holds just after ``at``."""
    tier = ""
    for end, held in timeline:
        if end > at:
            break
        tier = held
    return tier


def _describe(q: Qualification | None) -> dict[str, Any] | None:
    if q is None:
        return None
    return {"measure": q.measure, "window": q.window, "thresholds": dict(q.thresholds),
            "downgrade": q.downgrade, "keep": q.keep}


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
