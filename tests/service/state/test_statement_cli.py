"""``loyalty state statement``: a customer's ledger lines as text, JSON and an HTML page, on a
real SQLite store the real server wrote.

The figures are worked by hand (as in test_ledger_rpcs.py): each business-class JFK-LHR
flight earns a GOLD member of 2012 8,949 miles (3,442 of them from ``flown_miles``, the lot's
rule); they are spendable 14 days later and expire at 2028-03-31T23:00Z (24 months to the end
of the month, London). The first flight is applied with explain, the second without: both
lots keep their rule's texts (English and French), so both lines read the rule's own words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import LiveServer, programme, stamp

from service.cli import main
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from tests.service.conftest import gold_customer, jfk_lhr
from tests.service.test_statement_html import in_chromium, near

EARNED = 8949
SAID = "3442 miles for your flight from JFK to LHR"
SAID_FR = "3442 miles pour votre vol de JFK à LHR"


@pytest.fixture
def history(tmp_path: Path) -> Iterator[str]:
    """A SQLite store holding c-1's two flights, a redemption of 2,000 miles and the expiry of
    the rest; its path."""
    policies = programme(tmp_path, validity="24 months to the end of the month",
                         pending="available after 14 days")
    path = str(tmp_path / "state.sqlite3")
    with LiveServer.started(path, policies) as served:
        stub = served.stub
        first = stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=jfk_lhr(), explain=True))
        second = stub.Apply(pb.ApplyRequest(customer=gold_customer(),
                                            event=jfk_lhr("e-2", time="2026-03-02T09:30:00Z")))
        assert first.decision.awards["miles"] == second.decision.awards["miles"] == str(EARNED)
        stub.Redeem(pb.RedeemRequest(customer_id="c-1", redemption_id="r-1", currency="miles",
                                     amount="2000", time=stamp("2026-04-01T12:00:00Z")))
    assert main(["state", "expire", "--as-of", "2028-04-01", "--state", path]) == 0
    yield path


def test_the_statement_as_text_and_json(history: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Two awards (each with its rule's text, explained or not), the redemption and the
    expiries, each with its running balance, ending at nothing."""
    capsys.readouterr()
    assert main(["state", "statement", "c-1", "--to", "2028-12-31", "--state", history]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "customer 'c-1': 5 lines from 1970-01-01T00:00:00Z to 2029-01-01T00:00:00Z"
    assert out[1].split() == ["2026-03-01", "award", "+8949", "miles", "8949", *SAID.split()]
    assert out[2].split() == ["2026-03-02", "award", "+8949", "miles", "17898", *SAID.split()]
    assert out[3].split() == ["2026-04-01", "redeem", "-2000", "miles", "15898", "Redeemed"]
    expired = [row.split() for row in out[4:]]
    assert [row[0:2] for row in expired] == [["2028-03-31", "expire"]] * 2
    assert sum(int(row[2]) for row in expired) == -15898 and expired[-1][4:] == ["0", "Expired"]
    assert len(out) == 6

    assert main(["state", "statement", "c-1", "--from", "2026-03-02", "--to", "2026-04-01",
                 "--state", history, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["from"], doc["to"]) == ("2026-03-02T00:00:00Z", "2026-04-02T00:00:00Z")
    got = [(x["event_id"], x["kind"], x["amount"], x["running_balance"], x["text"]) for x in doc["lines"]]
    assert got == [
        ("e-2", "award", str(EARNED), "17898", SAID),
        ("e-1", "redeem", "-2000", "15898", "Redeemed")]  # drawn from e-1's lot (earned first)
    assert doc["lines"][1]["reference"] == "r-1"


def test_the_statement_page_renders_in_chromium(history: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--html writes the page: Chromium's DOM holds every line's text, one plot with a point
    per line, and the screenshot shows the balance line and the amounts' colours."""
    page = tmp_path / "c-1.html"
    assert main(["state", "statement", "c-1", "--html", str(page), "--to", "2028-12-31",
                 "--state", history]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {page}: 5 lines"
    elements, html, image = in_chromium(page, tmp_path)
    text = "".join(elements.text)
    for words in (SAID, "Redeemed", "Expired", "Statement for c-1",
                  "from 2026-03-01 to 2028-03-31", "17,898 miles"):
        assert words in text
    assert elements.tags.count("svg") == 1 and len(re.findall(r"<circle ", html)) == 5
    assert near(image, (0x1F, 0x5F, 0xA8)) > 500  # the balance line
    assert near(image, (0x11, 0x64, 0x2B)) > 100 and near(image, (0xA1, 0x26, 0x22)) > 100


def test_french_page_words(history: str, tmp_path: Path) -> None:
    """--language fr: the page's and the plain lines' words in French, and the rule's French
    text kept with each lot."""
    page = tmp_path / "fr.html"
    assert main(["state", "statement", "c-1", "--html", str(page), "--language", "fr",
                 "--to", "2028-12-31", "--state", history]) == 0
    html = page.read_text(encoding="utf-8")
    assert '<html lang="fr">' in html and "Utilisé" in html and "Expiré" in html
    assert html.count(SAID_FR) == 2 and SAID not in html


def test_no_lines_and_bad_dates(history: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A customer with no lines in the period exits 1 saying so and writes no page; a date that
    is not one, or a period that ends before it starts, exits 2 with the reason, no traceback."""
    capsys.readouterr()
    page = tmp_path / "none.html"
    assert main(["state", "statement", "c-2", "--html", str(page), "--state", history]) == 1
    err = capsys.readouterr().err
    assert err.startswith("customer 'c-2': no ledger lines from 1970-01-01T00:00:00Z to ")
    assert not page.exists()
    assert main(["state", "statement", "c-1", "--to", "2026-02-28", "--state", history]) == 1
    assert "no ledger lines from 1970-01-01T00:00:00Z to 2026-03-01T00:00:00Z" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["state", "statement", "c-1", "--from", "2026-13-01", "--state", history])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --from: '2026-13-01' is not a date (2026-03-01)" in err and "Traceback" not in err
    assert main(["state", "statement", "c-1", "--from", "2026-05-01", "--to", "2026-04-01",
                 "--state", history]) == 2
    assert "must be after --from" in capsys.readouterr().err
    assert main(["state", "statement", "c-1", "--html", str(tmp_path / "no" / "such.html"),
                 "--state", history]) == 2
    assert "cannot write" in capsys.readouterr().err
