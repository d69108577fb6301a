"""The ledger of lots on both backends: lots from awards, redemptions soonest-expiring first,
reversals against lots (debts when the points were spent), expiry posted once, balances and
statements as sums of lines; and a property test against a sequential in-memory model."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.state import Outcome, StateStore, open_store
from service.state import ledger as L

DAY = dt.timedelta(days=1)
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def at(days: float) -> dt.datetime:
    return T0 + dt.timedelta(days=days)


def award(store: StateStore, customer: str, event_id: str, amount: int, earned: float, *,
          lasts: float | None = 100, pending: float = 0, claw_back: bool = False) -> None:
    """Apply an event whose outcome is one lot of ``amount`` points."""
    expires = L.NEVER if lasts is None else at(earned + lasts)
    lot = L.NewLot("points", amount, at(earned), at(earned + pending), expires, "earn", "base", "rev-1",
                   claw_back)
    store.apply(customer, event_id, "digest-" + event_id, lambda reader: Outcome(b"{}", (), [lot]))


def reverse(store: StateStore, event_id: str, reversal_id: str, amount: int, when: float) -> None:
    store.reverse(event_id, reversal_id,
                  lambda stored: Outcome(b"{}", (), [L.Takeback({"points": amount}, at(when))]))


def redeem(store: StateStore, customer: str, redemption_id: str, amount: int, when: float) -> L.RedeemResult:
    return L.redeem(store, customer, redemption_id, f"d-{amount}-{when}", "points", amount, at(when),
                    lambda drawn, after: f"{after}".encode())


def points(store: StateStore, customer: str, when: float) -> L.CurrencyBalance:
    (found,) = [b for b in L.balance(store, customer, at(when)) if b.currency == "points"]
    return found


def test_a_redemption_draws_the_soonest_expiring_available_lots_first(store: StateStore) -> None:
    """Lots expiring on day 100, 50 and (pending until day 20) 300: 70 points on day 10 take the
    day-50 lot whole and 20 of the day-100 one; the pending lot is not touched."""
    award(store, "c", "e1", 100, 0, lasts=100)
    award(store, "c", "e2", 50, 0, lasts=50)
    award(store, "c", "e3", 30, 0, lasts=300, pending=20)
    result = redeem(store, "c", "r1", 70, 10)
    assert [(d.lot_id, d.amount) for d in result.drawn] == [
        (L.lot_key("e2", "points"), 50), (L.lot_key("e1", "points"), 20)]
    assert result.response == b"80"
    b = points(store, "c", 10)
    assert (b.available, b.pending, b.total) == (80, 30, 110)
    # On day 10 the day-100 lot (80 left) expires within 90 days, not within 60.
    assert b.expiring == (0, 0, 80)


def test_the_same_redemption_again_is_replayed_and_another_body_refused(store: StateStore) -> None:
    """One id spends once: the same body replays the first result, another body is refused."""
    award(store, "c", "e1", 100, 0)
    first = redeem(store, "c", "r1", 60, 1)
    again = redeem(store, "c", "r1", 60, 1)
    assert (again.replayed, again.response, again.drawn) == (True, first.response, first.drawn)
    with pytest.raises(L.AlreadyApplied):
        L.redeem(store, "c", "r1", "other", "points", 60, at(1), lambda d, a: b"")
    assert points(store, "c", 2).available == 40


def test_asking_for_more_than_is_available_writes_nothing_and_says_how_much_is(store: StateStore) -> None:
    """Pending and expired lots are not available: 100 available of 160 earned, 101 refused."""
    award(store, "c", "e1", 100, 0)
    award(store, "c", "e2", 50, 0, pending=30)
    award(store, "c", "e3", 10, 0, lasts=5)
    with pytest.raises(L.NotEnoughAvailable) as refused:
        redeem(store, "c", "r1", 101, 10)
    assert refused.value.available == 100
    assert points(store, "c", 10).total == 160


def test_expiry_posts_one_line_per_lot_however_often_it_runs(store: StateStore) -> None:
    """Run twice (and a third time later): the expired lot's remainder is posted once."""
    award(store, "c", "e1", 100, 0, lasts=30)
    award(store, "c", "e2", 40, 0, lasts=None)
    redeem(store, "c", "r1", 30, 1)  # from e1, the one that expires
    first = L.expire(store, at(31))
    second = L.expire(store, at(31))
    third = L.expire(store, at(400))
    assert (first.lines_posted, first.expired) == (1, {"points": 70})
    assert (second.lines_posted, third.lines_posted) == (0, 0)
    lines = [(line.kind, line.amount, line.at) for line, _ in L.statement(store, "c", T0, at(500)).lines]
    assert lines.count(("expire", -70, at(30))) == 1
    b = points(store, "c", 31)
    assert (b.available, b.total) == (40, 40)


