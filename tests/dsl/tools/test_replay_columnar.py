"""The columnar backend (dsl/backend/columnar.py) gives exactly the row path's replay figures.

Differential tests: every bundled policy over a mixed history, Hypothesis-drawn policies over
airline histories, hostile names and strings; plus what it refuses, and that it says so.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.data import raw_mixed_pairs, request_mapping
from benchmarks.history import airline_requests_stream, changed_policies, without_counters, write_history
from dsl.errors import PolicyError
from dsl.policyset import PolicySet, load_directory, load_source
from dsl.tools.history import chunks
from dsl.tools.replay import replay_chunk
from dsl.tools.replay_figures import Replay

pytest.importorskip("polars")

ROOT = Path(__file__).resolve().parents[3]
POLICIES = ROOT / "policies"


def replay_both(old: PolicySet, new: PolicySet, history: Path, rows: int = 700
                ) -> tuple[dict[str, Any], dict[str, Any], Replay]:
    """The report's figures by the columnar backend and by the row path alone."""
    out = []
    for columnar in (True, False):
        total = Replay()
        for chunk in chunks(history, history.suffix[1:], rows):
            total.merge(replay_chunk(old, new, chunk, columnar=columnar))
        out.append(total)
    a, b = (r.to_dict() for r in out)
    engine = a.pop("engine")
    b.pop("engine")
    assert engine["columnar_events"] == out[0].columnar_events
    return a, b, out[0]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A history of every event kind, and the bundled programme without its counter policies
    (old) and changed (new): the columnar backend replays programmes without counters; one with
    counters takes the row path whole (test_a_programme_with_counters_takes_the_row_path)."""
    root = tmp_path_factory.mktemp("columnar")
    requests = [request_mapping(c, e) for c, e in raw_mixed_pairs(3_000, 7)]
    return {"parquet": _parquet(root / "mixed.parquet", requests),
            "csv": write_history(root / "mixed.csv", [requests]),
            "old": without_counters(Path(shutil.copytree(POLICIES, root / "old"))),
            "new": without_counters(changed_policies(root / "new"))}


@pytest.mark.parametrize("form", ["parquet", "csv"])
def test_every_bundled_policy_gives_the_row_paths_figures(mixed: dict[str, Path], form: str) -> None:
    """Every bundled policy, old and changed, over a history of every event kind: the columnar
    figures equal the row path's exactly, flights ran columnar, and the report names the
    policies whose kinds took the row path."""
    old, new = load_directory(mixed["old"]), load_directory(mixed["new"])
    columnar, rows, result = replay_both(old, new, mixed[form])
    assert columnar == rows
    assert result.columnar_events > 0
    assert any("purchase events: policy" in why for why in result.row_path)


def test_a_programme_with_counters_takes_the_row_path(mixed: dict[str, Path]) -> None:
    """The bundled programme declares counters: every event takes the row path (each
    customer's events in time order against a simulated store), none the columnar one."""
    old = load_directory(POLICIES)
    _, _, result = replay_both(old, old, mixed["parquet"])
    assert result.columnar_events == 0


def test_unchanged_policies_change_nothing(mixed: dict[str, Path]) -> None:
    """The bundled set against itself: no event changes, by either path."""
    same = load_directory(mixed["old"])
    columnar, rows, _ = replay_both(same, same, mixed["parquet"])
    assert columnar == rows
    assert columnar["events_changed"] == 0


def _parquet(path: Path, requests: list[dict[str, Any]]) -> Path:
    """Requests as a Parquet history: booleans as booleans, every other value as its text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.history import flatten

    rows = [flatten(r) for r in requests]
    names = sorted({k for row in rows for k in row})
    kinds = {k: pa.bool_() if any(isinstance(row.get(k), bool) for row in rows) else pa.string()
             for k in names}
    table = pa.Table.from_pylist(
        [{k: (v if isinstance(v, bool) or v is None else str(v)) for k in names
          for v in [row.get(k)]} for row in rows],
        schema=pa.schema([(k, kinds[k]) for k in names]))
    pq.write_table(table, path)
    return path


_HISTORIES: dict[int, Path] = {}


def _airline_history(tmp: Path, seed: int) -> Path:
    path = _HISTORIES.get(seed)
    if path is None:
        requests = next(airline_requests_stream(400, seed=seed))
        path = _HISTORIES[seed] = write_history(tmp / f"airline-{seed}.parquet", [requests])
    return path


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(old_text=st.data(), seed=st.sampled_from([1, 2, 3]))
def test_generated_policies_give_the_row_paths_figures(tmp_path_factory: pytest.TempPathFactory,
                                                       old_text: Any, seed: int) -> None:
    """Hypothesis policies for flights (old and new drawn independently, over the test schema's
    fields, large numbers and every rounding mode included) over an airline history: the
    columnar figures equal the row path's exactly, whichever rows each path took."""
    from strategies import SCHEMA, policy_sources

    texts = [old_text.draw(policy_sources("flight")) for _ in range(2)]
    try:
        old, new = (load_source(t, schema=SCHEMA) for t in texts)
    except PolicyError:  # number_too_large and the other unavoidable refusals
        return
    history = _airline_history(tmp_path_factory.mktemp("gen"), seed)
    columnar, rows, _ = replay_both(old, new, history, rows=150)
    assert columnar == rows



def test_a_currency_only_the_new_set_awards_has_the_row_paths_months(tmp_path: Path) -> None:
    """A currency with decimals that only the new set awards: each month's "before" is 0 on
    both paths (the columnar path once reported 0.00 for a side that awarded nothing)."""
    from strategies import SCHEMA

    old = load_source("policy p\n  on flight\n  rule base: award 1 miles\n", schema=SCHEMA)
    new = load_source("policy p\n  on flight\n  rule base: award 1 miles\n"
                      "  rule thanks: award 2 credit\n", schema=SCHEMA)
    columnar, rows, result = replay_both(old, new, _airline_history(tmp_path, 1), rows=150)
    assert result.columnar_events > 0
    assert columnar == rows
    assert all(by["credit"]["before"] == 0 for by in rows["months"].values())

HOSTILE = '''
policy hostile
  on flight
  "\\"); import os; os.system(\\"echo pwned\\") #"

  let carrier = event.carrier otherwise "') or True or ('"
  table weird by event.carrier:
    "LH\\"); pl.col(\\"x" -> 7
    "LH" -> 3
    else -> 1

  rule pwn when carrier == "') or True or ('" or event.cabin == "first":
    award weird miles
    tag "col(\\"customer.id\\")"
    grant "priority-rebooking"

  rule class_ok when event.cabin == "business":
    award 3 miles
    tag "in:event.origin"
'''


def test_hostile_names_and_strings_stay_values(mixed: dict[str, Path], tmp_path: Path) -> None:
    """Strings that look like code or like the plan's own column names are literal values:
    the figures equal the row path's, and no column of the plan is named from policy text."""
    from dsl.backend.columnar import compile_pair

    schema = load_directory(POLICIES).schema
    try:
        hostile = load_source(HOSTILE, schema=schema)
    except PolicyError as exc:  # the checker refuses a name: keep the rest of the text
        pytest.fail(f"the hostile policy should check: {exc}")
    plain = load_source(HOSTILE.replace("award weird miles", "award 2 miles"), schema=schema)
    pair = compile_pair(plain, hostile)
    assert pair is not None and "flight" in pair.kinds
    for compiled in (pair.old, pair.new):
        for p in compiled.policies:
            for stage in p.stages:
                for name, _ in stage:
                    assert re.fullmatch(r"[on]\d+_\d+", name), name
    history = _airline_history(tmp_path, 1)
    columnar, rows, result = replay_both(plain, hostile, history)
    assert columnar == rows
    assert result.columnar_events > 0
    assert columnar["events_changed"] > 0


@pytest.mark.parametrize(("construct", "why"), [
    ("award sum(item.amount for item in event.items) of 1% points", "over a list"),
    ("award event.amount / 3 points", "operator /"),
])
def test_refused_constructs_take_the_row_path_and_say_so(construct: str, why: str) -> None:
    """A policy the backend does not compile sends its event kind to the row path, and the
    reason names the policy and the construct."""
    from dsl.backend.columnar import compile_pair

    schema = load_directory(POLICIES).schema
    text = f"policy refused\n  on purchase\n\n  rule r:\n    {construct}\n  round points down\n"
    ps = load_source(text, schema=schema)
    pair = compile_pair(ps, ps)
    assert pair is not None
    assert "purchase" not in pair.kinds
    assert "policy refused" in pair.notes["purchase"] and why in pair.notes["purchase"]


_ZONES = ["Z", "+00:00", "+05:30", "-05:00", "+14:00", "-12:00", "+23:59", "-23:59"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.datetimes(datetime(1000, 1, 2), datetime(9998, 12, 30)),
                          st.sampled_from(_ZONES), st.booleans()), min_size=1, max_size=40))
