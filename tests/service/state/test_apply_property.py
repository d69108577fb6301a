"""Random sequences of Apply, retries and Reverse through the real server, against a sequential
model of the stand-in's rules (a bonus of 100 once a day; 5% on up to 1500.00 a quarter) and of
the documented reversal rule: every response is the model's, and after every step the stored
counters equal the model's replay of what was applied and reversed.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_apply_rpcs import Served, served  # noqa: F401  # the fixture

from service.client import purchase
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.state import Window

CAP = Decimal("1500.00")
CENT = Decimal("0.01")
Q1 = Window("quarter_spend", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 4, 1, tzinfo=dt.UTC))
AMOUNTS = [Decimal("100.00"), Decimal("400.00"), Decimal("900.00")]


def day_window(day: int) -> Window:
    start = dt.datetime(2026, 3, day, tzinfo=dt.UTC)
    return Window("daily_bonus", start, start + dt.timedelta(days=1))


def event(i: int) -> tuple[pb.Event, int, Decimal]:
    """Purchase ``e-i``: its day (1-3) and amount follow from ``i``; two lines, A (60%, two
    units) and B (40%, one unit)."""
    day, amount = 1 + i % 3, AMOUNTS[i % len(AMOUNTS)]
    a = (amount * Decimal("0.6")).quantize(CENT)
    return purchase(f"e-{i}", time=f"2026-03-{day:02d}T12:00:00Z", amount=str(amount), items=[
        {"sku": "A", "category": "coffee", "amount": str(a), "quantity": 2},
        {"sku": "B", "category": "coffee", "amount": str(amount - a)},
    ]), day, amount


def down(value: Fraction, unit: Decimal | None) -> Decimal | int:
    if unit is None:
        return int(value)
    return Decimal(int(value / Fraction(unit))) * unit


@dataclass
class Model:
    """The sequential replay: counters, and per applied event what is left to reverse."""

    daily: dict[int, int] = field(default_factory=dict)
    quarter: Decimal = Decimal("0.00")
    applied: dict[int, dict[str, object]] = field(default_factory=dict)
    reversals: dict[str, tuple[int, tuple[tuple[str, int], ...]]] = field(default_factory=dict)

    def apply(self, i: int) -> tuple[dict[str, str], dict[str, str]]:
        _, day, amount = event(i)
        awards: dict[str, str] = {}
        counted: dict[str, str] = {}
        left: dict[str, object] = {"day": day, "amount": amount, "units": {"A": 2, "B": 1}}
        if self.daily.get(day, 0) < 1:
            self.daily[day] = self.daily.get(day, 0) + 1
            awards["bonus"], counted["daily_bonus"] = "100", "1"
            left["bonus"], left["bonus_count"] = 100, 1
        qualifying = min(amount, max(CAP - self.quarter, Decimal(0)))
        if qualifying:
            cashback = (qualifying * Decimal("0.05")).quantize(CENT, ROUND_DOWN)
            awards["cashback"] = str(cashback)
            counted["quarter_spend"] = str(qualifying)
            self.quarter += qualifying
            left["cashback"], left["spend"] = cashback, qualifying
        left["original"] = dict(left)
        self.applied[i] = left
        return awards, counted

    def refuses(self, i: int, items: tuple[tuple[str, int], ...]) -> bool:
        """Whether returning ``items`` asks for more units than event ``i`` has left."""
        units = dict(self.applied[i]["units"])  # type: ignore[call-overload]
        for sku, n in items:
            if n > units[sku]:
                return True
            units[sku] -= n
        return False

    def reverse(self, i: int, items: tuple[tuple[str, int], ...]) -> tuple[dict[str, str], dict[str, str]]:
        left = self.applied[i]
        for sku, n in items:
            left["units"][sku] -= n  # type: ignore[index]
        original = left["original"]
        assert isinstance(original, dict)
        if items:
            amount = left["amount"]
            assert isinstance(amount, Decimal)
            a = (amount * Decimal("0.6")).quantize(CENT)
            lines = {"A": (a, 2), "B": (amount - a, 1)}
            value = sum((Fraction(lines[sku][0]) * units / lines[sku][1] for sku, units in items),
                        Fraction(0))
            fraction = value / Fraction(amount)
        reversed_: dict[str, str] = {}
        counted: dict[str, str] = {}
        for award, count, unit, count_unit in (("bonus", "bonus_count", None, None),
                                               ("cashback", "spend", CENT, CENT)):
            if award not in left:
                continue
            take = left[award] if not items else min(down(Fraction(original[award]) * fraction, unit),
                                                     left[award])
            back = left[count] if not items else min(down(Fraction(original[count]) * fraction, count_unit),
                                                     left[count])
            left[award] -= take  # type: ignore[operator]
            left[count] -= back  # type: ignore[operator]
            if take:
                reversed_[award] = str(take)
            if back:
                name = "daily_bonus" if count == "bonus_count" else "quarter_spend"
                counted[name] = str(-back)
                if name == "daily_bonus":
                    self.daily[left["day"]] -= back  # type: ignore[index, operator]
                else:
                    self.quarter -= back  # type: ignore[assignment]
        return reversed_, counted


_runs = itertools.count()

ops = st.lists(st.one_of(
    st.tuples(st.just("apply"), st.integers(0, 8)),
    st.tuples(st.just("reverse"), st.integers(0, 8), st.integers(0, 3),
              st.sampled_from([(), (("A", 1),), (("B", 1),), (("A", 2),), (("A", 1), ("B", 1))])),
), min_size=1, max_size=14)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=ops)
def test_random_apply_retry_and_reverse_match_a_sequential_replay(served: Served, steps: list) -> None:  # noqa: F811
    """Each step's response is the model's; the stored counters always equal the model's."""
    run = f"{next(_runs)}-"
    model = Model()
    first: dict[int, pb.ApplyResponse] = {}
    served.state.compact(dt.datetime(2100, 1, 1, tzinfo=dt.UTC))  # a fresh run: no entries
    for step in steps:
        if step[0] == "apply":
            i = step[1]
            msg, _, _ = event(i)
            msg.id = run + msg.id
            response = served.apply(msg)
            if i in first:
                assert response.replayed and response.decision == first[i].decision
            else:
                awards, counted = model.apply(i)
                mine = {k: v for k, v in response.decision.awards.items() if k in ("bonus", "cashback")}
                assert mine == awards
                assert dict(response.counted) == counted
                first[i] = response
        else:
            _, i, r, items = step
            rid = f"{run}r-{r}"
            request = [pb.ReturnedItem(sku=sku, quantity=units) for sku, units in items]
            try:
                back = served.reverse(f"{run}e-{i}", rid, *request)
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
                if i not in model.applied:
                    assert code == grpc.StatusCode.NOT_FOUND
                elif rid in model.reversals:
                    assert code == grpc.StatusCode.ALREADY_EXISTS and model.reversals[rid] != (i, items)
                else:
                    assert code == grpc.StatusCode.INVALID_ARGUMENT and model.refuses(i, items)
                continue
            if rid in model.reversals:
                assert back.replayed and model.reversals[rid] == (i, items)
                continue
            assert not model.refuses(i, items)
            model.reversals[rid] = (i, items)
            reversed_, counted = model.reverse(i, items)
            assert {k: v for k, v in back.reversed.items() if k in ("bonus", "cashback")} == reversed_
            assert dict(back.counted) == counted
        days = served.state.sums("c-1", [day_window(d) for d in (1, 2, 3)] + [Q1])
        assert days[:3] == [model.daily.get(d, 0) for d in (1, 2, 3)]
        assert Decimal(days[3]) == model.quarter
