"""Random sequences of apply, retry, batches and reversals against a sequential in-memory model.

The decide() under test caps a monthly spend counter (so what it writes depends on what it
reads inside the transaction) and counts awards; reversals take back a fraction of what is
left. After every step, the store's sums over calendar and rolling windows equal the model's.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from service.state import (
    AlreadyApplied,
    ApplyItem,
    EventNotFound,
    NewEntry,
    Outcome,
    StateStore,
    StoredEvent,
    Window,
)

CAP = Decimal("50.00")
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
MONTHS = [dt.datetime(2026, m, 1, tzinfo=dt.UTC) for m in (1, 2, 3, 4, 5)]
CENT = Decimal("0.01")


def month_of(at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The calendar month (UTC) holding ``at``."""
    for start, end in itertools.pairwise(MONTHS):
        if start <= at < end:
            return start, end
    raise AssertionError(at)


@dataclass(frozen=True)
class Apply:
    customer: int
    event: int
    body: int
    cents: int
    day: int


@dataclass(frozen=True)
class Batch:
    items: tuple[Apply, ...]


@dataclass(frozen=True)
class Reverse:
    event: int
    reversal: int
    tenths: int  # the fraction of what is left to take back, in tenths


applies = st.builds(Apply, st.integers(0, 1), st.integers(0, 7), st.integers(0, 1),
                    st.integers(-500, 4000), st.sampled_from([0, 5, 9, 10, 20, 31, 40]))
operations = st.one_of(
    applies,
    st.builds(Batch, st.lists(applies, min_size=1, max_size=6).map(tuple)),
    st.builds(Reverse, st.integers(0, 8), st.integers(0, 3), st.integers(1, 10)),
)


def decide_for(op: Apply, customer: str):
    """The decide() both the store and the model run: a capped monthly award, a recent count."""
    at = START + dt.timedelta(days=op.day)  # midnight: two customers can read the same window
    amount = Decimal(op.cents) / 100
    start, end = month_of(at)

    def decide(reader) -> Outcome:
        # The month holds this event's own entry; the 10 days before it never do, so a batch
        # can sum that window for a customer whose earlier items are still pending in it.
        spent, recent = reader.sums([Window("spend", start, end),
                                     Window("count", at - dt.timedelta(days=10), at)])
        award = max(Decimal(0), min(amount, CAP - spent)).quantize(CENT)
        return Outcome(f"award {award} after {recent} recent",
                       [NewEntry("spend", at, award), NewEntry("count", at, 1)])

    return decide


def reverse_for(op: Reverse):
    """The decide_reversal() both run: take back ``tenths`` of what the event still holds."""

    def decide(event: StoredEvent) -> Outcome:
        left: dict[str, tuple[dt.datetime, Decimal]] = {}
        for e in event.entries:
            left[e.counter] = (e.at, Decimal(e.amount))
        for r in event.reversals:
            for e in r.entries:
                at, amount = left[e.counter]
                left[e.counter] = (at, amount + Decimal(e.amount))
        entries = [
            NewEntry(counter, at, -(amount * op.tenths / 10).quantize(CENT, ROUND_DOWN))
            for counter, (at, amount) in sorted(left.items())
        ]
        return Outcome(f"back {op.tenths}/10", entries)

    return decide


@dataclass
class Model:
    """What a sequential store holds: events and the entries they appended."""

    events: dict[str, tuple[str, str, bytes, list[NewEntry]]] = field(default_factory=dict)
    reversals: dict[str, tuple[str, bytes, list[NewEntry]]] = field(default_factory=dict)

    def entries(self, customer: str) -> list[NewEntry]:
        out = [e for c, _, _, es in self.events.values() if c == customer for e in es]
        for event_id, _, es in self.reversals.values():
            if self.events[event_id][0] == customer:
                out.extend(es)
        return out

    def sum(self, customer: str, window: Window) -> Decimal:
        return sum((Decimal(e.amount) for e in self.entries(customer)
                    if e.counter == window.counter and window.start <= e.at < window.end), Decimal(0))

    def apply(self, customer: str, event_id: str, digest: str, decide) -> tuple[str, bytes] | type:
        if event_id in self.events:
            _, stored, decision, _ = self.events[event_id]
            return ("replayed", decision) if stored == digest else AlreadyApplied
        reader = _ModelReader(self, customer)
        outcome = decide(reader)
        decision = outcome.decision.encode()
        self.events[event_id] = (customer, digest, decision, list(outcome.entries))
        return ("applied", decision)

    def reverse(self, event_id: str, reversal_id: str, decide) -> tuple[str, bytes] | type:
        if event_id not in self.events:
            return EventNotFound
        if reversal_id in self.reversals:
            stored_event, decision, _ = self.reversals[reversal_id]
            return ("replayed", decision) if stored_event == event_id else AlreadyApplied
        return ("applied", b"")  # the decision is compared through the sums


