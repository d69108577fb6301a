"""Redeem, GetBalance and GetStatement through a real server on 127.0.0.1 and a real store, with
the bundled programme's miles declared to last "24 months to the end of the month" after a
14-day pending period; ``loyalty state expire`` run twice; the expiry timer.

The figures are worked by hand: the business-class JFK-LHR flight of 2026-03-01T09:30Z earns
8,949 miles for a GOLD member of 2012; spendable from 2026-03-15T09:30Z; 24 months on is
2028-03-01, whose month ends at London's midnight starting April: 2028-03-31T23:00Z.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from serving import LiveServer, programme, stamp, status_of

from service.cli import main
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.ledger import ExpiryTimer, statement_lines
from service.state import ledger as L
from tests.service.conftest import gold_customer, jfk_lhr

EARNED = 8949
EXPIRES = dt.datetime(2028, 3, 31, 23, tzinfo=dt.UTC)


@dataclass
class Ledgered(LiveServer):
    """A server over a programme whose miles expire, on a fresh store."""

    def redeem(self, rid: str, amount: str, time: str, currency: str = "miles",
               customer: str = "c-1") -> pb.RedeemResponse:
        return self.stub.Redeem(pb.RedeemRequest(customer_id=customer, redemption_id=rid, currency=currency,
                                                 amount=amount, time=stamp(time)))

    def balance(self, as_of: str) -> dict[str, str]:
        response = self.stub.GetBalance(pb.GetBalanceRequest(customer_id="c-1", as_of=stamp(as_of)))
        (miles,) = [b for b in response.balances if b.currency == "miles"]
        return {"available": miles.available, "pending": miles.pending, "total": miles.total,
                "30": miles.expiring_30_days, "60": miles.expiring_60_days, "90": miles.expiring_90_days}


@pytest.fixture
def ledgered(store_url: str, tmp_path: Path) -> Iterator[Ledgered]:
    policies = programme(tmp_path, validity="24 months to the end of the month",
                         pending="available after 14 days")
    with Ledgered.started(store_url, policies) as served:
        yield served


def test_an_award_is_pending_then_available_then_expiring_then_expired(
        ledgered: Ledgered, capsys: pytest.CaptureFixture[str]) -> None:
    """The flight's miles: pending for 14 days, then available; within 60 days of the end of
    March 2028 they are "expiring"; `loyalty state expire` posts their expiry once."""
    applied = ledgered.stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=jfk_lhr()))
    assert applied.decision.awards["miles"] == str(EARNED)
    assert ledgered.balance("2026-03-10T00:00:00Z") == {
        "available": "0", "pending": str(EARNED), "total": str(EARNED), "30": "0", "60": "0", "90": "0"}
    assert ledgered.balance("2026-03-16T00:00:00Z")["available"] == str(EARNED)
    assert ledgered.balance("2028-02-15T00:00:00Z") == {
        "available": str(EARNED), "pending": "0", "total": str(EARNED), "30": "0", "60": str(EARNED),
        "90": str(EARNED)}
    (lot,) = L.lots(ledgered.state, "c-1")
    assert (lot.expires_at, lot.policy, lot.rule) == (EXPIRES, "earn_miles_by_distance", "flown_miles")
    # Expired, not yet posted: neither available nor pending, still in the total.
    assert ledgered.balance("2028-04-01T00:00:00Z")["available"] == "0"
    for _ in range(2):
        assert main(["state", "expire", "--as-of", "2028-04-01", "--state", ledgered.url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"expired {EARNED} miles: 1 lines posted")
    assert out[1].startswith("expired nothing: 0 lines posted")
    assert ledgered.balance("2028-04-01T00:00:00Z")["total"] == "0"
    lines = statement_lines(ledgered.state, "c-1", dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                            dt.datetime(2029, 1, 1, tzinfo=dt.UTC))
    assert [(x.kind, x.amount, x.running_balance, x.at) for x in lines] == [
        ("award", EARNED, EARNED, dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)),
        ("expire", -EARNED, 0, EXPIRES)]


def test_redeem_is_refused_with_the_balance_then_spends_once(ledgered: Ledgered) -> None:
    """While the miles are pending a redemption is FAILED_PRECONDITION with the available
    balance (0); after, it spends once: a retry replays it, another body is ALREADY_EXISTS."""
    ledgered.stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=jfk_lhr()))
    with pytest.raises(grpc.RpcError) as early:
        ledgered.redeem("r-1", "1000", "2026-03-10T00:00:00Z")
    code, message, _, info = status_of(early.value)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert info == {"field": "amount", "currency": "miles", "available": "0", "requested": "1000",
                    "redeemable": "0"}
    assert "the available balance is 0" in message
    first = ledgered.redeem("r-2", "1000", "2026-03-20T00:00:00Z")
    assert (first.available_after, [(d.lot_id, d.amount) for d in first.drawn]) == (
        str(EARNED - 1000), [(L.lot_key("e-1", "miles"), "1000")])
    assert first.drawn[0].expires_at.ToDatetime(tzinfo=dt.UTC) == EXPIRES
    again = ledgered.redeem("r-2", "1000", "2026-03-20T00:00:00Z")
    assert again.replayed
    again.replayed = False
    assert again == first
    with pytest.raises(grpc.RpcError) as reused:
        ledgered.redeem("r-2", "999", "2026-03-20T00:00:00Z")
    code, _, _, info = status_of(reused.value)
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert info["field"] == "redemption_id" and info["stored_digest"] == first.body_digest
    assert ledgered.balance("2026-03-21T00:00:00Z")["available"] == str(EARNED - 1000)


def test_a_reversal_of_spent_miles_drives_the_balance_negative(ledgered: Ledgered) -> None:
    """8,000 of the 8,949 miles spent, then the flight reversed: 949 come off its lot and 8,000
    are owed (negative_balance "allowed", the default); the statement shows why."""
    ledgered.stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=jfk_lhr()))
    ledgered.redeem("r-1", "8000", "2026-03-20T00:00:00Z")
    reversed_ = ledgered.stub.Reverse(pb.ReverseRequest(event_id="e-1", reversal_id="v-1",
                                                        time=stamp("2026-04-01T00:00:00Z")))
    assert reversed_.reversed["miles"] == str(EARNED)
    assert ledgered.balance("2026-04-02T00:00:00Z")["available"] == "-8000"
    page = ledgered.stub.GetStatement(pb.GetStatementRequest(
        customer_id="c-1", page_size=10, **{"from": stamp("2026-01-01T00:00:00Z"),
                                             "to": stamp("2027-01-01T00:00:00Z")}))
    assert [(x.kind, x.amount, x.running_balance, x.reference) for x in page.lines] == [
        ("award", str(EARNED), str(EARNED), "e-1"), ("redeem", "-8000", str(EARNED - 8000), "r-1"),
        ("reverse", str(-(EARNED - 8000)), "0", "v-1"), ("reverse", "-8000", "-8000", "v-1")]
    assert all(x.event_id == "e-1" and x.policy == "earn_miles_by_distance" for x in page.lines)


def test_a_statement_pages_with_tokens(ledgered: Ledgered) -> None:
    """Three flights read one line a page: the tokens chain, the opening balances add up."""
    for i, day in enumerate(["01", "02", "03"]):
        ledgered.stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=jfk_lhr(
            f"e-{i}", time=f"2026-03-{day}T09:30:00Z")))
    window = {"from": stamp("2026-03-02T00:00:00Z"), "to": stamp("2026-04-01T00:00:00Z")}
    token, seen, openings = "", [], []
    while True:
        page = ledgered.stub.GetStatement(pb.GetStatementRequest(customer_id="c-1", page_size=1,
                                                                 page_token=token, **window))
        seen += [(x.reference, x.running_balance) for x in page.lines]
        openings.append(dict(page.opening))
        token = page.next_page_token
        if not token:
            break
    assert seen == [("e-1", str(2 * EARNED)), ("e-2", str(3 * EARNED))]
    assert openings[0] == {"miles": str(EARNED)}


@pytest.mark.parametrize(("request_fields", "violations"), [
    ({}, [("customer_id", "is required"), ("redemption_id", "is required"), ("currency", "is required"),
          ("amount", 'must be a positive decimal number such as "150"'), ("time", "is required")]),
    ({"customer_id": "c-1", "redemption_id": "r", "currency": "gold", "amount": "10", "time": "t"},
     [("currency", "'gold' is not a currency the schema declares (cashback, credit, fuel_saving, miles, "
                   "points, stars)")]),
    ({"customer_id": "c-1", "redemption_id": "r", "currency": "miles", "amount": "1.5", "time": "t"},
     [("amount", "has more than 0 decimal places")]),
    ({"customer_id": "c-1", "redemption_id": "r", "currency": "miles", "amount": "-3", "time": "t"},
     [("amount", 'must be a positive decimal number such as "150"')]),
    ({"customer_id": "c-1", "redemption_id": "r" * 129, "currency": "miles", "amount": "3", "time": "t"},
     [("redemption_id", "is 129 characters; at most 128 are allowed")]),
], ids=["empty", "unknown-currency", "too-many-decimals", "negative", "long-id"])
def test_a_bad_redemption_is_invalid_argument_naming_the_field(
        ledgered: Ledgered, request_fields: dict[str, str], violations: list[tuple[str, str]]) -> None:
    """Every problem of a Redeem request is listed with its field, and nothing is written."""
    fields: dict[str, object] = dict(request_fields)
    if fields.pop("time", None):
        fields["time"] = stamp("2026-03-20T00:00:00Z")
    with pytest.raises(grpc.RpcError) as refused:
        ledgered.stub.Redeem(pb.RedeemRequest(**fields))  # type: ignore[arg-type]
    code, _, found, _ = status_of(refused.value)
    assert (code, found) == (grpc.StatusCode.INVALID_ARGUMENT, violations)


def test_bad_balance_and_statement_requests_name_the_field(ledgered: Ledgered) -> None:
    """No customer, no window, a page too large, a token not ours: INVALID_ARGUMENT each."""
    cases = [
        (lambda: ledgered.stub.GetBalance(pb.GetBalanceRequest()), [("customer_id", "is required")]),
        (lambda: ledgered.stub.GetStatement(pb.GetStatementRequest(customer_id="c-1", page_size=5000)),
         [("from", "is required"), ("to", "is required"), ("page_size", "must be from 1 to 1000 (0: 100)")]),
        (lambda: ledgered.stub.GetStatement(pb.GetStatementRequest(
            customer_id="c-1", page_token="nonsense", **{"from": stamp("2026-01-01T00:00:00Z"),
                                                        "to": stamp("2027-01-01T00:00:00Z")})),
         [("page_token", "is not a token this service returned")]),
    ]
    for call, violations in cases:
        with pytest.raises(grpc.RpcError) as refused:
            call()
        code, _, found, _ = status_of(refused.value)
        assert (code, found) == (grpc.StatusCode.INVALID_ARGUMENT, violations)


def test_the_expiry_timer_posts_each_expiry_once(ledgered: Ledgered) -> None:
    """The server's timer, its clock past the expiry, runs several times: one expiry line."""
    ledgered.stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=jfk_lhr()))
    timer = ExpiryTimer(ledgered.state, 0.01, clock=lambda: dt.datetime(2028, 5, 1, tzinfo=dt.UTC)).start()
    try:
        for _ in range(500):
            if timer.runs >= 3:
                break
            time.sleep(0.01)
    finally:
        timer.stop()
    assert timer.runs >= 3
    kinds = [x.kind for x in statement_lines(ledgered.state, "c-1", dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                                             dt.datetime(2029, 1, 1, tzinfo=dt.UTC))]
    assert kinds == ["award", "expire"]


