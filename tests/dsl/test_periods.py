"""Periods and counters: windows in the programme's zone, evaluate(state), Decision.counted,
the checker's diagnostics, the formatter, bounds and the in-memory store.

The contract with the service: ``PolicySet.windows(customer, event)`` names every window the
applicable policies read; ``evaluate(..., state={window: sum})`` reads them (None: all 0);
``Decision.counted`` is what the decision adds to each counter.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

import dsl
from dsl.backend.runner import INTERPRETED
from dsl.errors import EvaluationError, PolicyError
from dsl.front import nodes as n
from dsl.periods import MemoryStore, Window, exact_sum, local_midnight, window
from dsl.tools.formatter import format_source, structure
from dsl.tools.stateinput import parse_amount, parse_history, parse_state

LONDON = ZoneInfo("Europe/London")
SCHEMA = dsl.Schema.for_directory("policies")  # the bundled programme: Europe/London
UTC_SCHEMA = dsl.Schema.load()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def calendar(unit: str) -> n.Period:
    return n.Period("calendar", unit)


# -- windows ---------------------------------------------------------------------------------

WINDOWS = [
    pytest.param("day", "2026-03-29T12:00:00Z", "2026-03-29T00:00:00Z", "2026-03-29T23:00:00Z",
                 id="the-day-the-clocks-go-forward-is-23-hours"),
    pytest.param("day", "2026-10-25T12:00:00Z", "2026-10-24T23:00:00Z", "2026-10-26T00:00:00Z",
                 id="the-day-the-clocks-go-back-is-25-hours"),
    pytest.param("day", "2026-07-14T23:30:00Z", "2026-07-14T23:00:00Z", "2026-07-15T23:00:00Z",
                 id="23:30-utc-in-summer-is-tomorrow-in-london"),
    pytest.param("week", "2026-03-04T10:00:00Z", "2026-03-02T00:00:00Z", "2026-03-09T00:00:00Z",
                 id="a-week-starts-on-monday"),
    pytest.param("month", "2026-04-30T23:30:00Z", "2026-04-30T23:00:00Z", "2026-05-31T23:00:00Z",
                 id="00:30-bst-on-1-may-is-may"),
    pytest.param("quarter", "2026-03-31T23:30:00Z", "2026-03-31T23:00:00Z", "2026-06-30T23:00:00Z",
                 id="a-quarter-starts-at-london-midnight"),
    pytest.param("quarter", "2026-12-31T12:00:00Z", "2026-09-30T23:00:00Z", "2027-01-01T00:00:00Z",
                 id="the-fourth-quarter-starts-in-bst-and-ends-in-gmt"),
    pytest.param("year", "2026-06-01T00:00:00Z", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z",
                 id="a-year-in-london-starts-in-gmt"),
]


@pytest.mark.parametrize(("unit", "event", "start", "end"), WINDOWS)
def test_a_calendar_window_is_the_whole_local_period_holding_the_event(
        unit: str, event: str, start: str, end: str) -> None:
    """A calendar period is the local day, week (from Monday), month, quarter or year that
    holds the event, its ends at local midnight in the programme's zone."""
    w = window("c", calendar(unit), at(event), LONDON)
    assert w == Window("c", at(start), at(end))


@pytest.mark.parametrize("unit", ["day", "week", "month", "quarter", "year"])
def test_a_window_read_again_is_the_one_computed_afresh_across_local_midnights(unit: str) -> None:
    """The last calendar window is kept per (counter, unit, zone) and reused while it holds the
    instant: walking every 30 minutes across London midnights, both clock changes and a year
    end, forwards and then backwards, each window equals one computed with nothing kept."""
    from dsl import periods

    instants = [at("2026-03-28T20:00:00Z") + timedelta(minutes=30 * k) for k in range(120)]
    instants += [at("2026-10-24T20:00:00Z") + timedelta(minutes=30 * k) for k in range(120)]
    instants += [at("2026-12-31T20:00:00Z") + timedelta(minutes=30 * k) for k in range(24)]
    reused = 0
    for walk in (instants, instants[::-1]):
        periods._LAST_CALENDAR.clear()
        for instant in walk:
            before = periods._LAST_CALENDAR.get(("c", unit, LONDON))
            kept = window("c", calendar(unit), instant, LONDON)  # the previous instant's, if it holds
            reused += kept is before
            saved = dict(periods._LAST_CALENDAR)
            periods._LAST_CALENDAR.clear()
            fresh = window("c", calendar(unit), instant, LONDON)
            periods._LAST_CALENDAR.clear()
            periods._LAST_CALENDAR.update(saved)
            assert kept == fresh, instant
            assert fresh.start <= instant < fresh.end  # type: ignore[operator]
    assert reused > len(instants)  # most reads were answered by the kept window


