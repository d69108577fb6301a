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
    return lines


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


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # the XML declaration and doctype do not belong inline
    # matplotlib's RDF metadata block: a creation date and namespace URIs, nothing to show.
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)


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
        ax.set_xlabel(f"{currency}: change per affected customer")
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
        ax.set_ylabel(currency)
        ax.legend()
        plots.append((f"{currency} awarded by month", _svg(fig)))
        plt.close(fig)
    rules = result.counter_changes(result.fired_before, result.fired_after)
    if rules:
        fig, ax = plt.subplots(figsize=(7, 0.6 + 0.35 * len(rules)))
        names = [f"{p}.{r}" for (p, r), _, _ in rules]
        ax.barh(names, [a - b for _, b, a in rules], color="#b7634a")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel("change in events fired")
        plots.append(("Rule hit changes", _svg(fig)))
        plt.close(fig)
    return plots


def render_html(result: Replay, old: str, old_revision: str, new: str, new_revision: str,
                history: str) -> str:
    """The report as one HTML document: the text report, tables and inline SVG plots."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>loyalty replay: {esc(history)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;"
        "text-align:right}th{background:#eee}pre{background:#f6f6f6;padding:1em;"
        "overflow-x:auto}figure{margin:1em 0}</style></head><body>",
        f"<h1>Replay of {esc(history)}</h1>",
        f"<p>Old: <code>{esc(old)}</code> ({esc(old_revision)}); new: <code>{esc(new)}</code> "
        f"({esc(new_revision)}).</p>",
        f"<p><strong>{result.changed}</strong> of {result.events} events and "
        f"<strong>{result.customers_changed}</strong> customers would see a different decision.</p>",
    ]
    for currency in result.awarded():
        r = result.currency_report(currency)
        parts.append(f"<h2>{esc(currency)}</h2><p>Total: {r['before']} &rarr; {r['after']} "
                     f"({esc(_amount(r['delta']))}); {r['customers_gaining']} customers gain, "
                     f"{r['customers_losing']} lose.</p>")
        if r["percentiles"]:
            parts.append("<table><tr>" + "".join(f"<th>{esc(k)}</th>" for k in r["percentiles"])
                         + "</tr><tr>" + "".join(f"<td>{esc(_amount(v))}</td>"
                                                 for v in r["percentiles"].values()) + "</tr></table>")
        for title, rows in (("Top gainers", r["gainers"]), ("Top losers", r["losers"])):
            if rows:
                parts.append(f"<h3>{title}</h3><table><tr><th>customer</th><th>change</th></tr>"
                             + "".join(f"<tr><td>{esc(g['customer'])}</td>"
                                       f"<td>{esc(_amount(g['delta']))}</td></tr>" for g in rows)
                             + "</table>")
    for title, svg in _plots(result):
        parts.append(f"<figure><figcaption>{esc(title)}</figcaption>{svg}</figure>")
    parts.append("<h2>Full report</h2><pre>" + esc("\n".join(
        render_text(result, old, old_revision, new, new_revision, history))) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
