"""`loyalty test --coverage`: every kind of item, covered or not, with the reason it is not.

Each test writes a real programme (schema, policy, test file) into a temporary directory
and runs the real test runner over it (``dsl.tools.coverage.run_with_coverage``, or the
``loyalty`` command in-process), so the items and reasons are the ones authors see.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dsl
from dsl.decision import Decision
from dsl.library.runtime import in_evaluation_context
from dsl.periods import histories
from dsl.tools.coverage import CoverageReport, Item, _Recorder, run_with_coverage
from dsl.tools.stateinput import state_for
from dsl.tools.testing import find_test_files, load_case_file
from service.cli import main

ROOT = Path(__file__).resolve().parents[3]
POLICIES = ROOT / "policies"

SCHEMA = 'tiers = ["SILVER", "GOLD"]\n'

#: One policy with every kind of item; the line numbers below are pinned by the tests.
POLICY = """\
policy shop
  effective from 2026-01-01
  on purchase

  let big = event.amount >= 100
  let size = if big then 3 else 1
  let tier_name = customer.tier otherwise "NONE"

  table tier_bonus by customer.tier:
    "SILVER" -> 1
    "GOLD" -> 2
    else -> 0

  decide band first:
    when event.amount >= 50 -> 2
    when event.amount >= 100 -> 3
    else -> 1

  rule per_dollar: award event.amount * size * tier_bonus * band points
  rule big_gold when big and customer.tier == "GOLD": tag "big-gold"
  rule named when tier_name != "NONE": tag "named"

  group bonus takes first:
    rule ten when event.amount >= 10: award 1 points
    rule twenty when event.amount >= 20: award 2 points

  group basket takes best points:
    rule small when event.amount >= 1: award 1 points
    rule large when event.amount >= 2: award 5 points

  round points down
"""

OTHERS = """\
policy visits
  on visit
  rule per_visit: award 1 points

policy last_year
  effective 2025-01-01 to 2025-12-31
  on purchase
  rule old: award 1 points
