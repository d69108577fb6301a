"""The ``loyalty replay`` report for people: text, and one self-contained HTML file with plots.

The HTML file has no external resources: its plots are SVG drawn by matplotlib and
embedded inline, its style is inline, so it can be mailed or attached to a review.
"""

from __future__ import annotations

import html
import io
import re
from decimal import Decimal
from typing import Any

from dsl.tools.replay import Replay


def _amount(value: Any) -> str:
    return f"{value:+}" if isinstance(value, int | Decimal) else str(value)


def render_text(result: Replay, old: str, old_revision: str, new: str, new_revision: str,
                history: str, seconds: float | None = None) -> list[str]:
    """The report as lines of text."""
    lines = [f"old {old} ({old_revision}), new {new} ({new_revision})",
             f"history {history}: {result.events} events"
             + (f" in {seconds:.1f} s ({result.events / seconds:,.0f} events/s)"
                if seconds else "")]
    if result.bad_rows:
        lines.append(f"rows left out (not valid requests): {result.bad_rows}")
    if result.columnar_events:
        lines.append(f"columnar backend: {result.columnar_events} of {result.events} events")
    for why, count in sorted(result.row_path.items()):
        lines.append(f"  row path for {count} events: {why}")
    share = f" ({100 * result.changed / result.events:.1f}%)" if result.events else ""
    lines.append(f"decisions changed: {result.changed} events{share}, "
                 f"{result.customers_changed} customers")
    for currency in result.awarded():
        r = result.currency_report(currency)
        lines.append(f"{currency}: {r['before']} -> {r['after']} ({_amount(r['delta'])})")
        if r["percentiles"]:
            lines.append(f"  per affected customer: {r['customers_gaining']} gain, "
                         f"{r['customers_losing']} lose; delta "
                         + ", ".join(f"{k} {_amount(v)}" for k, v in r["percentiles"].items()))
        if r["gainers"]:
            lines.append("  top gainers: " + ", ".join(
                f"{g['customer']} {_amount(g['delta'])}" for g in r["gainers"]))
        if r["losers"]:
            lines.append("  top losers: " + ", ".join(
                f"{g['customer']} {_amount(g['delta'])}" for g in r["losers"]))
    if result.tiers:
        lines.append("tiers (events moved):")
        lines += [f"  {b or 'none'} -> {a or 'none'}: {n}"
                  for (b, a), n in sorted(result.tiers.items(), key=str)]
    if result.benefit_moves:
        lines.append("benefits (events):")
        lines += [f"  {name} {move}: {n}" for (name, move), n in sorted(result.benefit_moves.items())]
    rules = result.counter_changes(result.fired_before, result.fired_after)
    if rules:
        lines.append("rules (events fired):")
        lines += [f"  {p}.{r}: {b} -> {a} ({a - b:+})" for (p, r), b, a in rules]
    if result.errors_before or result.errors_after:
        lines.append(f"evaluation errors: {result.errors_before} -> {result.errors_after}")
    if result.examples:
        lines.append(f"changed events (first {len(result.examples)}):")
        for _, ex in result.examples:
            lines.append(f"  {ex['where']} customer {ex['customer']}, event {ex['event']}: "
                         f"{_summary(ex['before'])} -> {_summary(ex['after'])}")
    return lines + ledger_text(result)


def ledger_text(result: Replay) -> list[str]:
    """The expiry and tier status sections (only when a side has a validity or a qualification)."""
    ledger = result.ledger
    if ledger is None:
        return []
    lines: list[str] = []
    expiry = ledger.expiry_report()
    if expiry is not None:
        lines.append(f"expiry as of {expiry['as_of']} (awarded up to then, and expired by then):")
        for currency, r in expiry["currencies"].items():
            v, awarded, gone = expiry["validity"][currency], r["awarded"], r["expired"]
            validity = v["before"] if v["before"] == v["after"] else f"{v['before']} -> {v['after']}"
            lines.append(f"  {currency} (validity {validity}): expired {gone['before']} -> "
                         f"{gone['after']} ({_amount(gone['delta'])}) of {awarded['before']} -> "
                         f"{awarded['after']} awarded")
    tiers = ledger.tier_report()
    if tiers is not None:
        q = tiers["qualification"]
        lines.append(f"tier status (qualification: {_qualification(q['before'])}"
                     + ("" if q["before"] == q["after"] else f" -> {_qualification(q['after'])}")
                     + f"; {tiers['customers_earning']} customers earned the measure):")
        points = [*tiers["window_ends"], {**tiers["at_as_of"], "at": f"as of {tiers['as_of']}"}]
        for point in points:
            where = point["at"] if point["at"].startswith("as of") else f"window end {point['at']}"
            lines.append(f"  {where}: {point['customers']} customers' tier differs"
                         + "".join(f"; {t['before'] or 'none'} -> {t['after'] or 'none'}: "
                                   f"{t['customers']}" for t in point["transitions"]))
        for ex in tiers["examples"]:
            lines.append(f"  customer {ex['customer']}: " + ", ".join(
                f"{c['at'] if c['at'] != 'as_of' else 'as of'} {c['before'] or 'none'} -> "
                f"{c['after'] or 'none'}" for c in ex["changes"]))
    lines.append(f"  (ledger figures from the awards of {ledger.columnar_events} events on the "
                 f"columnar backend and {ledger.row_events} on the row path)")
    return lines


