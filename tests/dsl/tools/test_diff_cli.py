"""``loyalty diff``: the real command, in a subprocess, on policy directories made for each test.

The old and new directories hold a small restaurant programme; each test changes the new
one and pins the whole report, because the report is what a policy author reads before a
change ships.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dsl

ROOT = Path(__file__).resolve().parents[3]

SCHEMA = """\
tiers = ["SILVER", "GOLD"]

[benefits]
lounge = {}
"""

VISITS_OLD = """\
policy visits
  version 1
  on visit

  let regular = customer.lifetime.visits >= 5

  rule welcome: award 10 points
  rule regular_bonus when regular: award 5 points
  rule gold when customer.lifetime.visits >= 50: qualify for "GOLD"
"""

VISITS_NEW = """\
policy visits
  version 2
  effective from 2026-01-01
  on visit

  let regular = customer.lifetime.visits >= 4

  rule welcome: award 10 points
  rule regular_bonus when regular:
    award 5 points
    grant "lounge"
  rule party when event.party_size >= 4: tag "party"
  rule gold when customer.lifetime.visits >= 20: qualify for "GOLD"
"""

FLIGHTS = """\
policy flights
  version 3
  on flight

  rule flown: award 100 miles
"""

DONATIONS = """\
policy donations
  on donation

  rule thanks: tag "donor"
"""

SPEND = """\
policy spend
  on visit

  rule big_table when event.party_size > 8: award 20 points
"""

SPEND_REFORMATTED = """\
# Large parties earn a little more.
policy spend
    on visit
    rule big_table when (event.party_size > 8):
        award 20 points
