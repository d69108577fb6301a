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
    """`loyalty --help` names every verb."""
    out = loyalty("--help").stdout
    for verb in ("serve", "check", "fmt", "test", "eval", "compile", "diff", "replay", "usage", "state"):
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


def test_check_strict_makes_warnings_errors(tmp_path: Path) -> None:
    """A lint is a warning: `loyalty check` prints it and exits 0; `--strict` exits 1 on it (and
    on it alone); the JSON form gives it with its severity."""
    (tmp_path / "schema.toml").write_text((Path("policies") / "schema.toml").read_text())
    (tmp_path / "p.policy").write_text(
        "policy p\n  on flight\n  rule r: award 20 of event.fare miles\n  round miles down\n")
    loose = loyalty("check", str(tmp_path))
    strict = loyalty("check", "--strict", str(tmp_path))
    assert (loose.returncode, strict.returncode) == (0, 1)
    assert loose.stdout == strict.stdout
    assert loose.stdout.splitlines()[:4] == [
        f"{tmp_path / 'p.policy'}:3:17: warning: whole_number_of: `20 of event.fare` is 20 times "
        "event.fare, not 20 percent of it",
        "    |   rule r: award 20 of event.fare miles",
        "    |                 ^^",
        "    = hint: write `20% of event.fare` for a percentage (no space before `%`), or "
        "`20 * event.fare` for a multiple",
    ]
    assert "0 errors, 1 warning" in loose.stdout.splitlines()
    data = json.loads(loyalty("check", "--strict", "--format", "json", str(tmp_path)).stdout)
    assert (data["ok"], data["errors"], data["warnings"]) == (False, 0, 1)
    assert [(d["code"], d["severity"]) for d in data["diagnostics"]] == [("whole_number_of", "warning")]
    (tmp_path / "p.policy").write_text(
        "policy p\n  on flight\n  rule r: award 20% of event.fare miles\n  round miles down\n")
    assert loyalty("check", "--strict", str(tmp_path)).returncode == 0


def test_check_strict_on_the_bundled_policies_is_clean() -> None:
    """The bundled policies draw no warning, so `--strict` passes on them."""
    result = loyalty("check", "--strict", "policies")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_missing_path_exits_2() -> None:
    """A path that does not exist is exit 2 with a one-line message."""
    result = loyalty("check", "no/such/dir")
    assert result.returncode == 2
    assert result.stderr.strip() == "loyalty check: no/such/dir: no such file or directory"


def write(path: Path, data: dict[str, object]) -> Path:
    """``data`` as JSON in ``path``, one key a line (as a person writes it: problems point at lines)."""
    path.write_text(json.dumps(data, indent=2))
    return path


CUSTOMER = {"id": "c1", "memberSince": "2012-02-29", "tier": "GOLD"}
EVENT = {"id": "e1", "time": "2026-03-01T09:30:00Z",
         "flight": {"origin": "JFK", "destination": "LHR", "fare": "420.00", "cabin": "business"}}


def test_eval_prints_decision_and_reasons(tmp_path: Path) -> None:
    """`loyalty eval --explain` prints the decision and why each rule did or did not fire."""
    c = write(tmp_path / "c.json", CUSTOMER)
    e = write(tmp_path / "e.json", EVENT)
    result = loyalty("eval", "--customer", str(c), "--event", str(e), "--explain")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "awards: 8949 miles" in lines
    assert "  earn_miles_by_distance.first_cabin: not_fired (event.cabin == \"first\")" in lines
    # Each rule's exact contribution; the policy's total rounded down once.
    assert ('  earn_miles_by_distance.loyal_for_a_decade: fired +344.2 miles -- says '
            '"+344 miles for 14 years with us"') in lines
    assert "  earn_miles_by_distance: rounded (total 8949.2 miles -> 8949 (down))" in lines
    # A rule without a text says its name in words.
    assert '  earn_miles_by_distance.elite: fired +3442 miles -- says "Elite"' in lines


