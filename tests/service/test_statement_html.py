"""The statement page a customer reads (service/statement_html.py): its balances, plot and
lines, every outside text escaped, and the page rendered in headless Chromium and looked at
as a screenshot.

Chromium is Debian's ``chromium`` (``./dev.sh tools``, found by :mod:`tests.service.chromium`);
without it the rendering test skips, unless LOYALTY_REQUIRE_TOOLS=1 (.ci/run), where it fails.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from service.ledger import StatementLine
from service.statement_html import _ticks, render_statement
from tests.service.chromium import headless, screenshot

WIDTH, HEIGHT = 1280, 1800
HOSTILE = 'Upgrade <script>alert("x")</script> & <img src=x onerror=alert(1)>'

#: (days after the start, event, kind, currency, amount, text): a member's half year.
HALF_YEAR = [
    (10, "e-1000", "award", "miles", "3442", "3442 miles for your flight from JFK to LHR"),
    (31, "e-1001", "award", "miles", "344", "+344 miles for 14 years with us"),
    (51, "e-1002", "award", "points", "120", "Per dollar"),
    (58, "e-1003", "redeem", "miles", "-2500", HOSTILE),
    (72, "e-1004", "award", "miles", "1721", "Business cabin"),
    (94, "e-1005", "reverse", "points", "-120", "Purchase returned"),
    (112, "e-1006", "award", "miles", "5012", "5012 miles for your flight from LHR to SIN"),
    (135, "e-1007", "expire", "miles", "-344", "Expired: earned 2024-03-01"),
    (156, "e-1008", "award", "points", "37.50", "Per dollar"),
]


#: What the customer reads about each line of HALF_YEAR.
TEXTS = [text for *_, text in HALF_YEAR]


def line(at: dt.datetime, event: str, kind: str, currency: str, amount: Decimal,
         running: Decimal) -> StatementLine:
    """A ledger statement line (service.ledger's) with made-up reference, rule and lot."""
    return StatementLine(at, currency, amount, kind, event, event, "earn", "a_rule", running, f"lot-{event}")


def statement_lines() -> list[StatementLine]:
    start = dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)
    balances: dict[str, Decimal] = {}
    lines = []
    for days, event, kind, currency, amount, _text in HALF_YEAR:
        balances[currency] = balances.get(currency, Decimal(0)) + Decimal(amount)
        lines.append(line(start + dt.timedelta(days=days), event, kind, currency, Decimal(amount),
                          balances[currency]))
    return lines


class _Elements(HTMLParser):
    """Every element's tag, and the page's text, as a browser's parser reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(page: str) -> _Elements:
    elements = _Elements()
    elements.feed(page)
    return elements


def test_the_page_holds_balances_a_plot_per_currency_and_every_line() -> None:
    """Balances are the last running balance per currency, with separators; one SVG per
    currency; one table row per line, amounts signed."""
    page = render_statement("c-42", statement_lines(), TEXTS)
    elements = parsed(page)
    text = " ".join(elements.text)
    assert elements.tags.count("svg") == 2 and elements.tags.count("tr") == len(HALF_YEAR) + 1
    assert '<div class="n">7,675</div><div class="c">miles</div>' in page
    assert '<div class="n">37.50</div><div class="c">points</div>' in page
    assert "+344 miles for 14 years with us" in text and "\u22122,500 miles" in text
    assert "Statement for c-42" in text and "from 2026-01-15 to 2026-06-10" in text


def test_outside_texts_are_escaped() -> None:
    """A rule text, a customer id or an event id holding markup shows as that text: the page
    has no script element and no element the text tried to open."""
    lines = statement_lines()
    lines[0] = line(lines[0].at, '"><script>1</script>', "award", "miles<b>", lines[0].amount,
                    lines[0].running_balance)
    page = render_statement('c<script>alert(2)</script>', lines, ["x", *TEXTS[1:]], title="<i>t</i>")
    elements = parsed(page)
    assert "script" not in elements.tags and "img" not in elements.tags
    assert "i" not in elements.tags and "b" not in elements.tags
    assert HOSTILE in "".join(elements.text)
    assert "c<script>alert(2)</script>" in "".join(elements.text)


def test_french_words_and_separators() -> None:
    """language="fr" gives the page's own words in French and French separators."""
    page = render_statement("c-42", statement_lines(), TEXTS, language="fr")
    assert '<html lang="fr">' in page and "Relevé de c-42" in page
    assert '<div class="n">7\u202f675</div>' in page and '<div class="n">37,50</div>' in page


def test_no_lines_says_so() -> None:
    """An empty period is a page that says there is nothing, not an error."""
    page = render_statement("c-42", [], [])
    assert "No transactions in this period." in page and "<svg" not in page