@dataclass
class _ModelReader:
    model: Model
    customer: str

    def sums(self, windows):
        return [self.model.sum(self.customer, w) for w in windows]


def check_sums(store: StateStore, model: Model, customers: list[str]) -> None:
    windows = [Window("spend", s, e) for s, e in itertools.pairwise(MONTHS)]
    windows += [Window("count", MONTHS[0], MONTHS[-1]),
                Window("spend", START + dt.timedelta(days=20), START + dt.timedelta(days=27)),
                Window("spend", MONTHS[0], MONTHS[-1])]
    for customer in customers:
        got = [Decimal(x) for x in store.sums(customer, windows)]
        assert got == [model.sum(customer, w) for w in windows], customer


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operations, min_size=1, max_size=20))
# A batch's second decision for one customer must see the first one's pending entries ...
@example(ops=[Batch((Apply(0, 1, 0, 4000, 0), Apply(0, 2, 0, 4000, 0)))])
# ... and so must a window summed for several customers at once (B's day-5 entry at day 10).
@example(ops=[Batch((Apply(1, 1, 0, 100, 5), Apply(0, 2, 0, 100, 10), Apply(1, 3, 0, 100, 10)))])
def test_sums_always_equal_a_sequential_model(store: StateStore, ops: list) -> None:
    """Whatever the order of applies, retries, batches and reversals, the sums match the model."""
    ns = uuid.uuid4().hex[:8]  # each example its own customers and ids in the shared store
    customers = [f"{ns}-c{i}" for i in range(3)]
    model = Model()

    def ids(op: Apply) -> tuple[str, str, str]:
        return customers[op.customer], f"{ns}-e{op.event}", f"body-{op.body}"

    for op in ops:
        if isinstance(op, Apply):
            customer, event_id, digest = ids(op)
            expected = model.apply(customer, event_id, digest, decide_for(op, customer))
            try:
                result = store.apply(customer, event_id, digest, decide_for(op, customer))
                got: tuple[str, bytes] | type = (
                    "replayed" if result.replayed else "applied", result.decision)
            except AlreadyApplied:
                got = AlreadyApplied
            assert got == expected
        elif isinstance(op, Batch):
            expected_all = [model.apply(*ids(a), decide_for(a, ids(a)[0])) for a in op.items]
            results = store.apply_many([ApplyItem(*ids(a), decide_for(a, ids(a)[0])) for a in op.items])
            got_all = [
                ("replayed" if r.result.replayed else "applied", r.result.decision) if r.result
                else type(r.error) for r in results
            ]
            assert got_all == expected_all
        else:
            event_id, reversal_id = f"{ns}-e{op.event}", f"{ns}-r{op.reversal}"
            expected = model.reverse(event_id, reversal_id, reverse_for(op))
            try:
                result = store.reverse(event_id, reversal_id, reverse_for(op))
            except (EventNotFound, AlreadyApplied) as exc:
                assert type(exc) is expected
            else:
                assert isinstance(expected, tuple)
                assert ("replayed" if result.replayed else "applied") == expected[0]
                if not result.replayed:
                    written = [NewEntry(e.counter, e.at, e.amount) for e in result.entries]
                    model.reversals[reversal_id] = (event_id, result.decision, written)
                    # The entries the store wrote are the ones the model's own event implies.
                    event = model.events[event_id]
                    taken = {e.counter: Decimal(e.amount) for e in event[3]}
                    for rid, (eid, _, es) in model.reversals.items():
                        if eid == event_id and rid != reversal_id:
                            for e in es:
                                taken[e.counter] += Decimal(e.amount)
                    for e in result.entries:
                        assert Decimal(e.amount) == -(taken[e.counter] * op.tenths / 10).quantize(
                            CENT, ROUND_DOWN)
                else:
                    assert result.decision == model.reversals[reversal_id][1]
        check_sums(store, model, customers)
