"""A customer's statement as one HTML page a person reads: its lines, balances and a plot.

:func:`render_statement` takes the ledger's statement lines
(:class:`service.ledger.StatementLine`: an instant, the event, what happened, the amount, the
running balance) and, for each, the words a customer reads about it, and returns one
self-contained page: the balance per currency, the balance
over time drawn as inline SVG (drawn here: no script, no plotting library, so the page can be
mailed or printed as it is), and a table of the lines. Every text that came from outside (the
customer's id, event ids, currencies, the rules' texts) goes through :func:`html.escape`, so a
text holding markup shows as that text.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from decimal import Decimal
from html import escape

from service.ledger import StatementLine

__all__ = ["KINDS", "render_statement"]

#: What a statement line can record (the ledger's line kinds).
KINDS = ("award", "redeem", "reverse", "expire", "clawback")

#: The plot's size in SVG units (it scales down with the page).
PLOT_WIDTH, PLOT_HEIGHT = 860, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 78, 16, 14, 34

#: The page's words, per language; a language not here reads English.
_WORDS: dict[str, dict[str, str]] = {
    "en": {"statement": "Statement", "for": "for", "balance": "Balance", "balances": "Balances",
           "over_time": "Balance over time", "lines": "Transactions", "date": "Date",
           "event": "Event", "what": "What", "amount": "Amount", "after": "Balance after",
           "none": "No transactions in this period.", "from": "from", "to": "to",
           "award": "earned", "redeem": "spent", "reverse": "reversed", "expire": "expired",
           "clawback": "clawed back",
           "plot_label": "{currency} balance from {first} to {last}, between {low} and {high}",
           "thousands": ",", "point": "."},
    "fr": {"statement": "Relevé", "for": "de", "balance": "Solde", "balances": "Soldes",
           "over_time": "Évolution du solde", "lines": "Opérations", "date": "Date",
           "event": "Événement", "what": "Motif", "amount": "Montant", "after": "Solde après",
           "none": "Aucune opération sur cette période.", "from": "du", "to": "au",
           "award": "gagné", "redeem": "utilisé", "reverse": "annulé", "expire": "expiré",
           "clawback": "repris",
           "plot_label": "solde en {currency} du {first} au {last}, entre {low} et {high}",
           "thousands": "\u202f", "point": ","},
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:56em;margin:2em auto;padding:0 1em;"
    "color:#222;line-height:1.45}"
    "h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}"
    ".lead{color:#555;margin-top:0}"
    ".balances{display:flex;flex-wrap:wrap;gap:1em;margin:1em 0}"
    ".balance{border:1px solid #ccc;border-radius:6px;padding:.6em 1.2em;min-width:9em}"
    ".balance .n{font-size:1.7em;font-weight:bold;font-variant-numeric:tabular-nums}"
    ".balance .c{color:#555}"
    "table{border-collapse:collapse;width:100%;margin:.6em 0}"
    "td,th{border-bottom:1px solid #ddd;padding:.35em .6em;text-align:left;vertical-align:top}"
    "th{background:#f2f2f2}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;"
    "white-space:nowrap}td.d{white-space:nowrap}td.text{overflow-wrap:anywhere}"
    ".plus{color:#11642b}.minus{color:#a12622}"
    "figure{margin:1em 0}figcaption{font-weight:bold;margin-bottom:.3em}"
    "svg{width:100%;height:auto}"
    "svg text{font-family:system-ui,sans-serif;font-size:12px;fill:#444}"
)


def render_statement(customer: str, lines: Sequence[StatementLine], texts: Sequence[str], *,
                     title: str = "", language: str = "en", as_of: dt.date | None = None) -> str:
    """The statement page for ``customer``: balances, a balance-over-time plot per currency
    and the lines in the order given (the ledger's order, :func:`service.ledger.statement_lines`),
    ``texts[i]`` being what the customer reads about ``lines[i]``. A line's date is its
    instant's UTC date. ``title`` defaults to the words for "Statement"; ``language`` picks the
    page's own words (English or French) and is the page's ``lang``; ``as_of`` is the date the
    balances are given at (default: the last line's). ValueError when ``texts`` does not
    match ``lines`` one for one or a line's kind is not one of :data:`KINDS`."""
    if len(texts) != len(lines):
        raise ValueError(f"a statement needs one text per line: {len(lines)} lines, {len(texts)} texts")
    for line in lines:
        if line.kind not in KINDS:
            raise ValueError(f"a statement line's kind is one of {', '.join(KINDS)}, not {line.kind!r}")
    words = _WORDS.get(language.replace("-", "_").split("_")[0], _WORDS["en"])
    heading = title or f"{words['statement']} {words['for']} {customer}"
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{escape(language or "en")}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(heading)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(heading)}</h1>",
    ]
    if not lines:
        parts.append(f'<p class="lead">{escape(customer)}</p><p>{escape(words["none"])}</p>')
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"
    first, last = _date(lines[0]), _date(lines[-1])
    as_of = as_of or last
    who = "" if not title else f"{escape(customer)} &middot; "
    parts.append(f'<p class="lead">{who}{escape(words["from"])} {first.isoformat()} '
                 f"{escape(words['to'])} {last.isoformat()}</p>")
    by_currency: dict[str, list[StatementLine]] = {}
    for line in lines:
        by_currency.setdefault(line.currency, []).append(line)
    parts.append(f"<h2>{escape(words['balances'])} ({as_of.isoformat()})</h2>")
    parts.append('<div class="balances">')
    for currency, own in by_currency.items():
        balance = _number(own[-1].running_balance, words)
        parts.append(f'<div class="balance"><div class="n">{balance}</div>'
                     f'<div class="c">{escape(currency)}</div></div>')
    parts.append("</div>")
    parts.append(f"<h2>{escape(words['over_time'])}</h2>")
    for currency, own in by_currency.items():
        parts.append(f"<figure><figcaption>{escape(currency)}</figcaption>"
                     f"{_plot(currency, own, words, first, last)}</figure>")
    parts.append(f"<h2>{escape(words['lines'])}</h2>")
    parts.append(_table(lines, texts, words))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _date(line: StatementLine) -> dt.date:
    """A line's date: its instant's UTC date."""
    at = line.at
    return (at.astimezone(dt.UTC) if at.tzinfo else at).date()