"""


def case(n: int, visits: int, party: int = 1, **extra: object) -> str:
    """One case line: an EvaluateRequest body as grpcurl sends it (camelCase), plus ``extra``."""
    return json.dumps({
        "customer": {"id": f"c{n}", "memberSince": "2015-01-01",
                     "lifetime": {"visits": visits}},
        "event": {"id": f"e{n}", "time": "2026-03-01T19:00:00Z", "visit": {"partySize": party}},
        **extra,
    })


CASES = "\n".join([
    case(1, 0),
    case(2, 4, 2),
    case(3, 5, 4),
    "",
    case(4, 30),
    case(5, 60, name="a regular of many years"),
]) + "\n"


@pytest.fixture
def programme(tmp_path: Path) -> Path:
    """old/ and new/ with the same schema; old holds visits, flights and spend."""
    for side in ("old", "new"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "schema.toml").write_text(SCHEMA)
    write(tmp_path / "old", visits=VISITS_OLD, flights=FLIGHTS, spend=SPEND)
    return tmp_path


def write(directory: Path, **policies: str) -> None:
    for name, text in policies.items():
        (directory / f"{name}.policy").write_text(text)


def loyalty(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "service", "diff", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def revisions(root: Path) -> str:
    old, new = (dsl.load_directory(root / side).revision for side in ("old", "new"))
    return f"old old ({old}), new new ({new})\n"


def test_identical_directories_exit_zero(programme: Path) -> None:
    """Two directories with the same policies report no differences and exit 0."""
    write(programme / "new", visits=VISITS_OLD, flights=FLIGHTS, spend=SPEND)
    result = loyalty(programme, "old", "new")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == revisions(programme) + (
        "policies: 0 added, 0 removed, 0 changed, 3 unchanged\n"
        "no differences in meaning (3 policies)\n"
    )


def test_structural_summary(programme: Path) -> None:
    """Policies added, removed and changed, with version, window, rules and members, exit 1."""
    write(programme / "new", visits=VISITS_NEW, donations=DONATIONS, spend=SPEND_REFORMATTED)
    result = loyalty(programme, "old", "new")
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout == revisions(programme) + (
        "policies: 1 added, 1 removed, 1 changed, 1 text only, 0 unchanged\n"
        "+ donations (new/donations.policy): version 1, on donation, effective always, 1 rule\n"
        "- flights (old/flights.policy): version 3\n"
        "~ visits\n"
        "    version: 1 -> 2\n"
        "    effective: always -> from 2026-01-01\n"
        "    rules added: party\n"
        "    rules changed: regular_bonus, gold\n"
        "    changed: let regular\n"
        "= spend: text only, same meaning\n"
    )


def test_meaning_changed_without_a_version_bump_is_pointed_out(programme: Path) -> None:
    """A changed policy whose version stayed the same gets a note saying so."""
    write(programme / "new", flights=FLIGHTS, spend=SPEND,
          visits=VISITS_OLD.replace("award 10 points", "award 12 points"))
    result = loyalty(programme, "old", "new")
    assert result.returncode == 1
    assert result.stdout == revisions(programme) + (
        "policies: 0 added, 0 removed, 1 changed, 2 unchanged\n"
        "~ visits\n"
        "    note: the meaning changed but the version did not\n"
        "    rules changed: welcome\n"
        "    bound: points: at most 15 -> at most 17\n"
    )


def test_text_only_changes_exit_zero(programme: Path) -> None:
    """Reformatting and comments change the text, not the meaning: reported, exit 0."""
    write(programme / "new", visits=VISITS_OLD, flights=FLIGHTS, spend=SPEND_REFORMATTED)
    result = loyalty(programme, "old", "new")
    assert result.returncode == 0
    assert result.stdout == revisions(programme) + (
        "policies: 0 added, 0 removed, 0 changed, 1 text only, 2 unchanged\n"
        "= spend: text only, same meaning\n"
    )


def test_cases_report_what_changes_for_customers(programme: Path) -> None:
    """With --cases: changed decisions, totals per currency, benefits, tags, tiers, rules, examples."""
    write(programme / "new", visits=VISITS_NEW, flights=FLIGHTS, spend=SPEND)
    (programme / "cases.jsonl").write_text(CASES)
    result = loyalty(programme, "old", "new", "--cases", "cases.jsonl", "--show", "2")
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout == revisions(programme) + (
        "policies: 0 added, 0 removed, 1 changed, 2 unchanged\n"
        "~ visits\n"
        "    version: 1 -> 2\n"
        "    effective: always -> from 2026-01-01\n"
        "    rules added: party\n"
        "    rules changed: regular_bonus, gold\n"
        "    changed: let regular\n"
        "\n"
        "cases: 5, decisions changed: 4 (80.0%)\n"
        "awards (total over all cases):\n"
        "  points: 65 -> 70 (+5)\n"
        "benefits (cases granted):\n"
        "  lounge: 0 -> 4 (+4)\n"
        "tags (cases tagged):\n"
        "  party: 0 -> 1 (+1)\n"
        "rules (cases fired):\n"
        "  visits.gold: 1 -> 2 (+1)\n"
        "  visits.party: 0 -> 1 (+1)\n"
        "  visits.regular_bonus: 3 -> 4 (+1)\n"
        "tiers (cases moved):\n"
        "  none -> GOLD: 1\n"
        "changed cases (first 2 of 4):\n"
        "  line 2 (customer c2, event e2):\n"
        "    awards: 10 points -> 15 points\n"
        "    benefits: none -> lounge\n"
        "  line 3 (customer c3, event e3):\n"
        "    benefits: none -> lounge\n"
        "    tags: none -> party\n"
    )


def test_only_policies_in_a_case_limits_both_sets(programme: Path) -> None:
    """A case's onlyPolicies (as in the API) evaluates just those policies on both sides, and its
    explain is accepted and changes nothing: a case changed by `visits` is unchanged when only
    `spend` is asked for."""
    write(programme / "new", visits=VISITS_NEW, flights=FLIGHTS, spend=SPEND)
    (programme / "cases.jsonl").write_text(case(2, 4, 2, explain=True) + "\n")
    assert loyalty(programme, "old", "new", "--cases", "cases.jsonl").returncode == 1
    (programme / "cases.jsonl").write_text(case(2, 4, 2, explain=True, onlyPolicies=["spend"])
                                           + "\n")
    result = loyalty(programme, "old", "new", "--cases", "cases.jsonl")
    assert (result.returncode, result.stderr) == (0, "")
    assert "cases: 1, decisions changed: 0 (0.0%)" in result.stdout.splitlines()


def test_cases_as_json(programme: Path) -> None:
    """--format json carries the same figures for machines, with the changed cases."""
    write(programme / "new", visits=VISITS_NEW, flights=FLIGHTS, spend=SPEND)
    (programme / "cases.jsonl").write_text(CASES)
    result = loyalty(programme, "old", "new", "--cases", "cases.jsonl", "--format", "json",
                     "--show", "1")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    decisions = report["decisions"]
    assert report["differs"] is True
    assert report["structure"]["changed"][0]["rules"] == {
        "added": ["party"], "removed": [], "changed": ["regular_bonus", "gold"]}
    assert (decisions["cases"], decisions["changed"]) == (5, 4)
    assert decisions["awards"] == {"points": {"before": 65, "after": 70, "delta": 5}}
    assert decisions["benefits"] == {"lounge": {"before": 0, "after": 4}}
    assert decisions["tiers"] == [{"before": None, "after": "GOLD", "cases": 1}]
    assert decisions["rules"] == {
        "visits.gold": {"before": 1, "after": 2},
        "visits.party": {"before": 0, "after": 1},
        "visits.regular_bonus": {"before": 3, "after": 4},
    }
    assert decisions["examples"] == [{
        "line": 2, "case": "customer c2, event e2",
        "before": {"awards": {"points": 10}, "benefits": [], "tier": None, "tags": [],
                   "fired": ["visits.welcome"]},
        "after": {"awards": {"points": 15}, "benefits": [{"name": "lounge", "params": ""}],
                  "tier": None, "tags": [],
                  "fired": ["visits.welcome", "visits.regular_bonus"]},
    }]


def test_structural_change_that_decides_nothing_differently_exits_zero(
        programme: Path) -> None:
    """With --cases the status answers "do these decisions change?": a new policy for another
    kind of event changes none of them."""
    write(programme / "new", visits=VISITS_OLD, flights=FLIGHTS, spend=SPEND,
          donations=DONATIONS)
    (programme / "cases.jsonl").write_text(CASES)
    result = loyalty(programme, "old", "new", "--cases", "cases.jsonl")
    assert result.returncode == 0
    assert result.stdout.endswith(
        "cases: 5, decisions changed: 0 (0.0%)\n"
        "awards (total over all cases):\n"
        "  points: 65 -> 65 (+0)\n"
    )


def test_a_named_case_is_shown_by_its_name(programme: Path) -> None:
    """A case's optional "name" labels it in the list of changed cases."""
    write(programme / "new", visits=VISITS_NEW, flights=FLIGHTS, spend=SPEND)
    (programme / "cases.jsonl").write_text(CASES)
    result = loyalty(programme, "old", "new", "--cases", "cases.jsonl", "--show", "9")
    assert result.stdout.endswith(
        "  line 6 (a regular of many years):\n"
        "    benefits: none -> lounge\n"
    )