def test_eval_language_picks_the_rules_texts(tmp_path: Path) -> None:
    """`--language fr` (or a request body's "language") shows each rule's French text; a
    language a rule does not declare falls back to its first text."""
    c = write(tmp_path / "c.json", CUSTOMER)
    e = write(tmp_path / "e.json", EVENT)
    french = loyalty("eval", "--customer", str(c), "--event", str(e), "--explain", "--language", "fr")
    assert french.returncode == 0, french.stderr
    assert ('  earn_miles_by_distance.flown_miles: fired +3442 miles -- says '
            '"3442 miles pour votre vol de JFK à LHR"') in french.stdout.splitlines()
    r = write(tmp_path / "r.json", {"customer": CUSTOMER, "event": EVENT, "explain": True,
                                    "language": "de"})
    german = loyalty("eval", "--request", str(r), "--format", "json")
    assert german.returncode == 0, german.stderr
    says = {x["rule"]: x.get("says") for x in json.loads(german.stdout)["reasons"]}
    assert says["flown_miles"] == "3442 miles for your flight from JFK to LHR"
    assert says["loyal_for_a_decade"] == "+344 miles for 14 years with us"
    assert says["business_cabin"] == "Business cabin"
    assert says["first_cabin"] == ""  # a rule that did not fire says nothing


def test_eval_json_compiled_and_interpreted_agree(tmp_path: Path) -> None:
    """The compiled evaluator and the reference interpreter print the same decision, in the
    API's JSON form (awards as decimal strings)."""
    c = write(tmp_path / "c.json", CUSTOMER)
    e = write(tmp_path / "e.json", EVENT)
    fast = loyalty("eval", "--customer", str(c), "--event", str(e), "--explain", "--format", "json")
    slow = loyalty("eval", "--customer", str(c), "--event", str(e), "--explain", "--format", "json",
                   "--interpreted")
    assert fast.returncode == slow.returncode == 0
    assert json.loads(fast.stdout) == json.loads(slow.stdout)
    assert json.loads(fast.stdout)["awards"] == {"miles": "8949"}


def test_eval_json_is_the_api_decision(tmp_path: Path) -> None:
    """`--format json` prints a loyalty.v1.Decision in its JSON form: it parses back into the
    message, and holds what the API returns (fired rules as objects, reasons with their text)."""
    from google.protobuf import json_format

    from service.gen.loyalty.v1 import loyalty_pb2 as pb

    r = write(tmp_path / "r.json", {"customer": CUSTOMER, "event": EVENT, "explain": True})
    result = loyalty("eval", "--request", str(r), "--format", "json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    message = json_format.ParseDict(out, pb.Decision())
    assert dict(message.awards) == {"miles": "8949"}
    assert out["revision"].startswith("r")
    assert {"policy": "earn_miles_by_distance", "rule": "flown_miles"} in out["fired"]
    assert out["benefits"] == [{"name": "priority-rebooking", "params": {},
                                "policy": "earn_miles_by_distance", "rule": "loyal_for_a_decade"}]
    assert out["tags"] == ["decade-member"]
    assert any(r["text"] == 'earn_miles_by_distance.flown_miles: fired +3442 miles -- says '
               '"3442 miles for your flight from JFK to LHR"'
               and r["says"] == "3442 miles for your flight from JFK to LHR"
               for r in out["reasons"])


def test_eval_request_file_is_an_evaluate_request_body(tmp_path: Path) -> None:
    """--request reads {"customer", "event", "explain", "onlyPolicies"} (snake_case too);
    the file's explain asks for the reasons like the flag does, and onlyPolicies limits the set."""
    r = write(tmp_path / "r.json", {"customer": CUSTOMER, "event": EVENT, "explain": True,
                                    "only_policies": ["earn_miles_by_distance"]})
    result = loyalty("eval", "--request", str(r))
    assert result.returncode == 0, result.stderr
    assert "awards: 8949 miles" in result.stdout.splitlines()
    assert "reasons:" in result.stdout.splitlines()


def test_eval_request_file_in_toml_takes_native_dates(tmp_path: Path) -> None:
    """A TOML request is the same body, its dates and times written bare."""
    r = tmp_path / "r.toml"
    r.write_text(
        'customer = { id = "c1", member_since = 2012-02-29, tier = "GOLD" }\n'
        "[event]\n"
        'id = "e1"\n'
        "time = 2026-03-01T09:30:00Z\n"
        "[event.flight]\n"
        'origin = "JFK"\ndestination = "LHR"\nfare = "420.00"\ncabin = "business"\n')
    result = loyalty("eval", "--request", str(r))
    assert result.returncode == 0, result.stderr
    assert "awards: 8949 miles" in result.stdout.splitlines()


def test_eval_bad_input_names_each_field(tmp_path: Path) -> None:
    """Bad input gives one line per problem with the file, the line and column of the key, the
    request path and the reason; exit 2; no traceback."""
    c = write(tmp_path / "c.json", {"id": "c1", "memberSince": "2012-02-30"})
    e = write(tmp_path / "e.json", {**EVENT, "flight": {**EVENT["flight"], "origin": "XXX",
                                                      "fare": True}})
    result = loyalty("eval", "--customer", str(c), "--event", str(e))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f'loyalty eval: {c}:3:3: customer.memberSince: "2012-02-30" is not a date that exists',
        f"loyalty eval: {e}:7:5: event.flight.fare: must be a string, not true",
        f'loyalty eval: {e}:5:5: event.flight.origin: unknown airport code "XXX"',
    ]


