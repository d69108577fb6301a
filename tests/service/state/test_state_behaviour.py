"""The store's behaviour, the same tests on SQLite and PostgreSQL: exactly once, exact sums, bounds."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest

from service.state import (
    AlreadyApplied,
    ApplyItem,
    EventNotFound,
    InvalidStateInput,
    NewEntry,
    Outcome,
    StateStore,
    Window,
    open_store,
)

T0 = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
QUARTER = Window("spend", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 4, 1, tzinfo=dt.UTC))
DAY = Window("drinks", dt.datetime(2026, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 3, 2, tzinfo=dt.UTC))


def earn(spend: int | Decimal = 100, at: dt.datetime = T0, decision: str = '{"stars": 5}'):
    """A decide() that appends ``spend`` to the quarter's spend and one drink, and counts its calls."""
    calls = []

    def decide(reader):
        calls.append(reader.sums([QUARTER, DAY]))
        return Outcome(decision, [NewEntry("spend", at, spend), NewEntry("drinks", at, 1)])

    decide.calls = calls  # type: ignore[attr-defined]
    return decide


def undo(event):
    """A decide_reversal() that takes back everything the event appended."""
    return Outcome(b"reversed", [NewEntry(e.counter, e.at, -e.amount) for e in event.entries])


def test_a_retry_with_the_same_body_returns_the_stored_decision_without_deciding(store: StateStore) -> None:
    """The same event id and digest again: the first decision, marked replayed, decide not called."""
    first = store.apply("c-1", "e-1", "sha256:aa", earn())
    again_decide = earn(decision="different")
    again = store.apply("c-1", "e-1", "sha256:aa", again_decide)
    assert (first.replayed, again.replayed) == (False, True)
    assert again.decision == first.decision == b'{"stars": 5}'
    assert again.entries == first.entries
    assert again_decide.calls == []
    assert store.sums("c-1", [QUARTER, DAY]) == [100, 1]


def test_the_same_id_with_another_body_is_already_applied_naming_both_digests(store: StateStore) -> None:
    """A different body under a used event id is refused, and nothing more is written."""
    store.apply("c-1", "e-1", "sha256:aa", earn())
    with pytest.raises(AlreadyApplied) as caught:
        store.apply("c-1", "e-1", "sha256:bb", earn())
    assert (caught.value.event_id, caught.value.stored_digest, caught.value.new_digest) == (
        "e-1", "sha256:aa", "sha256:bb")
    assert str(caught.value) == ("event 'e-1' was already applied with body digest sha256:aa; "
                                 "this request's digest is sha256:bb")
    assert store.sums("c-1", [QUARTER]) == [100]


def test_decide_reads_the_counters_inside_the_transaction(store: StateStore) -> None:
    """Each decide sees the entries of every event applied before it."""
    decide = earn(250)
    store.apply("c-1", "e-1", "d1", earn(100))
    store.apply("c-1", "e-2", "d2", decide)
    assert decide.calls == [[100, 1]]
    assert store.sums("c-1", [QUARTER, DAY]) == [350, 2]
    assert store.sums("c-2", [QUARTER, DAY]) == [0, 0]


def test_windows_are_half_open_and_sums_are_exact_decimals(store: StateStore) -> None:
    """An entry at the window's end belongs to the next window; 0.1 + 0.2 is exactly 0.3."""
    store.apply("c-1", "e-1", "d", earn(Decimal("0.10"), at=QUARTER.start))
    store.apply("c-1", "e-2", "d", earn(Decimal("0.2"), at=QUARTER.end - dt.timedelta(microseconds=1)))
    store.apply("c-1", "e-3", "d", earn(Decimal("7.77"), at=QUARTER.end))
    assert store.sums("c-1", [QUARTER]) == [Decimal("0.30")]
    nxt = Window("spend", QUARTER.end, QUARTER.end + dt.timedelta(days=91))
    assert store.sums("c-1", [nxt]) == [Decimal("7.77")]
    big = Decimal("999999999999999999.999999999")
    store.apply("c-2", "e-4", "d", earn(big))
    store.apply("c-2", "e-5", "d", earn(big))
    assert store.sums("c-2", [QUARTER]) == [big * 2]


def test_a_window_in_another_zone_is_the_same_instants(store: StateStore) -> None:
    """Windows and entries are instants: a London-midnight bound equals its UTC instant."""
    london = dt.timezone(dt.timedelta(hours=1))
    store.apply("c-1", "e-1", "d", earn(5, at=dt.datetime(2026, 6, 30, 23, 30, tzinfo=dt.UTC)))
    july = Window("spend", dt.datetime(2026, 7, 1, tzinfo=london), dt.datetime(2026, 8, 1, tzinfo=london))
    assert store.sums("c-1", [july]) == [5]


