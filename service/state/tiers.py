"""Tier status from the ledger (docs/state.md, "Tiers"): reached on Apply, lowered at a window's end.

A programme's ``[qualification]`` (:class:`dsl.schema.schema.Qualification`) names a currency
whose awards count toward status: what was *earned* in the window (``award`` lines less
``reverse`` lines; spending and expiry never reduce it), the thresholds per tier, the window
(calendar year in the programme's zone, rolling 12 months, or the anniversary year counted from
the customer's first award of the measure) and what the window's end does.

A customer's status is one row of ``tier_status``: tier, since, kept until. Apply (in its own
transaction, the customer locked: :func:`upgrade`) raises the tier when the total earned in the
window containing the event reaches a higher threshold, or extends ``kept_until`` when the same
tier is earned again. A tier reached in a window is kept to that window's end, or one window
more with ``keep = "until the end of next year"``. At ``kept_until`` the job (:func:`settle`,
run with the expiry job) judges the window that ended there: earned enough for the tier, it is
kept one more window; otherwise it is lowered one step (``downgrade = "one step"``, never below
what was earned) or to what was earned (``"to earned"``), held through the next window; below
the lowest tier the row is deleted. One transaction per customer; a second run finds nothing due.

The arithmetic of windows and thresholds is :mod:`dsl.tiers`, which ``loyalty replay`` uses too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dsl.schema.schema import Qualification
from dsl.tiers import add_months, next_end, rank, tier_for, window_at
from dsl.tiers import kept_until as _kept_until
from service.state.api import check_id, check_instant
from service.state.ledger import CurrencyBalance, balance_body, from_units, to_units

_SQL = {
    "earned": (
        "SELECT COALESCE(SUM(amount), 0) FROM ledger_lines WHERE customer_id = ? AND currency = ? "
        "AND kind IN ('award', 'reverse') AND at >= ? AND at < ?"
    ),
    "first_award": (
        "SELECT MIN(at) FROM ledger_lines WHERE customer_id = ? AND currency = ? AND kind = 'award'"
    ),
    "status": "SELECT tier, since, kept_until FROM tier_status WHERE customer_id = ?",
    "insert": "INSERT INTO tier_status (customer_id, tier, since, kept_until) VALUES (?, ?, ?, ?)",
    "update": "UPDATE tier_status SET tier = ?, since = ?, kept_until = ? WHERE customer_id = ?",
    "delete": "DELETE FROM tier_status WHERE customer_id = ?",
    "due": (
        "SELECT customer_id FROM tier_status WHERE kept_until <= ? AND customer_id > ? "
        "ORDER BY customer_id LIMIT ?"
    ),
}
_PG = {name: text.replace("?", "%s") for name, text in _SQL.items()}
#: What many customers earned in one window, one statement (customers without lines: no row).
_EARNED_MANY = {
    "sqlite": (
        "SELECT customer_id, SUM(amount) FROM ledger_lines WHERE customer_id IN "
        "(SELECT value FROM json_each(?)) AND currency = ? AND kind IN ('award', 'reverse') "
        "AND at >= ? AND at < ? GROUP BY customer_id"
    ),
    "postgresql": (
        "SELECT customer_id, SUM(amount) FROM ledger_lines WHERE customer_id = ANY(%s) "
        "AND currency = %s AND kind IN ('award', 'reverse') AND at >= %s AND at < %s GROUP BY customer_id"
    ),
}


def _sql(store: Any, name: str) -> str:
    return _PG[name] if store.backend == "postgresql" else _SQL[name]


@dataclass(frozen=True, slots=True)
class TierCheck:
    """A ledger posting of Apply: look at the customer's tier after an award of the measure."""

    qualification: Qualification
    zone: str
    at: dt.datetime

    def post_in(self, store: Any, db: Any, customer_id: str) -> None:
        """Run in the ledger's posting, after the event's lots are written (:func:`upgrade`)."""
        upgrade(store, db, customer_id, self)

    @staticmethod
    def post_many_in(store: Any, db: Any, checks: Sequence[tuple[str, TierCheck]]) -> None:
        """Run a batch's checks in order, after all its lots are written (:func:`upgrade_many`)."""
        upgrade_many(store, db, checks)


@dataclass(frozen=True, slots=True)
class Status:
    """A customer's tier, and where they stand in the current window (GetBalance)."""

    tier: str
    since: dt.datetime | None
    kept_until: dt.datetime | None
    window: str
    window_start: dt.datetime
    window_end: dt.datetime
    earned: Any
    #: What is still to earn in the current window to keep the tier / reach the next ("" none).
    to_keep: Any
    next_tier: str
    to_next: Any


@dataclass(frozen=True, slots=True)
class SettleReport:
    """What one run of the tier job did: customers looked at, tiers lowered, rows removed."""

    seen: int
    lowered: int
    removed: int


