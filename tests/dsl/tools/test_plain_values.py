"""Plain attribute values in policy test files and ``loyalty eval`` input (dsl/tools/plainvalues.py).

A field a directory's schema adds travels in ``attributes`` as a typed value; a test file or an
eval file may write it plainly (``nights = 4``) and the schema field's type says which typed
value it is. These tests hold the plain form to the typed form (the same prepared input), pin
the refusals of values that do not fit (file, line, column, the request path), and run the
eval command on a plain request.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import dsl
from dsl.tools.plainvalues import is_typed, type_plain_values
from dsl.tools.testing import load_case_file
from service.cli import main

ROOT = Path(__file__).resolve().parents[3]

SCHEMA = """\
tiers = ["SILVER", "GOLD"]

[currencies]
points = { decimals = 0 }

[records.room]
number = "int"
view = "enum(sea, garden)"

[customer]
home_hotel = "string?"
birthday_treat = { type = "bool", default = false }

[events.stay]
nights = { type = "int", min = 1 }
rate = "decimal?"
arrived = "date?"
checked_out = "datetime?"
late_by = "duration?"
board = "enum(room_only, half_board, full_board)?"
extras = { type = "list<string>", default = [] }
rooms = { type = "list<room>", default = [] }
suite = "room?"
"""

POLICY = """\
policy stay_points
  on stay
  rule per_night: award 100 * event.nights points
  rule sea_view when any(r.view == "sea" for r in event.rooms): award 50 points
  rule spa when "spa" in event.extras: award 10 points
"""

PLAIN = """\
[[case]]
name = "plain"
customer = { member_since = 2020-01-01, attributes = { home_hotel = "H1", birthday_treat = true } }

[case.event]
kind = "stay"
time = 2026-03-02T10:00:00Z

[case.event.attributes]
nights = 3
rate = "149.50"
arrived = 2026-02-27
checked_out = 2026-03-02T10:00:00Z
late_by = "15 minutes"
board = "half_board"
extras = ["spa", "parking"]
rooms = [{ number = 12, view = "sea" }]
suite = { number = 1, view = "garden" }

[case.expect]
awards = { points = 360 }
"""

TYPED = (
    '[[case]]\n'
    'name = "typed"\n'
    'customer = { member_since = 2020-01-01, attributes = { home_hotel = { stringValue = "H1" }, '
    'birthday_treat = { boolValue = true } } }\n'
    """
[case.event]
kind = "stay"
time = 2026-03-02T10:00:00Z

[case.event.attributes]
nights = { intValue = "3" }
rate = { decimalValue = "149.50" }
arrived = { dateValue = 2026-02-27 }
checked_out = { timeValue = "2026-03-02T10:00:00Z" }
late_by = { durationValue = "900s" }
board = { stringValue = "half_board" }
extras = { listValue = { values = [{ stringValue = "spa" }, { stringValue = "parking" }] } }
"""
    'rooms = { listValue = { values = [{ recordValue = { fields = { number = { intValue = "12" }, '
    'view = { stringValue = "sea" } } } }] } }\n'
    'suite = { recordValue = { fields = { number = { intValue = "1" }, '
    'view = { stringValue = "garden" } } } }\n'
    """