"""


def case(name: str, amount: str, customer: str, points: int, tags: str = "[]",
         policy: str = "shop") -> str:
    """One [[case]] buying for ``amount`` on 2 March 2026."""
    return (
        f'[[case]]\nname = "{name}"\npolicy = "{policy}"\ncustomer = {{ {customer} }}\n'
        f'event = {{ time = 2026-03-02T10:00:00Z, purchase = {{ amount = "{amount}" }} }}\n'
        f"[case.expect]\nawards = {{ points = {points} }}\ntags = {tags}\n\n"
    )


# 60 SILVER: size 1, bonus 1, band 2: 120 + ten 1 + large 5 = 126
SILVER_60 = case("silver sixty", "60.00", 'member_since = 2020-01-01, tier = "SILVER"', 126,
                 '["named"]')
# 30, no tier: size 1, bonus 0 (else), band 1 (else): 0 + ten 1 + large 5 = 6
NONE_30 = case("no tier thirty", "30.00", "member_since = 2020-01-01", 6)


@pytest.fixture
def programme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A programme in a temporary directory, which is also the working directory."""
    (tmp_path / "schema.toml").write_text(SCHEMA, encoding="utf-8")
    (tmp_path / "shop.policy").write_text(POLICY, encoding="utf-8")
    (tmp_path / "others.policy").write_text(OTHERS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def coverage_of(programme: Path, tests: str, extra: str = "") -> CoverageReport:
    (programme / "shop.test.toml").write_text(tests + extra, encoding="utf-8")
    report, coverage = run_with_coverage(".")
    assert report.failed == 0 and not report.diagnostics, [r.render() for r in report.results]
    assert coverage is not None
    return coverage


def by_key(coverage: CoverageReport) -> dict[str, Item]:
    return {i.key: i for i in coverage.items}


def test_every_kind_of_item_with_its_reason(programme: Path) -> None:
    """Rules, when-false branches, table and decide rows, group members, if/otherwise/and
    arms: each is covered or carries the reason, at its file:line:column."""
    items = by_key(coverage_of(programme, SILVER_60 + NONE_30))
    got = {k: (i.line, i.column, i.kind, i.covered, i.reason)
           for k, i in items.items() if k.startswith("shop: ")}
    assert got == {
        "shop: let size: if then":
            (6, 14, "branch", False, "condition never true in the 2 cases that reached it"),
        "shop: let size: if else": (6, 14, "branch", True, ""),
        "shop: let tier_name: otherwise value": (7, 19, "branch", True, ""),
        "shop: let tier_name: otherwise fallback": (7, 19, "branch", True, ""),
        'shop: table tier_bonus: row "SILVER"': (10, 5, "table row", True, ""),
        'shop: table tier_bonus: row "GOLD"':
            (11, 5, "table row", False,
             'no case\'s customer.tier was "GOLD" (seen: "SILVER", none)'),
        "shop: table tier_bonus: else": (12, 5, "table row", True, ""),
        "shop: decide band: row 1": (15, 5, "decide row", True, ""),
        "shop: decide band: row 2":
            (16, 5, "decide row", False,
             "condition never true in the one case that reached it; shadowed by an earlier "
             "first-match row (line 15) in the 1 other case"),
        "shop: decide band: else": (17, 5, "decide row", True, ""),
        "shop: rule per_dollar": (19, 8, "rule", True, ""),
        "shop: rule big_gold":
            (20, 8, "rule", False,
             "condition never true in the 2 cases that reached it (`big` was never true)"),
        "shop: rule big_gold: when false": (20, 22, "branch", True, ""),
        "shop: rule big_gold: and left true":
            (20, 22, "branch", False, "left side never true in the 2 cases that reached it"),
        "shop: rule big_gold: and left false": (20, 22, "branch", True, ""),
        "shop: rule named": (21, 8, "rule", True, ""),
        "shop: rule named: when false": (21, 19, "branch", True, ""),
        "shop: rule ten": (24, 10, "group member", True, ""),
        "shop: rule ten: when false":
            (24, 19, "branch", False, "condition true in each of the 2 cases that reached it"),
        "shop: rule twenty":
            (25, 10, "group member", False,
             "never reached: group bonus (takes first) chose an earlier rule (ten, line 24) "
             "in every case that reached it"),
        "shop: rule twenty: when false":
            (25, 22, "branch", False,
             "never reached: group bonus (takes first) chose an earlier rule (ten, line 24) "
             "in every case that reached it"),
        "shop: rule small":
            (28, 10, "group member", False,
             "qualified in 2 cases but group basket chose large (line 29) each time"),
        "shop: rule small: when false":
            (28, 21, "branch", False, "condition true in each of the 2 cases that reached it"),
        "shop: rule large": (29, 10, "group member", True, ""),
        "shop: rule large: when false":
            (29, 21, "branch", False, "condition true in each of the 2 cases that reached it"),
    }


def test_policies_no_case_evaluates_say_why(programme: Path) -> None:
    """A policy on a kind no test sends, and one whose dates no test's event falls in."""
    items = by_key(coverage_of(programme, SILVER_60))
    assert items["visits: rule per_visit"].reason == "no test sends a visit event"
    assert items["last_year: rule old"].reason == (
        "no test's purchase event falls in the policy's effective dates (2025-01-01 to 2025-12-31)")


def test_a_policy_the_cases_leave_out_says_so(programme: Path) -> None:
    """Cases that name other policies: the in-window policy was simply never asked."""
    (programme / "others.policy").write_text(
        OTHERS + "\npolicy spare\n  on purchase\n  rule s: award 1 points\n", encoding="utf-8")
    items = by_key(coverage_of(programme, SILVER_60))
    assert items["spare: rule s"].reason == (
        "no case evaluates the policy (the cases with a purchase event in its dates name "
        "other policies)")


def test_a_condition_never_true_names_the_part_that_never_held(programme: Path) -> None:
    """In `a and b` where a held but b never did, the reason names b; a first-match row
    that no case reached is shadowed by the row that matched instead."""
    big_silver = case("big silver", "150.00", 'member_since = 2020-01-01, tier = "SILVER"',
                      3 * 150 * 2 + 1 + 5, '["named"]')
    items = by_key(coverage_of(programme, big_silver))
    assert items["shop: rule big_gold"].reason == (
        "condition never true in the one case that reached it "
        '(`customer.tier == "GOLD"` never held where the parts before it did)')
    assert items["shop: let size: if then"].covered
    assert items["shop: decide band: row 2"].reason == (
        "shadowed by an earlier first-match row (line 15) in every case that reached it")


def test_covering_cases_close_the_gaps(programme: Path) -> None:
    """Adding the cases a gap asks for covers it: the percentage moves honestly."""
    before = coverage_of(programme, SILVER_60 + NONE_30)
    # 150 GOLD: size 3, bonus 2, band 2: 1800 + ten 1 + large 5 = 1806
    gold = case("gold big", "150.00", 'member_since = 2020-01-01, tier = "GOLD"', 1806,
                '["big-gold", "named"]')
    after = coverage_of(programme, SILVER_60 + NONE_30 + gold)
    items = by_key(after)
    for key in ('shop: table tier_bonus: row "GOLD"', "shop: rule big_gold",
                "shop: let size: if then", "shop: rule big_gold: and left true"):
        assert items[key].covered, key
    assert after.covered == before.covered + 4
    assert after.percent > before.percent


def test_explained_gaps_leave_the_percentage(programme: Path) -> None:
    """An explained gap is listed as explained and no longer counted, like `pragma: no cover`."""
    plain = coverage_of(programme, SILVER_60 + NONE_30)
    explained = coverage_of(programme, SILVER_60 + NONE_30, (
        '[coverage.explained]\n'
        '"shop: decide band: row 2" = "kept to show the shadowing mistake"\n'))
    item = by_key(explained)["shop: decide band: row 2"]
    assert not item.covered and item.explanation == "kept to show the shadowing mistake"
    assert item not in explained.gaps
    assert (explained.covered, explained.counted) == (plain.covered, plain.counted - 1)
    assert explained.diagnostics == []


def test_explaining_an_unknown_or_covered_item_is_reported(programme: Path) -> None:
    """A misspelt item is an error with a suggestion; a covered one is a stale warning."""
    coverage = coverage_of(programme, SILVER_60 + NONE_30, (
        '[coverage.explained]\n'
        '"shop: decide band: rwo 2" = "no such row"\n'
        '"shop: rule per_dollar" = "it fires, so this is stale"\n'))
    [unknown] = coverage.diagnostics
    assert unknown.render().splitlines() == [
        'shop.test.toml:20:1: coverage_unknown_item: coverage.explained: no coverage item is '
        'called `shop: decide band: rwo 2`',
        '    | "shop: decide band: rwo 2" = "no such row"',
        "    | ^^^^^^^^^^^^^^^^^^^^^^^^^^",
        "    = hint: did you mean `shop: decide band: row 2`?",
    ]
    [stale] = coverage.warnings
    assert (stale.code, stale.line, stale.message) == (
        "coverage_stale_explanation", 21, '"shop: rule per_dollar" is covered by the tests now')


def test_a_malformed_coverage_table_is_a_test_file_error(programme: Path) -> None:
    """`[coverage]` holds only `explained`, a table of texts."""
    coverage = coverage_of(programme, SILVER_60, '[coverage]\nexplain = { "x" = "y" }\n')
    assert [d.code for d in coverage.diagnostics] == ["test_bad_value"]


def test_a_case_expecting_an_evaluation_error_counts_what_it_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault ends the run, but the branches taken before it are covered."""
    (tmp_path / "p.policy").write_text(
        "policy p\n  on purchase\n"
        "  let share = if event.amount > 0 then 100 / event.amount else 0\n"
        "  let ratio = 1 / (event.amount - 5)\n"
        "  rule r: award ratio + share points\n  round points down\n", encoding="utf-8")
    (tmp_path / "p.test.toml").write_text(
        '[[case]]\nname = "five"\ncustomer = { member_since = 2020-01-01 }\n'
        'event = { time = 2026-03-02T10:00:00Z, purchase = { amount = "5" } }\n'
        '[case.expect]\nerror = "division by zero"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    report, coverage = run_with_coverage(".")
    assert report.failed == 0
    assert coverage is not None
    items = by_key(coverage)
    assert items["p: let share: if then"].covered
    assert not items["p: rule r"].covered


# -- the command ------------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


SMALL_POLICY = """\
policy small
  on purchase
  rule per_dollar: award event.amount points
  rule big when event.amount >= 100: tag "big"
  round points down
"""


@pytest.fixture
def small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One two-rule policy with one case that leaves `big` unfired."""
    (tmp_path / "small.policy").write_text(SMALL_POLICY, encoding="utf-8")
    (tmp_path / "small.test.toml").write_text(
        case("ten", "10.00", "member_since = 2020-01-01", 10, policy="small"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_text_output_is_pinned(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The summary per policy, every gap with file:line:col and why, then one total line."""
    revision = dsl.load_directory(small).revision
    status, out, err = run_cli(capsys, "test", ".", "--coverage")
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        f"1 passed (1 file, revision {revision})",
        "",
        "small    2/3    66.6%  small.policy",
        "",
        "not covered:",
        "small.policy:4:8: small: rule big: condition never true in the one case that "
        "reached it",
        "coverage 66.6% (2 of 3 items), 1 unexplained gap",
    ]


def test_fail_under_exit_codes(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--fail-under: 3 with a clear message when below, 0 when at or above; a failing case
    still exits 1; --fail-under alone implies --coverage."""
    status, _, err = run_cli(capsys, "test", ".", "--fail-under", "90")
    assert status == 3
    assert err == ("loyalty test: coverage 66.6% is below --fail-under 90%: add cases for the "
                   "gaps listed, or explain deliberate ones in [coverage.explained]\n")
    assert run_cli(capsys, "test", ".", "--coverage", "--fail-under", "66.6")[0] == 0
    assert run_cli(capsys, "test", ".", "--coverage", "--fail-under", "66.7")[0] == 3
    (small / "small.test.toml").write_text(
        case("wrong", "10.00", "member_since = 2020-01-01", 11, policy="small"), encoding="utf-8")
    assert run_cli(capsys, "test", ".", "--fail-under", "10")[0] == 1


def test_explaining_the_gap_reaches_100(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With its one gap explained the policy is at 100% and passes --fail-under 100."""
    path = small / "small.test.toml"
    path.write_text(path.read_text() + '[coverage.explained]\n"small: rule big" = "demo"\n',
                    encoding="utf-8")
    assert run_cli(capsys, "test", ".")[:3:2] == (0, "")  # without --coverage: just a table
    status, out, _ = run_cli(capsys, "test", ".", "--fail-under", "100", "-v")
    assert status == 0
    assert out.splitlines()[-4:] == [
        "",
        "explained gaps:",
        "small.policy:4:8: small: rule big: explained: demo",
        "coverage 100.0% (2 of 2 items; 1 explained gap left out)",
    ]


def test_bad_fail_under_is_a_usage_error(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A value that is not a percentage is refused by name, exit 2, no traceback."""
    with pytest.raises(SystemExit) as exc:
        main(["test", ".", "--fail-under", "lots"])
    assert exc.value.code == 2
    assert "'lots' is not a number: write a percentage such as 90" in capsys.readouterr().err


def test_json_shape(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--json` adds a coverage object: totals, per policy, and every uncovered item."""
    status, out, _ = run_cli(capsys, "test", ".", "--json", "--fail-under", "50")
    assert status == 0
    data = json.loads(out)
    assert data["status"] == "passed"
    assert data["coverage"] == {
        "percent": 66.6, "covered": 2, "counted": 3, "explained": 0, "items": 3, "gaps": 1,
        "fail_under": 50.0, "below": False,
        "policies": [{"name": "small", "file": "small.policy", "covered": 2, "counted": 3,
                      "explained": 0, "items": 3, "percent": 66.6}],
        "not_covered": [{
            "policy": "small", "id": "rule big", "kind": "rule", "file": "small.policy",
            "line": 4, "column": 8, "covered": False,
            "reason": "condition never true in the one case that reached it",
            "explanation": "",
        }],
        "diagnostics": [], "warnings": [],
    }


def test_coverage_is_scoped_to_the_tested_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`loyalty test sub --coverage` reports the policies below sub, not the whole programme."""
    (tmp_path / "schema.toml").write_text(SCHEMA, encoding="utf-8")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "small.policy").write_text(SMALL_POLICY, encoding="utf-8")
    (tmp_path / "a" / "small.test.toml").write_text(
        case("ten", "10.00", "member_since = 2020-01-01", 10, policy="small"), encoding="utf-8")
    (tmp_path / "b" / "visits.policy").write_text(OTHERS.split("\npolicy last_year")[0],
                                                  encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    _, coverage = run_with_coverage("a")
    assert coverage is not None
    assert [p.name for p in coverage.policies] == ["small"]
    _, one_file = run_with_coverage("a/small.test.toml")
    assert one_file is not None and [p.name for p in one_file.policies] == ["small"]


# -- the bundled policies ----------------------------------------------------------------------


def test_bundled_policies_are_covered_or_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every bundled policy is at 100%: each gap is covered by a case or explained in its
    test file."""
    monkeypatch.chdir(ROOT)
    report, coverage = run_with_coverage("policies")
    assert report.failed == 0 and coverage is not None
    assert coverage.diagnostics == [] and coverage.warnings == []
    assert [i.render() for i in coverage.gaps] == []


def test_recording_never_changes_a_decision() -> None:
    """The recording interpreter decides exactly as compiled code, on every bundled case (with
    its state: what it counted included)."""
    policy_set = dsl.load_directory(POLICIES)
    names = [p.name for p in policy_set.policies]
    checked = 0
    for path in find_test_files(POLICIES):
        cases, _ = load_case_file(path.read_text(encoding="utf-8"), str(path),
                                  policy_set.schema, names)
        for c in cases:
            if c.expect.error is not None:
                continue
            customer, event = policy_set.decoder.request({"customer": c.customer,
                                                          "event": c.event})
            state = state_for(policy_set, c.customer, customer, event, c.state, c.history)
            for p in policy_set.applicable(event):
                recorded = Decision("", {}, [], None, [], [], [], None)
                compiled = Decision("", {}, [], None, [], [], [], None)
                history = (histories(p.counters, event["time"], policy_set.zone, state)
                           if p.counters else None)
                in_evaluation_context(_Recorder(p).run, customer, event, recorded, None, history)
                args = (customer, event, compiled) + ((history,) if history is not None else ())
                in_evaluation_context(p.module.evaluate, *args)
                assert (recorded.awards, recorded.fired, recorded.tier, recorded.tags,
                        recorded.counted) == (compiled.awards, compiled.fired, compiled.tier,
                                              compiled.tags, compiled.counted), c.name
                checked += 1
    assert checked > 50


def test_up_to_and_cap_count_both_sides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An award's `up to` and a policy's `cap`: limited in some case, and not in another."""
    (tmp_path / "lim.policy").write_text(
        "policy lim\n  on purchase\n"
        "  rule per_dollar: award event.amount points up to 100\n"
        "  rule double: award event.amount points\n"
        "  cap points at 250\n  round points down\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    member = "member_since = 2020-01-01"
    (tmp_path / "lim.test.toml").write_text(case("fifty", "50", member, 100, policy="lim"),
                                            encoding="utf-8")
    _, coverage = run_with_coverage(".")
    assert coverage is not None
    got = {k: (i.line, i.column, i.kind, i.reason) for k, i in by_key(coverage).items()
           if i.kind == "limit"}
    assert got == {
        "lim: rule per_dollar: up to reached":
            (3, 20, "limit", "the limit was never reached in the one case that came to it"),
        "lim: rule per_dollar: up to not reached": (3, 20, "limit", ""),
        "lim: cap points reached":
            (5, 3, "limit", "the limit was never reached in the one case that came to it"),
        "lim: cap points not reached": (5, 3, "limit", ""),
    }
    # 150: per_dollar 150 up to 100 = 100, double 150: 250, at the cap exactly (not over);
    # 200: 100 + 200 = 300, capped at 250
    (tmp_path / "lim.test.toml").write_text(
        case("fifty", "50", member, 100, policy="lim")
        + case("one fifty", "150", member, 250, policy="lim")
        + case("two hundred", "200", member, 250, policy="lim"), encoding="utf-8")
    _, coverage = run_with_coverage(".")
    assert coverage is not None and coverage.gaps == []


def test_collect_decide_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `collect` decide: a row is covered when its condition holds; its else when none did."""
    (tmp_path / "col.policy").write_text(
        "policy col\n  on purchase\n"
        "  decide extra collect:\n"
        "    when event.amount >= 10 -> 1\n"
        "    when event.amount >= 1000 -> 2\n"
        "    else -> 0\n"
        "  rule r: award sum(x for x in extra) points\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "col.test.toml").write_text(
        case("twenty", "20", "member_since = 2020-01-01", 1, policy="col")
        + case("fifty", "50", "member_since = 2020-01-01", 1, policy="col"), encoding="utf-8")
    _, coverage = run_with_coverage(".")
    assert coverage is not None
    got = {k: (i.line, i.covered, i.reason) for k, i in by_key(coverage).items()
           if i.kind == "decide row"}
    assert got == {
        "col: decide extra: row 1": (4, True, ""),
        "col: decide extra: row 2":
            (5, False, "condition never true in the 2 cases that reached it"),
        "col: decide extra: else":
            (6, False, "another row matched in each of the 2 cases that reached it"),
    }


# -- shared definitions ------------------------------------------------------------------------

SHARED_BLOCK = """\
definitions shop_common
  table tier_points by customer.tier:
    "SILVER" -> 1
    "GOLD" -> 2
    else -> 0
"""

SHARED_USERS = """\
policy buys
  on purchase
  use tier_points from shop_common
  rule buy: award tier_points points

policy stays
  on visit
  use tier_points from shop_common
  rule stay: award tier_points points
"""

SHARED_TESTS = """\
[[case]]
name = "a silver member buys"
customer = { member_since = 2020-01-01, tier = "SILVER" }
event = { time = 2026-03-01T10:00:00Z, purchase = { amount = "10" } }
[case.expect]
awards = { points = 1 }

[[case]]
name = "a gold member stays"
customer = { member_since = 2020-01-01, tier = "GOLD" }
event = { time = 2026-03-01T10:00:00Z, visit = {} }
[case.expect]
awards = { points = 2 }
"""


def test_a_shared_tables_rows_are_reported_once_against_the_shared_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two policies use one shared table: each row is one item of the block, in its own file,
    covered when a case of either policy reached it; the policies list only their own items."""
    (tmp_path / "schema.toml").write_text(SCHEMA, encoding="utf-8")
    (tmp_path / "common.policy").write_text(SHARED_BLOCK, encoding="utf-8")
    (tmp_path / "shop.policy").write_text(SHARED_USERS, encoding="utf-8")
    (tmp_path / "shop.test.toml").write_text(SHARED_TESTS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    report, coverage = run_with_coverage(".")
    assert report.failed == 0 and not report.diagnostics
    assert coverage is not None
    assert [(p.name, p.file, p.covered, p.counted) for p in coverage.policies] == [
        ("buys", "shop.policy", 1, 1), ("stays", "shop.policy", 1, 1),
        ("shop_common", "common.policy", 2, 3)]
    assert [i.render() for i in coverage.gaps] == [
        'common.policy:5:5: shop_common: table tier_points: else: every case\'s customer.tier '
        'matched a row (seen: "GOLD", "SILVER")']