# -- reading inside a transaction -----------------------------------------------------------------


def _earned(store: Any, db: Any, customer_id: str, q: Qualification, start: dt.datetime,
            end: dt.datetime) -> int:
    at = store._at_param
    db.execute(_sql(store, "earned"), (customer_id, q.measure, at(start), at(end)))
    return int(db.fetchone()[0])


def _earned_many(store: Any, db: Any, customer_ids: Sequence[str], measure: str, start: dt.datetime,
                 end: dt.datetime) -> dict[str, int]:
    at = store._at_param
    db.execute(_EARNED_MANY[store.backend], (store._ids_param(customer_ids), measure, at(start), at(end)))
    return {customer_id: int(total) for customer_id, total in db.fetchall()}


def _anchor(store: Any, db: Any, customer_id: str, q: Qualification) -> dt.datetime | None:
    if q.window != "anniversary year":
        return None
    db.execute(_sql(store, "first_award"), (customer_id, q.measure))
    row = db.fetchone()
    return store._at_value(row[0]) if row and row[0] is not None else None


def _status(store: Any, db: Any, customer_id: str) -> tuple[str, dt.datetime, dt.datetime] | None:
    db.execute(_sql(store, "status"), (customer_id,))
    row = db.fetchone()
    return None if row is None else (row[0], store._at_value(row[1]), store._at_value(row[2]))


# -- Apply: upgrades ---------------------------------------------------------------------------------


def upgrade(store: Any, db: Any, customer_id: str, check: TierCheck) -> None:
    """Raise (or extend) the customer's tier in Apply's transaction (the customer locked)."""
    upgrade_many(store, db, [(customer_id, check)])


def upgrade_many(store: Any, db: Any, checks: Sequence[tuple[str, TierCheck]]) -> None:
    """:func:`upgrade` for each (customer, check) in order, in one transaction whose lots are
    all written before the first check (``ledger.post_many``): the checks write only the status
    row, so a customer's anchor, status and each window's earned total are read once (a window
    shared by several customers for all of them in one statement) and the status then followed
    in memory. The rows written are those of the checks one by one."""
    anchors: dict[tuple[str, str, str], dt.datetime | None] = {}
    totals: dict[tuple[str, str, dt.datetime, dt.datetime], int] = {}
    statuses: dict[str, tuple[str, dt.datetime, dt.datetime] | None] = {}
    p = store._at_param
    # A window that does not hang on the customer (a calendar year; a rolling one ending at the
    # same instant) checked for several customers: their totals in one statement.
    shared: dict[tuple[str, dt.datetime, dt.datetime], dict[str, None]] = {}
    windows: list[tuple[dt.datetime, dt.datetime] | None] = []  # each check's, None: per customer
    for customer_id, check in checks:
        q = check.qualification
        if q.window == "anniversary year":
            windows.append(None)
            continue
        start, end = window_at(q, check.zone, check_instant("time", check.at), None)
        windows.append((start, end))
        shared.setdefault((q.measure, start, end), {})[customer_id] = None
    for (measure, start, end), customers in shared.items():
        if len(customers) > 1:
            earned = _earned_many(store, db, list(customers), measure, start, end)
            for customer_id in customers:
                totals[(customer_id, measure, start, end)] = earned.get(customer_id, 0)
    for (customer_id, check), window in zip(checks, windows, strict=True):
        q, at = check.qualification, check_instant("time", check.at)
        if window is None:
            anchor_key = (customer_id, q.measure, q.window)
            if anchor_key in anchors:
                anchor = anchors[anchor_key]
            else:
                anchor = anchors[anchor_key] = _anchor(store, db, customer_id, q)
            window = window_at(q, check.zone, at, anchor)
        start, end = window
        total_key = (customer_id, q.measure, start, end)
        total = totals.get(total_key)
        if total is None:
            total = totals[total_key] = _earned(store, db, customer_id, q, start, end)
        claimed = tier_for(q, total)
        if not claimed:
            continue
        kept = _kept_until(q, check.zone, at, end)
        if customer_id in statuses:
            current = statuses[customer_id]
        else:
            current = statuses[customer_id] = _status(store, db, customer_id)
        if current is None:
            db.execute(_sql(store, "insert"), (customer_id, claimed, p(at), p(kept)))
            statuses[customer_id] = (claimed, at, kept)
        elif rank(q, claimed) > rank(q, current[0]):
            kept = max(kept, current[2])
            db.execute(_sql(store, "update"), (claimed, p(at), p(kept), customer_id))
            statuses[customer_id] = (claimed, at, kept)
        elif claimed == current[0] and kept > current[2]:
            db.execute(_sql(store, "update"), (claimed, p(current[1]), p(kept), customer_id))
            statuses[customer_id] = (claimed, current[1], kept)