def test_expiry_reads_page_by_page_and_marks_what_it_handled(store: StateStore) -> None:
    """Five expired lots over three customers (one spent whole, one not yet expired) read two a
    page: four lines, in three pages; the next run reads nothing."""
    for i, customer in enumerate(["a", "b", "c", "a", "b", "c"]):
        award(store, customer, f"e{i}", 10 + i, 0, lasts=10 if i < 5 else 100)
    redeem(store, "a", "r1", 10, 1)  # all of e0, the soonest-expiring of a's
    first = L.expire(store, at(50), page=2)
    assert (first.lots_seen, first.lines_posted, first.expired) == (5, 4, {"points": 11 + 12 + 13 + 14})
    again = L.expire(store, at(50), page=2)
    assert (again.lots_seen, again.lines_posted) == (0, 0)
    assert [points(store, c, 50).available for c in "abc"] == [0, 0, 15]


def test_a_reversal_of_spent_points_leaves_a_debt_the_balance_shows(store: StateStore) -> None:
    """100 earned, 80 spent, the event reversed: 20 come off its lot, 80 are owed (negative
    available balance, "allowed"); a later award of 50 leaves -30 available."""
    award(store, "c", "e1", 100, 0)
    redeem(store, "c", "r1", 80, 1)
    reverse(store, "e1", "v1", 100, 2)
    assert points(store, "c", 2).available == -80
    with pytest.raises(L.NotEnoughAvailable):
        redeem(store, "c", "r2", 1, 3)
    award(store, "c", "e2", 50, 3)
    assert points(store, "c", 3).available == -30
    (lot,) = [lot for lot in L.lots(store, "c") if lot.debt]
    assert (lot.remaining, lot.event_id, lot.policy) == (-80, "e1", "earn")


def test_claw_back_pays_a_debt_from_the_next_awards(store: StateStore) -> None:
    """With "claw back from later awards", 50 then 50 earned after an 80-point debt pay it off:
    the first lot is taken whole, the second gives 30 and keeps 20 to spend."""
    award(store, "c", "e1", 100, 0)
    redeem(store, "c", "r1", 80, 1)
    reverse(store, "e1", "v1", 100, 2)
    award(store, "c", "e2", 50, 3, claw_back=True)
    award(store, "c", "e3", 50, 4, claw_back=True)
    remaining = {lot.lot_id: lot.remaining for lot in L.lots(store, "c")}
    assert remaining[L.lot_key("e2", "points")] == 0
    assert remaining[L.lot_key("e3", "points")] == 20
    assert remaining[L.debt_key("v1", "points")] == 0
    assert points(store, "c", 4).available == 20


def test_expired_points_reversed_are_not_owed(store: StateStore) -> None:
    """A lot that expired unspent and is then reversed leaves no debt: nothing was spent."""
    award(store, "c", "e1", 100, 0, lasts=10)
    L.expire(store, at(11))
    reverse(store, "e1", "v1", 100, 12)
    assert points(store, "c", 12).available == 0
    assert not [lot for lot in L.lots(store, "c") if lot.debt]


def test_a_statement_pages_in_order_with_running_balances(store: StateStore) -> None:
    """Five lines read two at a time: the pages join up, and every running balance is the sum
    of the lines before it, the opening balance included."""
    for i in range(4):
        award(store, "c", f"e{i}", 10 * (i + 1), i)
    redeem(store, "c", "r1", 15, 5)
    whole = L.statement(store, "c", at(1), at(10), page_size=1000)
    assert whole.opening == {"points": 10}
    seen, token = [], ""
    while True:
        page = L.statement(store, "c", at(1), at(10), page_size=2, page_token=token)
        seen += page.lines
        token = page.next_token
        if not token:
            break
    assert seen == list(whole.lines)
    running = 10
    for line, balance in seen:
        running += line.amount
        assert balance == running
    assert [line.kind for line, _ in seen] == ["award", "award", "award", "redeem", "redeem"][:len(seen)]


