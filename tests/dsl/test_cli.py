"""The `loyalty` command as policy authors run it: real processes, real files, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def loyalty(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `loyalty ARGS` in a fresh interpreter and capture everything it prints."""
    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-m", "service", *args], capture_output=True, text=True,
                          cwd=cwd or root, timeout=120, check=False)


def test_help_lists_every_verb() -> None:
    """`loyalty --help` names all seven verbs."""
    out = loyalty("--help").stdout
    for verb in ("serve", "check", "fmt", "test", "eval", "compile", "diff"):
        assert f"    {verb} " in out, verb


def test_check_bundled_policies_is_clean() -> None:
    """`loyalty check policies/` exits 0 and reports the revision."""
    result = loyalty("check", "policies")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: policies: ")


def test_check_reports_errors_with_positions_and_exit_1(tmp_path: Path) -> None:
    """A broken file gives every diagnostic with file:line:col, a caret and a hint; exit 1."""
    bad = tmp_path / "bad.policy"
    bad.write_text("policy p\n  on flight\n  rule r when event.fare > \"5\": award 1 mils\n")
    result = loyalty("check", str(bad))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{bad}:3:15: type_error: cannot compare event.fare (decimal) with \"5\" (string)",
        '    |   rule r when event.fare > "5": award 1 mils',
        "    |               ^^^^^^^^^^^^^^^^",
        "    = hint: write the number without quotes: 5",
        "",
        f"{bad}:3:41: unknown_currency: unknown currency `mils`",
        '    |   rule r when event.fare > "5": award 1 mils',
        "    |                                         ^^^^",
        "    = hint: did you mean `miles`?",
        "",
        "2 errors, 0 warnings",
    ]
    assert "Traceback" not in result.stderr


def test_check_json_is_machine_readable(tmp_path: Path) -> None:
    """`--format json` gives the same diagnostics as data, with stable codes."""
    bad = tmp_path / "bad.policy"
    bad.write_text("policy p\n  on flight\n  rule r: award 1 mils\n")
    result = loyalty("check", "--format", "json", str(bad))
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert [(d["line"], d["column"], d["code"]) for d in data["diagnostics"]] == [
        (3, 19, "unknown_currency")]


def test_check_missing_path_exits_2() -> None:
    """A path that does not exist is exit 2 with a one-line message."""
    result = loyalty("check", "no/such/dir")
    assert result.returncode == 2
    assert result.stderr.strip() == "loyalty check: no/such/dir: no such file or directory"


def write(path: Path, data: dict[str, object]) -> Path:
    path.write_text(json.dumps(data))
    return path


CUSTOMER = {"id": "c1", "member_since": "2012-02-29", "tier": "GOLD"}
EVENT = {"id": "e1", "kind": "flight", "time": "2026-03-01T09:30:00Z", "origin": "JFK",
         "destination": "LHR", "fare": "420.00", "cabin": "business"}


def test_eval_prints_decision_and_reasons(tmp_path: Path) -> None:
    """`loyalty eval --explain` prints the decision and why each rule did or did not fire."""
    c = write(tmp_path / "c.json", CUSTOMER)
    e = write(tmp_path / "e.json", EVENT)
    result = loyalty("eval", "--customer", str(c), "--event", str(e), "--explain")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "awards: 8949 miles" in lines
    assert "  earn_miles_by_distance.first_cabin: not_fired (event.cabin == \"first\")" in lines
    assert "  earn_miles_by_distance.loyal_for_a_decade: rounded (344.2 miles -> 344 (down))" in lines


def test_eval_json_compiled_and_interpreted_agree(tmp_path: Path) -> None:
    """The compiled evaluator and the reference interpreter print the same decision."""
    c = write(tmp_path / "c.json", CUSTOMER)
    e = write(tmp_path / "e.json", EVENT)
    fast = loyalty("eval", "--customer", str(c), "--event", str(e), "--explain", "--format", "json")
    slow = loyalty("eval", "--customer", str(c), "--event", str(e), "--explain", "--format", "json",
                   "--interpreted")
    assert fast.returncode == slow.returncode == 0
    assert json.loads(fast.stdout) == json.loads(slow.stdout)
    assert json.loads(fast.stdout)["awards"] == {"miles": 8949}


def test_eval_bad_input_names_each_field(tmp_path: Path) -> None:
    """Bad input gives one line per field with its path and reason; exit 2; no traceback.

    JSON numbers are read as exact decimal text, so only a wrong kind of value is refused.
    """
    c = write(tmp_path / "c.json", {"id": "c1", "member_since": "2012-02-30"})
    e = write(tmp_path / "e.json", {**EVENT, "origin": "XXX", "fare": True})
    result = loyalty("eval", "--customer", str(c), "--event", str(e))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        'loyalty eval: customer.member_since: "2012-02-30" is not a date that exists',
        'loyalty eval: event.origin: unknown airport code "XXX"',
        "loyalty eval: event.fare: must be a decimal number, not a boolean",
    ]


@pytest.mark.parametrize("variant", ["evaluate", "explain"])
def test_compile_prints_the_real_module(variant: str) -> None:
    """`loyalty compile` prints readable Python with the requested function only."""
    result = loyalty("compile", "policies/airline/earn_miles.policy", "--variant", variant)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Generated from policies/airline/earn_miles.policy")
    other = "explain" if variant == "evaluate" else "evaluate"
    assert f"\ndef {variant}(" in result.stdout
    assert f"\ndef {other}(" not in result.stdout
    compile(result.stdout, "<printed>", "exec")
