"""Tier qualification's pure arithmetic: windows, the tier earned, and status at window ends.

A programme's ``[qualification]`` (:class:`dsl.schema.schema.Qualification`, docs/state.md
"Tiers") counts what awards of a measure earned in a window. This module holds what needs no
store: the window containing an instant (:func:`window_at`), the end of the window after
(:func:`next_end`), how long a tier reached is kept (:func:`kept_until`), the tier an amount
reaches (:func:`tier_for`, in millionths as the ledger stores them) and, for ``loyalty
replay``, a customer's status at each window's end from what each window earned
(:func:`statuses`). The service's tier status (:mod:`service.state.tiers`) calls the same
functions, so a replay and the service judge a window alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from dsl.schema.schema import Qualification

__all__ = ["SCALE", "Judge", "add_months", "kept_until", "next_end", "rank", "statuses", "tier_for",
           "to_units", "window_at"]

#: Amounts are counted in millionths (the ledger's unit): exact for every currency's decimals.
SCALE = 10**6


def to_units(amount: int | Decimal) -> int:
    """``amount`` in millionths (an amount of at most 6 decimals, as every currency holds)."""
    return int(Decimal(amount) * SCALE)


def add_months(at: dt.datetime, months: int) -> dt.datetime:
    """``at`` moved by ``months`` calendar months, the day clamped to the month's length."""
    month = at.month - 1 + months
    year, month = at.year + month // 12, month % 12 + 1
    for day in range(at.day, 27, -1):
        try:
            return at.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return at.replace(year=year, month=month, day=min(at.day, 28))


def window_at(q: Qualification, zone: str, at: dt.datetime,
              anchor: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    """The window containing ``at``: [start, end). A rolling window ends just after ``at``;
    an anniversary year counts from ``anchor`` (the customer's first award of the measure)."""
    if q.window == "rolling 12 months":
        end = at + dt.timedelta(microseconds=1)
        return add_months(at, -12), end
    if q.window == "anniversary year" and anchor is not None:
        years = at.year - anchor.year
        start = add_months(anchor, 12 * years)
        if start > at:
            start = add_months(anchor, 12 * (years - 1))
        return start, add_months(start, 12)
    tz = ZoneInfo(zone)
    year = at.astimezone(tz).year
    start = dt.datetime(year, 1, 1, tzinfo=tz).astimezone(dt.UTC)
    return start, dt.datetime(year + 1, 1, 1, tzinfo=tz).astimezone(dt.UTC)


@lru_cache(maxsize=4096)  # a replay asks for the same few window ends for every customer
def next_end(q: Qualification, zone: str, end: dt.datetime) -> dt.datetime:
    """The end of the window that starts at ``end``."""
    if q.window == "calendar year":
        tz = ZoneInfo(zone)
        local = end.astimezone(tz)
        return dt.datetime(local.year + 1, 1, 1, tzinfo=tz).astimezone(dt.UTC)
    return add_months(end, 12)


def kept_until(q: Qualification, zone: str, at: dt.datetime, window_end: dt.datetime) -> dt.datetime:
    """How long a tier reached at ``at`` in the window ending at ``window_end`` is kept."""
    end = add_months(at, 12) if q.window == "rolling 12 months" else window_end
    return next_end(q, zone, end) if q.keep else end


def rank(q: Qualification, tier: str) -> int:
    """The tier's place among the thresholds (lowest 0), -1 for none."""
    names = [t for t, _ in q.thresholds]
    return names.index(tier) if tier in names else -1


def tier_for(q: Qualification, units: int) -> str:
    """The highest tier whose threshold ``units`` (millionths) reach, "" for none."""
    reached = ""
    for tier, threshold in _thresholds(q):
        if units >= threshold:
            reached = tier
    return reached


@lru_cache(maxsize=64)
def _thresholds(q: Qualification) -> tuple[tuple[str, int], ...]:
    return tuple((tier, to_units(threshold)) for tier, threshold in q.thresholds)


def statuses(q: Qualification, zone: str, earned: Mapping[dt.datetime, int],
             as_of: dt.datetime) -> tuple[list[tuple[dt.datetime, str]], str]:
    """A customer's tier after each window end up to ``as_of``, and at ``as_of`` itself, as the
    service would hold it (:class:`Judge`; one judge serves many customers)."""
    return Judge(q, zone, as_of).statuses(earned)


class Judge:
    """Tier status at window ends for one qualification, zone and as-of instant.

    ``earned`` maps the end of each (calendar or anniversary) window to the units of the
    measure earned in it; windows not in it earned nothing. Within a window the tier rises as
    soon as what it earned reaches a threshold (Apply's upgrade; what the window earned by its
    end is the highest tier it reached), kept to the window's end or one window more with
    ``keep``; at ``kept_until`` the window that ended there is judged
    (:func:`service.state.tiers.settle`): earned enough, kept one more window; otherwise one
    step down (never below what was earned) or to what was earned. A rolling window has no
    fixed ends: only ``as_of`` is judged, by the 12 months up to it (``earned`` then holds one
    entry). The status before the first window is none.
    """

    def __init__(self, q: Qualification, zone: str, as_of: dt.datetime) -> None:
        self.q, self.zone, self.as_of = q, zone, as_of
        self.thresholds = _thresholds(q)
        self.names = [t for t, _ in q.thresholds]
        self.rank = {t: i for i, t in enumerate(self.names)}
        self.rank[""] = -1
        self._next: dict[dt.datetime, dt.datetime] = {}

    def tier(self, units: int) -> str:
        """The highest tier ``units`` reach ("" none): :func:`tier_for`."""
        reached = ""
        for tier, threshold in self.thresholds:
            if units >= threshold:
                reached = tier
        return reached

    def next(self, end: dt.datetime) -> dt.datetime:
        """:func:`next_end`, remembered."""
        found = self._next.get(end)
        if found is None:
            found = self._next[end] = next_end(self.q, self.zone, end)
        return found

    def statuses(self, earned: Mapping[dt.datetime, int]) -> tuple[list[tuple[dt.datetime, str]], str]:
        """(window end, tier after it) for each window end up to ``as_of``, and the tier at it."""
        q, rank, as_of = self.q, self.rank, self.as_of
        if q.window == "rolling 12 months":
            return [], self.tier(sum(earned.values()))
        if not earned:
            return [], ""
        end = min(earned)
        tier, kept = "", end
        out: list[tuple[dt.datetime, str]] = []
        for _ in range(1000):  # bounded: a thousand windows is centuries of history
            claimed = self.tier(earned.get(end, 0))
            if claimed:
                keep_to = self.next(end) if q.keep else end
                if not tier:
                    tier, kept = claimed, keep_to
                elif rank[claimed] > rank[tier]:
                    tier, kept = claimed, max(keep_to, kept)
                elif claimed == tier and keep_to > kept:
                    kept = keep_to
            if end > as_of:  # the window containing as_of: its upgrades so far, no judgement
                return out, tier
            if tier and kept <= end:
                if rank[claimed] < rank[tier]:
                    stepped = self.names[rank[tier] - 1] if rank[tier] > 0 else ""
                    tier = claimed if q.downgrade == "to earned" else max(
                        claimed, stepped, key=rank.__getitem__)
                kept = self.next(end)
            out.append((end, tier))
            if end == as_of:
                return out, tier
            end = self.next(end)
        return out, tier