def test_the_utc_date_of_a_time_is_pythons(times: list[Any]) -> None:
    """The input stage's UTC date of an RFC 3339 time (the date effective dates and months
    read) is the one Python's datetime gives, across midnight, month and year ends."""
    import polars as pl

    from dsl.backend.columnar import _utc_date

    texts = [t.isoformat(timespec="microseconds" if fraction else "seconds") + zone
             for t, zone, fraction in times]
    got = pl.DataFrame({"t": texts}).select(_utc_date(pl, pl.col("t")))["t"].to_list()
    assert got == [datetime.fromisoformat(x.replace("Z", "+00:00")).astimezone(UTC).date()
                   for x in texts]


_DECIMAL_TEXT = st.builds(
    lambda sign, whole, fraction: f"{sign}{whole}" + (f".{fraction}" if fraction else ""),
    st.sampled_from(["", "-"]),
    st.integers(0, 10**18 - 1).map(str),
    st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=18),
              st.sampled_from(["5", "50", "0000", "12340000", "00001", "99999"])))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), _DECIMAL_TEXT), min_size=1, max_size=40))
def test_a_text_decimal_is_its_scaled_value_or_past_the_bound(texts: list[str | None]) -> None:
    """The input stage reads a decimal's text as its value in ten-thousandths when it has at
    most 13 whole digits and 4 places (trailing zeros aside), and as a value past the input
    bound otherwise (such rows take the row path)."""
    from decimal import Decimal

    import polars as pl

    from dsl.backend.columnar import _INPUT_PLACES, INPUT_BOUND, _convert, _decimal_parts

    field = load_directory(POLICIES).schema.events["fuel"]["litres"]
    got = pl.DataFrame({"d": texts}, schema={"d": pl.String}).lazy().with_columns(
        _decimal_parts(pl, pl.col("d"), "p")).select(
        _convert(pl, pl.col("d"), field, pl.String, False, "p").alias("v")).collect()["v"].to_list()
    past = INPUT_BOUND * 10**_INPUT_PLACES + 1
    want = []
    for text in texts:
        if text is None:
            want.append(None)
            continue
        value = Decimal(text).scaleb(_INPUT_PLACES)
        small = len(text.lstrip("-").split(".")[0]) <= 13 and value == value.to_integral_value()
        want.append(int(value) if small else past)
    assert got == want


@pytest.mark.parametrize("kind", ["int", "decimal"])
@pytest.mark.parametrize("least", [None, 0, 1, -5])
def test_the_columnar_check_of_a_number_never_passes_what_its_least_value_refuses(
        kind: str, least: int | None) -> None:
    """A number field's columnar check passes only texts the row path's bounds take: with a
    least value other than 0 it leaves the column to the row path (no check, None); with
    none it takes signs, with 0 it refuses them. (It once passed "0" where the least was 1.)"""
    import polars as pl

    from dsl.backend.columnar import _valid
    from dsl.schema.schema import Field
    from dsl.schema.types import Type

    field = Field("n", Type(kind), minimum=least)
    texts = ["0", "1", "7", "-3"]
    check = _valid(pl, pl.col("n"), field, pl.String, True, ())
    if least not in (None, 0):
        assert check is None
        return
    passed = pl.DataFrame({"n": texts}).select(check.alias("ok"))["ok"].to_list()
    assert passed == [True, True, True, least is None]
