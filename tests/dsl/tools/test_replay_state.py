"""Replay with state: each customer's events in time order against a simulated store.

A cap or a period is only right in a replay when every decision reads what the customer's
earlier events counted under the same policies: the old set's store holds what the old
policies counted, the new set's what the new ones did.
"""

from __future__ import annotations

import json
from decimal import Decimal

import dsl
from dsl.tools.history import Chunk
from dsl.tools.replay import replay_chunk

SCHEMA = dsl.Schema.for_directory("policies")

CARD = """policy card
  on purchase
  counter spend: sum per {period}
  let qualifying = min(event.amount, {cap} - history.spend)
  rule cash_back when qualifying > 0:
    count qualifying toward spend up to {cap}
    award 5% of qualifying cashback
  round cashback half even
"""


def card(cap: str = "1500.00", period: str = "quarter") -> dsl.PolicySet:
    return dsl.load_source(CARD.format(cap=cap, period=period), schema=SCHEMA)


def purchase(customer: str, event: str, time: str, amount: str) -> bytes:
    return json.dumps({"customer": {"id": customer, "memberSince": "2020-01-01"},
                       "event": {"id": event, "kind": "purchase", "time": time,
                                 "purchase": {"amount": amount}}}).encode() + b"\n"


# Out of time order in the file: the replay sorts each customer's events by time.
HISTORY = Chunk("history.jsonl", 0, 1, "jsonl", lines=[
    purchase("alice", "a3", "2026-05-20T10:00:00Z", "600.00"),
    purchase("alice", "a1", "2026-04-02T10:00:00Z", "600.00"),
    purchase("bob", "b1", "2026-04-03T10:00:00Z", "900.00"),
    purchase("alice", "a2", "2026-04-10T10:00:00Z", "600.00"),
    purchase("alice", "a4", "2026-07-01T10:00:00Z", "600.00"),
])


def test_a_lower_cap_moves_the_totals_of_later_events() -> None:
    """Alice spends 600.00 four times: under a 1,500.00 quarterly cap her second-quarter
    purchases earn 30.00 + 30.00 + 15.00 and July's 30.00 (a new quarter); under 1,000.00,
    30.00 + 20.00 + 0 and 30.00. Bob's 900.00 earns 45.00 under both."""
    result = replay_chunk(card("1500.00"), card("1000.00"), HISTORY)
    report = result.to_dict()
    assert report["events"] == 5
    cashback = report["currencies"]["cashback"]
    assert (Decimal(cashback["before"]), Decimal(cashback["after"])) == (
        Decimal("150.00"), Decimal("125.00"))
    assert report["events_changed"] == 2  # a2 earns 20.00, a3 nothing
    assert report["customers_changed"] == 1


def test_a_longer_period_moves_the_totals() -> None:
    """Per year instead of per quarter: July's purchase finds the cap already reached."""
    result = replay_chunk(card("1500.00", "quarter"), card("1500.00", "year"), HISTORY)
    cashback = result.to_dict()["currencies"]["cashback"]
    assert (Decimal(cashback["before"]), Decimal(cashback["after"])) == (
        Decimal("150.00"), Decimal("120.00"))


def test_without_a_change_nothing_moves() -> None:
    """The same policies on both sides read the same stores: no event changes."""
    result = replay_chunk(card(), card(), HISTORY)
    assert result.to_dict()["events_changed"] == 0


def test_a_history_with_counters_is_read_as_one_chunk_whatever_its_size(tmp_path, monkeypatch):
    """Chunks are cut by rows and by bytes; with counters a customer's events must meet their
    earlier ones in one simulated store, so ``whole`` cuts nothing."""
    import dsl.tools.history as history

    monkeypatch.setattr(history, "CHUNK_BYTES", 64)
    path = tmp_path / "h.jsonl"
    line = '{{"customer": {{"id": "c{i}"}}, "event": {{"id": "e{i}"}}}}\n'
    path.write_text("".join(line.format(i=i) for i in range(50)))
    assert len(list(history.chunks(path, "jsonl", 10))) > 5
    assert [len(c.lines) for c in history.chunks(path, "jsonl", 10, whole=True)] == [50]