def test_evaluation_errors_are_outcomes_not_crashes(programme: Path) -> None:
    """A policy that fails on a case is reported as that case's outcome, with its location."""
    broken = VISITS_OLD.replace(
        "award 5 points", "award 100 / (customer.lifetime.visits - 30) points"
    ) + "  round points down\n"
    write(programme / "new", visits=broken, flights=FLIGHTS, spend=SPEND)
    (programme / "cases.jsonl").write_text(CASES)
    result = loyalty(programme, "old", "new", "--cases", "cases.jsonl", "--show", "3")
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout == revisions(programme) + (
        "policies: 0 added, 0 removed, 1 changed, 2 unchanged\n"
        "~ visits\n"
        "    note: the meaning changed but the version did not\n"
        "    rules changed: regular_bonus\n"
        "    added: round points\n"
        "    bound: points: at most 15 -> at most 110\n"
        "\n"
        "cases: 5, decisions changed: 3 (60.0%)\n"
        "awards (total over all cases):\n"
        "  points: 65 -> 43 (-22)\n"
        "rules (cases fired):\n"
        "  visits.regular_bonus: 3 -> 2 (-1)\n"
        "  visits.welcome: 5 -> 4 (-1)\n"
        "evaluation errors: 0 -> 1\n"
        "changed cases (first 3 of 3):\n"
        "  line 3 (customer c3, event e3):\n"
        "    awards: 15 points -> 10 points\n"
        "  line 5 (customer c4, event e4):\n"
        "    error: none -> new/visits.policy:8: policy visits: division by zero\n"
        "  line 6 (a regular of many years):\n"
        "    awards: 15 points -> 13 points\n"
    )


