"""Redemption steps through a real server on 127.0.0.1 and the bundled programme: the
supermarket's fuel saving is money off in 2p steps (``fuel_saving = { decimals = 2,
redeem_step = "0.02" }`` in policies/schema.toml), on SQLite and PostgreSQL.

Worked by hand: GBP 100.00 of shopping on 2026-07-02 counts toward July's store spend
(store_spend); 40.7 litres of fuel on 2026-07-03 earn floor(100.00 / 20.00) = 5p a litre
(fuel_saving_from_july): 5 x 0.01 x 40.7 = 2.035, rounded down to GBP 2.03.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from serving import LiveServer, programme, stamp, status_of

from service.client import customer, purchase
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from tests.service.conftest import gold_customer, jfk_lhr


@pytest.fixture
def stub(store_url: str) -> Iterator[pb_grpc.LoyaltyRulesStub]:
    """The bundled programme served over a fresh store, the customer's fuel saving earned."""
    with LiveServer.started(store_url) as served:
        rpc = served.stub
        member = customer("c-1", member_since="2020-01-01")
        rpc.Apply(pb.ApplyRequest(customer=member, event=purchase(
            "shop-1", time="2026-07-02T10:00:00Z", amount="100.00", currency="GBP")))
        fuel = pb.Event(id="fuel-1", kind="fuel", time=stamp("2026-07-03T08:00:00Z"))
        fuel.attributes["litres"].decimal_value = "40.7"
        applied = rpc.Apply(pb.ApplyRequest(customer=member, event=fuel))
        assert applied.decision.awards["fuel_saving"] == "2.03"
        yield rpc


def redeem(rpc: pb_grpc.LoyaltyRulesStub, rid: str, amount: str) -> pb.RedeemResponse:
    return rpc.Redeem(pb.RedeemRequest(customer_id="c-1", redemption_id=rid, currency="fuel_saving",
                                       amount=amount, time=stamp("2026-07-04T00:00:00Z")))


def available(rpc: pb_grpc.LoyaltyRulesStub) -> str:
    response = rpc.GetBalance(pb.GetBalanceRequest(customer_id="c-1", as_of=stamp("2026-07-05T00:00:00Z")))
    (saving,) = [b.available for b in response.balances if b.currency == "fuel_saving"]
    return saving


@pytest.mark.parametrize(("amount", "reason"), [
    ("2.03", "2.03 is not a multiple of the fuel_saving redemption step 0.02: the nearest valid amounts "
             "are 2.02 and 2.04"),
    ("0.01", "0.01 is not a multiple of the fuel_saving redemption step 0.02: the least is 0.02"),
    ("1.49", "1.49 is not a multiple of the fuel_saving redemption step 0.02: the nearest valid amounts "
             "are 1.48 and 1.50"),
], ids=["whole-balance", "below-the-step", "mid-way"])
def test_an_amount_off_the_step_is_invalid_argument_naming_the_nearest_valid_ones(
        stub: pb_grpc.LoyaltyRulesStub, amount: str, reason: str) -> None:
    """Refused on the field amount with the step and the valid amounts either side; nothing spent."""
    with pytest.raises(grpc.RpcError) as refused:
        redeem(stub, "r-1", amount)
    code, _message, violations, _info = status_of(refused.value)
    assert (code, violations) == (grpc.StatusCode.INVALID_ARGUMENT, [("amount", reason)])
    assert available(stub) == "2.03"


def test_short_of_balance_says_the_balance_and_the_most_redeemable_then_that_amount_spends(
        stub: pb_grpc.LoyaltyRulesStub) -> None:
    """2.04 is on the step but above the 2.03 available: FAILED_PRECONDITION with the balance
    and 2.02, the most in 2p steps; 2.02 then spends, leaving 0.01 (below any step)."""
    with pytest.raises(grpc.RpcError) as refused:
        redeem(stub, "r-1", "2.04")
    code, message, _violations, info = status_of(refused.value)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert message == ("amount: 2.04 fuel_saving asked; the available balance is 2.03; the most redeemable "
                       "in steps of 0.02 is 2.02 (nothing was written)")
    assert (info["available"], info["redeemable"], info["redeem_step"]) == ("2.03", "2.02", "0.02")
    spent = redeem(stub, "r-1", "2.02")
    assert (spent.available_after, [d.amount for d in spent.drawn]) == ("0.01", ["2.02"])
    assert available(stub) == "0.01"
    with pytest.raises(grpc.RpcError) as nothing_left:
        redeem(stub, "r-2", "0.02")
    assert status_of(nothing_left.value)[3]["redeemable"] == "0"


def test_vouchers_of_150_points_through_the_server(store_url: str, tmp_path: Path) -> None:
    """The bundled programme with miles declared ``redeem_step = 150`` (vouchers): the flight's
    8,949 miles redeem as 59 vouchers at most, 8,850; 1,000 is between 900 and 1,050."""
    with LiveServer.started(store_url, programme(tmp_path, redeem_step=150)) as served:
        rpc = served.stub
        rpc.Apply(pb.ApplyRequest(customer=gold_customer(), event=jfk_lhr()))

        def miles(rid: str, amount: str) -> pb.RedeemResponse:
            return rpc.Redeem(pb.RedeemRequest(customer_id="c-1", redemption_id=rid, currency="miles",
                                               amount=amount, time=stamp("2026-04-01T00:00:00Z")))

        with pytest.raises(grpc.RpcError) as off:
            miles("r-1", "1000")
        assert status_of(off.value)[2] == [("amount", "1000 is not a multiple of the miles redemption step "
                                            "150: the nearest valid amounts are 900 and 1050")]
        with pytest.raises(grpc.RpcError) as short:
            miles("r-1", "9000")
        code, message, _, info = status_of(short.value)
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert message == ("amount: 9000 miles asked; the available balance is 8949; the most redeemable in "
                           "steps of 150 is 8850 (nothing was written)")
        assert (info["redeemable"], info["redeem_step"]) == ("8850", "150")
        assert miles("r-1", "8850").available_after == "99"
