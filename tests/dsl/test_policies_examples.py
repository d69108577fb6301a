"""The bundled example policies pass their own tests, and the policy test runner reports well.

The examples in ``policies/`` are tested by their ``*.test.toml`` files through the real
``loyalty test`` command; the rest of this file pins how the runner reads test files and
reports failures and mistakes (``dsl/tools/testing/``, ``service/cli/test.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import dsl
from dsl.policyset import holds_definitions
from dsl.tools.stateinput import state_for
from dsl.tools.testing import load_case_file, run_case
from service.cli import main

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"


def loyalty(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``loyalty`` command in a real subprocess from the repository root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


# -- the examples --------------------------------------------------------------------------


def test_example_policies_pass_their_tests() -> None:
    """`loyalty test policies/` exits 0 having run every case of every test file."""
    proc = loyalty("test", "policies/", "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    written = {
        str(p.relative_to(ROOT)): len(tomllib.loads(p.read_text(encoding="utf-8"))["case"])
        for p in POLICIES.rglob("*.test.toml")
    }
    assert sorted(report["files"]) == sorted(written)
    assert report["failed"] == 0
    assert report["passed"] == sum(written.values())
    assert report["diagnostics"] == [] and report["warnings"] == []


def test_example_policies_text_report() -> None:
    """The human report of the examples is one summary line naming the revision."""
    proc = loyalty("test", "policies/")
    revision = dsl.load_directory(POLICIES).revision
    files = len(list(POLICIES.rglob("*.test.toml")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(f" passed ({files} files, revision {revision})")


def test_every_example_policy_has_a_test_file_beside_it() -> None:
    """Each ``NAME.policy`` in policies/ has ``NAME.test.toml`` in the same directory (a file
    of shared definitions is tested through the policies that use it)."""
    untested = [
        str(p.relative_to(ROOT)) for p in POLICIES.rglob("*.policy")
        if not p.with_name(p.stem + ".test.toml").is_file()
        and not holds_definitions(p.read_text(encoding="utf-8"))
    ]
    assert untested == []


def test_every_rule_of_every_example_fires_in_some_case() -> None:
    """The example tests exercise every rule: each (policy, rule) fires in at least one case
    (each evaluated with its state and history)."""
    policy_set = dsl.load_directory(POLICIES)
    names = [p.name for p in policy_set.policies]
    fired: set[tuple[str, str]] = set()
    for path in POLICIES.rglob("*.test.toml"):
        cases, problems = load_case_file(path.read_text(encoding="utf-8"), str(path),
                                         policy_set.schema, names)
        assert problems == []
        for case in cases:
            if case.expect.error is not None:
                continue
            customer, event = policy_set.decoder.request({"customer": case.customer,
                                                          "event": case.event})
            state = state_for(policy_set, case.customer, customer, event, case.state,
                              case.history)
            decision = policy_set.evaluate(customer, event, only=list(case.policies) or None,
                                           state=state)
            fired.update(decision.fired)
    every_rule = {(p.name, r) for p in policy_set.policies for r in p.rules}
    assert sorted(every_rule - fired) == []


def test_example_policies_load_without_warnings() -> None:
    """The showcase is clean: `loyalty check policies/` would report nothing."""
    assert dsl.check_directory(POLICIES) == []


# -- the runner --------------------------------------------------------------------------------

SCHEMA = """\
tiers = ["SILVER", "GOLD"]

[benefits]
welcome = { visit = "int" }
"""

POLICY = """\
policy spend_points
  on purchase
  "One point per dollar; a big spender is tagged, qualifies for GOLD and is welcomed."

  rule per_dollar: award event.amount points
  rule big_spender when event.amount >= 100:
    tag "big"
    qualify for "GOLD"
    grant "welcome" with visit = 1

  round points down
