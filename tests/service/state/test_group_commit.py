"""Group commit (:mod:`service.state.group`) on both real stores: unary Applies that arrive
while a transaction runs share the next one, each keeping its own outcome."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from service.state import StateStore, StateUnavailable
from service.state.api import AlreadyApplied, ApplyItem, ItemResult, NewEntry, Outcome, Reader, Window
from service.state.group import GroupCommit

T0 = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
DAY = Window("drinks", dt.datetime(2026, 3, 2, tzinfo=dt.UTC), dt.datetime(2026, 3, 3, tzinfo=dt.UTC))


class Counting:
    """The store, with the groups its ``apply_many`` was given, and a failure to inject."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.groups: list[list[str]] = []
        self.fail_group = -1

    def apply_many(self, items: Sequence[ApplyItem], operation: str = "apply_many") -> list[ItemResult]:
        self.groups.append([item.event_id for item in items])
        if len(self.groups) - 1 == self.fail_group:
            raise StateUnavailable("the database went away")
        return self.store.apply_many(items, operation)


def once_a_day(gate: threading.Event | None = None) -> Callable[[Reader], Outcome]:
    """A free drink at most once a day (what the decision says: whether it paid one)."""

    def decide(reader: Reader) -> Outcome:
        if gate is not None:
            assert gate.wait(30)
        (drinks,) = reader.sums([DAY])
        paid = drinks < 1
        return Outcome(b"drink" if paid else b"none", [NewEntry("drinks", T0, 1)] if paid else [])

    return decide


def boom(reader: Reader) -> Outcome:
    raise ValueError("the policy failed")


def _queued(commits: GroupCommit, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(commits._queue) < count:
        assert time.monotonic() < deadline, "the callers did not queue"
        time.sleep(0.001)


def _run_together(commits: GroupCommit, calls: list[tuple[str, Callable[[Reader], Outcome]]],
                  first_gate: threading.Event) -> dict[str, Any]:
    """The first call leads a transaction held open by ``first_gate``; the others queue behind
    it, then the gate opens. Each call's result or exception, by event id."""
    out: dict[str, Any] = {}

    def call(event_id: str, decide: Callable[[Reader], Outcome]) -> None:
        try:
            out[event_id] = commits.apply("c-1", event_id, f"digest-{event_id}", decide)
        except Exception as exc:  # what the caller sees
            out[event_id] = exc

    threads = [threading.Thread(target=call, args=calls[0])]
    threads[0].start()
    _queued_or_running(commits)
    for args in calls[1:]:
        threads.append(threading.Thread(target=call, args=args))
        threads[-1].start()
    _queued(commits, len(calls) - 1)
    first_gate.set()
    for thread in threads:
        thread.join(60)
    return out


def _queued_or_running(commits: GroupCommit) -> None:
    deadline = time.monotonic() + 30
    while not commits._running:
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_callers_arriving_during_a_commit_share_the_next_transaction(store: StateStore) -> None:
    counting = Counting(store)
    commits = GroupCommit(counting)  # type: ignore[arg-type]
    gate = threading.Event()
    calls = [("e-0", once_a_day(gate))] + [(f"e-{i}", once_a_day()) for i in range(1, 6)]
    out = _run_together(commits, calls, gate)
    assert counting.groups == [["e-0"], ["e-1", "e-2", "e-3", "e-4", "e-5"]]  # two flushes, not six
    assert [out[f"e-{i}"].decision for i in range(6)] == [b"drink"] + [b"none"] * 5
    assert not any(out[f"e-{i}"].replayed for i in range(6))
    assert store.sums("c-1", [DAY]) == [1]
    assert [e.event_id for e in store.events("c-1")] == [f"e-{i}" for i in range(6)]
    # A caller alone goes at once, and a retry of a stored event replays it.
    again = commits.apply("c-1", "e-3", "digest-e-3", boom)
    assert again.replayed and again.decision == b"none"
    assert counting.groups[-1] == ["e-3"]


def test_a_failing_caller_fails_alone_in_a_shared_transaction(store: StateStore) -> None:
    counting = Counting(store)
    commits = GroupCommit(counting)  # type: ignore[arg-type]
    store.apply("c-1", "e-9", "digest-old", once_a_day())  # pays today's drink
    gate = threading.Event()
    calls = [("e-0", once_a_day(gate)), ("e-1", boom), ("e-2", once_a_day()),
             ("e-9", once_a_day()), ("e-3", once_a_day())]
    out = _run_together(commits, calls, gate)
    assert counting.groups[-1] == ["e-1", "e-2", "e-9", "e-3"]
    assert isinstance(out["e-1"], ValueError)
    assert isinstance(out["e-9"], AlreadyApplied)  # stored with another body
    assert out["e-2"].decision == b"none" and out["e-3"].decision == b"none"
    assert [e.event_id for e in store.events("c-1")] == ["e-9", "e-0", "e-2", "e-3"]
    assert store.sums("c-1", [DAY]) == [1]


def test_a_database_failure_fails_every_caller_of_that_transaction_and_writes_none(
        store: StateStore) -> None:
    counting = Counting(store)
    commits = GroupCommit(counting)  # type: ignore[arg-type]
    counting.fail_group = 1
    gate = threading.Event()
    out = _run_together(commits, [("e-0", once_a_day(gate)), ("e-1", once_a_day()), ("e-2", once_a_day())],
                        gate)
    assert counting.groups == [["e-0"], ["e-1", "e-2"]]
    assert out["e-0"].decision == b"drink"
    assert isinstance(out["e-1"], StateUnavailable) and isinstance(out["e-2"], StateUnavailable)
    assert [e.event_id for e in store.events("c-1")] == ["e-0"]
    again = commits.apply("c-1", "e-1", "digest-e-1", once_a_day())  # the caller's retry
    assert not again.replayed and again.decision == b"none"
