"""The replay report a programme manager reads: numbers with thousands separators, totals with
percentages, plots from zero, tier and benefit changes as tables, the percentiles explained,
nothing cut off at the side (rendered in headless Chromium and looked at as a screenshot); and a
CSV replay's progress bar counting rows against a total in rows.

Chromium is Debian's ``chromium`` (``./dev.sh tools``, found by :mod:`tests.service.chromium`);
without it the rendering test skips, unless LOYALTY_REQUIRE_TOOLS=1 (.ci/run), where it fails.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from benchmarks.history import airline_requests_stream, changed_policies, write_history
from tests.service.chromium import headless, screenshot
from tests.service.conftest import POLICIES, ROOT

EVENTS = 2_000
#: The window Chromium lays the page out in: a laptop's.
WIDTH, HEIGHT = 1280, 4000


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The changed airline policies, a CSV history, and the HTML report of replaying it."""
    root = tmp_path_factory.mktemp("report")
    new = changed_policies(root / "new")
    history = write_history(root / "history.csv", [next(airline_requests_stream(EVENTS))])
    page = root / "report.html"
    result = subprocess.run([sys.executable, "-m", "service", "replay", str(POLICIES), str(new),
                             str(history), "--html", str(page), "--jobs", "1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=280, check=False,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1, result.stderr
    return {"new": new, "history": history, "page": page}


class _Text(HTMLParser):
    """The page's tables (rows of cell texts) and paragraphs."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.paragraphs: list[str] = []
        self._cell: list[str] | None = None
        self._para: list[str] | None = None

    def handle_starttag(self, tag: str, _attrs: object) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "p":
            self._para = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "p" and self._para is not None:
            self.paragraphs.append(" ".join("".join(self._para).split()))
            self._para = None

    def handle_data(self, data: str) -> None:
        for sink in (self._cell, self._para):
            if sink is not None:
                sink.append(data)


def test_the_report_speaks_to_a_programme_manager(replayed):
    """Thousands separators, a totals table with the change in percent, tier and benefit
    tables, and a sentence that says what p0..p100 mean."""
    text = replayed["page"].read_text(encoding="utf-8")
    page = _Text()
    page.feed(text)
    totals = next(t for t in page.tables if t[0][:3] == ["", "old policies", "new policies"])
    _, before, after, change, percent = totals[1]
    for figure in (before, after):
        assert re.fullmatch(r"\d{1,3}(,\d{3})+", figure), figure  # the miles run into millions
    assert re.fullmatch(r"[+-]\d{1,3}(,\d{3})*", change) and re.fullmatch(r"[+-](\d+\.\d|<0\.1)%", percent)
    headers = [t[0] for t in page.tables]
    assert ["old tier", "new tier", "events", "share of events"] in headers
    assert ["benefit", "change", "events", "share of events"] in headers
    assert any(p.startswith("How the change is spread over the ") and "p50 is the customer in the middle"
               in p for p in page.paragraphs)
    lead = next(p for p in page.paragraphs if "would see a different decision" in p)
    assert re.search(rf"of {EVENTS:,} events \(\d+\.\d%\)", lead), lead
    # The monthly totals' axis starts at zero and has no 1e8 offset: its lowest tick reads 0.
    month_plot = text[text.index("miles awarded by month"):]
    month_plot = month_plot[:month_plot.index("</figure>")]
    labels = [label.strip() for label in re.findall(r"<text[^>]*>([^<]*)</text>", month_plot)]
    assert "0" in labels and not [label for label in labels if re.search(r"\de[+-]?\d|\u00d710", label)]
    assert any(re.fullmatch(r"\d{1,3}(,\d{3})+", label) for label in labels), labels


def test_the_report_renders_in_chromium_within_the_page(replayed, tmp_path):
    """Chromium lays the page out within a laptop's width (nothing cut off at the side, the old
    text block was), and the screenshot shows a page: white margins, a centred column of text,
    tables and plots (checked on the pixels; the PNG is kept next to the report to look at)."""
    page = replayed["page"]
    # The report has no script (it is one mailable file); a copy with one measures the layout.
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace(
        "</body>", "<script>document.title = [document.documentElement.scrollWidth, "
                   "Math.round(document.body.getBoundingClientRect().bottom), "
                   "document.querySelectorAll('svg').length, "
                   "document.querySelectorAll('table').length].join(' ')</script></body>"),
        encoding="utf-8")
    dom = headless("--dump-dom", probe.as_uri(), profile=tmp_path / "profile-dom", window=(WIDTH, HEIGHT))
    title = re.search(rb"<title>([\d ]+)</title>", dom.stdout)
    assert title, dom.stderr.decode()[-2000:]
    scroll_width, content_bottom, svgs, tables = map(int, title[1].split())
    assert scroll_width <= WIDTH, f"the page is {scroll_width} px wide in a {WIDTH} px window"
    assert svgs == 3 and tables >= 6
    shot = screenshot(page, profile=tmp_path / "profile-shot", window=(WIDTH, HEIGHT))
    image = shot.convert("L")
    ink = image.point(lambda v: 255 if v < 200 else 0)  # dark pixels: text, rules, plot lines
    left, top, right, bottom = ink.getbbox()
    print(f"\nscreenshot {shot.filename}: page {scroll_width} px wide, content to y={content_bottom}, "
          f"ink from x={left} to x={right}, y={top} to y={bottom}")
    # A centred column: margins on both sides, neither touching the window's edge.
    assert left > 50 and right < WIDTH - 50 and abs(left - (WIDTH - right)) < 200
    # Ink all the way down the laid-out content (tables and plots, not one line of text), and
    # the whole report inside the window.
    assert 1500 < content_bottom < HEIGHT
    assert content_bottom - 80 < bottom <= content_bottom


def test_csv_progress_counts_rows_against_a_total_in_rows(replayed, monkeypatch, capsys):
    """The bar's total is the CSV's data rows and every chunk adds its rows: it ends at
    EVENTS/EVENTS, 100% (it ended at 1% with a total in bytes)."""
    from service.cli import main

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar = Terminal()
    monkeypatch.setattr(sys, "stderr", bar)
    code = main(["replay", str(POLICIES), str(replayed["new"]), str(replayed["history"]),
                 "--jobs", "1", "--format", "json"])
    capsys.readouterr()
    assert code == 1
    last = bar.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert "replaying: 100%" in last and "| 2.00k/2.00k [" in last and "row/s]" in last, last