def test_local_days_around_the_clock_changes_are_23_and_25_hours_long() -> None:
    """zoneinfo, not a fixed offset: the spring day is 23 hours and the autumn day 25."""
    spring = local_midnight(date(2026, 3, 30), LONDON) - local_midnight(date(2026, 3, 29), LONDON)
    autumn = local_midnight(date(2026, 10, 26), LONDON) - local_midnight(date(2026, 10, 25), LONDON)
    assert (spring, autumn) == (timedelta(hours=23), timedelta(hours=25))


def test_a_zone_whose_clocks_jump_at_midnight_starts_the_day_at_the_jump() -> None:
    """Where local midnight does not exist (Asia/Beirut jumps from 00:00 to 01:00), the day
    starts at the instant of the jump."""
    beirut = ZoneInfo("Asia/Beirut")
    start = local_midnight(date(2026, 3, 29), beirut)
    assert start == at("2026-03-28T22:00:00Z")
    assert start.astimezone(beirut).hour == 1


def test_a_rolling_window_holds_both_ends_and_ever_holds_everything_up_to_the_event() -> None:
    """``per rolling 7 days`` is [event - 7 days, event], as a half-open window ending one
    microsecond after the event; ``ever`` has no start."""
    event = at("2026-03-08T10:00:00Z")
    rolling = window("c", n.Period("rolling", "day", timedelta(days=7)), event, LONDON)
    tick = timedelta(microseconds=1)
    assert rolling == Window("c", at("2026-03-01T10:00:00Z"), event + tick)
    assert window("c", n.Period("ever"), event, LONDON) == Window("c", None, event + tick)


# -- evaluate(state) -----------------------------------------------------------------------

CARD = """policy card
  on purchase
  counter spend: sum per quarter
  counter orders: count per rolling 7 days
  let qualifying = min(event.amount, 1500.00 - history.spend)
  rule cash_back when qualifying > 0:
    count qualifying toward spend up to 1500.00
    count toward orders
    award 5% of qualifying credit
  round credit half even
"""


def card_event(time: str = "2026-05-02T10:00:00Z", amount: str = "100.00"
               ) -> tuple[dsl.PolicySet, dict, dict]:
    ps = dsl.load_source(CARD, schema=SCHEMA)
    customer, event = ps.decoder.request({
        "customer": {"id": "c1", "memberSince": "2020-01-01"},
        "event": {"id": "e1", "kind": "purchase", "time": time, "purchase": {"amount": amount}}})
    return ps, customer, event


def test_windows_are_every_window_the_applicable_policies_read_in_order() -> None:
    """One window per counter of each applicable policy, policy by policy in declaration
    order, deduplicated; none for an event no policy with counters applies to."""
    ps, customer, event = card_event()
    assert ps.windows(customer, event) == [
        Window("spend", at("2026-03-31T23:00:00Z"), at("2026-06-30T23:00:00Z")),
        Window("orders", at("2026-04-25T10:00:00Z"), at("2026-05-02T10:00:00.000001Z")),
    ]
    _, flight = ps.decoder.request({"customer": {"id": "c1", "memberSince": "2020-01-01"},
                                    "event": {"id": "f", "kind": "flight",
                                              "time": "2026-05-02T10:00:00Z",
                                              "flight": {"origin": "LHR", "destination": "JFK",
                                                         "fare": "1"}}})
    assert ps.windows(customer, flight) == []


@pytest.mark.parametrize("runner", ["compiled", "interpreted"])
@pytest.mark.parametrize(("stored", "cashback", "counted"), [
    pytest.param(None, Decimal("5.00"), Decimal("100.00"), id="no-state-reads-zero"),
    pytest.param(Decimal("1450.00"), Decimal("2.50"), Decimal("50.00"), id="crossing-the-cap"),
    pytest.param(1500, None, None, id="at-the-cap"),
])
def test_evaluate_reads_the_state_and_counts_what_is_below_the_cap(
        runner: str, stored: Decimal | int | None, cashback: Decimal | None,
        counted: Decimal | None) -> None:
    """A purchase that crosses the quarter's cap earns on the part below it and counts that
    part; both runners agree."""
    ps, customer, event = card_event()
    state = None if stored is None else {ps.windows(customer, event)[0]: stored}
    d = ps.evaluate(customer, event, state=state,
                    runner=INTERPRETED if runner == "interpreted" else dsl.policyset.COMPILED)
    assert d.awards == ({} if cashback is None else {"credit": cashback})
    assert d.counted == ({} if counted is None else {"spend": counted, "orders": 1})