def test_reversing_an_unknown_event_is_event_not_found(store: StateStore) -> None:
    """NOT_FOUND for the service; nothing is written."""
    with pytest.raises(EventNotFound, match="event 'nope' was never applied"):
        store.reverse("nope", "r-1", undo)
    assert store.events("c-1") == []


def test_reversing_twice_returns_the_first_result(store: StateStore) -> None:
    """The same reversal id again: the first reversal's decision and entries, nothing appended."""
    store.apply("c-1", "e-1", "d", earn(100))
    first = store.reverse("e-1", "r-1", undo)
    again = store.reverse("e-1", "r-1", lambda event: pytest.fail("decided twice"))
    assert (first.replayed, again.replayed) == (False, True)
    assert again.decision == first.decision == b"reversed"
    assert again.entries == first.entries
    assert store.sums("c-1", [QUARTER, DAY]) == [0, 0]


def test_a_partial_reversal_sees_what_was_reversed_before(store: StateStore) -> None:
    """The callback gets the event's entries and its earlier reversals (the service decides proportions)."""
    store.apply("c-1", "e-1", "d", earn(100))
    store.reverse("e-1", "r-1", lambda ev: Outcome(b"half", [NewEntry("spend", T0, -50)]))
    seen = []

    def second(event):
        seen.append(event)
        return Outcome(b"rest", [NewEntry("spend", T0, -50), NewEntry("drinks", T0, -1)])

    store.reverse("e-1", "r-2", second)
    (event,) = seen
    assert [r.reversal_id for r in event.reversals] == ["r-1"]
    assert [e.amount for e in event.reversals[0].entries] == [-50]
    assert [(e.counter, e.amount) for e in event.entries] == [("spend", 100), ("drinks", 1)]
    assert store.sums("c-1", [QUARTER, DAY]) == [0, 0]


def test_a_reversal_id_used_for_another_event_is_already_applied(store: StateStore) -> None:
    """Reversal ids are keys too: one id cannot reverse two events."""
    store.apply("c-1", "e-1", "d", earn())
    store.apply("c-1", "e-2", "d", earn())
    store.reverse("e-1", "r-1", undo)
    with pytest.raises(AlreadyApplied, match="reversal 'r-1' was already applied"):
        store.reverse("e-2", "r-1", undo)


def test_a_decide_that_raises_writes_nothing(store: StateStore) -> None:
    """An exception from decide leaves no event row: a later apply of the same id decides afresh."""

    def broken(reader):
        reader.sums([QUARTER])
        raise RuntimeError("policy failed")

    with pytest.raises(RuntimeError, match="policy failed"):
        store.apply("c-1", "e-1", "d", broken)
    assert store.events("c-1") == []
    assert not store.apply("c-1", "e-1", "d", earn()).replayed


def test_apply_many_gives_each_item_its_result_or_error(store: StateStore) -> None:
    """One batch: later items see earlier items' entries; a bad item fails alone."""
    store.apply("c-1", "e-0", "d0", earn(1))
    caps = []

    def capped(reader):
        (spent,) = reader.sums([QUARTER])
        caps.append(spent)
        return Outcome(b"ok", [NewEntry("spend", T0, 10)])

    items = [
        ApplyItem("c-1", "e-1", "d1", capped),
        ApplyItem("c-1", "e-0", "d0", capped),  # a retry of an applied event
        ApplyItem("c-1", "e-0", "other", capped),  # the same id, another body
        ApplyItem("c-2", "e-2", "d2", capped),
        ApplyItem("c-1", "x" * 129, "d", capped),  # out of bounds
        ApplyItem("c-1", "e-3", "d3", lambda r: 1 / 0),
        ApplyItem("c-1", "e-4", "d4", capped),
        ApplyItem("c-1", "e-1", "d1", capped),  # the same id twice in one batch
    ]
    results = store.apply_many(items)
    assert [r.result.replayed if r.result else type(r.error).__name__ for r in results] == [
        False, True, "AlreadyApplied", False, "InvalidStateInput", "ZeroDivisionError", False, True]
    assert caps == [1, 0, 11]
    assert store.sums("c-1", [QUARTER]) == [21]
    assert store.sums("c-2", [QUARTER]) == [10]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("event_id", "e" * 129, "event_id: is 129 characters; at most 128 are allowed"),
        ("event_id", "a\x00b", "event_id: contains a NUL character"),
        ("event_id", "\udc80", "event_id: is not valid Unicode (a lone surrogate)"),
        ("event_id", "x" * 10_000, "event_id: is 10000 characters; at most 128 are allowed"),
        ("event_id", "", "event_id: must not be empty"),
        ("customer_id", "c" * 129, "customer_id: is 129 characters; at most 128 are allowed"),
        ("customer_id", b"c-1", "customer_id: must be text, not bytes"),
    ],
    ids=["long-event", "nul", "surrogate", "10kb", "empty", "long-customer", "bytes"],
)
def test_hostile_ids_are_refused_before_any_sql_naming_the_field(
    store: StateStore, field: str, value: object, message: str
) -> None:
    """Every bound is checked before the database sees the id; nothing is written."""
    args = {"customer_id": "c-1", "event_id": "e-1"} | {field: value}
    with pytest.raises(InvalidStateInput) as caught:
        store.apply(args["customer_id"], args["event_id"], "d", earn())  # type: ignore[arg-type]
    assert str(caught.value) == message
    assert caught.value.field == field
    assert store.sums("c-1", [QUARTER]) == [0]