def test_apply_batch_makes_a_lot_per_new_event_and_none_on_a_replay(ledgered: Ledgered) -> None:
    """Two flights in one ApplyBatch, one of them again in a second batch: two lots, each
    dated by the currency's words, and the replay adds none."""
    items = [pb.BatchItem(correlation_id=str(i), customer=gold_customer(),
                          event=jfk_lhr(f"b-{i}", time=f"2026-03-0{i + 1}T09:30:00Z")) for i in range(2)]
    ledgered.stub.ApplyBatch(pb.ApplyBatchRequest(items=items))
    again = ledgered.stub.ApplyBatch(pb.ApplyBatchRequest(items=items[1:]))
    assert again.results[0].applied.replayed
    lots = L.lots(ledgered.state, "c-1")
    assert [(lot.event_id, lot.amount, lot.available_from) for lot in lots] == [
        ("b-0", EARNED, dt.datetime(2026, 3, 15, 9, 30, tzinfo=dt.UTC)),
        ("b-1", EARNED, dt.datetime(2026, 3, 16, 9, 30, tzinfo=dt.UTC))]
    assert ledgered.balance("2026-03-20T00:00:00Z")["available"] == str(2 * EARNED)


def test_a_programme_that_claws_back_pays_the_debt_from_the_next_flight(store_url: str,
                                                                        tmp_path: Path) -> None:
    """negative_balance = "claw back from later awards": 8,000 spent miles of a reversed flight
    are owed, and the next flight's 8,949 pay them first, leaving 949 to spend."""
    root = programme(tmp_path, validity="never", pending="")
    schema = root / "schema.toml"
    text = schema.read_text(encoding="utf-8")
    claw_back = '[programme]\nnegative_balance = "claw back from later awards"\n'
    schema.write_text(text.replace("[programme]\n", claw_back), encoding="utf-8")
    with Ledgered.started(store_url, root) as served:
        served.stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=jfk_lhr()))
        served.redeem("r-1", "8000", "2026-03-02T00:00:00Z")
        served.stub.Reverse(pb.ReverseRequest(event_id="e-1", reversal_id="v-1",
                                              time=stamp("2026-03-03T00:00:00Z")))
        assert served.balance("2026-03-04T00:00:00Z")["available"] == "-8000"
        second = jfk_lhr("e-2", time="2026-03-05T09:30:00Z")
        served.stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=second))
        assert served.balance("2026-03-06T00:00:00Z")["available"] == str(EARNED - 8000)
        lines = statement_lines(served.state, "c-1", dt.datetime(2026, 3, 5, tzinfo=dt.UTC),
                                dt.datetime(2026, 3, 6, tzinfo=dt.UTC))
        kinds = [(x.kind, x.amount) for x in lines]
        assert kinds == [("award", EARNED), ("clawback", -8000), ("clawback", 8000)]