def test_many_callers_redeeming_at_once_spend_each_point_once(store_url: str) -> None:
    """Eight threads, each with its own store, redeem 10 points 5 times from 100 (and retry each
    id once): exactly 10 redemptions succeed, the rest are refused, nothing is drawn twice."""
    setup = open_store(store_url)
    try:
        award(setup, "c", "e1", 60, 0)
        award(setup, "c", "e2", 40, 0, lasts=50)
    finally:
        setup.close()
    ok: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()

    def caller(n: int) -> None:
        store = open_store(store_url)
        try:
            for k in range(5):
                rid = f"r{n}-{k}"
                for _attempt in range(2):
                    try:
                        result = redeem(store, "c", rid, 10, 1)
                    except L.NotEnoughAvailable:
                        with lock:
                            refused.append(rid)
                        break
                    if not result.replayed:
                        with lock:
                            ok.append(rid)
        finally:
            store.close()

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check = open_store(store_url)
    try:
        assert len(ok) == 10 and len(set(ok)) == 10
        assert len(refused) == 30
        assert points(check, "c", 2).available == 0
        assert all(lot.remaining == 0 for lot in L.lots(check, "c"))
    finally:
        check.close()


# -- the property test -----------------------------------------------------------------------------


@dataclass
class ModelLot:
    lot_id: str
    amount: int
    available_from: int
    expires_at: int | None
    debt: bool = False
    lines: list[tuple[str, int]] = field(default_factory=list)
    earned: int = 0
    #: The reversed event a debt comes from.
    event_id: str = ""

    @property
    def remaining(self) -> int:
        return sum(a for _, a in self.lines)


class Model:
    """The ledger's rules, sequentially, in plain Python (days as integers)."""

    def __init__(self) -> None:
        self.lots: dict[str, ModelLot] = {}
        self.events: dict[str, str] = {}
        self.redemptions: set[str] = set()

    def award(self, event_id: str, amount: int, day: int, lasts: int | None, pending: int) -> None:
        lot_id = L.lot_key(event_id, "points")
        self.lots[lot_id] = ModelLot(lot_id, amount, day + pending, None if lasts is None else day + lasts,
                                     lines=[("award", amount)], earned=day)
        self.events[event_id] = lot_id

    def spendable(self, day: int) -> list[ModelLot]:
        lots = [lot for lot in self.lots.values() if not lot.debt and lot.available_from <= day
                and (lot.expires_at is None or lot.expires_at > day) and lot.remaining > 0]
        never = 10**9
        return sorted(lots, key=lambda lot: (lot.expires_at if lot.expires_at is not None else never,
                                             lot.earned, lot.lot_id))

    def available(self, day: int) -> int:
        return (sum(lot.remaining for lot in self.spendable(day))
                + sum(lot.remaining for lot in self.lots.values() if lot.debt))

    def redeem(self, rid: str, amount: int, day: int) -> bool:
        if rid in self.redemptions:
            return True
        if amount > self.available(day):
            return False
        left = amount
        for lot in self.spendable(day):
            take = min(left, lot.remaining)
            lot.lines.append(("redeem", -take))
            left -= take
            if not left:
                break
        self.redemptions.add(rid)
        return True

    def reverse(self, event_id: str, rid: str, amount: int) -> None:
        lot = self.lots[self.events[event_id]]
        take = max(min(amount, lot.remaining), 0)
        if take:
            lot.lines.append(("reverse", -take))
        spent = -sum(a for k, a in lot.lines if k in ("redeem", "clawback"))
        owed_before = -sum(d.amount for d in self.lots.values() if d.debt and d.event_id == event_id)
        owed = min(amount - take, spent - owed_before)
        if owed > 0:
            debt_id = L.debt_key(rid, "points")
            self.lots[debt_id] = ModelLot(debt_id, -owed, 0, None, True, [("reverse", -owed)],
                                          event_id=event_id)

    def expire(self, day: int) -> None:
        for lot in self.lots.values():
            if (not lot.debt and lot.expires_at is not None and lot.expires_at <= day and lot.remaining > 0
                    and not any(k == "expire" for k, _ in lot.lines)):
                lot.lines.append(("expire", -lot.remaining))

    def total(self) -> int:
        return sum(lot.remaining for lot in self.lots.values())


