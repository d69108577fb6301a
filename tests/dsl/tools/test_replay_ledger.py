"""Replay knows expiry and tiers: what a validity or a threshold change does to a ledger.

One hand-worked history (calendar years in UTC, four customers, 2024 to 1 March 2026) replayed
with a validity of 24 months and thresholds SILVER 100, GOLD 200 (old) against 12 months and
GOLD 150 (new). Each purchase earns its amount in points.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from dsl.schema.schema import Qualification
from dsl.tiers import statuses, window_at
from dsl.tools import history
from dsl.tools.replay import Replay, partition_of, replay_chunk, replay_partition
from dsl.tools.replay_ledger import last_event_time
from service.cli._load import load
from tests.dsl.tools.test_replay import loyalty

SCHEMA = """tiers = ["SILVER", "GOLD"]

[programme]
timezone = "UTC"

[qualification]
measure = "points"
window = "calendar year"
thresholds = {{ SILVER = 100, GOLD = {gold} }}
downgrade = "one step"

[currencies]
points = {{ decimals = 0, validity = "{validity}" }}
"""

POLICY = """policy shop
  on purchase
  rule spend:
    award event.amount points
  round points down
"""

# (customer, event, time, amount). The last event (carol's, 1 March 2026 12:00) is the as-of.
EVENTS = [
    ("alice", "a1", "2024-03-01T10:00:00Z", 160),
    ("bob", "b1", "2024-05-10T09:00:00Z", 250),
    ("carol", "c1", "2025-01-15T09:00:00Z", 90),
    ("dave", "d1", "2025-03-03T09:00:00Z", 170),
    ("alice", "a2", "2025-06-01T09:00:00Z", 120),
    ("bob", "b2", "2025-11-20T09:00:00Z", 60),
    ("alice", "a3", "2026-02-01T09:00:00Z", 50),
    ("dave", "d2", "2026-02-20T09:00:00Z", 160),
    ("carol", "c2", "2026-03-01T12:00:00Z", 40),
]


def _programme(path: Path, validity: str, gold: int) -> Path:
    path.mkdir()
    (path / "schema.toml").write_text(SCHEMA.format(validity=validity, gold=gold))
    (path / "shop.policy").write_text(POLICY)
    return path


def _history(path: Path, events: list[tuple[str, str, str, int]] = EVENTS) -> Path:
    path.write_text("".join(json.dumps({
        "customer": {"id": c, "memberSince": "2020-01-01"},
        "event": {"id": e, "kind": "purchase", "time": t, "purchase": {"amount": f"{a}.00"}}}) + "\n"
        for c, e, t, a in events))
    return path


@pytest.fixture
def case(tmp_path: Path) -> dict[str, Any]:
    old = _programme(tmp_path / "old", "24 months", 200)
    new = _programme(tmp_path / "new", "12 months", 150)
    return {"old": old, "new": new, "history": _history(tmp_path / "h.jsonl"),
            "sets": (load(old, "replay"), load(new, "replay"))}


#: The last event's time: the as-of ``loyalty replay`` finds (last_event_time) when not given.
AS_OF = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def _whole(case: dict[str, Any], as_of: dt.datetime = AS_OF) -> Replay:
    (chunk,) = history.chunks(case["history"], "jsonl", whole=True)
    return replay_chunk(*case["sets"], chunk, as_of=as_of)


def test_the_default_as_of_is_the_last_event_time(case: dict[str, Any]) -> None:
    """Whatever the file's order and its chunks; a replay without an as-of has no ledger."""
    assert last_event_time(history.chunks(case["history"], "jsonl", 2)) == AS_OF
    (chunk,) = history.chunks(case["history"], "jsonl", whole=True)
    assert replay_chunk(*case["sets"], chunk).ledger is None


def test_points_that_would_expire_by_the_last_event(case: dict[str, Any]) -> None:
    """As of 1 March 2026 12:00 everything awarded (1,100) counts. With 24 months only alice's
    160 of 1 March 2024 10:00 has expired (two hours before); with 12 months also bob's 250 of
    May 2024 and carol's 90 of January 2025 (alice's 120 of June 2025 has not, nor dave's 170
    of 3 March 2025, by two days): 160 -> 500."""
    report = _whole(case).to_dict()
    assert report["expiry"] == {
        "as_of": "2026-03-01T12:00:00Z",
        "validity": {"points": {"before": "24 months", "after": "12 months"}},
        "currencies": {"points": {"awarded": {"before": 1100, "after": 1100},
                                  "expired": {"before": 160, "after": 500, "delta": 340}}}}