def test_a_store_moved_with_export_and_import_keeps_every_balance_and_line(
        ledgered: Ledgered, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The flight's 8,949 miles less a redemption of 949 on 2026-04-01: `loyalty state export`
    then `import` into a new SQLite file; a second server on the copy answers GetBalance and
    GetStatement as the first did, replays the redemption, and `state show` prints 8000
    available (0 pending) on both."""
    ledgered.stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=jfk_lhr()))
    first = ledgered.redeem("r-1", "949", "2026-04-01T00:00:00Z")
    exported = tmp_path / "state.jsonl"
    assert main(["state", "export", str(exported), "--state", ledgered.url]) == 0
    copy = str(tmp_path / "copy.sqlite3")
    for _ in range(2):
        assert main(["state", "import", str(exported), "--state", copy]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "imported 0 rows"
    policies = programme(tmp_path / "copy-policies", validity="24 months to the end of the month",
                         pending="available after 14 days")
    with Ledgered.started(copy, policies) as moved:
        for as_of in ("2026-03-10T00:00:00Z", "2026-04-02T00:00:00Z", "2028-04-01T00:00:00Z"):
            assert moved.balance(as_of) == ledgered.balance(as_of)
        assert moved.balance("2026-04-02T00:00:00Z")["available"] == "8000"
        window = pb.GetStatementRequest(customer_id="c-1", to=stamp("2030-01-01T00:00:00Z"))
        getattr(window, "from").CopyFrom(stamp("2026-01-01T00:00:00Z"))
        assert moved.stub.GetStatement(window) == ledgered.stub.GetStatement(window)
        again = moved.redeem("r-1", "949", "2026-04-01T00:00:00Z")
        assert again.replayed and again.drawn == first.drawn
    for url in (ledgered.url, copy):
        assert main(["state", "show", "c-1", "--at", "2026-04-02T00:00:00Z", "--state", url]) == 0
        out = capsys.readouterr().out
        assert ("  balances at 2026-04-02T00:00:00Z (available, pending):\n"
                "    miles: available 8000, pending 0\n") in out