def _qualification(q: dict[str, Any] | None) -> str:
    if q is None:
        return "none"
    thresholds = ", ".join(f"{t} {v}" for t, v in q["thresholds"].items())
    return f"{q['measure']} per {q['window']}, {thresholds}"


def _summary(outcome: dict[str, Any]) -> str:
    if "error" in outcome:
        return f"error ({outcome['error']})"
    parts = [", ".join(f"{v} {k}" for k, v in outcome["awards"].items()) or "no awards"]
    if outcome["benefits"]:
        parts.append("granted " + ", ".join(outcome["benefits"]))
    if outcome["tier"]:
        parts.append(f"tier {outcome['tier']}")
    if outcome["tags"]:
        parts.append("tagged " + ", ".join(outcome["tags"]))
    return "; ".join(parts)


# -- HTML -----------------------------------------------------------------------------------------
# Written for a programme manager: every number with thousands separators, totals with the
# change as a percentage, plots whose value axis starts at zero, tier and benefit moves as
# tables, and the percentiles explained in a sentence. Nothing is wider than the page.


def _n(value: Any, signed: bool = False) -> str:
    """A number with thousands separators (``1,500,546,176``; ``+26,980`` when signed)."""
    if isinstance(value, int | Decimal):
        return f"{value:+,}" if signed and value else f"{value:,}"
    if isinstance(value, float):
        return f"{value:+,.0f}" if signed else f"{value:,.0f}"
    return str(value)


def _percent(part: Any, whole: Any, signed: bool = False) -> str:
    """``part`` as a percentage of ``whole`` (one decimal; ``<0.1%`` for a sliver), or ``n/a``."""
    if not whole:
        return "n/a"
    share = Decimal(part) * 100 / Decimal(whole)
    if share and abs(share) < Decimal("0.1"):
        return ("+" if signed and share > 0 else "-" if share < 0 else "") + "<0.1%"
    return f"{share:+,.1f}%" if signed else f"{share:,.1f}%"


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # the XML declaration and doctype do not belong inline
    # matplotlib's RDF metadata block: a creation date and namespace URIs, nothing to show.
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)


def _plain_axis(axis: Any) -> None:
    """Tick labels as whole numbers with thousands separators: no ``1e8`` offset."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:,.0f}"))


def _plots(result: Replay) -> list[tuple[str, str]]:
    """(title, inline SVG) for each plot the report has data for."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable
    plots = []
    for currency in result.awarded():
        counted = result.deltas(currency)
        if not counted:
            continue
        values = [float(d) for d, _ in counted]
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.hist(values, weights=[n for _, n in counted], bins=min(50, max(len(set(values)), 1)),
                color="#4a7bb7")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_ylim(bottom=0)
        _plain_axis(ax.xaxis)
        _plain_axis(ax.yaxis)
        ax.set_xlabel(f"{currency}: change per affected customer (new minus old)")
        ax.set_ylabel("customers")
        plots.append((f"Per-customer change in {currency}", _svg(fig)))
        plt.close(fig)
    months = sorted(result.months)
    for currency in result.awarded():
        before = [float(result.months[m].get(currency, [0, 0])[0]) for m in months]
        after = [float(result.months[m].get(currency, [0, 0])[1]) for m in months]
        if not any(before) and not any(after):
            continue
        fig, ax = plt.subplots(figsize=(7, 3))
        xs = range(len(months))
        ax.plot(xs, before, marker="o", label="old policies")
        ax.plot(xs, after, marker="o", label="new policies")
        ax.set_xticks(list(xs), months, rotation=45, ha="right")
        ax.set_ylim(bottom=0, top=max(*before, *after) * 1.08 or 1)  # from zero: no exaggeration
        _plain_axis(ax.yaxis)
        ax.set_ylabel(currency)
        ax.legend(loc="lower right")
        plots.append((f"{currency} awarded by month", _svg(fig)))
        plt.close(fig)
    rules = result.counter_changes(result.fired_before, result.fired_after)
    if rules:
        fig, ax = plt.subplots(figsize=(7, 0.6 + 0.35 * len(rules)))
        names = [f"{p}.{r}" for (p, r), _, _ in rules]
        ax.barh(names, [a - b for _, b, a in rules], color="#b7634a")
        ax.axvline(0, color="black", linewidth=0.8)
        _plain_axis(ax.xaxis)
        ax.set_xlabel("change in events the rule fired on (new minus old)")
        plots.append(("Rule hit changes", _svg(fig)))
        plt.close(fig)
    return plots