HOSTILE = ["'; DROP TABLE events; --", 'quote"s', "\\x00", "é ☃ 𝄞", "%s %(x)s ?", "a" * 128, " ", "\n\t"]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_but_valid_ids_are_stored_and_read_back_exactly(store: StateStore, text: str) -> None:
    """Quotes, placeholders, backslashes and astral characters are data, never SQL."""
    store.apply(text, text, text, lambda r: Outcome(text, [NewEntry(text, T0, 3)]))
    (event,) = store.events(text)
    assert (event.event_id, event.customer_id, event.body_digest, event.decision) == (
        text, text, text, text.encode())
    assert store.sums(text, [Window(text, QUARTER.start, QUARTER.end)]) == [3]
    assert store.apply(text, text, text, earn()).replayed
    assert store.reverse(text, text, undo).entries[0].counter == text


def test_amounts_and_instants_are_checked(store: StateStore) -> None:
    """Floats, naive instants and amounts past the bounds are refused with the entry's path."""
    cases = [
        (NewEntry("spend", T0, 1.5),  # type: ignore[arg-type]
         "outcome.entries[0].amount: must be an int or a Decimal, not float"),
        (NewEntry("spend", T0.replace(tzinfo=None), 1),
         "outcome.entries[0].at: must be an aware instant (with a time zone)"),
        (NewEntry("spend", T0, 10**18),
         "outcome.entries[0].amount: must be below 10**18 in magnitude, not 1000000000000000000"),
        (NewEntry("spend", T0, Decimal("0.0000000001")),
         "outcome.entries[0].amount: has more than 9 decimal places"),
        (NewEntry("spend", T0, Decimal("NaN")), "outcome.entries[0].amount: must be finite"),
    ]
    for entry, message in cases:
        with pytest.raises(InvalidStateInput) as caught:
            store.apply("c-1", "e-1", "d", lambda r, entry=entry: Outcome(b"", [entry]))
        assert str(caught.value) == message
    assert store.events("c-1") == []


def test_export_then_import_into_a_new_store_keeps_everything_exactly(
    store: StateStore, tmp_path, backend: str
) -> None:
    """JSON lines with amounts as strings; importing twice adds nothing the second time."""
    store.apply("c-1", "e-1", "d1", earn(Decimal("12.34")))
    store.apply("c-1", "e-2", "d2", lambda r: Outcome(b"\xff\x00binary", [NewEntry("n", T0, 1)]))
    store.reverse("e-1", "r-1", undo)
    out = io.StringIO()
    lines = store.export(out)
    assert lines == 8  # 2 events, 1 reversal, 5 entries
    assert '"amount": "12.34"' in out.getvalue()
    target = open_store(tmp_path / "imported.sqlite3")
    try:
        assert target.import_(out.getvalue().splitlines()) == 8
        assert target.import_(out.getvalue().splitlines()) == 0
        assert target.events("c-1") == store.events("c-1")
        assert target.counter_entries("c-1") == store.counter_entries("c-1")
        assert target.apply("c-1", "e-1", "d1", earn()).replayed
    finally:
        target.close()


def test_compact_deletes_only_entries_before_the_horizon(store: StateStore) -> None:
    """Windows after the horizon keep their sums; events stay, so retries still replay."""
    store.apply("c-1", "e-1", "d", earn(5, at=T0 - dt.timedelta(days=400)))
    store.apply("c-1", "e-2", "d", earn(7, at=T0))
    assert store.compact(T0 - dt.timedelta(days=366)) == 2
    assert store.sums("c-1", [QUARTER]) == [7]
    assert [e.event_id for e in store.counter_entries("c-1")] == ["e-2", "e-2"]
    assert store.apply("c-1", "e-1", "d", earn()).replayed


