"""Tier qualification through a real server on 127.0.0.1 and a real store (both backends), with the
bundled programme's ``[qualification]`` (policies/schema.toml): hotel points earned in a calendar
year in Europe/London, MVP 25,000, GOLD 50,000, PLATINUM 100,000, 75K 200,000, a tier kept until
the end of the next year, then lowered one step unless earned again.

Worked by hand from policies/hotel/nights.policy (1,000 points a night, 10,000 more at 40, 50, ...
nights in a calendar year):
- 2026-03-01, 20 nights: 20,000 points. 20,000 earned in 2026: below MVP, no tier.
- 2026-06-10, 30 nights: 20 -> 50 nights crosses 40 and 50: 30,000 + 20,000 = 50,000 points.
  70,000 earned in 2026: GOLD since 2026-06-10, kept until the end of 2027 (London's midnight
  on 2028-01-01 is 00:00Z, in winter).
- 2027-04-01, 10 nights: 10,000 points (2027's nights start at 0). 10,000 earned in 2027: GOLD
  is kept, 40,000 short of keeping it, 90,000 short of PLATINUM.
- The job at 2028-01-01: 2027's 10,000 earn no tier, so GOLD goes one step down to MVP, since
  2028-01-01, kept until the end of 2028; run again, nothing changes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from serving import LiveServer, stamp

from dsl.schema.schema import Schema, SchemaError
from service.cli import main
from service.client import customer
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.state import StateStore
from service.state import tiers as T
from tests.service.conftest import POLICIES

UTC = dt.UTC


@dataclass
class Hotel(LiveServer):
    """The bundled programme served over a fresh store: h-1's stays and tier progress."""

    def stay(self, event_id: str, time: str, nights: int) -> pb.ApplyResponse:
        event = pb.Event(id=event_id, kind="stay", time=stamp(time),
                         attributes={"nights": pb.Value(int_value=nights)})
        return self.stub.Apply(pb.ApplyRequest(customer=customer("h-1", member_since="2020-01-01"),
                                               event=event))

    def progress(self, as_of: str) -> pb.TierProgress:
        return self.stub.GetBalance(pb.GetBalanceRequest(customer_id="h-1", as_of=stamp(as_of))).tier