def _number(value: Decimal | int, words: dict[str, str], signed: bool = False) -> str:
    """An exact amount with the language's separators (``12,345.50``; ``12 345,50`` in
    French), signed when asked."""
    text = f"{value:,}".translate({ord(","): words["thousands"], ord("."): words["point"]})
    if signed and value > 0:
        text = "+" + text
    return text.replace("-", "\u2212")  # a real minus sign: it reads better than a hyphen


def _table(lines: Sequence[StatementLine], texts: Sequence[str], words: dict[str, str]) -> str:
    head = (f"<tr><th>{escape(words['date'])}</th><th>{escape(words['what'])}</th>"
            f"<th>{escape(words['event'])}</th><th class=\"n\">{escape(words['amount'])}</th>"
            f"<th class=\"n\">{escape(words['after'])}</th></tr>")
    rows = []
    for line, text in zip(lines, texts, strict=True):
        sign = "plus" if line.amount > 0 else "minus" if line.amount < 0 else ""
        currency = escape(line.currency)
        rows.append(
            f'<tr><td class="d">{_date(line).isoformat()}</td>'
            f'<td class="text">{escape(text)}<br><small>{escape(words[line.kind])}</small></td>'
            f"<td><code>{escape(line.event_id)}</code></td>"
            f'<td class="n {sign}">{_number(line.amount, words, signed=True)} {currency}</td>'
            f'<td class="n">{_number(line.running_balance, words)} {currency}</td></tr>')
    return f"<table>\n<thead>{head}</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody></table>"