def test_open_store_reads_urls_and_refuses_unknown_schemes(tmp_path, monkeypatch) -> None:
    """A path, sqlite:///path, $LOYALTY_DATA_DIR by default; anything else is a clear error."""
    from service.state import default_url

    monkeypatch.setenv("LOYALTY_DATA_DIR", str(tmp_path / "d"))
    assert default_url() == str(tmp_path / "d" / "state.sqlite3")
    monkeypatch.delenv("LOYALTY_DATA_DIR")
    assert default_url() == "data/state.sqlite3"
    s = open_store(f"sqlite://{tmp_path}/x.sqlite3")
    s.close()
    assert (tmp_path / "x.sqlite3").exists()
    with pytest.raises(InvalidStateInput, match="unknown store URL 'mysql://x'"):
        open_store("mysql://x")


@pytest.mark.parametrize(("query", "pragma"), [("", 2), ("?synchronous=full", 2),
                                               ("?synchronous=normal", 1), ("?synchronous=NORMAL", 1)])
def test_a_sqlite_url_chooses_how_commits_are_flushed(tmp_path, query: str, pragma: int) -> None:
    """FULL (2) unless the URL says synchronous=normal (1); the file applies and sums either way."""
    s = open_store(f"sqlite://{tmp_path}/x.sqlite3{query}")
    try:
        s.apply("c-1", "e-1", "d", lambda r: Outcome(b"x", [NewEntry("n", T0, 2)]))
        assert s.sums("c-1", [Window("n", T0, T0 + dt.timedelta(days=1))]) == [2]
        assert s._connection().execute("PRAGMA synchronous").fetchone()[0] == pragma  # type: ignore[attr-defined]
    finally:
        s.close()
    assert (tmp_path / "x.sqlite3").exists()


@pytest.mark.parametrize("query", ["?synchronous=off", "?journal_mode=delete", "?synchronous=normal&x=1",
                                   "?synchronous=normal&synchronous=full"])
def test_a_sqlite_url_refuses_any_other_setting(tmp_path, query: str) -> None:
    """Only synchronous=full or normal: anything else is refused, naming the setting, and no file is made."""
    with pytest.raises(InvalidStateInput, match="unknown SQLite setting"):
        open_store(f"sqlite://{tmp_path}/x.sqlite3{query}")
    assert not (tmp_path / "x.sqlite3").exists()


def test_metrics_count_replays_and_conflicts_and_time_every_operation(store: StateStore) -> None:
    """The store's Prometheus series move with what it does (no servicer involved)."""
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"backend": store.backend, **labels}) or 0.0

    before = (sample("loyalty_state_conflicts_total", kind="replayed"),
              sample("loyalty_state_conflicts_total", kind="already_applied"),
              sample("loyalty_state_seconds_count", operation="apply"))
    store.apply("c-1", "e-1", "d", earn())
    store.apply("c-1", "e-1", "d", earn())
    with pytest.raises(AlreadyApplied):
        store.apply("c-1", "e-1", "other", earn())
    after = (sample("loyalty_state_conflicts_total", kind="replayed"),
             sample("loyalty_state_conflicts_total", kind="already_applied"),
             sample("loyalty_state_seconds_count", operation="apply"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 3]


def test_a_sqlite_writer_kept_waiting_past_the_busy_timeout_is_unavailable(tmp_path) -> None:
    """Another process holding the write lock for too long: StateUnavailable, reads still answer."""
    import sqlite3

    from service.state import StateUnavailable
    from service.state.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "state.sqlite3", busy_timeout_s=0.2)
    other = sqlite3.connect(tmp_path / "state.sqlite3", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        locked = r"locked by another writer \(a write waits up to 0\.2 s\)"
        with pytest.raises(StateUnavailable, match=locked):
            store.apply("c-1", "e-1", "d", earn())
        assert store.sums("c-1", [QUARTER]) == [0]
        other.execute("ROLLBACK")
        assert not store.apply("c-1", "e-1", "d", earn()).replayed
    finally:
        other.close()
        store.close()


def test_a_postgresql_server_that_is_not_there_is_unavailable(tmp_path) -> None:
    """No server on the socket: StateUnavailable at open, within the pool's timeout."""
    from service.state import StateUnavailable
    from service.state.postgres import PostgresStore

    url = f"postgresql://loyalty@/postgres?host={tmp_path}&port=5432"
    with pytest.raises(StateUnavailable, match=r"state database: no connection within 0\.5 s"):
        PostgresStore(url, pool_timeout_s=0.5)
