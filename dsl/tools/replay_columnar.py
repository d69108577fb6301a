"""Replaying a columnar chunk with the columnar backend: both sets in one Polars plan.

:func:`replay_columns` takes the rows of a Parquet or CSV chunk that the columnar input
stage vouches for (:func:`dsl.backend.columnar.prepare_chunk`), evaluates the old and the
new set over their columns (:mod:`dsl.backend.columnar`) and turns the result into the
same :class:`~dsl.tools.replay_figures.Replay` figures the row path computes. Every other
row (anything unusual, an event kind whose policies the backend refuses, a lookup that
fails) is left for the row path, by position; the figures of both merge.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from dsl.backend.columnar import (
    ColumnarPair,
    compile_pair,
    evaluate_set,
    join_lookups,
    levels,
    polars_or_none,
    prepare_chunk,
)
from dsl.policyset import PolicySet
from dsl.schema.schema import parse_datetime
from dsl.tools.history import Chunk
from dsl.tools.replay_figures import MAX_EXAMPLES, Replay
from dsl.tools.replay_ledger import Ledger, new_ledger

__all__ = ["columnar_pair", "replay_columns"]

_PAIRS: dict[tuple[int, int], ColumnarPair | None] = {}


def columnar_pair(old: PolicySet, new: PolicySet) -> ColumnarPair | None:
    """The two sets compiled for the columnar backend (once per pair of sets), or None."""
    key = (id(old), id(new))
    if key not in _PAIRS:
        if len(_PAIRS) > 8:
            _PAIRS.clear()
        _PAIRS[key] = compile_pair(old, new)
    return _PAIRS[key]


def _amount(value: int, places: int) -> int | Decimal:
    return value if places == 0 else Decimal(value).scaleb(-places)


def replay_columns(old: PolicySet, new: PolicySet, chunk: Chunk, pair: ColumnarPair,
                   currencies: tuple[str, ...], as_of: datetime | None = None
                   ) -> tuple[Replay, list[int]]:
    """The figures of the rows the columnar path takes, and the positions it leaves.

    The ledger's figures (expiry, tier status at ``as_of``) come from the same per-row awards:
    the rows that award a currency that expires or the measure go through
    :meth:`~dsl.tools.replay_ledger.Ledger.add` one by one, as the row path's decisions do."""
    pl = polars_or_none()
    assert pl is not None
    prepared = prepare_chunk(pair, old, chunk.batch, chunk.form == "csv")
    out = Replay(currencies=currencies, ledger=new_ledger(old, new, as_of))
    for note, rows in prepared.notes.items():
        out.row_path[note] += rows
    rest = list(prepared.rest)
    if prepared.frame.height == 0:
        return out, rest
    frame = join_lookups(pl, prepared.frame, pair).lazy()
    kinds = frozenset(prepared.frame["kind"].unique().to_list())
    plan = pair.plans.get(kinds)
    if plan is None:  # the same expressions serve every chunk of these kinds
        names = (pair.tag_names, pair.benefit_names)
        columns_old, fired_old, look_old = evaluate_set(pl, pair.old, "b", set(kinds), *names)
        columns_new, fired_new, look_new = evaluate_set(pl, pair.new, "a", set(kinds), *names)
        plan = pair.plans[kinds] = (levels(columns_old + columns_new), fired_old, fired_new,
                                    sorted(set(look_old + look_new)))
    steps, fired_old, fired_new, lookups = plan
    for exprs in steps:
        frame = frame.with_columns(exprs)
    decimals = pair.old.decimals
    keep = ["position", "date", "customer_id", "event_id", "event_time"]
    awards = [f"{t}:award:{c}" for t in "ba" for c in decimals]
    wanted = keep + awards + ["b:tier", "a:tier", "b:tags", "a:tags", "b:benefits", "a:benefits",
                              "b:benefit_order", "a:benefit_order"]
    wanted += [c for c, _ in fired_old + fired_new] + lookups
    result = frame.select(wanted).collect()
    if lookups:
        failed = result.filter(pl.any_horizontal([pl.col(c).is_null() for c in lookups]))
        rest.extend(failed["position"].to_list())
        result = result.filter(pl.all_horizontal([pl.col(c).is_not_null() for c in lookups]))
    rest.sort()
    n = result.height
    out.events += n
    if n == 0:
        return out, rest
    if out.ledger is not None:
        _ledger_rows(pl, out.ledger, result, decimals)
    _figures(pl, out, chunk, result, pair, currencies, fired_old, fired_new)
    return out, rest