def test_eval_request_problems_outside_customer_and_event(tmp_path: Path) -> None:
    """Unknown keys, a non-boolean explain and an unknown policy name are each reported."""
    r = write(tmp_path / "r.json", {"customer": CUSTOMER, "event": EVENT, "explian": True,
                                    "onlyPolicies": ["earn_miles"]})
    result = loyalty("eval", "--request", str(r))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"loyalty eval: {r}:17:3: explian: is not a field of EvaluateRequest; did you mean `explain`?",
        f'loyalty eval: {r}:18:3: onlyPolicies[0]: no policy is named "earn_miles"; '
        "did you mean `earn_miles_by_distance`?",
    ]


def test_eval_old_flat_form_says_what_to_write(tmp_path: Path) -> None:
    """A customer or event in the schema's flat form (kind beside the flight's fields, extension
    fields beside standard ones) is refused with the place each field belongs."""
    c = write(tmp_path / "c.json", {"id": "c1", "member_since": "2012-02-29", "home_store": "S1"})
    e = write(tmp_path / "e.json", {"id": "e1", "kind": "flight", "time": "2026-03-01T09:30:00Z",
                                    "origin": "JFK", "destination": "LHR", "fare": "420.00"})
    result = loyalty("eval", "--customer", str(c), "--event", str(e))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert (f"loyalty eval: {c}:4:3: customer.home_store: is not a field of Customer; home_store is an "
            "extension field: send it in attributes") in lines
    assert (f"loyalty eval: {e}:5:3: event.origin: belongs in event.flight: write it as "
            "event.flight.origin") in lines
    assert "Traceback" not in result.stderr


def test_eval_a_whole_request_given_as_the_customer_points_at_request(tmp_path: Path) -> None:
    r = write(tmp_path / "r.json", {"customer": CUSTOMER, "event": EVENT})
    result = loyalty("eval", "--customer", str(r), "--event", str(r))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"loyalty eval: {r}: holds a whole request (customer and event): give it as --request FILE",
    ] * 2


@pytest.mark.parametrize(("name", "text", "message"), [
    ("deep.json", "[" * 100_000, "the request file nests too deeply to be a request"),
    ("bad.json", '{"customer": ', "the request file is not valid JSON: Expecting value: "
                                  "line 1 column 14 (char 13)"),
    ("list.json", "[1, 2]", "the request file must hold one object"),
    ("bad.toml", "customer = {", "the request file is not valid TOML: "
                                 "Invalid initial character for a key part (at end of document)"),
], ids=["deeply-nested", "invalid-json", "not-an-object", "invalid-toml"])
def test_eval_unusable_request_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    """A file that is no request at all gets one line and exit 2, never a traceback."""
    path = tmp_path / name
    path.write_text(text)
    result = loyalty("eval", "--request", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"loyalty eval: {path}: {message}"]


@pytest.mark.parametrize("args", [["--customer", "c.json"], ["--request", "r.json", "--event", "e.json"], []],
                         ids=["customer-alone", "request-and-event", "nothing"])
def test_eval_needs_a_request_or_a_customer_and_an_event(args: list[str]) -> None:
    result = loyalty("eval", *args)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "loyalty eval: give --request FILE, or both --customer FILE and --event FILE"]


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