BAD_CASES = "\n".join([
    case(1, 0),
    '{"customer": {"id": "c2"}, "event": ',
    '["not", "an", "object"]',
    json.dumps({"customer": {"id": "c4", "member_since": "2015-01-01"}}),
    json.dumps({"customer": {"id": "c5", "member_since": "yesterday", "tier": "BRONZE"},
                "event": {"id": "e5", "time": "2026-03-01T19:00:00Z",
                          "visit": {"partySize": "four"}},
                "expect": {}, "explain": "yes"}),
    json.dumps({"customer": {"id": "c6", "member_since": "2015-01-01"},
                "event": {"id": "e6", "kind": "visit", "time": "2026-03-01T19:00:00Z",
                          "party_size": 2},
                "onlyPolicies": "visits"}),
    "[" * 100_000,
]) + "\n"


def test_bad_case_lines_are_reported_with_line_and_field(programme: Path) -> None:
    """Every bad case line is named with its number and the field at fault; exit 2, no report."""
    write(programme / "new", visits=VISITS_NEW, flights=FLIGHTS, spend=SPEND)
    (programme / "cases.jsonl").write_text(BAD_CASES)
    result = loyalty(programme, "old", "new", "--cases", "cases.jsonl")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "cases.jsonl:2: not valid JSON: Expecting value (column 37)\n"
        'cases.jsonl:3: a case is a JSON object with "customer" and "event"\n'
        "cases.jsonl:4: event: is required\n"
        'cases.jsonl:5: expect: unknown key (a case is an EvaluateRequest body, "customer", '
        '"event", "explain", "onlyPolicies", and an optional "name")\n'
        "cases.jsonl:5: explain: must be true or false\n"
        'cases.jsonl:5: customer.member_since: must be a date written YYYY-MM-DD, not '
        '"yesterday"\n'
        'cases.jsonl:5: customer.tier: "BRONZE" is not a tier (one of: SILVER, GOLD)\n'
        'cases.jsonl:5: event.visit.partySize: must be a whole number, not "four"\n'
        "cases.jsonl:6: onlyPolicies: must be a list of policy names\n"
        "cases.jsonl:6: event.party_size: belongs in event.visit: write it as "
        "event.visit.party_size\n"
        "cases.jsonl:7: nests too deeply to be a request\n"
    )


def test_policy_errors_print_diagnostics_and_exit_two(programme: Path) -> None:
    """A policy error in either directory prints its diagnostics, exit 2, no traceback."""
    write(programme / "new", visits=VISITS_OLD.replace("award 10 points", "award 10 pionts"),
          flights=FLIGHTS, spend=SPEND)
    result = loyalty(programme, "old", "new")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "new/visits.policy:7:26: unknown_currency: unknown currency `pionts`\n"
        "    |   rule welcome: award 10 pionts\n"
        "    |                          ^^^^^^\n"
        "    = hint: did you mean `points`?\n"
        "\n"
        "1 error in new\n"
    )


def test_missing_directory_exits_two(programme: Path) -> None:
    """A directory that does not exist is an error, not an empty set."""
    result = loyalty(programme, "old", "nowhere")
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", "loyalty diff: nowhere: no such file or directory\n")


def test_unreadable_cases_file_exits_two(programme: Path) -> None:
    """A cases file that cannot be read is named with the reason."""
    write(programme / "new", visits=VISITS_OLD, flights=FLIGHTS, spend=SPEND)
    result = loyalty(programme, "old", "new", "--cases", "missing.jsonl")
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", "loyalty diff: missing.jsonl: cannot read the cases: no such file or directory\n")


def test_schema_change_is_reported_and_cases_are_checked_against_both_schemas(
        programme: Path) -> None:
    """A changed schema.toml is a change in itself, and a case field only one side's schema
    declares is named with the side that refuses it."""
    write(programme / "new", visits=VISITS_OLD, flights=FLIGHTS, spend=SPEND)
    (programme / "new" / "schema.toml").write_text(SCHEMA + '\n[customer]\nvip = "bool?"\n')
    result = loyalty(programme, "old", "new")
    assert result.returncode == 1
    assert result.stdout == revisions(programme) + (
        "policies: 0 added, 0 removed, 0 changed, 3 unchanged\n"
        "schema: changed\n"
    )
    (programme / "cases.jsonl").write_text(
        case(1, 3).replace('"memberSince"', '"attributes": {"vip": {"boolValue": true}}, '
                                            '"memberSince"') + "\n")
    result = loyalty(programme, "old", "new", "--cases", "cases.jsonl")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "cases.jsonl:1: customer.attributes.vip: is not a field in the schema "
        "(old policies' schema only)\n"
    )


