"""Replay with state: each customer's events in time order against a simulated store.

A cap or a period is only right in a replay when every decision reads what the customer's
earlier events counted under the same policies: the old set's store holds what the old
policies counted, the new set's what the new ones did.
"""

from __future__ import annotations

import json
import zlib
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


def _long_history(path) -> None:
    """60 customers, 6 purchases each over three quarters, out of time order in the file and
    interleaved across customers, plus lines that are not requests: more changed events than a
    report keeps as examples, and bad rows to count once."""
    lines = []
    for n in range(6):
        for c in range(60):
            month = 4 + (n * 7 + c) % 6  # April to September, scattered
            lines.append(purchase(f"cust-{c:02d}", f"e-{c}-{n}",
                                  f"2026-{month:02d}-{1 + n * 4:02d}T10:00:00Z",
                                  f"{300 + (c * 37 + n * 101) % 700}.00"))
        lines.append(b'{"customer": {"id": 7}, "event": {}}\n' if n % 2 else b"not json\n")
    path.write_bytes(b"".join(lines))


def test_a_history_partitioned_by_customer_replays_as_the_whole_history(tmp_path) -> None:
    """Partitions by a stable hash of the customer id, each reading the history in small
    chunks and keeping only its customers, merge into exactly the figures of the history
    replayed as one chunk: totals, changed customers, examples and bad rows alike."""
    from dsl.tools import history
    from dsl.tools.replay import Replay, partition_of, replay_partition

    path = tmp_path / "h.jsonl"
    _long_history(path)
    old, new = card("1500.00"), card("1000.00", "year")
    (whole,) = history.chunks(path, "jsonl", whole=True)
    expected = replay_chunk(old, new, whole).to_dict()
    assert expected["events"] == 360 and expected["bad_rows"] == 6
    assert expected["events_changed"] > 10  # more than the examples kept
    for parts in (1, 3, 7):
        total = Replay()
        events = []
        for part in range(parts):
            done = replay_partition(old, new, history.chunks(path, "jsonl", 25), part, parts)
            events.append(done.events)
            total.merge(done)
        assert total.to_dict() == expected, parts
        if parts > 1:
            assert max(events) < 360  # no partition held the whole history
    assert {partition_of(f"cust-{c:02d}", 7) for c in range(60)} == set(range(7))
    assert partition_of("cust-01", 7) == zlib.crc32(b"cust-01") % 7  # stable: CRC-32, not hash()


def test_loyalty_replay_partitions_a_history_with_counters_over_processes(tmp_path) -> None:
    """``replay_partitioned`` on two worker processes and three partitions gives what one
    process replaying the history whole gives."""
    import shutil

    from dsl.tools import history
    from service.cli.replay import replay_partitioned

    path = tmp_path / "h.jsonl"
    _long_history(path)
    dirs = []
    for name, cap, period in (("old", "1500.00", "quarter"), ("new", "1000.00", "year")):
        d = tmp_path / name
        d.mkdir()
        shutil.copy("policies/schema.toml", d / "schema.toml")
        (d / "card.policy").write_text(CARD.format(cap=cap, period=period))
        dirs.append(str(d))
    (whole,) = history.chunks(path, "jsonl", whole=True)
    expected = replay_chunk(card("1500.00"), card("1000.00", "year"), whole).to_dict()
    shares: list[int] = []
    got = replay_partitioned(dirs[0], dirs[1], path, "jsonl", 40, 2, 3, shares.append, size=300)
    assert got.to_dict() == expected
    assert sorted(shares) == [100, 100, 100]