def test_a_float_in_the_state_is_refused() -> None:
    """Amounts are exact: a binary float in the state is an evaluation error."""
    ps, customer, event = card_event()
    state = {w: 1.5 for w in ps.windows(customer, event)}
    with pytest.raises(EvaluationError, match="bad state: the state of counter spend is float"):
        ps.evaluate(customer, event, state=state)


def test_counted_appears_in_the_decision_dict_only_when_something_was_counted() -> None:
    """``to_dict`` shows ``counted`` (exact, as strings) when there is any."""
    ps, customer, event = card_event()
    assert ps.evaluate(customer, event).to_dict()["counted"] == {"orders": 1, "spend": "100.00"}
    assert "counted" not in dsl.Decision("r").to_dict()


EFFECTIVE = """policy june_rate
  effective until 2026-06-30
  on purchase
  rule r: award 1 points
policy july_rate
  effective from 2026-07-01
  on purchase
  rule r: award 2 points
"""


@pytest.mark.parametrize(("schema", "points"), [
    pytest.param(SCHEMA, 2, id="london-00:30-bst-is-july"),
    pytest.param(UTC_SCHEMA, 1, id="utc-programme-still-june"),
])
def test_effective_dates_are_in_the_programmes_zone(schema: dsl.Schema, points: int) -> None:
    """23:30 UTC on 30 June is 00:30 BST on 1 July: a London programme applies the July
    policy; a UTC programme (the default) the June one."""
    ps = dsl.load_source(EFFECTIVE, schema=schema)
    customer, event = ps.decoder.request({
        "customer": {"id": "c", "memberSince": "2020-01-01"},
        "event": {"id": "e", "kind": "purchase", "time": "2026-06-30T23:30:00Z",
                  "purchase": {"amount": "1"}}})
    assert ps.evaluate(customer, event).awards == {"points": points}
    assert [p.name for p in ps.applicable(event)] == (["july_rate"] if points == 2 else
                                                      ["june_rate"])


def test_a_schema_refuses_an_unknown_time_zone() -> None:
    """``[programme] timezone`` must be an IANA name; a near miss gets a suggestion."""
    with pytest.raises(dsl.SchemaError, match="'Europe/Londn' is not an IANA time zone name"):
        dsl.Schema.from_texts([("s.toml", '[programme]\ntimezone = "Europe/Londn"\n')])


# -- checker, formatter, bounds --------------------------------------------------------------

HEAD = "policy p\n  on purchase\n"
DIAGNOSTICS = [
    pytest.param("  counter visits: count per day\n  rule r when history.visit < 1: count toward visits\n",
                 "p.policy:4:15: unknown_counter: this policy declares no counter `visit`\n"
                 "    |   rule r when history.visit < 1: count toward visits\n"
                 "    |               ^^^^^^^^^^^^^\n"
                 "    = hint: did you mean `visits`?", id="unknown-counter-read"),
    pytest.param("  counter visits: count per day\n  rule r when history.visits < 1: count toward visit\n",
                 "p.policy:4:48: unknown_counter: this policy declares no counter `visit`\n"
                 "    |   rule r when history.visits < 1: count toward visit\n"
                 "    |                                                ^^^^^\n"
                 "    = hint: did you mean `visits`?", id="unknown-counter-counted"),
    pytest.param("  counter visits: count per day\n  rule r: count 1.5 toward visits\n",
                 "p.policy:4:17: type_error: counter visits counts whole numbers, but 1.5 is decimal\n"
                 "    |   rule r: count 1.5 toward visits\n"
                 "    |                 ^^^\n"
                 "    = hint: declare it `counter visits: sum ...`, or count a whole number",
                 id="decimal-toward-a-count"),
    pytest.param("  counter c: count per fortnight\n  rule r: count toward c\n",
                 "p.policy:3:24: bad_period: `fortnight` is not a calendar period\n"
                 "    |   counter c: count per fortnight\n"
                 "    |                        ^^^^^^^^^\n"
                 "    = hint: write per day, week, month, quarter or year, or per rolling 7 days",
                 id="unknown-calendar-unit"),
    pytest.param("  counter c: count per day\n  counter c: sum per day\n  rule r: count toward c\n",
                 "p.policy:4:11: duplicate_name: counter `c` is already declared on line 3\n"
                 "    |   counter c: sum per day\n"
                 "    |           ^\n"
                 "    = hint: rename one of them", id="duplicate-counter"),
]