def _figures(pl: Any, out: Replay, chunk: Chunk, result: Any, pair: ColumnarPair,
             currencies: tuple[str, ...], fired_old: list[tuple[str, tuple[str, str]]],
             fired_new: list[tuple[str, tuple[str, str]]]) -> None:
    """Add the figures of ``result`` (the evaluated rows) to ``out``: every count and sum in
    one Polars run (:func:`polars.collect_all`), then a short pass over the aggregates."""
    decimals = pair.old.decimals
    awards = [f"{t}:award:{c}" for t in "ba" for c in decimals]
    changed_award = pl.any_horizontal([pl.col(f"b:award:{c}") != pl.col(f"a:award:{c}") for c in decimals])
    tier_moved = pl.col("b:tier").ne_missing(pl.col("a:tier"))
    changed = (changed_award | tier_moved | (pl.col("b:tags") != pl.col("a:tags"))
               | (pl.col("b:benefit_order") != pl.col("a:benefit_order")))
    # Months as (year, month) numbers: formatting every row's date is the slow part of
    # grouping by it; only the groups' keys are formatted, as the row path writes them.
    frame = result.with_columns(changed.alias("changed"), pl.col("date").dt.year().alias("year"),
                                pl.col("date").dt.month().alias("month")).lazy()
    bits = list(pair.benefit_names.items())
    b, a = pl.col("b:benefits"), pl.col("a:benefits")
    counts = frame.select(
        [pl.col(c).sum().alias(f"sum:{c}") for c in awards]
        + [(pl.col(c) != 0).any().alias(f"any:{c}") for c in awards]
        + [pl.col(c).sum() for c, _ in fired_old + fired_new]
        + [((b // (1 << i)) % 2).sum().alias(f"b{i}") for _, i in bits]
        + [((a // (1 << i)) % 2).sum().alias(f"a{i}") for _, i in bits]
        + [(((a // (1 << i)) % 2) * (1 - (b // (1 << i)) % 2)).sum().alias(f"g{i}") for _, i in bits]
        + [(((b // (1 << i)) % 2) * (1 - (a // (1 << i)) % 2)).sum().alias(f"l{i}") for _, i in bits]
        + [pl.col("changed").sum().alias("changed")])
    by_month = frame.group_by("year", "month").agg(
        [pl.col(c).sum() for c in awards] + [(pl.col(c) != 0).any().alias(f"any:{c}") for c in awards]
    ).with_columns(pl.date(pl.col("year"), pl.col("month"), 1).dt.strftime("%Y-%m").alias("label"))
    changes = frame.filter(pl.col("changed"))
    tiers = changes.filter(tier_moved).group_by("b:tier", "a:tier").len()
    # A currency either decision awarded makes the row path's delta a Decimal for a
    # currency with decimals, even when it nets to zero ("0.00" in the report, not 0).
    per_customer = changes.group_by("customer_id").agg(
        [pl.len().alias("changed_events")]
        + [x for c in decimals for x in (
            (pl.col(f"a:award:{c}") - pl.col(f"b:award:{c}")).sum().alias(f"delta:{c}"),
            ((pl.col(f"a:award:{c}") != 0) | (pl.col(f"b:award:{c}") != 0)).any().alias(f"awarded:{c}"))])
    examples = changes.sort("position").head(MAX_EXAMPLES)
    counts_, by_month_, tiers_, per_customer_, examples_ = pl.collect_all(
        [counts, by_month, tiers, per_customer, examples])
    row = counts_.row(0, named=True)
    for tag, totals in (("b", out.totals_before), ("a", out.totals_after)):
        for cur, places in decimals.items():
            col = f"{tag}:award:{cur}"
            if row[f"any:{col}"]:  # only currencies a decision awarded (a zero award is dropped)
                totals[cur] = _amount(int(row[f"sum:{col}"]), places)
    for cols, counter in ((fired_old, out.fired_before), (fired_new, out.fired_after)):
        for c, key in cols:
            if row[c]:
                counter[key] += int(row[c])
    for name, i in bits:
        for key, counter in ((f"b{i}", out.benefits_before), (f"a{i}", out.benefits_after)):
            if row[key]:
                counter[name] += int(row[key])
        for key, move in ((f"g{i}", "gained"), (f"l{i}", "lost")):
            if row[key]:
                out.benefit_moves[(name, move)] += int(row[key])
    for m in by_month_.iter_rows(named=True):
        month: dict[str, list[Any]] = {}
        for cur, places in decimals.items():
            b_, a_ = f"b:award:{cur}", f"a:award:{cur}"
            if m[f"any:{b_}"] or m[f"any:{a_}"]:  # a side that awarded nothing adds 0, as rows do
                month[cur] = [_amount(int(m[b_]), places) if m[f"any:{b_}"] else 0,
                              _amount(int(m[a_]), places) if m[f"any:{a_}"] else 0]
        if month:
            into = out.months.setdefault(m["label"], {})
            for cur, pair_ in month.items():
                mine = into.setdefault(cur, [0, 0])
                mine[0] += pair_[0]
                mine[1] += pair_[1]
    out.changed += int(row["changed"])
    if not row["changed"]:
        return
    for before, after, count in tiers_.iter_rows():
        out.tiers[(before, after)] += int(count)
    width = len(currencies) + 1
    index = {c: i + 1 for i, c in enumerate(currencies)}
    # Only the currencies some decision of the chunk awarded can have an awarded delta.
    slots = [(2 * j, index[cur], places) for j, (cur, places) in enumerate(decimals.items())
             if row[f"any:b:award:{cur}"] or row[f"any:a:award:{cur}"]]
    customers = out.customers
    for cid, events, *sums in per_customer_.iter_rows():
        mine: list[Any] = [0] * width
        mine[0] = events
        for j, i, places in slots:
            if sums[j + 1]:
                mine[i] = sums[j] if places == 0 else _amount(sums[j], places)
        customers[str(cid or "")] = mine
    for row in examples_.iter_rows(named=True):
        position = int(row["position"])
        out.examples.append(((chunk.number, position), {
            "where": f"{chunk.file}:row {chunk.first + position}" if chunk.form != "csv"
            else f"{chunk.file}:line {chunk.first + position + 1}",
            "customer": str(row["customer_id"] or ""), "event": str(row["event_id"] or ""),
            "before": _summary(row, "b", decimals, pair), "after": _summary(row, "a", decimals, pair)}))


def _ledger_rows(pl: Any, ledger: Ledger, result: Any, decimals: dict[str, int]) -> None:
    """Add the rows' awards of the currencies the ledger figures read to ``ledger``."""
    wanted = {c for rules in ledger.rules for c, _ in rules.validity}
    wanted |= {r.qualification.measure for r in ledger.rules if r.qualification is not None}
    read = [c for c in decimals if c in wanted]
    taken = 0
    if read:
        awarding = result.filter(pl.any_horizontal(
            [pl.col(f"{t}:award:{c}") != 0 for t in "ba" for c in read]))
        columns = [f"{t}:award:{c}" for t in "ba" for c in read]
        for row in awarding.select(["customer_id", "event_time", *columns]).iter_rows():
            cid, when, values = row[0], row[1], row[2:]
            at = when if isinstance(when, datetime) else parse_datetime(when)
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            half = len(read)
            before = {c: _amount(int(v), decimals[c]) for c, v in zip(read, values[:half], strict=True) if v}
            after = {c: _amount(int(v), decimals[c]) for c, v in zip(read, values[half:], strict=True) if v}
            ledger.add(str(cid or ""), at.astimezone(UTC), before, after, columnar=True)
            taken += 1
    ledger.columnar_events += result.height - taken


def _summary(row: dict[str, Any], tag: str, decimals: dict[str, int], pair: ColumnarPair
             ) -> dict[str, Any]:
    from dsl.decision import plain

    awards = {cur: plain(_amount(int(row[f"{tag}:award:{cur}"]), places))
              for cur, places in sorted(decimals.items()) if row[f"{tag}:award:{cur}"]}
    benefits = sorted(name for name, i in pair.benefit_names.items() if row[f"{tag}:benefits"] >> i & 1)
    tags = sorted(name for name, i in pair.tag_names.items() if row[f"{tag}:tags"] >> i & 1)
    return {"awards": awards, "benefits": benefits, "tier": row[f"{tag}:tier"], "tags": tags}
