"""Replaying a columnar chunk with the columnar backend: both sets in one Polars plan.

:func:`replay_columns` takes the rows of a Parquet or CSV chunk that the columnar input
stage vouches for (:func:`dsl.backend.columnar.prepare_chunk`), evaluates the old and the
new set over their columns (:mod:`dsl.backend.columnar`) and turns the result into the
same :class:`~dsl.tools.replay_figures.Replay` figures the row path computes. Every other
row (anything unusual, an event kind whose policies the backend refuses, a lookup that
fails) is left for the row path, by position; the figures of both merge.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from dsl.backend.columnar import (
    ColumnarPair,
    compile_pair,
    evaluate_set,
    join_lookups,
    polars_or_none,
    prepare_chunk,
    with_levels,
)
from dsl.policyset import PolicySet
from dsl.tools.history import Chunk
from dsl.tools.replay_figures import MAX_EXAMPLES, Replay

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
                   currencies: tuple[str, ...]) -> tuple[Replay, list[int]]:
    """The figures of the rows the columnar path takes, and the positions it leaves."""
    pl = polars_or_none()
    assert pl is not None
    prepared = prepare_chunk(pair, old, chunk.batch, chunk.form == "csv")
    out = Replay(currencies=currencies)
    for note, rows in prepared.notes.items():
        out.row_path[note] += rows
    rest = list(prepared.rest)
    if prepared.frame.height == 0:
        return out, rest
    frame = join_lookups(pl, prepared.frame, pair).lazy()
    kinds = set(prepared.frame["kind"].unique().to_list())
    names = (pair.tag_names, pair.benefit_names)
    columns_old, fired_old, look_old = evaluate_set(pl, pair.old, "b", kinds, *names)
    columns_new, fired_new, look_new = evaluate_set(pl, pair.new, "a", kinds, *names)
    frame = with_levels(frame, columns_old + columns_new)
    lookups = sorted(set(look_old + look_new))
    decimals = pair.old.decimals
    keep = ["position", "date", "customer_id", "event_id"]
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
    changed_award = pl.any_horizontal([pl.col(f"b:award:{c}") != pl.col(f"a:award:{c}") for c in decimals])
    changed = (changed_award | pl.col("b:tier").ne_missing(pl.col("a:tier"))
               | (pl.col("b:tags") != pl.col("a:tags"))
               | (pl.col("b:benefit_order") != pl.col("a:benefit_order")))
    result = result.with_columns(changed.alias("changed"),
                                 pl.col("date").dt.strftime("%Y-%m").alias("month"))
    # Totals and months: only currencies a decision awarded (a zero award is dropped).
    sums = result.select([pl.col(a).sum() for a in awards]).row(0, named=True)
    for tag, totals in (("b", out.totals_before), ("a", out.totals_after)):
        for cur, places in decimals.items():
            col = f"{tag}:award:{cur}"
            if int((result[col] != 0).sum()):
                totals[cur] = _amount(int(sums[col]), places)
    by_month = result.group_by("month").agg(
        [pl.col(a).sum() for a in awards] + [(pl.col(a) != 0).any().alias(f"any:{a}") for a in awards])
    for row in by_month.iter_rows(named=True):
        month: dict[str, list[Any]] = {}
        for cur, places in decimals.items():
            b, a = f"b:award:{cur}", f"a:award:{cur}"
            if row[f"any:{b}"] or row[f"any:{a}"]:  # a side that awarded nothing adds 0, as rows do
                month[cur] = [_amount(int(row[b]), places) if row[f"any:{b}"] else 0,
                              _amount(int(row[a]), places) if row[f"any:{a}"] else 0]
        if month:
            into = out.months.setdefault(row["month"], {})
            for cur, pair_ in month.items():
                mine = into.setdefault(cur, [0, 0])
                mine[0] += pair_[0]
                mine[1] += pair_[1]
    for cols, counter in ((fired_old, out.fired_before), (fired_new, out.fired_after)):
        if cols:
            counts = result.select([pl.col(c).sum() for c, _ in cols]).row(0)
            for (_, key), count in zip(cols, counts, strict=True):
                if count:
                    counter[key] += int(count)
    bits = list(pair.benefit_names.items())
    if bits:
        b, a = pl.col("b:benefits"), pl.col("a:benefits")
        counts = result.select(
            [((b // (1 << i)) % 2).sum().alias(f"b{i}") for _, i in bits]
            + [((a // (1 << i)) % 2).sum().alias(f"a{i}") for _, i in bits]
            + [(((a // (1 << i)) % 2) * (1 - (b // (1 << i)) % 2)).sum().alias(f"g{i}") for _, i in bits]
            + [(((b // (1 << i)) % 2) * (1 - (a // (1 << i)) % 2)).sum().alias(f"l{i}") for _, i in bits]
        ).row(0, named=True)
        for name, i in bits:
            for key, counter in ((f"b{i}", out.benefits_before), (f"a{i}", out.benefits_after)):
                if counts[key]:
                    counter[name] += int(counts[key])
            for key, move in ((f"g{i}", "gained"), (f"l{i}", "lost")):
                if counts[key]:
                    out.benefit_moves[(name, move)] += int(counts[key])
    changes = result.filter(pl.col("changed"))
    out.changed += changes.height
    if changes.height:
        tiers = changes.filter(pl.col("b:tier").ne_missing(pl.col("a:tier")))
        for b, a, count in tiers.group_by("b:tier", "a:tier").len().iter_rows():
            out.tiers[(b, a)] += int(count)
        deltas = [(pl.col(f"a:award:{c}") - pl.col(f"b:award:{c}")).alias(c) for c in decimals]
        # A currency either decision awarded makes the row path's delta a Decimal for a
        # currency with decimals, even when it nets to zero ("0.00" in the report, not 0).
        awarded = [((pl.col(f"a:award:{c}") != 0) | (pl.col(f"b:award:{c}") != 0)).any()
                   .alias(f"awarded:{c}") for c in decimals]
        per_customer = changes.group_by("customer_id").agg(
            [pl.len().alias("changed_events")] + [d.sum() for d in deltas] + awarded)
        index = {c: i + 1 for i, c in enumerate(currencies)}
        for row in per_customer.iter_rows(named=True):
            sums_ = [0] * (len(currencies) + 1)
            sums_[0] = int(row["changed_events"])
            for cur, places in decimals.items():
                if row[f"awarded:{cur}"]:
                    sums_[index[cur]] = _amount(int(row[cur]), places)
            out.customers[str(row["customer_id"] or "")] = sums_
        for row in changes.sort("position").head(MAX_EXAMPLES).iter_rows(named=True):
            position = int(row["position"])
            out.examples.append(((chunk.number, position), {
                "where": f"{chunk.file}:row {chunk.first + position}" if chunk.form != "csv"
                else f"{chunk.file}:line {chunk.first + position + 1}",
                "customer": str(row["customer_id"] or ""), "event": str(row["event_id"] or ""),
                "before": _summary(row, "b", decimals, pair), "after": _summary(row, "a", decimals, pair)}))
    return out, rest


def _summary(row: dict[str, Any], tag: str, decimals: dict[str, int], pair: ColumnarPair
             ) -> dict[str, Any]:
    from dsl.decision import plain

    awards = {cur: plain(_amount(int(row[f"{tag}:award:{cur}"]), places))
              for cur, places in sorted(decimals.items()) if row[f"{tag}:award:{cur}"]}
    benefits = sorted(name for name, i in pair.benefit_names.items() if row[f"{tag}:benefits"] >> i & 1)
    tags = sorted(name for name, i in pair.tag_names.items() if row[f"{tag}:tags"] >> i & 1)
    return {"awards": awards, "benefits": benefits, "tier": row[f"{tag}:tier"], "tags": tags}