def test_an_earlier_as_of_leaves_later_awards_out(case: dict[str, Any]) -> None:
    """As of 1 January 2026: awarded 160 + 250 + 90 + 170 + 120 + 60 = 850; 24 months: nothing
    expired yet; 12 months: alice's 160 (March 2025) and bob's 250 (May 2025). The as-of is an
    instant: a lot expiring at it has expired."""
    report = _whole(case, dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).to_dict()
    assert report["expiry"]["currencies"]["points"] == {
        "awarded": {"before": 850, "after": 850}, "expired": {"before": 0, "after": 410, "delta": 410}}
    # At 1 March 2026 10:00 exactly alice's first lot expires (a lot is spendable before its
    # expiry, not at it); carol's 40 of 12:00 is not yet awarded.
    report = _whole(case, dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)).to_dict()
    assert report["expiry"]["currencies"]["points"] == {
        "awarded": {"before": 1060, "after": 1060}, "expired": {"before": 160, "after": 500, "delta": 340}}


def test_tier_status_by_hand(case: dict[str, Any]) -> None:
    """Calendar years, one step down, no keep.
    alice earns 160 (2024), 120 (2025), 50 (2026 so far): old SILVER throughout; new GOLD in
    2024, kept at its end, judged on 120 at the end of 2025: one step to SILVER. So they differ
    at the end of 2024 only.
    bob earns 250, 60: GOLD on both sides, lowered to SILVER at the end of 2025: the same.
    carol earns 90, 40: no tier on either side.
    dave earns 170 (2025), 160 (2026 so far): old SILVER, new GOLD, at the end of 2025 and as of
    the last event."""
    tiers = _whole(case).to_dict()["tier_status"]
    assert tiers["customers_earning"] == 4
    assert tiers["window_ends"] == [
        {"at": "2025-01-01T00:00:00Z", "customers": 1,
         "transitions": [{"before": "SILVER", "after": "GOLD", "customers": 1}]},
        {"at": "2026-01-01T00:00:00Z", "customers": 1,
         "transitions": [{"before": "SILVER", "after": "GOLD", "customers": 1}]}]
    assert tiers["at_as_of"] == {"at": "as_of", "customers": 1, "transitions": [
        {"before": "SILVER", "after": "GOLD", "customers": 1}]}
    assert tiers["examples"] == [
        {"customer": "alice", "changes": [
            {"at": "2025-01-01T00:00:00Z", "before": "SILVER", "after": "GOLD"}]},
        {"customer": "dave", "changes": [
            {"at": "2026-01-01T00:00:00Z", "before": "SILVER", "after": "GOLD"},
            {"at": "as_of", "before": "SILVER", "after": "GOLD"}]}]
    assert tiers["qualification"]["before"]["thresholds"] == {"SILVER": 100, "GOLD": 200}


def test_statuses_follow_the_service_downgrade_and_keep() -> None:
    """The status machine alone: GOLD reached in 2024 and kept through 2025 with keep; 2025
    earns nothing, so at the end of 2025 one step down to SILVER, held through 2026, and with
    nothing earned again, none at the end of 2026."""
    q = Qualification("points", "calendar year", (("SILVER", 100), ("GOLD", 200)),
                      keep="until the end of next year")
    end = window_at(q, "UTC", dt.datetime(2024, 6, 1, tzinfo=dt.UTC), None)[1]
    as_of = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
    timeline, now = statuses(q, "UTC", {end: 250 * 10**6}, as_of)
    year = [dt.datetime(y, 1, 1, tzinfo=dt.UTC) for y in (2025, 2026, 2027)]
    assert timeline == [(year[0], "GOLD"), (year[1], "SILVER"), (year[2], "")]
    assert now == ""
    to_earned = Qualification("points", "calendar year", q.thresholds, downgrade="to earned")
    assert statuses(to_earned, "UTC", {end: 250 * 10**6}, as_of)[0] == [
        (year[0], "GOLD"), (year[1], ""), (year[2], "")]