def test_a_schema_mistake_is_a_positioned_diagnostic(tmp_path: Path) -> None:
    """A schema.toml mistake is reported like a policy's: file:line:col, the line, a caret and
    a hint, exit 1; a field named `attributes` is refused, since no request could carry it."""
    (tmp_path / "p.policy").write_text("policy p\n  on flight\n  rule r: award 1 miles\n")
    schema = tmp_path / "schema.toml"
    schema.write_text('tiers = ["GOLD"]\n\n[customer.lifetime]\nregular_visits = "int?"\n'
                      'attributes = "string?"\n')
    result = loyalty("check", str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[:4] == [
        f"{schema}:5:1: schema_error: customer.lifetime.attributes: is the name of the map that "
        "carries extension fields, so no request could send it",
        '    | attributes = "string?"',
        "    | ^^^^^^^^^^",
        "    = hint: give the field another name",
    ]
    schema.write_text('[customer]\nnickname = { type = "int", max_length = 5 }\n')
    result = loyalty("check", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        f"{schema}:2:1: schema_error: customer.nickname.max_length: only text fields have a "
        "max_length, a whole number from 1 to 10000")


def test_loading_the_verbs_does_not_import_prometheus_client() -> None:
    """`loyalty` imports every verb's module at start; prometheus_client must wait until `serve`
    has set PROMETHEUS_MULTIPROC_DIR (--workers N), or the workers' metrics are lost."""
    code = ("import sys; from service.cli import build_parser; build_parser(); "
            "print('prometheus_client' in sys.modules)")
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                            timeout=120, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, "False"), result.stderr


def test_eval_reads_the_customers_state_and_says_what_it_counted(tmp_path: Path) -> None:
    """`loyalty eval --state FILE` takes a test case's state or history: a purchase that
    crosses the quarter's cap earns on the part below it, and the decision says what counted."""
    request = write(tmp_path / "r.json", {
        "customer": {"id": "c1", "memberSince": "2020-01-01",
                     "attributes": {"cashback_activated": {"boolValue": True}}},
        "event": {"id": "e1", "kind": "purchase", "time": "2026-05-02T10:00:00Z",
                  "purchase": {"amount": "100.00", "items": [
                      {"sku": "a", "category": "groceries", "amount": "100.00"}]}},
        "onlyPolicies": ["quarterly_cashback"]})
    state = tmp_path / "s.toml"
    state.write_text('history = [{ counter = "activated_spend", at = 2026-04-02T10:00:00Z, '
                     'amount = "1450.00" }]\n')
    result = loyalty("eval", "--request", str(request), "--state", str(state))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "awards: 2.50 cashback" in lines
    assert "counted: 50.00 toward activated_spend" in lines
    state.write_text("state = { activated_spend = 1450.5 }\n")
    bad = loyalty("eval", "--request", str(request), "--state", str(state))
    assert bad.returncode == 2
    assert "state.activated_spend: 1450.5 is not exact" in bad.stderr


def test_check_one_file_reads_its_programmes_shared_definitions(tmp_path: Path) -> None:
    """`loyalty check FILE` resolves the file's `use` lines against the definitions files of
    its programme (the folder of its schema.toml), and names a misspelt one with a hint."""
    (tmp_path / "schema.toml").write_text("")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "common.policy").write_text(
        'definitions common\n  let excluded = ["tobacco"]\n')
    shop = tmp_path / "shop"
    shop.mkdir()
    good = "policy p\n  on purchase\n  use excluded from common\n" \
           "  rule r when count(i for i in event.items where i.category in excluded) == 0:\n" \
           "    award 1 points\n"
    (shop / "p.policy").write_text(good)
    result = loyalty("check", "shop/p.policy", cwd=tmp_path)
    assert (result.returncode, result.stdout.split(",")[0]) == (
        0, "ok: shop/p.policy: 1 policies in 2 files")
    (shop / "p.policy").write_text(good.replace("from common", "from commons"))
    result = loyalty("check", "shop/p.policy", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[:4] == [
        "shop/p.policy:3:21: unknown_definitions: no definitions are called `commons` in this "
        "programme",
        "    |   use excluded from commons",
        "    |                     ^^^^^^^",
        "    = hint: did you mean `common`?",
    ]


def test_compile_a_file_of_shared_definitions_says_where_its_code_is() -> None:
    result = loyalty("compile", "policies/supermarket/supermarket_common.policy")
    assert (result.returncode, result.stderr) == (2, "")
    assert result.stdout == (
        "loyalty compile: policies/supermarket/supermarket_common.policy holds no policy (a file "
        "of shared definitions compiles into each policy that uses it: compile one of those)\n")
