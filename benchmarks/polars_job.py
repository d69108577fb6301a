"""The replay baseline: the hand-written Polars job a data engineer would write instead.

"What would the GOLD bonus change cost?" over a Parquet history of airline requests
(``benchmarks/history.py``): the airline policy before and after the change
(:data:`benchmarks.history.AIRLINE_CHANGES`) as vectorised Polars expressions, the totals,
the changed events and the per-customer deltas. No project types: it reads the history's
own columns (the proto3 JSON mapping, strings), parses what it reads, and looks distances
up once per distinct route with the same airport table the policy uses.

``run(path)`` returns :class:`JobFigures`; ``benchmarks/test_replay.py`` holds them equal
to ``loyalty replay``'s and times both in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsl.schema.airports import great_circle_miles

CAP = 25_000
MINIMUM = 500
CABIN = {"first": 75, "business": 50, "premium_economy": 25}
ELITE_BEFORE = {"MVP": 50, "GOLD": 100, "PLATINUM": 125, "75K": 125}
ELITE_AFTER = {**ELITE_BEFORE, "GOLD": 75}


@dataclass(frozen=True)
class JobFigures:
    """What the job reports: miles before and after, changed events and customers."""

    miles_before: int
    miles_after: int
    events: int
    events_changed: int
    customers_changed: int


def _tenure(pl: Any, since: Any, on: Any) -> Any:
    day = pl.when((since.dt.month() == 2) & (since.dt.day() == 29) & ~on.dt.is_leap_year()) \
        .then(28).otherwise(since.dt.day())
    before = (on.dt.month() < since.dt.month()) | \
        ((on.dt.month() == since.dt.month()) & (on.dt.day() < day))
    years = on.dt.year().cast(pl.Int64) - since.dt.year().cast(pl.Int64) - before.cast(pl.Int64)
    return pl.when(on <= since).then(0).otherwise(years)


def _miles(pl: Any, elite: dict[str, int], decade_years: int) -> Any:
    base = pl.col("base")
    tenure = pl.col("tenure")
    cabin = pl.col("cabin").replace_strict(CABIN, default=0, return_dtype=pl.Int64)
    bonus = pl.col("tier").replace_strict(elite, default=0, return_dtype=pl.Int64)
    decade = pl.when(tenure >= decade_years).then(10).otherwise(0)
    return pl.min_horizontal(base * (100 + cabin + bonus + decade) // 100, CAP)


def run(path: Path | str) -> JobFigures:
    """The job over the Parquet history at ``path``."""
    import polars as pl

    t = pl.col("event.time")
    offset = t.str.extract(r"([+-]\d{2}):(\d{2})$", 1).cast(pl.Int64).fill_null(0)
    minutes = t.str.extract(r"[+-]\d{2}:(\d{2})$", 1).cast(pl.Int64).fill_null(0)
    local = t.str.slice(0, 19).str.to_datetime("%Y-%m-%dT%H:%M:%S", time_unit="us")
    utc = local - pl.duration(minutes=offset * 60 + offset.sign() * minutes)
    frame = pl.scan_parquet(path).select(
        pl.col("customer.id").alias("customer"),
        pl.col("customer.memberSince").str.to_date("%Y-%m-%d").alias("since"),
        pl.col("customer.tier").alias("tier"),
        utc.dt.date().alias("date"),
        pl.col("event.flight.origin").alias("origin"),
        pl.col("event.flight.destination").alias("destination"),
        pl.col("event.flight.distanceMiles").cast(pl.Int64).alias("distance"),
        pl.col("event.flight.cabin").fill_null("economy").alias("cabin"),
        pl.col("event.flight.partner").fill_null(False).alias("partner"),
    ).collect()
    routes = frame.filter(pl.col("distance").is_null()).select("origin", "destination").unique()
    routes = routes.with_columns(pl.Series("looked_up", [great_circle_miles(a, b) for a, b in
                                                         routes.iter_rows()], dtype=pl.Int64))
    events = frame.height
    frame = frame.join(routes, on=["origin", "destination"], how="left")
    flown = pl.coalesce("distance", "looked_up")
    frame = frame.with_columns(
        pl.when(pl.col("partner")).then(flown).otherwise(pl.max_horizontal(flown, MINIMUM)).alias("base"),
        _tenure(pl, pl.col("since"), pl.col("date")).alias("tenure"),
    ).filter(pl.col("date") >= pl.date(2026, 1, 1))
    frame = frame.with_columns(
        _miles(pl, ELITE_BEFORE, 10).alias("before"), _miles(pl, ELITE_AFTER, 8).alias("after"),
        # The new rule qualifies first-class customers of 5 years for PLATINUM; the wider
        # decade rule grants its benefit and tag to more: both change the decision.
        ((pl.col("cabin") == "first") & (pl.col("tenure") >= 5)).alias("qualifies"),
        ((pl.col("tenure") >= 8) & (pl.col("tenure") < 10)).alias("newly_decade"),
    )
    changed = frame.filter((pl.col("before") != pl.col("after")) | pl.col("qualifies")
                           | pl.col("newly_decade"))
    totals = frame.select(pl.col("before").sum(), pl.col("after").sum()).row(0)
    return JobFigures(int(totals[0]), int(totals[1]), events, changed.height,
                      changed.select(pl.col("customer").n_unique()).item())