# -- the job: downgrades at a window's end -------------------------------------------------------------


def settle(store: Any, q: Qualification, zone: str, as_of: dt.datetime, *, page: int = 1000) -> SettleReport:
    """Judge every status whose ``kept_until`` is at or before ``as_of``; idempotent."""
    horizon = check_instant("as_of", as_of)
    seen = lowered = removed = 0
    after = ""

    def due(db: Any) -> list[str]:
        db.execute(_sql(store, "due"), (store._at_param(horizon), after, page))
        return [r[0] for r in db.fetchall()]

    def one(customer_id: str) -> str:
        outcome: str = store._run("tiers", lambda db: _settle_one(store, db, customer_id, q, zone, horizon))
        return outcome

    while True:
        customers: list[str] = store._run("tiers", due)
        for customer_id in customers:
            outcome = one(customer_id)
            seen += 1
            lowered += outcome in ("lowered", "removed")
            removed += outcome == "removed"
        if len(customers) < page:
            return SettleReport(seen, lowered, removed)
        after = customers[-1]


def _settle_one(store: Any, db: Any, customer_id: str, q: Qualification, zone: str,
                horizon: dt.datetime) -> str:
    store._lock_customers(db, [customer_id])
    current = _status(store, db, customer_id)
    if current is None or current[2] > horizon:
        return "unchanged"  # another run got here first
    tier, since, kept_until = current
    names = [t for t, _ in q.thresholds]
    anchor = _anchor(store, db, customer_id, q)
    outcome = "kept"
    for _ in range(1000):  # a job years late lowers a step per window; bounded
        if kept_until > horizon:
            break
        if q.window == "rolling 12 months":
            start = add_months(kept_until, -12)
        else:
            start = window_at(q, zone, kept_until - dt.timedelta(microseconds=1), anchor)[0]
        claim = tier_for(q, _earned(store, db, customer_id, q, start, kept_until))
        if rank(q, claim) < rank(q, tier):
            stepped = names[rank(q, tier) - 1] if rank(q, tier) > 0 else ""
            new = claim if q.downgrade == "to earned" else max(claim, stepped, key=lambda t: rank(q, t))
            since, tier, outcome = kept_until, new, "lowered"
            if not tier:
                db.execute(_sql(store, "delete"), (customer_id,))
                return "removed"
        kept_until = next_end(q, zone, kept_until)
    p = store._at_param
    db.execute(_sql(store, "update"), (tier, p(since), p(kept_until), customer_id))
    return outcome


# -- GetBalance ------------------------------------------------------------------------------------------


def status(store: Any, customer_id: str, q: Qualification, zone: str, as_of: dt.datetime) -> Status:
    """The customer's tier and progress in the window containing ``as_of``."""
    result: Status = store._reading("tier status", _status_body(store, customer_id, q, zone, as_of))
    return result


def balance_and_status(store: Any, customer_id: str, as_of: dt.datetime, q: Qualification | None,
                       zone: str) -> tuple[list[CurrencyBalance], Status | None]:
    """:func:`service.state.ledger.balance` and, when the programme qualifies tiers,
    :func:`status`, in one read: one snapshot (the progress is of the balance's lines), and
    one connection and transaction instead of two (GetBalance's round trips to PostgreSQL)."""
    balances = balance_body(store, customer_id, as_of)
    tier = _status_body(store, customer_id, q, zone, as_of) if q is not None else None

    def body(db: Any) -> tuple[list[CurrencyBalance], Status | None]:
        return balances(db), tier(db) if tier is not None else None

    result: tuple[list[CurrencyBalance], Status | None] = store._reading("balance", body)
    return result


def _status_body(store: Any, customer_id: str, q: Qualification, zone: str,
                 as_of: dt.datetime) -> Callable[[Any], Status]:
    check_id("customer_id", customer_id)
    at = check_instant("as_of", as_of)

    def body(db: Any) -> Status:
        start, end = window_at(q, zone, at, _anchor(store, db, customer_id, q))
        earned = _earned(store, db, customer_id, q, start, end)
        current = _status(store, db, customer_id)
        tier, since, kept = current if current is not None else ("", None, None)
        thresholds: Sequence[tuple[str, Any]] = q.thresholds
        to_keep: Any = ""
        if tier:
            need = to_units("threshold", dict(thresholds)[tier]) if tier in dict(thresholds) else 0
            to_keep = from_units(max(need - earned, 0))
        higher = [(t, v) for t, v in thresholds if rank(q, t) > rank(q, tier)]
        next_tier, to_next = ("", "") if not higher else (
            higher[0][0], from_units(max(to_units("threshold", higher[0][1]) - earned, 0)))
        return Status(tier, since, kept, q.window, start, end, from_units(earned), to_keep, next_tier,
                      to_next)

    return body