operations = st.lists(st.one_of(
    st.tuples(st.just("award"), st.integers(1, 200), st.sampled_from([None, 10, 30, 90]),
              st.sampled_from([0, 5])),
    st.tuples(st.just("redeem"), st.integers(1, 120)),
    st.tuples(st.just("redeem"), st.integers(1, 40)),
    st.tuples(st.just("reverse"), st.integers(0, 20), st.integers(1, 250)),
    st.tuples(st.just("expire"),),
    st.tuples(st.just("retry"),),
), min_size=1, max_size=25)


@pytest.fixture
def fresh(store_url: str) -> Iterator[str]:
    """The backend's URL (each Hypothesis example gets its own customer id)."""
    yield store_url


_example = iter(range(10**9))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_the_ledger_agrees_with_a_sequential_model(fresh: str, ops: list[tuple[object, ...]],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Random sequences of awards, redemptions, reversals, expiry runs and retries, one per day:
    the balance is the sum of the lines, no lot gives more than it had, nothing expired or
    pending was spent, every figure equals the sequential model's, and the balance from the
    line index (every customer indexed here) equals the SQL aggregate's."""
    monkeypatch.setattr(L, "INDEX_FROM_LINES", 1)
    store = open_store(fresh)
    customer = f"p{next(_example)}"
    model = Model()
    events: list[str] = []
    last_redeem: tuple[str, int, int] | None = None
    try:
        for day, op in enumerate(ops, 1):
            kind = op[0]
            if kind == "award":
                _, amount, lasts, pending = op
                event_id = f"{customer}-e{day}"
                award(store, customer, event_id, amount, day, lasts=lasts, pending=pending)  # type: ignore[arg-type]
                model.award(event_id, amount, day, lasts, pending)  # type: ignore[arg-type]
                events.append(event_id)
            elif kind in ("redeem", "retry"):
                if kind == "retry":
                    if last_redeem is None:
                        continue
                    rid, amount, when = last_redeem
                else:
                    rid, amount, when = f"{customer}-r{day}", int(op[1]), day  # type: ignore[call-overload]
                    last_redeem = (rid, amount, when)
                expected = model.redeem(rid, amount, when)
                try:
                    redeem(store, customer, rid, amount, when)
                    done = True
                except L.NotEnoughAvailable:
                    done = False
                assert done == expected
                if not done:
                    last_redeem = None
            elif kind == "reverse":
                if not events:
                    continue
                event_id = events[int(op[1]) % len(events)]  # type: ignore[call-overload]
                amount = int(op[2])  # type: ignore[call-overload]
                rid = f"{customer}-v{day}"
                reverse(store, event_id, rid, amount, day)
                model.reverse(event_id, rid, amount)
            else:
                L.expire(store, at(day))
                model.expire(day)
            # after every step: the store and the model agree
            lots = {lot.lot_id: lot for lot in L.lots(store, customer)}
            assert sorted(lots) == sorted(model.lots)
            for lot_id, mlot in model.lots.items():
                stored = lots[lot_id]
                assert stored.remaining == mlot.remaining
                if stored.debt:
                    assert stored.remaining <= 0
                else:
                    assert 0 <= stored.remaining <= stored.amount  # never spent twice
            lines = L.statement(store, customer, at(-1), at(10**4), page_size=1000).lines
            assert sum(line.amount for line, _ in lines) == model.total()
            for line, _ in lines:
                if line.kind == "redeem":  # nothing expired or pending was spent
                    lot = lots[line.lot_id]
                    assert lot.available_from <= line.at < lot.expires_at
            balances = L.balance(store, customer, at(10**4))
            total = balances[0].total if balances else 0
            assert total == model.total()
            if balances:
                now = points(store, customer, day)
                assert now.available == model.available(day)
            for when in (at(day), at(day + 20), at(day + 45)):
                assert L.balance(store, customer, when) == L.balance(store, customer, when, use_index=False)
    finally:
        store.close()