[case.expect]
awards = { points = 360 }
"""
)


@pytest.fixture
def programme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hotel programme whose stay kind is all extension fields, as the working directory."""
    (tmp_path / "schema.toml").write_text(SCHEMA, encoding="utf-8")
    (tmp_path / "stay.policy").write_text(POLICY, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def prepared(programme: Path, text: str) -> tuple[dict[str, object], dict[str, object]]:
    """The one case of ``text``, loaded and decoded as ``loyalty test`` does."""
    policy_set = dsl.load_directory(programme)
    cases, diagnostics = load_case_file(text, "t.test.toml", policy_set.schema, ["stay_points"])
    assert diagnostics == []
    [case] = cases
    return policy_set.decoder.request({"customer": case.customer, "event": case.event})


def test_plain_values_mean_what_the_typed_values_mean(programme: Path) -> None:
    """Every kind of schema type written plainly (whole numbers, decimals, dates, datetimes,
    durations, enums, booleans, lists, records and lists of records) prepares to exactly the
    input its typed form prepares to."""
    customer, event = prepared(programme, PLAIN)
    assert (customer, event) == prepared(programme, TYPED)
    assert event["nights"] == 3
    assert event["rate"] == Decimal("149.50")
    assert event["arrived"] == date(2026, 2, 27)
    assert event["checked_out"] == datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert event["late_by"] == timedelta(minutes=15)
    assert event["board"] == "half_board"
    assert event["extras"] == ["spa", "parking"]
    assert event["rooms"] == [{"number": 12, "view": "sea"}]
    assert event["suite"] == {"number": 1, "view": "garden"}
    assert customer["home_hotel"] == "H1" and customer["birthday_treat"] is True


def test_a_plain_case_passes_through_loyalty_test(programme: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`loyalty test` runs a case written with plain values: 3 nights x 100 + sea view 50 +
    spa 10 = 360, evaluated compiled and interpreted."""
    (programme / "stay.test.toml").write_text(PLAIN + TYPED.replace('"typed"', '"typed too"'),
                                              encoding="utf-8")
    status = main(["test", "."])
    out = capsys.readouterr().out
    assert status == 0, out
    assert out.splitlines()[-1].startswith("2 passed")


BAD = """\
[[case]]
name = "bad"
customer = { member_since = 2020-01-01 }

[case.event]
kind = "stay"
time = 2026-03-02T10:00:00Z

[case.event.attributes]
nights = 2.5
rate = 149.5
checked_out = 2026-03-02
late_by = 15
board = "all_inclusive"
extras = "spa"
suite = 4

[case.expect]
awards = {}
"""


def test_a_plain_value_that_does_not_fit_its_type_is_pinned_to_its_place(
        programme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each value that does not fit its field's type is a diagnostic with the file, line and
    column of its key, the request path and what to write; no case runs."""
    (programme / "stay.test.toml").write_text(BAD, encoding="utf-8")
    status = main(["test", "."])
    out = capsys.readouterr().out
    assert status == 2
    headlines = [line for line in out.splitlines() if line.startswith("stay.test.toml:")]
    assert headlines == [
        'stay.test.toml:12:1: test_bad_input: case "bad": event.attributes.checked_out: is a date '
        "and time: write the time and its zone too, such as 2026-03-02T09:30:00Z",
        'stay.test.toml:13:1: test_bad_input: case "bad": event.attributes.late_by: is a duration: '
        'write it as text such as "15 minutes" or "900s", not the number 15',
        'stay.test.toml:15:1: test_bad_input: case "bad": event.attributes.extras: is a list of '
        "string: write [...], not text",
        'stay.test.toml:16:1: test_bad_input: case "bad": event.attributes.suite: is a record '
        "(room): write a table of its fields, not the number 4",
    ]


def test_a_plain_scalar_that_does_not_fit_is_judged_as_the_typed_one(
        programme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A plain scalar of the right shape but a wrong value is refused by the request decoder with
    the words it uses for the typed form: a fraction for a whole number, a float for a decimal,
    a value that is not one of an enum's."""
    (programme / "stay.test.toml").write_text(
        BAD.replace("checked_out = 2026-03-02\nlate_by = 15\n", "")
           .replace('extras = "spa"\nsuite = 4\n', ""), encoding="utf-8")
    status = main(["test", "."])
    out = capsys.readouterr().out
    assert status == 2
    headlines = [line for line in out.splitlines() if line.startswith("stay.test.toml:")]
    assert [line.split(": ", 4)[3:] for line in headlines] == [
        ['event.attributes.nights', "must be a whole number, not the number 2.5"],
        ["event.attributes.rate", "must be an exact decimal written as a string (for example "
                                  '"149.5"), not a binary floating-point number'],
        ["event.attributes.board", '"all_inclusive" is not one of: room_only, half_board, full_board'],
    ]
    assert [line.split(":")[1:3] for line in headlines] == [["10", "1"], ["11", "1"], ["12", "1"]]


def test_a_typed_value_and_not_given_are_left_as_they_are(programme: Path) -> None:
    """A one-key table naming a kind of value (either spelling) is typed; ``{}`` is "not given";
    a plain table is a record's fields."""
    assert is_typed({"intValue": "3"}) and is_typed({"int_value": "3"}) and is_typed({})
    assert not is_typed({"number": 1}) and not is_typed(3) and not is_typed([{"intValue": "1"}])
    layout = dsl.load_directory(programme).decoder.layout
    event = {"kind": "stay", "attributes": {"nights": {"int_value": "2"}, "board": {}}}
    assert type_plain_values(layout, "event", event) == (event, [])


def test_the_service_form_is_unchanged(programme: Path) -> None:
    """The API still takes only typed attributes: a plain value sent to the decoder directly is
    refused, as it always was (plain values are the test files' and eval's convenience)."""
    decoder = dsl.load_directory(programme).decoder
    with pytest.raises(dsl.InputError) as info:
        decoder.event({"id": "e", "kind": "stay", "time": "2026-03-02T10:00:00Z",
                       "attributes": {"nights": 3}})
    assert [e.path for e in info.value.errors] == ["event.attributes.nights"]


def eval_cli(programme: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``loyalty eval --policies . ARGS`` in ``programme``, as its own process with no PATH."""
    return subprocess.run([sys.executable, "-m", "service", "eval", "--policies", ".", *args],
                          cwd=programme, capture_output=True, text=True, timeout=120, check=False,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""})


def test_eval_reads_plain_attribute_values(programme: Path) -> None:
    """`loyalty eval` takes a request whose attributes are plain (JSON here), and names the
    file and the request path of a value that does not fit."""
    request = {"customer": {"id": "c", "memberSince": "2020-01-01",
                            "attributes": {"home_hotel": "H1"}},
               "event": {"id": "e", "kind": "stay", "time": "2026-03-02T10:00:00Z",
                         "attributes": {"nights": 2, "rooms": [{"number": 3, "view": "sea"}],
                                        "extras": ["spa"]}}}
    (programme / "r.json").write_text(json.dumps(request), encoding="utf-8")
    result = eval_cli(programme, "--request", "r.json", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["awards"] == {"points": "260"}  # 2 x 100 + 50 + 10
    request["event"]["attributes"]["extras"] = "spa"
    (programme / "r.json").write_text(json.dumps(request, indent=2), encoding="utf-8")
    result = eval_cli(programme, "--request", "r.json")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("loyalty eval: r.json:21:7: event.attributes.extras: is a list of string: "
                             "write [...], not text\n")


def test_eval_places_a_plain_value_in_a_toml_file(programme: Path) -> None:
    """A TOML request's refused plain value is named by the file, its line and column, and the
    request path."""
    (programme / "r.toml").write_text(
        'customer = { id = "c", member_since = 2020-01-01 }\n'
        "[event]\n"
        'id = "e"\n'
        'kind = "stay"\n'
        "time = 2026-03-02T10:00:00Z\n"
        "[event.attributes]\n"
        "nights = 2.5\n", encoding="utf-8")
    result = eval_cli(programme, "--request", "r.toml")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("loyalty eval: r.toml:7:1: event.attributes.nights: must be a whole "
                             "number, not the number 2.5\n")