def _table(head: list[str], rows: list[list[str]], first_left: bool = True) -> str:
    """An HTML table; the first column is text (left-aligned) when ``first_left``."""
    esc = html.escape
    cls = ' class="names"' if first_left else ""
    return (f"<table{cls}><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head)
            + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
            + "</tbody></table>")


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;"
    "color:#222;line-height:1.45}"
    "h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .7em;"
    "text-align:right;font-variant-numeric:tabular-nums}th{background:#eee}"
    "table.names td:first-child,table.names th:first-child{text-align:left}"
    ".lead{font-size:1.15em}.note{color:#555;max-width:45em}"
    "figure{margin:1.2em 0}figcaption{font-weight:bold;margin-bottom:.3em}"
    "svg{max-width:100%;height:auto}"
    "details pre{background:#f6f6f6;padding:1em;white-space:pre-wrap;overflow-wrap:anywhere}"
)


def render_html(result: Replay, old: str, old_revision: str, new: str, new_revision: str,
                history: str) -> str:
    """The report as one HTML document: the headline, tables and inline SVG plots."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>loyalty replay: {esc(history)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>What the new policies would change</h1>",
        f"<p>Replaying <code>{esc(history)}</code>: old policies <code>{esc(old)}</code> "
        f"({esc(old_revision)}), new policies <code>{esc(new)}</code> ({esc(new_revision)}).</p>",
        f"<p class=\"lead\"><strong>{_n(result.changed)}</strong> of {_n(result.events)} events "
        f"({_percent(result.changed, result.events)}) and <strong>{_n(result.customers_changed)}"
        f"</strong> customers would see a different decision.</p>",
    ]
    if result.bad_rows:
        parts.append(f"<p>{_n(result.bad_rows)} rows of the history are not valid requests and are "
                     "left out of every figure.</p>")
    for currency in result.awarded():
        r = result.currency_report(currency)
        parts.append(f"<h2>{esc(currency)}</h2>")
        parts.append(_table(["", "old policies", "new policies", "change", "change %"], [[
            f"{currency} awarded", _n(r["before"]), _n(r["after"]), _n(r["delta"], signed=True),
            _percent(r["delta"], r["before"], signed=True)]]))
        affected = r["customers_gaining"] + r["customers_losing"]
        parts.append(f"<p>{_n(r['customers_gaining'])} customers would get more {esc(currency)} and "
                     f"{_n(r['customers_losing'])} less.</p>")
        if r["percentiles"]:
            names = list(r["percentiles"])
            parts.append(_table(names, [[_n(v, signed=True) for v in r["percentiles"].values()]],
                                first_left=False))
            parts.append(
                f"<p class=\"note\">How the change is spread over the {_n(affected)} customers whose "
                f"{esc(currency)} changed: line them up from the biggest loss to the biggest gain; "
                f"p50 is the customer in the middle (half changed by that much or less), p25 and p75 "
                f"mark the middle half, p5 and p95 leave out the most extreme 5% at each end, and p0 "
                f"and p100 are the biggest loss and the biggest gain.</p>")
        for title, rows in (("Biggest gains", r["gainers"]), ("Biggest losses", r["losers"])):
            if rows:
                parts.append(f"<h3>{title}</h3>" + _table(
                    ["customer", f"change in {currency}"],
                    [[str(g["customer"]), _n(g["delta"], signed=True)] for g in rows]))
    if result.tiers:
        moved = sum(result.tiers.values())
        parts.append("<h2>Tier changes</h2>")
        parts.append(_table(["old tier", "new tier", "events", "share of events"], [
            [b or "none", a or "none", _n(n), _percent(n, result.events)]
            for (b, a), n in sorted(result.tiers.items(), key=lambda kv: (-kv[1], str(kv[0])))]
            + [["all moves", "", _n(moved), _percent(moved, result.events)]]))
    if result.benefit_moves:
        parts.append("<h2>Benefit changes</h2>")
        parts.append(_table(["benefit", "change", "events", "share of events"], [
            [name, move, _n(n), _percent(n, result.events)]
            for (name, move), n in sorted(result.benefit_moves.items(), key=lambda kv: (-kv[1], kv[0]))]))
    rules = result.counter_changes(result.fired_before, result.fired_after)
    if rules:
        parts.append("<h2>Rules</h2>")
        parts.append(_table(["rule", "events fired, old", "new", "change"], [
            [f"{p}.{r}", _n(b), _n(a), _n(a - b, signed=True)] for (p, r), b, a in rules]))
    if result.errors_before or result.errors_after:
        parts.append(f"<p>Evaluation errors: {_n(result.errors_before)} with the old policies, "
                     f"{_n(result.errors_after)} with the new.</p>")
    plots = _plots(result)
    if plots:
        parts.append("<h2>Plots</h2>")
    for title, svg in plots:
        parts.append(f"<figure><figcaption>{esc(title)}</figcaption>{svg}</figure>")
    parts.append("<details><summary>The full text report</summary><pre>" + esc("\n".join(
        render_text(result, old, old_revision, new, new_revision, history))) + "</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)