def test_a_line_of_another_kind_or_without_its_text_is_refused() -> None:
    """A line's kind is one of the ledger's (award, redeem, reverse, expire, clawback), and
    every line has its text."""
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="award, redeem, reverse, expire, clawback, not 'gift'"):
        render_statement("c-42", [line(at, "e", "gift", "miles", Decimal(1), Decimal(1))], [""])
    with pytest.raises(ValueError, match="one text per line: 9 lines, 8 texts"):
        render_statement("c-42", statement_lines(), TEXTS[1:])


def test_a_clawback_and_whole_amounts_render() -> None:
    """The ledger's clawback lines have their own word, and its whole amounts (ints) render
    like decimals."""
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    lines = [line(at, "e-1", "reverse", "miles", -800, -800),
             line(at + dt.timedelta(days=3), "e-2", "clawback", "miles", 800, 0)]
    page = render_statement("c-42", lines, ["Returned: event e-1", "Debt repaid"])
    assert "clawed back" in page and "\u2212800 miles" in page and "+800 miles" in page


@pytest.mark.parametrize(("low", "high", "expected"), [
    pytest.param("0", "7675", ["0", "2000", "4000", "6000", "8000"], id="thousands"),
    pytest.param("0", "37.50", ["0", "10", "20", "30", "40"], id="tens"),
    pytest.param("-120", "0", ["-150", "-100", "-50", "0"], id="negative"),
    pytest.param("0", "0", ["0", "0.2"], id="flat_still_has_a_scale"),
])
def test_axis_ticks_are_round_exact_numbers(low: str, high: str, expected: list[str]) -> None:
    """The plot's axis steps by 1, 2 or 5 times a power of ten, from at most the lowest
    balance to at least the highest, in exact decimals."""
    assert _ticks(Decimal(low), Decimal(high)) == [Decimal(e) for e in expected]


def test_the_statement_renders_in_chromium(tmp_path: Path) -> None:
    """Chromium's DOM holds every line's text (the hostile one as text, no script ran or
    exists) and the two plots; the screenshot is a page: a centred column with ink from the
    heading down past the plots, and the plot's blue line and the amounts' green and red
    drawn (the PNG is kept next to the page to look at)."""
    page = tmp_path / "statement.html"
    page.write_text(render_statement("c-42", statement_lines(), TEXTS), encoding="utf-8")
    elements, html, image = in_chromium(page, tmp_path)
    text = "".join(elements.text)
    for text_of_line in TEXTS:
        assert text_of_line in text
    assert "script" not in elements.tags and "img" not in elements.tags
    assert elements.tags.count("svg") == 2 and len(re.findall(r"<circle ", html)) == len(HALF_YEAR)
    grey = image.convert("L")
    ink = grey.point(lambda v: 255 if v < 200 else 0)
    left, top, right, bottom = ink.getbbox()
    print(f"\nscreenshot of {page}: ink from x={left} to x={right}, y={top} to y={bottom}")
    assert left > 50 and right < WIDTH - 50 and abs(left - (WIDTH - right)) < 200
    assert top < 100 and bottom > 1200  # heading at the top, the table below the plots
    assert near(image, (0x1F, 0x5F, 0xA8)) > 500  # the balance line
    assert near(image, (0x11, 0x64, 0x2B)) > 100 and near(image, (0xA1, 0x26, 0x22)) > 100  # earned, spent


def in_chromium(page: Path, tmp_path: Path) -> tuple[_Elements, str, Any]:
    """``page`` opened in headless Chromium: its DOM parsed, the DOM's HTML, and a screenshot
    (an RGB PIL image, its PNG kept next to the page to look at)."""
    dom = headless("--dump-dom", page.as_uri(), profile=tmp_path / f"profile-dom-{page.stem}",
                   window=(WIDTH, HEIGHT))
    assert dom.returncode == 0, dom.stderr.decode()[-2000:]
    html = dom.stdout.decode()
    image = screenshot(page, profile=tmp_path / f"profile-shot-{page.stem}", window=(WIDTH, HEIGHT))
    return parsed(html), html, image.convert("RGB")


def near(image: Any, target: tuple[int, int, int]) -> int:
    """How many of ``image``'s pixels are near the colour ``target``."""
    colours = image.getcolors(maxcolors=1 << 16) or []
    return sum(n for n, rgb in colours if all(abs(a - b) < 40 for a, b in zip(rgb, target, strict=True)))


def test_one_line_on_one_day_still_draws() -> None:
    """A statement of one line (one date, one balance) draws a plot with a scale and a width."""
    one = line(dt.datetime(2026, 1, 1, 23, 59, tzinfo=dt.UTC), "e", "award", "miles", Decimal(0), Decimal(0))
    page = render_statement("c-42", [one], ["x"])
    assert page.count("<svg") == 1 and "2026-01-02" in page