@pytest.fixture
def hotel(store_url: str) -> Iterator[Hotel]:
    with Hotel.started(store_url) as served:
        yield served


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_gold_mid_year_kept_through_next_year_then_one_step_down(
        hotel: Hotel, capsys: pytest.CaptureFixture[str]) -> None:
    assert hotel.stay("s-1", "2026-03-01T11:00:00Z", 20).decision.awards["points"] == "20000"
    first = hotel.progress("2026-03-02T00:00:00Z")
    assert (first.tier, first.earned, first.next_tier, first.to_next) == ("", "20000", "MVP", "5000")
    assert not first.HasField("kept_until")

    assert hotel.stay("s-2", "2026-06-10T11:00:00Z", 30).decision.awards["points"] == "50000"
    gold = hotel.progress("2026-06-11T00:00:00Z")
    assert (gold.tier, gold.window, gold.measure, gold.earned, gold.to_keep, gold.next_tier,
            gold.to_next) == ("GOLD", "calendar year", "points", "70000", "0", "PLATINUM", "30000")
    assert gold.since.ToDatetime(tzinfo=UTC) == at("2026-06-10T11:00:00")
    assert gold.kept_until.ToDatetime(tzinfo=UTC) == at("2028-01-01T00:00:00")
    assert gold.window_start.ToDatetime(tzinfo=UTC) == at("2026-01-01T00:00:00")

    # Spending never lowers what was earned.
    hotel.stub.Redeem(pb.RedeemRequest(customer_id="h-1", redemption_id="r-1", currency="points",
                                       amount="30000", time=stamp("2026-07-01T00:00:00Z")))
    assert hotel.progress("2026-07-02T00:00:00Z").earned == "70000"
    # The same event again is a replay: the tier is not looked at twice.
    hotel.stay("s-2", "2026-06-10T11:00:00Z", 30)
    # The end of 2026: GOLD is kept until the end of 2027, the job changes nothing.
    for _ in range(2):
        assert main(["state", "expire", "--as-of", "2027-01-01", "--state", hotel.url,
                     "--policies", str(POLICIES)]) == 0
    assert "tiers: 0 due, 0 lowered" in capsys.readouterr().out

    assert hotel.stay("s-3", "2027-04-01T11:00:00Z", 10).decision.awards["points"] == "10000"
    kept = hotel.progress("2027-05-01T00:00:00Z")
    assert (kept.tier, kept.earned, kept.to_keep, kept.next_tier, kept.to_next) == (
        "GOLD", "10000", "40000", "PLATINUM", "90000")
    assert kept.kept_until.ToDatetime(tzinfo=UTC) == at("2028-01-01T00:00:00")

    # The end of 2027: not earned again, GOLD goes one step down, once.
    for _ in range(2):
        assert main(["state", "expire", "--as-of", "2028-01-01", "--state", hotel.url,
                     "--policies", str(POLICIES)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "tiers: 1 due, 1 lowered (0 to no tier)"
    assert out[3] == "tiers: 0 due, 0 lowered (0 to no tier)"
    mvp = hotel.progress("2028-01-02T00:00:00Z")
    assert (mvp.tier, mvp.earned, mvp.to_keep, mvp.next_tier, mvp.to_next) == (
        "MVP", "0", "25000", "GOLD", "50000")
    assert mvp.since.ToDatetime(tzinfo=UTC) == at("2028-01-01T00:00:00")
    assert mvp.kept_until.ToDatetime(tzinfo=UTC) == at("2029-01-01T00:00:00")


def test_requalifying_extends_and_no_tier_below_the_lowest(store: StateStore) -> None:
    """Store-level: GOLD earned again in 2027 is kept to the end of 2028; "to earned" with nothing
    earned removes the status; the job years late lowers one step per window."""
    q = Schema.for_directory(POLICIES).qualification
    assert q is not None
    zone = "Europe/London"

    def award(event: str, when: str, units: int) -> None:
        from service.state import ledger as L

        def body(db: object) -> None:
            store._lock_customers(db, ["c"])  # type: ignore[attr-defined]
            t = at(when)
            L.post(store, db, "c", event, "", [L.NewLot("points", units, t, t, L.NEVER, "p", "r", "1"),
                                                T.TierCheck(q, zone, t)])
        store._run("test", body)  # type: ignore[attr-defined]

    award("e1", "2026-02-01T00:00:00", 60000)
    award("e2", "2027-02-01T00:00:00", 55000)
    s = T.status(store, "c", q, zone, at("2027-03-01T00:00:00"))
    assert (s.tier, s.kept_until) == ("GOLD", at("2029-01-01T00:00:00"))
    # Run years late (2031): 2028 earned nothing -> MVP; 2029 nothing -> one step below MVP: none.
    report = T.settle(store, q, zone, at("2031-06-01T00:00:00"))
    assert (report.seen, report.lowered, report.removed) == (1, 1, 1)
    assert T.status(store, "c", q, zone, at("2031-06-01T00:00:00")).tier == ""
    assert T.settle(store, q, zone, at("2031-06-01T00:00:00")) == T.SettleReport(0, 0, 0)


@pytest.mark.parametrize("window", ["calendar year", "rolling 12 months", "anniversary year"])
def test_a_batchs_checks_read_once_write_what_the_checks_one_by_one_write(store: StateStore,
                                                                          window: str) -> None:
    """Store-level: a batch's tier checks (``upgrade_many``: each customer's ledger read once, a
    window several customers share for all of them in one statement, the status followed in
    memory) leave the status rows that the same checks run one by one (``upgrade``, each
    reading the ledger) leave, through every branch: no tier, a first tier, a higher tier
    (kept to the later end), the same tier earned again (kept longer); in each kind of window."""
    from service.state import ledger as L

    bundled = Schema.for_directory(POLICIES).qualification
    assert bundled is not None
    q = dataclasses.replace(bundled, window=window)
    zone = "Europe/London"
    awards = [("e1", "2026-02-01T00:00:00", 10000), ("e2", "2026-03-01T00:00:00", 20000),
              ("e3", "2026-05-01T00:00:00", 30000), ("e4", "2027-02-01T00:00:00", 120000),
              ("e5", "2027-03-01T00:00:00", 1000), ("e6", "2028-02-01T00:00:00", 100000)]
    earns = {"a": awards, "b": awards[:2] + awards[4:5], "c": awards[:1]}  # GOLD..PLATINUM, MVP, none

    def lots(db: object) -> None:
        store._lock_customers(db, [f"{way}-{c}" for way in ("one", "many") for c in earns])  # type: ignore[attr-defined]
        for way in ("one", "many"):
            for c, made in earns.items():
                for event, when, units in made:
                    L.post(store, db, f"{way}-{c}", f"{way}-{c}-{event}", "", [
                        L.NewLot("points", units, at(when), at(when), L.NEVER, "p", "r", "1")])
    store._run("test", lots)  # type: ignore[attr-defined]

    def checks(way: str) -> list[tuple[str, T.TierCheck]]:  # the customers' checks interleaved, by time
        return sorted(((f"{way}-{c}", T.TierCheck(q, zone, at(when))) for c, made in earns.items()
                       for _, when, _ in made), key=lambda check: check[1].at)

    def one_by_one(db: object) -> None:
        for customer_id, check in checks("one"):
            T.upgrade(store, db, customer_id, check)

    store._run("test", one_by_one)  # type: ignore[attr-defined]
    store._run("test", lambda db: T.upgrade_many(store, db, checks("many")))  # type: ignore[attr-defined]
    rows = store._run("test", lambda db: {  # type: ignore[attr-defined]
        f"{way}-{c}": T._status(store, db, f"{way}-{c}") for way in ("one", "many") for c in earns})
    for c in earns:
        assert rows[f"many-{c}"] == rows[f"one-{c}"], c
    # Worked by hand: a's 2026 awards reach GOLD, its 2027 ones PLATINUM (since 2027-02-01),
    # its 2028 ones PLATINUM again, kept to the end of the window after 2028's (London's
    # midnight is 00:00Z in winter); an anniversary year runs from the first award, 1 February.
    kept = {"calendar year": "2030-01-01T00:00:00", "anniversary year": "2030-02-01T00:00:00"}
    if window in kept:
        assert rows["many-a"] == ("PLATINUM", at("2027-02-01T00:00:00"), at(kept[window]))
    if window == "calendar year":
        assert (rows["many-b"][0], rows["many-c"]) == ("MVP", None)


@pytest.mark.parametrize(("text", "expected"), [
    ('measure = "nights"', "qualification.measure: 'nights' is not a declared currency"),
    ('window = "fortnight"', "qualification.window: 'fortnight' is not a choice"),
    ('downgrade = "two steps"', "qualification.downgrade: 'two steps' is not a choice"),
    ('keep = "forever"', "qualification.keep: 'forever' is not a choice"),
    ("thresholds = { GOLD = 100, SILVER = 50 }", "qualification.thresholds.SILVER: is not a declared tier"),
    ("thresholds = { GOLD = 100, MVP = 200 }", "qualification.thresholds: must grow with the tiers"),
    ("colour = 1", "qualification.colour: unknown setting"),
])
def test_a_bad_qualification_is_a_schema_error_naming_the_key(tmp_path: Path, text: str,
                                                              expected: str) -> None:
    base = {"measure": '"points"', "window": '"calendar year"', "thresholds": "{ MVP = 1, GOLD = 2 }"}
    key = text.split(" = ")[0]
    base[key] = text.split(" = ", 1)[1]
    body = "\n".join(f"{k} = {v}" for k, v in base.items())
    path = tmp_path / "schema.toml"
    path.write_text('tiers = ["MVP", "GOLD"]\n[currencies]\npoints = {}\n[qualification]\n' + body + "\n",
                    encoding="utf-8")
    with pytest.raises(SchemaError) as error:
        Schema.load(path)
    assert expected in str(error.value)


def test_the_servers_timer_runs_the_tier_job_after_expiry(store: StateStore) -> None:
    """The expiry timer's run, with the loaded schema, lowers a status due; its second run nothing."""
    from service.ledger import ExpiryTimer
    from service.state import ledger as L

    schema = Schema.for_directory(POLICIES)
    q = schema.qualification
    assert q is not None

    def body(db: object) -> None:
        store._lock_customers(db, ["c"])  # type: ignore[attr-defined]
        t = at("2026-05-01T00:00:00")
        L.post(store, db, "c", "e1", "", [L.NewLot("points", 100000, t, t, L.NEVER, "p", "r", "1"),
                                           T.TierCheck(q, schema.timezone, t)])
    store._run("test", body)  # type: ignore[attr-defined]
    assert T.status(store, "c", q, schema.timezone, at("2026-05-02T00:00:00")).tier == "PLATINUM"
    timer = ExpiryTimer(store, 0, clock=lambda: at("2028-01-01T00:00:00"), schema=lambda: schema)
    timer.run_once()
    assert T.status(store, "c", q, schema.timezone, at("2028-01-01T00:00:00")).tier == "GOLD"
    timer.run_once()
    lowered = T.status(store, "c", q, schema.timezone, at("2028-01-01T00:00:00"))
    assert (lowered.tier, lowered.kept_until) == ("GOLD", at("2029-01-01T00:00:00"))


def test_the_three_windows() -> None:
    """Calendar year in London (BST does not move 1 January); rolling 12 months up to the moment;
    anniversary years from the first award (29 February counts from 28 February in other years)."""
    from dsl.schema.schema import Qualification

    def q(window: str) -> Qualification:
        return Qualification("points", window, (("GOLD", 1),))

    t = at("2026-07-15T12:00:00")
    assert T.window_at(q("calendar year"), "Europe/London", t, None) == (
        at("2026-01-01T00:00:00"), at("2027-01-01T00:00:00"))
    assert T.window_at(q("calendar year"), "America/New_York", t, None) == (
        at("2026-01-01T05:00:00"), at("2027-01-01T05:00:00"))
    assert T.window_at(q("rolling 12 months"), "UTC", t, None) == (
        at("2025-07-15T12:00:00"), t + dt.timedelta(microseconds=1))
    anchor = at("2024-02-29T10:00:00")
    assert T.window_at(q("anniversary year"), "UTC", t, anchor) == (
        at("2026-02-28T10:00:00"), at("2027-02-28T10:00:00"))
    assert T.window_at(q("anniversary year"), "UTC", at("2026-02-01T00:00:00"), anchor) == (
        at("2025-02-28T10:00:00"), at("2026-02-28T10:00:00"))