def test_partitions_and_chunks_merge_into_the_whole(case: dict[str, Any]) -> None:
    """Calendar-year sums and expiry totals add up across any chunks given the same as-of, and
    across partitions by customer: the merged figures are those of the history replayed whole."""
    expected = _whole(case).to_dict()
    as_of = AS_OF
    total = Replay()
    for chunk in history.chunks(case["history"], "jsonl", 4):  # three chunks, customers split
        total.merge(replay_chunk(*case["sets"], chunk, as_of=as_of))
    assert total.to_dict()["expiry"] == expected["expiry"]
    assert total.to_dict()["tier_status"] == expected["tier_status"]
    assert {partition_of(c, 2) for c in ("alice", "bob", "carol", "dave")} == {0, 1}
    merged = Replay()
    for part in range(2):
        merged.merge(replay_partition(*case["sets"], history.chunks(case["history"], "jsonl", 4),
                                      part, 2, as_of))
    assert merged.to_dict()["expiry"] == expected["expiry"]
    assert merged.to_dict()["tier_status"] == expected["tier_status"]
    with pytest.raises(ValueError, match="replay every chunk with the same as_of"):
        chunks = list(history.chunks(case["history"], "jsonl", 4))
        Replay().merge(replay_chunk(*case["sets"], chunks[0], as_of=as_of)).merge(
            replay_chunk(*case["sets"], chunks[1], as_of=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))


def test_anniversary_years_count_from_the_first_award(tmp_path: Path) -> None:
    """An anniversary year is counted from the customer's first award of the measure, so it is
    replayed in time order whatever the file's order: erin earns 120 on 10 May 2024 and 90 on
    1 May 2025 (one year: 210, GOLD under both) and 30 on 20 May 2025 (the next year)."""
    events = [("erin", "e3", "2025-05-20T09:00:00Z", 30), ("erin", "e2", "2025-05-01T09:00:00Z", 90),
              ("erin", "e1", "2024-05-10T09:00:00Z", 120)]
    dirs = []
    for name, gold in (("old", 200), ("new", 220)):
        d = _programme(tmp_path / name, "never", gold)
        text = (d / "schema.toml").read_text().replace("calendar year", "anniversary year")
        (d / "schema.toml").write_text(text)
        dirs.append(load(d, "replay"))
    (chunk,) = history.chunks(_history(tmp_path / "h.jsonl", events), "jsonl", whole=True)
    tiers = replay_chunk(*dirs, chunk, as_of=AS_OF).to_dict()["tier_status"]
    # Old: GOLD (210 >= 200) at the year's end 10 May 2025; new: SILVER (210 < 220).
    assert tiers["window_ends"] == [{"at": "2025-05-10T09:00:00Z", "customers": 1, "transitions": [
        {"before": "GOLD", "after": "SILVER", "customers": 1}]}]
    assert "expiry" not in replay_chunk(*dirs, chunk, as_of=AS_OF).to_dict()  # "never" on both sides


def test_loyalty_replay_reports_expiry_and_tiers(case: dict[str, Any]) -> None:
    """Through the real command: the JSON report carries both sections, the text report says
    them in words, and --as-of moves the instant."""
    args = ("replay", str(case["old"]), str(case["new"]), str(case["history"]), "--no-progress")
    done = loyalty(*args, "--format", "json", "--jobs", "2", "--chunk-rows", "3")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["expiry"]["currencies"]["points"]["expired"] == {"before": 160, "after": 500,
                                                                   "delta": 340}
    assert [p["customers"] for p in report["tier_status"]["window_ends"]] == [1, 1]
    assert report["engine"]["ledger"] == {"columnar_events": 0, "row_events": 9}
    text = loyalty(*args, "--jobs", "1").stdout
    assert "expiry as of 2026-03-01T12:00:00Z (awarded up to then, and expired by then):" in text
    assert ("  points (validity 24 months -> 12 months): expired 160 -> 500 (+340) of 1100 -> 1100 "
            "awarded") in text
    assert "  window end 2025-01-01T00:00:00Z: 1 customers' tier differs; SILVER -> GOLD: 1" in text
    assert "  as of 2026-03-01T12:00:00Z: 1 customers' tier differs; SILVER -> GOLD: 1" in text
    assert "  customer dave: 2026-01-01T00:00:00Z SILVER -> GOLD, as of SILVER -> GOLD" in text
    earlier = json.loads(loyalty(*args, "--format", "json", "--as-of", "2026-01-01T00:00:00Z").stdout)
    assert earlier["expiry"]["currencies"]["points"]["expired"]["after"] == 410
    bad = loyalty(*args, "--as-of", "tomorrow")
    assert bad.returncode == 2 and "--as-of" in bad.stderr