"""

CUSTOMER = "customer = { member_since = 2020-01-01 }"


def case(name: str, amount: str, expect: str) -> str:
    """One [[case]] of a test file, buying for ``amount`` on 2 March 2026."""
    return (
        f'[[case]]\nname = "{name}"\n{CUSTOMER}\n'
        f'event = {{ time = 2026-03-02T10:00:00Z, purchase = {{ amount = "{amount}" }} }}\n'
        f"[case.expect]\n{expect}\n"
    )


@pytest.fixture
def programme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A one-policy programme in a temporary directory, which is also the working directory."""
    (tmp_path / "schema.toml").write_text(SCHEMA, encoding="utf-8")
    (tmp_path / "spend.policy").write_text(POLICY, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``loyalty ARGS`` in-process: (exit status, stdout, stderr)."""
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_passing_cases_exit_zero(programme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Cases whose expectations hold pass, and the command exits 0."""
    (programme / "spend.test.toml").write_text(
        case("small", "12.50", "awards = { points = 12 }")
        + case("big", "112.00", 'awards = { points = "112" }\ntier = "GOLD"\ntags = ["big"]\n'
               'benefits = [{ name = "welcome", with = { visit = 1 } }]'),
        encoding="utf-8",
    )
    revision = dsl.load_directory(programme).revision
    status, out, err = run_cli(capsys, "test", ".")
    assert (status, out, err) == (0, f"2 passed (1 file, revision {revision})\n", "")


def test_failing_case_shows_expected_against_actual_and_the_reasons(
    programme: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong expectation fails with expected and actual side by side, then the reasons."""
    (programme / "spend.test.toml").write_text(
        case("twelve fifty", "12.50", "# 12.50 rounded down\nawards = { points = 13 }"),
        encoding="utf-8",
    )
    revision = dsl.load_directory(programme).revision
    status, out, _ = run_cli(capsys, "test", ".")
    assert status == 1
    assert out == (
        "spend.test.toml:1: FAIL twelve fifty\n"
        "    awards: expected { points = 13 }\n"
        "            actual   { points = 12 }\n"
        "    reasons:\n"
        '      spend_points.per_dollar: fired +12.5 points -- says "Per dollar"\n'
        "      spend_points.big_spender: not_fired (event.amount >= 100)\n"
        "      spend_points: rounded (total 12.5 points -> 12 (down))\n"
        "\n"
        f"0 passed, 1 failed (1 file, revision {revision})\n"
    )


@pytest.mark.parametrize(
    ("expect", "part", "expected", "actual"),
    [
        pytest.param('awards = { points = 112 }\ntier = "GOLD"\ntags = ["big"]\n'
                     'benefits = [{ name = "welcome", with = { visit = 2 } }]',
                     "benefits", '[{ name = "welcome", with = { visit = 2 } }]',
                     '[{ name = "welcome", with = { visit = 1 } }]', id="benefit_params"),
        pytest.param('awards = { points = 112 }\ntier = "GOLD"\ntags = ["big"]',
                     "benefits", "[]", '["welcome"]', id="benefit_left_out_means_none"),
        pytest.param('awards = { points = 112 }\ntier = "SILVER"\ntags = ["big"]\n'
                     'benefits = ["welcome"]', "tier", '"SILVER"', '"GOLD"', id="tier"),
        pytest.param('awards = { points = 112 }\ntier = "GOLD"\nbenefits = ["welcome"]',
                     "tags", "[]", '["big"]', id="tags_left_out_mean_none"),
        pytest.param('awards = { points = 112, credit = "0.50" }\ntier = "GOLD"\ntags = ["big"]\n'
                     'benefits = ["welcome"]', "awards", '{ credit = "0.50", points = 112 }',
                     "{ points = 112 }", id="awards_exact_map"),
    ],
)
def test_every_part_of_the_decision_is_compared(
    programme: Path, expect: str, part: str, expected: str, actual: str
) -> None:
    """Awards, benefits (with parameters when given), tier and tags are each compared exactly."""
    schema_text = SCHEMA + '\n[currencies]\ncredit = { decimals = 2 }\n'
    (programme / "schema.toml").write_text(schema_text, encoding="utf-8")
    policy_set = dsl.load_directory(programme)
    cases, problems = load_case_file(case("big", "112.00", expect), "t.test.toml",
                                     policy_set.schema, ["spend_points"])
    assert problems == []
    result = run_case(policy_set, cases[0])
    assert not result.passed
    assert [(m.part, m.expected, m.actual) for m in result.mismatches] == [
        (part, expected, actual)
    ]


def test_expected_input_error_passes_and_a_missing_one_fails(
    programme: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`error` expects the input to be rejected; when it is not, the case fails and says so."""
    (programme / "spend.test.toml").write_text(
        case("refused", "-", 'error = "event.purchase.amount: \\"-\\" is not a decimal number"')
        + case("accepted", "5.00", 'error = "is not a decimal number"'),
        encoding="utf-8",
    )
    status, out, _ = run_cli(capsys, "test", ".", "-v")
    assert status == 1
    assert out.splitlines()[:5] == [
        "spend.test.toml:1: PASS refused",
        "",
        "spend.test.toml:7: FAIL accepted",
        '    error: expected "is not a decimal number"',
        "           actual   no error; awards { points = 5 }",
    ]


def test_malformed_test_file_gets_a_positioned_message(
    programme: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A TOML syntax error is reported at its line and column in the test file, exit 2."""
    (programme / "spend.test.toml").write_text(
        '[[case]]\nname = "broken"\ncustomer = { member_since = 2020-01-01\n', encoding="utf-8"
    )
    status, out, err = run_cli(capsys, "test", ".")
    assert status == 2
    assert err == ""
    lines = out.splitlines()
    assert lines[0].startswith("spend.test.toml:3:")
    assert ": test_syntax: this is not valid TOML: " in lines[0]
    assert lines[1] == "    | customer = { member_since = 2020-01-01"
    assert lines[3] == (
        "    = hint: a { ... } table must close on the same line in TOML; for a longer one "
        "write a [case.event] (or [case.customer]) section with one field per line"
    )
    assert lines[-1] == "1 problem found; no case was run"


def test_mistakes_in_cases_name_the_file_the_case_and_the_place(
    programme: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown field, a float for a decimal and a misspelt expectation: every one reported."""
    (programme / "spend.test.toml").write_text(
        "[[case]]\n"
        'name = "sloppy"\n'
        "customer = { member_since = 2020-01-01, tier = \"GOLDEN\" }\n"
        "\n"
        "[case.event]\n"
        "time = 2026-03-02T10:00:00Z\n"
        "[case.event.purchase]\n"
        "amount = 12.5\n"
        'chanel = "app"\n'
        "\n"
        "[case.expect]\n"
        "award = { points = 12 }\n",
        encoding="utf-8",
    )
    status, out, _ = run_cli(capsys, "test", ".")
    assert status == 2
    assert out == (
        'spend.test.toml:3:41: test_bad_input: case "sloppy": customer.tier: "GOLDEN" is not a '
        "tier (one of: SILVER, GOLD)\n"
        '    | customer = { member_since = 2020-01-01, tier = "GOLDEN" }\n'
        "    |                                         ^^^^\n"
        "    = hint: did you mean `GOLD`?\n"
        "\n"
        'spend.test.toml:8:1: test_bad_input: case "sloppy": event.purchase.amount: must be an exact '
        'decimal written as a string (for example "12.5"), not a binary floating-point number\n'
        "    | amount = 12.5\n"
        "    | ^^^^^^\n"
        '    = hint: TOML numbers with a point are floats; write exact decimals in quotes: "12.50"\n'
        "\n"
        'spend.test.toml:9:1: test_bad_input: case "sloppy": event.purchase.chanel: is not a field '
        "of Purchase\n"
        '    | chanel = "app"\n'
        "    | ^^^^^^\n"
        "    = hint: did you mean `channel`?\n"
        "\n"
        'spend.test.toml:12:1: test_unknown_key: case "sloppy": unknown expectation "award"\n'
        "    | award = { points = 12 }\n"
        "    | ^^^^^\n"
        "    = hint: did you mean `awards`?\n"
        "\n"
        "4 problems found; no case was run\n"
    )


def test_a_case_in_the_old_flat_form_says_what_to_write(
    programme: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A case written as the schema's flat records (a kind's fields beside the event's own, an
    extension field beside the standard ones) is pointed at each misplaced key, saying where it
    goes in the request form."""
    (programme / "schema.toml").write_text(SCHEMA + '\n[customer]\nhome_store = "string?"\n',
                                           encoding="utf-8")
    (programme / "spend.test.toml").write_text(
        "[[case]]\n"
        'name = "flat"\n'
        'customer = { member_since = 2020-01-01, home_store = "S1" }\n'
        'event = { kind = "purchase", time = 2026-03-02T10:00:00Z, amount = "12.50" }\n'
        "[case.expect]\n"
        "awards = { points = 12 }\n",
        encoding="utf-8",
    )
    status, out, _ = run_cli(capsys, "test", ".")
    assert status == 2
    assert out == (
        'spend.test.toml:3:41: test_bad_input: case "flat": customer.home_store: is not a field of '
        "Customer; home_store is an extension field: send it in attributes\n"
        '    | customer = { member_since = 2020-01-01, home_store = "S1" }\n'
        "    |                                         ^^^^^^^^^^\n"
        '    = hint: write attributes = { home_store = "..." }\n'
        "\n"
        'spend.test.toml:4:59: test_bad_input: case "flat": event.amount: belongs in '
        "event.purchase: write it as event.purchase.amount\n"
        '    | event = { kind = "purchase", time = 2026-03-02T10:00:00Z, amount = "12.50" }\n'
        "    |                                                           ^^^^^^\n"
        "    = hint: a purchase event's own fields go in a [case.event.purchase] section "
        "(or event = { ..., purchase = { ... } })\n"
        "\n"
        "2 problems found; no case was run\n"
    )


def test_an_extension_field_under_the_kinds_section_says_where_it_goes(
    programme: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A field the directory adds to purchase events, written in [case.event.purchase]'s
    attributes, is pointed at [case.event]; an undeclared one is told how to declare it."""
    (programme / "schema.toml").write_text(SCHEMA + '\n[events.purchase]\nstore = "string?"\n',
                                           encoding="utf-8")
    (programme / "spend.test.toml").write_text(
        "[[case]]\n"
        'name = "misplaced"\n'
        f"{CUSTOMER}\n"
        "[case.event]\n"
        "time = 2026-03-02T10:00:00Z\n"
        "[case.event.purchase]\n"
        'amount = "12.50"\n'
        'attributes = { store = "S1", brand = "B" }\n'
        "[case.expect]\n"
        "awards = { points = 12 }\n",
        encoding="utf-8",
    )
    status, out, _ = run_cli(capsys, "test", ".")
    assert status == 2
    assert out == (
        'spend.test.toml:8:16: test_bad_input: case "misplaced": event.purchase.attributes.store: '
        "belongs in event.attributes (Purchase carries no attributes): write it as "
        "event.attributes.store\n"
        '    | attributes = { store = "S1", brand = "B" }\n'
        "    |                ^^^^^\n"
        '    = hint: write it in [case.event] (not [case.event.purchase]): attributes = '
        '{ store = "..." }\n'
        "\n"
        'spend.test.toml:8:30: test_bad_input: case "misplaced": event.purchase.attributes.brand: '
        "is not a field in the schema\n"
        '    | attributes = { store = "S1", brand = "B" }\n'
        "    |                              ^^^^^\n"
        '    = hint: declare it in schema.toml under [events.purchase] (for example brand = '
        '"string?") and write it in [case.event] as attributes = { brand = ... }\n'
        "\n"
        "2 problems found; no case was run\n"
    )


def test_unknown_policy_in_a_case_is_a_test_file_error(
    programme: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`policy` must name a policy of the set, with a suggestion when it is misspelt."""
    (programme / "spend.test.toml").write_text(
        case("named", "1.00", "awards = { points = 1 }").replace(
            "[case.expect]", 'policy = "spend_point"\n[case.expect]'
        ),
        encoding="utf-8",
    )
    status, out, _ = run_cli(capsys, "test", ".")
    assert status == 2
    assert out.splitlines()[:4] == [
        'spend.test.toml:5:1: test_unknown_policy: case "named": no policy is named "spend_point"',
        '    | policy = "spend_point"',
        "    | ^^^^^^",
        "    = hint: did you mean `spend_points`?",
    ]


def test_k_selects_cases_by_name(programme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-k runs only the cases whose name contains the text; none selected is exit 2."""
    (programme / "spend.test.toml").write_text(
        case("Small purchase", "1.00", "awards = { points = 1 }")
        + case("big purchase", "100.00", "awards = { points = 7 }"),
        encoding="utf-8",
    )
    status, out, _ = run_cli(capsys, "test", ".", "-k", "SMALL")
    assert status == 0
    assert out.startswith("1 passed (1 file, ")
    status, out, _ = run_cli(capsys, "test", ".", "-k", "nothing like it")
    assert (status, out) == (2, 'no case name contains "nothing like it"\n')


def test_json_report_carries_expected_and_actual(
    programme: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--format json gives machines the same facts: status, counts, mismatches, reasons."""
    (programme / "spend.test.toml").write_text(
        case("wrong", "2.00", "awards = { points = 3 }"), encoding="utf-8"
    )
    status, out, _ = run_cli(capsys, "test", ".", "--format", "json")
    report = json.loads(out)
    assert status == 1
    assert (report["status"], report["passed"], report["failed"]) == ("failed", 0, 1)
    [result] = report["cases"]
    assert result["mismatches"] == [
        {"part": "awards", "expected": "{ points = 3 }", "actual": "{ points = 2 }"}
    ]
    # The fired rule shows its exact contribution (2.00 dollars: 2 points, written plainly).
    assert 'spend_points.per_dollar: fired +2 points -- says "Per dollar"' in result["reasons"]


def test_policy_errors_stop_the_run_with_diagnostics(
    programme: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken policy is reported as a diagnostic (never a traceback) and no case runs."""
    (programme / "spend.policy").write_text(POLICY.replace("event.amount >=", "event.amont >="),
                                            encoding="utf-8")
    (programme / "spend.test.toml").write_text(case("any", "1.00", "awards = { points = 1 }"),
                                               encoding="utf-8")
    status, out, err = run_cli(capsys, "test", ".")
    assert status == 2
    assert err == ""
    assert out.splitlines()[0] == (
        "spend.policy:6:25: unknown_field: event has no field `amont`"
    )
    assert out.splitlines()[-1] == "1 problem found; no case was run"


def test_a_subdirectory_runs_against_its_programme(
    programme: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tests in a business's subdirectory use the schema and policies of the directory above."""
    sub = programme / "shop"
    sub.mkdir()
    (programme / "spend.policy").rename(sub / "spend.policy")
    (sub / "spend.test.toml").write_text(
        case("gold", "150.00", 'awards = { points = 150 }\ntier = "GOLD"\ntags = ["big"]\n'
             'benefits = ["welcome"]'),
        encoding="utf-8",
    )
    status, out, _ = run_cli(capsys, "test", "shop")
    assert status == 0, out
    assert out.startswith("1 passed (1 file, ")


def test_missing_directory_is_exit_2(programme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory that does not exist is a usage error, reported on stderr."""
    status, out, err = run_cli(capsys, "test", "nowhere")
    assert (status, out) == (2, "")
    assert err == "loyalty test: nowhere: no such file or directory\n"