def _ticks(low: Decimal, high: Decimal, count: int = 5) -> list[Decimal]:
    """Round numbers from at most ``low`` to at least ``high``, about ``count`` of them
    (steps of 1, 2 or 5 times a power of ten), exact decimals."""
    low, high = Decimal(low), Decimal(high)  # the ledger's whole amounts are ints
    span = high - low
    if span <= 0:
        span = Decimal(1)
    raw = span / count
    power = Decimal(10) ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = (low / step).to_integral_value(rounding="ROUND_FLOOR") * step
    ticks = [start]
    while ticks[-1] < high or len(ticks) < 2:  # two at least: a flat balance still has a scale
        ticks.append(ticks[-1] + step)
    return ticks


def _plot(currency: str, lines: list[StatementLine], words: dict[str, str], start: dt.date,
          end: dt.date) -> str:
    """The running balance of one currency as a step line over time, in SVG, on the
    statement's dates from ``start`` to ``end`` (so that every currency's plot lines up)."""
    before = Decimal(lines[0].running_balance - lines[0].amount)
    values = [before, *(Decimal(line.running_balance) for line in lines)]
    ticks = _ticks(min(Decimal(0), *values), max(Decimal(0), *values))
    low, high = ticks[0], ticks[-1]
    first = start.toordinal()
    last = max(end.toordinal(), first + 1)  # one day's lines still get a width
    days = last - first
    inner_w = PLOT_WIDTH - _LEFT - _RIGHT
    inner_h = PLOT_HEIGHT - _TOP - _BOTTOM

    def x(day: int) -> float:
        return _LEFT + (day - first) / days * inner_w

    def y(value: Decimal) -> float:
        return _TOP + float((high - value) / (high - low)) * inner_h

    label = words["plot_label"].format(currency=currency, first=start.isoformat(),
                                       last=end.isoformat(), low=_number(min(values), words),
                                       high=_number(max(values), words))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {PLOT_WIDTH} {PLOT_HEIGHT}" '
           f'width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" role="img" aria-label="{escape(label)}">',
           f"<title>{escape(label)}</title>"]
    for tick in ticks:
        ty = y(tick)
        stroke = "#999" if tick == 0 else "#e4e4e4"
        out.append(f'<line x1="{_LEFT}" x2="{PLOT_WIDTH - _RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
                   f'stroke="{stroke}"/>')
        out.append(f'<text x="{_LEFT - 8}" y="{ty + 4:.1f}" text-anchor="end">'
                   f"{_number(tick, words)}</text>")
    for day in _date_ticks(first, last):
        tx = x(day)
        out.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{PLOT_HEIGHT - _BOTTOM}" '
                   f'y2="{PLOT_HEIGHT - _BOTTOM + 5}" stroke="#999"/>')
        anchor = "start" if day == first else "end" if day == last else "middle"
        out.append(f'<text x="{tx:.1f}" y="{PLOT_HEIGHT - _BOTTOM + 19}" text-anchor="{anchor}">'
                   f"{dt.date.fromordinal(day).isoformat()}</text>")
    # A step line: the balance holds until the next line changes it, and to the end.
    path = [f"M{x(_date(lines[0]).toordinal()):.1f},{y(before):.1f}"]
    for line in lines:
        lx = x(_date(line).toordinal())
        path.append(f"H{lx:.1f}V{y(Decimal(line.running_balance)):.1f}")
    path.append(f"H{x(last):.1f}")
    out.append(f'<path d="{"".join(path)}" fill="none" stroke="#1f5fa8" stroke-width="2"/>')
    for line in lines:
        colour = "#11642b" if line.amount >= 0 else "#a12622"
        cy = y(Decimal(line.running_balance))
        out.append(f'<circle cx="{x(_date(line).toordinal()):.1f}" cy="{cy:.1f}" r="3.5" fill="{colour}"/>')
    out.append("</svg>")
    return "".join(out)


def _date_ticks(first: int, last: int, most: int = 6) -> list[int]:
    """Up to ``most`` days from ``first`` to ``last`` (both included), evenly spread."""
    if last <= first:
        return [first]
    count = min(most, last - first + 1)
    return sorted({first + round(i * (last - first) / (count - 1)) for i in range(count)})