def test_without_a_validity_or_a_qualification_there_are_no_ledger_sections(tmp_path: Path) -> None:
    """A programme whose points never expire and whose tiers are not earned: neither section,
    in JSON or in text."""
    dirs = []
    for name in ("old", "new"):
        d = tmp_path / name
        d.mkdir()
        (d / "schema.toml").write_text('[currencies]\npoints = { decimals = 0 }\n')
        (d / "shop.policy").write_text(POLICY)
        dirs.append(str(d))
    done = loyalty("replay", *dirs, str(_history(tmp_path / "h.jsonl")), "--format", "json",
                   "--jobs", "1", "--no-progress")
    report = json.loads(done.stdout)
    assert "expiry" not in report and "tier_status" not in report and "ledger" not in report["engine"]


def test_a_rolling_window_is_judged_at_the_as_of(tmp_path: Path) -> None:
    """Rolling 12 months up to 1 March 2026 12:00 (from 1 March 2025 12:00): alice 120 + 50 =
    170 (SILVER under GOLD 200, GOLD under 150), bob 60, carol 40 (her 90 of January 2025 is
    outside), dave 170 + 160 = 330 (GOLD on both): only alice differs, and only at the as-of."""
    sets = []
    for name, gold in (("old", 200), ("new", 150)):
        d = _programme(tmp_path / name, "never", gold)
        text = (d / "schema.toml").read_text().replace("calendar year", "rolling 12 months")
        (d / "schema.toml").write_text(text)
        sets.append(load(d, "replay"))
    (chunk,) = history.chunks(_history(tmp_path / "h.jsonl"), "jsonl", whole=True)
    tiers = replay_chunk(*sets, chunk, as_of=AS_OF).to_dict()["tier_status"]
    assert tiers["window_ends"] == []
    assert tiers["at_as_of"]["transitions"] == [{"before": "SILVER", "after": "GOLD", "customers": 1}]
    assert tiers["examples"] == [{"customer": "alice", "changes": [
        {"at": "as_of", "before": "SILVER", "after": "GOLD"}]}]


def test_the_columnar_backend_gives_the_row_paths_ledger(tmp_path: Path) -> None:
    """With one schema on both sides (24 months, GOLD 200) and a policy change (120% of the
    amount), a Parquet history replays on the columnar backend, whose per-row awards give the
    same expiry and tier figures as the row path's decisions, and the report says which path
    accounted for them."""
    from benchmarks.history import write_history

    old = _programme(tmp_path / "old", "24 months", 200)
    new = _programme(tmp_path / "new", "24 months", 200)
    (new / "shop.policy").write_text(POLICY.replace("award event.amount points",
                                                    "award 120% of event.amount points"))
    sets = (load(old, "replay"), load(new, "replay"))
    requests = [{"customer": {"id": c, "memberSince": "2020-01-01"},
                 "event": {"id": e, "kind": "purchase", "time": t, "purchase": {"amount": f"{a}.00"}}}
                for c, e, t, a in EVENTS]
    (chunk,) = history.chunks(write_history(tmp_path / "h.parquet", [requests]), "parquet", whole=True)
    columnar = replay_chunk(*sets, chunk, as_of=AS_OF).to_dict()
    rows = replay_chunk(*sets, chunk, as_of=AS_OF, columnar=False).to_dict()
    assert columnar["engine"]["ledger"] == {"columnar_events": 9, "row_events": 0}
    assert rows["engine"]["ledger"] == {"columnar_events": 0, "row_events": 9}
    assert columnar["expiry"] == rows["expiry"]
    assert columnar["tier_status"] == rows["tier_status"]
    # 120%: alice's lot of March 2024 is 192 points (the one expired); dave earns 204 in 2025,
    # GOLD (old SILVER on 170), kept at the end of 2025 and held as of the last event; alice
    # (192, 144, 60) stays SILVER, bob (300, 72) GOLD then SILVER, carol (108, 48) SILVER from
    # 2025: carol differs too (none under the old 90 and 40).
    assert rows["expiry"]["currencies"]["points"] == {
        "awarded": {"before": 1100, "after": 1320},
        "expired": {"before": 160, "after": 192, "delta": 32}}
    assert rows["tier_status"]["window_ends"] == [{"at": "2026-01-01T00:00:00Z", "customers": 2,
                                                   "transitions": [
        {"before": "", "after": "SILVER", "customers": 1},
        {"before": "SILVER", "after": "GOLD", "customers": 1}]}]
    assert rows["tier_status"]["at_as_of"]["transitions"] == [
        {"before": "", "after": "SILVER", "customers": 1},
        {"before": "SILVER", "after": "GOLD", "customers": 1}]
