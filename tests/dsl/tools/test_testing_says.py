"""Policy tests that check what rules say (``says`` and ``language`` in ``[case.expect]``)."""

from __future__ import annotations

from pathlib import Path

import pytest

import dsl
from service.cli import main

POLICY = """\
policy spend_points
  on purchase

  rule per_dollar:
    award event.amount points
    says "{points} points for spending {event.amount}"
    says fr "{points} points pour {event.amount} dépensés"
  rule big_spender when event.amount >= 100: award 10 points

  round points down
"""


def case(amount: str, expect: str) -> str:
    return (f'[[case]]\nname = "spend {amount}"\ncustomer = {{ member_since = 2020-01-01 }}\n'
            f'event = {{ time = 2026-03-02T10:00:00Z, purchase = {{ amount = "{amount}" }} }}\n'
            f"[case.expect]\n{expect}\n")


@pytest.fixture
def programme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "spend.policy").write_text(POLICY, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], programme: Path, cases: str) -> tuple[int, str]:
    (programme / "spend.test.toml").write_text(cases, encoding="utf-8")
    status = main(["test", "."])
    out, err = capsys.readouterr()
    return status, out + err


def test_says_checks_the_named_rules_texts(programme: Path, capsys) -> None:
    """`says` names rules and the texts they say (in `language`, else the first); the rules
    it does not name are not checked."""
    status, out = run(capsys, programme, case("12.50", (
        'awards = { points = 12 }\nsays = { per_dollar = "12 points for spending 12.50" }'))
        + case("120.00", 'awards = { points = 130 }\nlanguage = "fr"\n'
               'says = { per_dollar = "120 points pour 120.00 dépensés", big_spender = "Big spender" }'))
    revision = dsl.load_directory(programme).revision
    assert (status, out) == (0, f"2 passed (1 file, revision {revision})\n")


def test_a_wrong_text_or_a_rule_that_did_not_fire_fails(programme: Path, capsys) -> None:
    """A different text fails with expected against actual; a named rule that did not fire
    fails saying so."""
    status, out = run(capsys, programme, case("12.50", (
        'awards = { points = 12 }\n'
        'says = { per_dollar = "13 points for spending 12.50", big_spender = "Big spender" }')))
    assert status == 1
    assert ('    says.per_dollar:  expected "13 points for spending 12.50"\n'
            '                      actual   "12 points for spending 12.50"\n'
            '    says.big_spender: expected "Big spender"\n'
            "                      actual   (the rule did not fire)\n") in out


def test_says_must_be_a_table_of_texts(programme: Path, capsys) -> None:
    """`says` that is not a table of texts is a diagnostic at its key."""
    status, out = run(capsys, programme, case("12.50", "awards = { points = 12 }\nsays = [1]"))
    assert status != 0
    assert "spend.test.toml:7:1: test_bad_value" in out
    assert "says must be a table of rule names and the texts" in out