def test_a_change_that_moves_an_award_bound_says_so(programme: Path) -> None:
    """A raised award moves the policy's bound: the structural report shows old -> new."""
    raised = VISITS_OLD.replace("version 1", "version 2").replace(
        "rule welcome: award 10 points", "rule welcome:\n    award 10 points\n    award 5 points")
    write(programme / "new", visits=raised, flights=FLIGHTS.replace(
        "award 100 miles", "award event.fare miles\n  round miles down"),
          spend=SPEND)
    result = loyalty(programme, "old", "new")
    assert (result.returncode, result.stderr) == (1, ""), result.stdout + result.stderr
    assert result.stdout == revisions(programme) + (
        "policies: 0 added, 0 removed, 2 changed, 1 unchanged\n"
        "~ flights\n"
        "    note: the meaning changed but the version did not\n"
        "    rules changed: flown\n"
        "    added: round miles\n"
        "    bound: miles: at most 100 -> unbounded\n"
        "~ visits\n"
        "    version: 1 -> 2\n"
        "    rules changed: welcome\n"
        "    bound: points: at most 15 -> at most 20\n"
    )


HAPPY_HOUR = """\
policy happy_hour
  on visit

  rule happy when local(event.time, "Europe/London") between 15:00 and 18:00: award 5 points
  rule quick when event.time + 30 seconds > event.time: tag "quick"
"""


def test_local_time_changes_are_compared_by_meaning(programme: Path) -> None:
    """Moving the end of a `between` range is a changed rule; respacing it, or writing
    30 seconds in other words, is text only."""
    write(programme / "old", happy_hour=HAPPY_HOUR)
    write(programme / "new", visits=VISITS_OLD, flights=FLIGHTS, spend=SPEND,
          happy_hour=HAPPY_HOUR.replace("and 18:00", "and 19:00"))
    result = loyalty(programme, "old", "new")
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout == revisions(programme) + (
        "policies: 0 added, 0 removed, 1 changed, 3 unchanged\n"
        "~ happy_hour\n"
        "    note: the meaning changed but the version did not\n"
        "    rules changed: happy\n"
    )
    write(programme / "new", happy_hour=HAPPY_HOUR.replace("between 15:00 and", "between  15:00  and")
          .replace("30 seconds", "(30 seconds)"))
    result = loyalty(programme, "old", "new")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == revisions(programme) + (
        "policies: 0 added, 0 removed, 0 changed, 1 text only, 3 unchanged\n"
        "= happy_hour: text only, same meaning\n"
    )


SHARED_OLD = 'definitions shop_common\n  let excluded = ["tobacco"]\n  let rate = 2\n'
SHARED_USERS = """\
policy earn
  on purchase
  use excluded from shop_common
  rule base: award sum(i.amount for i in event.items where i.category not in excluded) points
  round points down

policy bonus
  on purchase
  use excluded from shop_common
  rule extra when count(i for i in event.items where i.category in excluded) == 0: award 1 points

policy rated
  on visit
  use rate from shop_common
  rule visit: award rate points
"""


def test_a_changed_shared_list_changes_every_policy_that_uses_it(programme: Path) -> None:
    """The diff names the changed shared member in each policy using it, and says which
    policies the block touched (not the one using another of its definitions)."""
    for side in ("old", "new"):
        for name in ("visits", "flights", "spend"):
            (programme / side / f"{name}.policy").unlink(missing_ok=True)
        write(programme / side, users=SHARED_USERS)
    write(programme / "old", common=SHARED_OLD)
    write(programme / "new", common=SHARED_OLD.replace('["tobacco"]', '["tobacco", "lottery"]'))
    result = loyalty(programme, "old", "new")
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout == revisions(programme) + (
        "policies: 0 added, 0 removed, 2 changed, 1 unchanged\n"
        "~ bonus\n"
        "    note: the meaning changed but the version did not\n"
        "    changed: let excluded (from shop_common)\n"
        "~ earn\n"
        "    note: the meaning changed but the version did not\n"
        "    changed: let excluded (from shop_common)\n"
        "definitions shop_common: changed the meaning of 2 policies: bonus, earn\n"
    )
    as_json = json.loads(loyalty(programme, "old", "new", "--format", "json").stdout)
    assert as_json["structure"]["shared"] == {"shop_common": ["bonus", "earn"]}