@pytest.mark.parametrize(("body", "expected"), DIAGNOSTICS)
def test_the_checker_reports_counter_mistakes(body: str, expected: str) -> None:
    """Names, kinds and periods of counters are checked, with did-you-mean hints."""
    with pytest.raises(PolicyError) as info:
        dsl.load_source(HEAD + body, file="p.policy", schema=SCHEMA)
    assert info.value.render() == expected


def test_formatting_counters_is_idempotent_and_keeps_the_meaning() -> None:
    """The formatter writes counters and counts canonically, twice the same, same AST."""
    source = ("policy p\n  on purchase\n  counter   spend :  sum per  calendar quarter\n"
              "  counter seen: count per rolling 1 days\n  counter all: count ever\n"
              "  rule r when history.spend < 10 and history.all >= 0:\n"
              "    count   event.amount toward spend up to 1500.00\n    count toward seen\n"
              "    count toward all\n")
    once = format_source(source)
    assert once == ("policy p\n  on purchase\n\n  counter spend: sum per calendar quarter\n"
                    "  counter seen: count per rolling 1 day\n  counter all: count ever\n"
                    "  rule r when history.spend < 10 and history.all >= 0:\n"
                    "    count event.amount toward spend up to 1500.00\n"
                    "    count toward seen\n    count toward all\n")
    assert format_source(once) == once
    from dsl.front.parser import parse
    assert structure(parse(once)[0].members) == structure(parse(source)[0].members)


def test_a_counter_limit_makes_a_per_period_bound_finite() -> None:
    """Every rule awarding stars runs only while fewer than 3 were counted this rolling week
    and counts 1: at most 3 events a period, so 3 times the per-event bound."""
    ps = dsl.load_directory("policies")
    bound = ps.policy("coffee_limits").award_bounds[0]
    assert bound.describe() == "stars: at most 5; at most 15 per rolling 7 days (counter bonus_awards)"


def test_a_changed_period_or_cap_is_a_change_for_loyalty_diff() -> None:
    """The counter's period and a count's ``up to`` are part of the policy's meaning."""
    from dsl.front.parser import parse
    base = parse(CARD)[0]
    for changed in (CARD.replace("per quarter", "per month"),
                    CARD.replace("up to 1500.00", "up to 1000.00")):
        assert structure(parse(changed)[0].members) != structure(base.members)
    assert structure(parse(CARD.replace("per quarter", "per calendar quarter"))[0].members) == \
        structure(base.members)


# -- the in-memory store and hand-written state ---------------------------------------------


def test_the_memory_store_sums_exactly_as_the_service_store_does() -> None:
    """Entries in ``[start, end)``; an int when no entry has fractional digits, else a
    Decimal with the largest scale."""
    store = MemoryStore()
    store.append("c", "x", at("2026-01-01T00:00:00Z"), 2)
    store.append("c", "x", at("2026-01-02T00:00:00Z"), Decimal("1.50"))
    store.append("c", "y", at("2026-01-02T00:00:00Z"), 3)
    whole = Window("y", None, at("2027-01-01T00:00:00Z"))
    both = Window("x", at("2026-01-01T00:00:00Z"), at("2026-01-02T00:00:00Z"))
    later = Window("x", at("2026-01-01T00:00:00Z"), at("2026-01-02T00:00:00.000001Z"))
    sums = store.sums("c", [whole, both, later])
    assert sums == {whole: 3, both: 2, later: Decimal("3.50")}
    assert type(sums[whole]) is int and str(sums[later]) == "3.50"
    assert exact_sum(Decimal("0")) == 0
    with pytest.raises(TypeError):
        store.append("c", "x", at("2026-01-01T00:00:00Z"), 1.5)  # type: ignore[arg-type]


def test_hand_written_state_is_exact() -> None:
    """``state`` and ``history`` take integers and decimals written as strings, never floats."""
    assert parse_state({"a": 3, "b": "1400.00"}) == {"a": 3, "b": Decimal("1400.00")}
    with pytest.raises(ValueError, match="not exact"):
        parse_amount(1.5)
    assert parse_history([{"counter": "a", "at": "2026-01-01T00:00:00Z", "amount": "2"}]) == (
        {"counter": "a", "at": at("2026-01-01T00:00:00Z"), "amount": 2},)
    with pytest.raises(ValueError, match="history\\[0\\] is either"):
        parse_history([{"counter": "a"}])
