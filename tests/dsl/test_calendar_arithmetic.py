"""Calendar spans (`3 months`, `1 quarter`, `1 year`), `quarter()`, `tenure_months()` and
whole-number division `div`, end to end: parsed, typed, bounded, formatted, and evaluated
alike by the compiled code and the interpreter."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import dsl
from dsl.errors import PolicyError
from dsl.library import runtime as rt
from dsl.schema.types import Months, add_months
from dsl.tools.formatter import format_source
from tests.dsl.input.reference import prepare_customer, prepare_event

SCHEMA = dsl.Schema.for_directory("policies")


def customer(since: str = "2020-01-31", **fields: Any) -> dict[str, Any]:
    return prepare_customer(SCHEMA, {"id": "c", "member_since": since, **fields})


def purchase(time: str = "2026-03-01T10:00:00Z", amount: str = "10.00") -> dict[str, Any]:
    return prepare_event(SCHEMA, {"id": "e", "kind": "purchase", "time": time, "amount": amount})


def both(source: str, c: dict[str, Any], e: dict[str, Any]) -> Any:
    """The decision of the compiled code, after checking the interpreter gives the same."""
    policy_set = dsl.load_source(source, file="p.policy", schema=SCHEMA)
    compiled = policy_set.evaluate(c, e, explain=True)
    interpreted = policy_set.evaluate_interpreted(c, e, explain=True)
    assert compiled.to_dict() == interpreted.to_dict()
    return compiled


def value_of(expr: str, c: dict[str, Any] | None = None, e: dict[str, Any] | None = None) -> Any:
    """``expr``'s value, through a binding read by a rule, by both evaluators (compared)."""
    source = (f"policy p\n  on purchase\n  let x = {expr}\n"
              "  rule r when x == x: tag \"t\"\n")
    policy_set = dsl.load_source(source, file="p.policy", schema=SCHEMA)
    [p] = policy_set.compiled
    from dsl.backend.interpreter import Interpreter

    env = {"customer": c or customer(), "event": e or purchase()}
    interpreted = rt.in_evaluation_context(
        Interpreter(p.ast, SCHEMA, p.check.rounding, p.check.ranked).eval, p.ast.lets[0].value, env)
    namespace: dict[str, Any] = {}
    compiled_src = p.generated.source
    line = next(ln.strip() for ln in compiled_src.splitlines() if ln.strip().startswith("v_x ="))
    from dsl.library.builtins import EXPORTS

    namespace.update(EXPORTS)
    namespace.update(p.generated.constants)
    namespace.update({"c": env["customer"], "e": env["event"]})
    compiled = rt.in_evaluation_context(eval, line.split("=", 1)[1], namespace)
    assert compiled == interpreted and type(compiled) is type(interpreted)
    return compiled


# -- the end-of-month rule -----------------------------------------------------------------------


@pytest.mark.parametrize(("start", "months", "expected"), [
    pytest.param(date(2026, 1, 15), 1, date(2026, 2, 15), id="the-day-stays"),
    pytest.param(date(2026, 1, 31), 1, date(2026, 2, 28), id="jan-31-to-feb-28"),
    pytest.param(date(2024, 1, 31), 1, date(2024, 2, 29), id="jan-31-to-feb-29-in-a-leap-year"),
    pytest.param(date(2026, 3, 31), -1, date(2026, 2, 28), id="back-to-a-shorter-month"),
    pytest.param(date(2026, 8, 31), 1, date(2026, 9, 30), id="thirty-day-month"),
    pytest.param(date(2024, 2, 29), 12, date(2025, 2, 28), id="leap-day-plus-a-year"),
    pytest.param(date(2024, 2, 29), 48, date(2028, 2, 29), id="leap-day-plus-four-years"),
    pytest.param(date(2026, 11, 30), 3, date(2027, 2, 28), id="across-the-year-end"),
    pytest.param(date(2026, 1, 15), -1, date(2025, 12, 15), id="back-across-the-year-end"),
    pytest.param(date(2026, 5, 31), 0, date(2026, 5, 31), id="zero-months"),
])
def test_add_months_keeps_the_day_or_takes_the_months_last(start: date, months: int,
                                                          expected: date) -> None:
    """A month on keeps the day of the month, or takes the month's last day when it is shorter."""
    assert add_months(start, months) == expected
    assert start + Months(months) == expected
    assert start - Months(-months) == expected


def test_a_datetime_keeps_its_time_and_offset() -> None:
    """A datetime moves by the calendar like a date, its clock time and offset unchanged."""
    t = datetime(2026, 1, 31, 22, 30, tzinfo=UTC)
    assert t + Months(1) == datetime(2026, 2, 28, 22, 30, tzinfo=UTC)
    assert (t + Months(1)).tzinfo is UTC


@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)), st.integers(-2000, 2000))
def test_add_months_lands_in_the_right_month_on_the_nearest_day(d: date, count: int) -> None:
    """For any date and span: the month reached is count months on, the day is the start's or
    the month's last, and outside the calendar is an OverflowError (a date fault)."""
    index = d.year * 12 + d.month - 1 + count
    if not 12 <= index < 12 * 10000:
        with pytest.raises(OverflowError):
            add_months(d, count)
        return
    got = add_months(d, count)
    assert (got.year * 12 + got.month - 1) == index
    assert got.day == d.day or (got.day < d.day and (got + timedelta(days=1)).day == 1)


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)),
       st.integers(-40, 800))
def test_tenure_months_is_the_most_whole_months_on_or_before(since: date, days: int) -> None:
    """tenure_months(since, on) is the most m with since + m months on or before on (0 when
    on is not later): the builtin and the arithmetic agree."""
    on = since + timedelta(days=days)
    m = rt.tenure_months(since, on)
    if on <= since:
        assert m == 0
    else:
        assert add_months(since, m) <= on < add_months(since, m + 1)


# -- in policies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "expected"), [
    pytest.param("2026-01-31 + 1 month", date(2026, 2, 28), id="month"),
    pytest.param("2026-05-15 - 1 quarter", date(2026, 2, 15), id="quarter"),
    pytest.param("2024-02-29 + 1 year", date(2025, 2, 28), id="year"),
    pytest.param("3 months + 2026-01-31", date(2026, 4, 30), id="span-first"),
    pytest.param("2026-01-31T10:00Z + 2 months", datetime(2026, 3, 31, 10, tzinfo=UTC),
                 id="datetime"),
    pytest.param("customer.member_since + 1 month", date(2020, 2, 29), id="input-date"),
    pytest.param("quarter(2026-03-31)", 1, id="quarter-1"),
    pytest.param("quarter(2026-04-01)", 2, id="quarter-2"),
    pytest.param("quarter(2026-12-31T23:00Z)", 4, id="quarter-4-of-a-datetime"),
    pytest.param("tenure_months(2026-01-31, 2026-02-28)", 1, id="tenure-months-end-of-month"),
    pytest.param("tenure_months(2026-01-31, 2026-02-27)", 0, id="tenure-months-a-day-short"),
    pytest.param("tenure_months(2026-03-01, 2026-01-01)", 0, id="tenure-months-earlier"),
    pytest.param("17 div 5", 3, id="div"),
    pytest.param("-7 div 2", -4, id="div-floors-negative"),
    pytest.param("7 div -2", -4, id="div-negative-divisor"),
    pytest.param("(-7 div 2) * 2 + -7 % 2", -7, id="div-and-mod-partners"),
])
def test_values_in_a_policy(expr: str, expected: Any) -> None:
    """Each expression's value, the same from the compiled code and the interpreter."""
    got = value_of(expr)
    assert got == expected and type(got) is type(expected)


WELCOME = """policy welcome
  on purchase
  let welcome_ends = customer.member_since + 3 months
  rule welcome when event.date < welcome_ends: award 100 points
  rule quarterly when month(event.date) == quarter(event.date) * 3: award floor(event.amount) div 10 points
"""


@pytest.mark.parametrize(("since", "time", "amount", "points"), [
    pytest.param("2025-11-30", "2026-02-27T12:00:00Z", "5.00", 100, id="day-before-the-clamped-end"),
    pytest.param("2025-11-30", "2026-02-28T12:00:00Z", "5.00", 0, id="clamped-to-feb-28"),
    pytest.param("2026-01-15", "2026-03-31T12:00:00Z", "129.99", 100 + 12, id="quarter-end-month"),
    pytest.param("2020-01-15", "2026-06-01T12:00:00Z", "99.99", 9, id="june-closes-q2"),
    pytest.param("2020-01-15", "2026-05-31T12:00:00Z", "99.99", 0, id="may-does-not"),
])
def test_welcome_and_quarter_end(since: str, time: str, amount: str, points: int) -> None:
    """A welcome for 3 calendar months and a quarter-end award, compiled and interpreted alike."""
    d = both(WELCOME, customer(since), purchase(time, amount))
    assert d.awards.get("points", 0) == points


def test_div_by_zero_is_an_evaluation_error() -> None:
    """`x div 0` stops the evaluation with the policy, file and line, as `/` does."""
    source = "policy p\n  on visit\n  rule r: award event.party_size div (event.party_size - 1) points\n"
    policy_set = dsl.load_source(source, file="p.policy", schema=SCHEMA)
    event = prepare_event(SCHEMA, {"id": "e", "kind": "visit", "time": "2026-03-01T10:00:00Z",
                                  "party_size": 1})
    for evaluate in (policy_set.evaluate, policy_set.evaluate_interpreted):
        with pytest.raises(dsl.EvaluationError) as info:
            evaluate(customer(), event)
        assert str(info.value) == "p.policy:3: policy p: division by zero"


def test_a_span_past_the_calendar_is_an_evaluation_error() -> None:
    """A date moved past 9999-12-31 stops the evaluation with the calendar's own message."""
    source = ("policy p\n  on purchase\n"
              "  rule r when customer.member_since + 1 year > event.date: award 1 points\n")
    policy_set = dsl.load_source(source, file="p.policy", schema=SCHEMA)
    for evaluate in (policy_set.evaluate, policy_set.evaluate_interpreted):
        with pytest.raises(dsl.EvaluationError) as info:
            evaluate(customer("9999-06-01"), purchase())
        assert str(info.value) == ("p.policy:3: policy p: date outside the calendar: past "
                                   "9999-12-31 or before 0001-01-01")


def diagnostics(body: str) -> list[str]:
    source = f"policy p\n  on purchase\n{body}"
    with pytest.raises(PolicyError) as info:
        dsl.load_source(source, file="p.policy", schema=SCHEMA)
    return [d.render().split("\n")[0] + " | " + (d.hint or "") for d in info.value.diagnostics
            if d.severity == "error"]


@pytest.mark.parametrize(("body", "expected"), [
    pytest.param("  rule r when event.amount div 2 > 1: award 1 points\n",
                 ["p.policy:3:15: type_error: `div` divides whole numbers, but event.amount is "
                  "decimal and 2 is int | for decimals, round the quotient down: "
                  "floor(event.amount / 2)"], id="div-of-a-decimal"),
    pytest.param("  rule r when 3 months > 2 months: award 1 points\n",
                 ["p.policy:3:15: type_error: cannot compare 3 months (months) with 2 months "
                  "(months) | a calendar span (months, quarters, years) has no fixed length: move "
                  "a date by it (customer.member_since + 2 years <= event.date), or count whole "
                  "months or years with tenure_months(...) or tenure_years(...)"],
                 id="spans-have-no-order"),
    pytest.param("  rule r when event.date + 3 months + 1 month > 2026-01-01: award 1 points\n",
                 [], id="a-date-moved-twice-is-fine"),
    pytest.param("  let x = 3 months * 2\n  rule r when event.date + x > 2026-01-01: award 1 points\n",
                 ["p.policy:3:11: type_error: cannot multiply 3 months (months) and 2 (int) | a "
                  "calendar span (3 months, 1 quarter, 1 year) is added to or subtracted from a "
                  "date or a date and time"], id="span-times-a-number"),
    pytest.param("  rule r when event.date + 3 > 2026-01-01: award 1 points\n",
                 ["p.policy:3:15: type_error: cannot add event.date (date) and 3 (int) | add a "
                  "duration such as 30 days, or a calendar span such as 3 months, not a bare "
                  "number"], id="a-bare-number"),
])
def test_type_errors(body: str, expected: list[str]) -> None:
    """What may be done with spans and `div`, and the hint for what may not."""
    if not expected:
        dsl.load_source(f"policy p\n  on purchase\n{body}", file="p.policy", schema=SCHEMA)
        return
    assert diagnostics(body) == expected


@pytest.mark.parametrize(("source", "canonical"), [
    pytest.param("event.date + 1 months", "event.date + 1 month", id="singular"),
    pytest.param("event.date - 2 quarter", "event.date - 2 quarters", id="plural"),
    pytest.param("event.date + 10 years", "event.date + 10 years", id="years"),
    pytest.param("(a div b) * c", "a div b * c", id="div-with-product-precedence"),
    pytest.param("a div (b * c)", "a div (b * c)", id="div-keeps-parens"),
    pytest.param("(a + b) div c", "(a + b) div c", id="sum-keeps-parens"),
])
def test_formatting(source: str, canonical: str) -> None:
    """Spans keep their count and unit (its plural by the count); `div` sits with `*` and `/`."""
    text = (f"policy p\n  on purchase\n  let a = 1\n  let b = 2\n  let c = 3\n  let x = {source}\n"
            "  rule r when x == x: tag \"t\"\n")
    out = format_source(text)
    assert f"  let x = {canonical}\n" in out
    assert format_source(out) == out


def test_a_span_and_div_cost_and_bound() -> None:
    """A span moves a date's range by its months' days (no warning for a literal date), and a
    quotient of whole numbers is bounded by its dividend."""
    source = ("policy p\n  on stay\n  let start = 2026-01-31 + 1 quarter\n"
              "  rule r when event.date > start: award event.nights div 7 points\n")
    policy_set = dsl.load_source(source, file="p.policy", schema=SCHEMA)
    [p] = policy_set.compiled
    assert [d for d in p.check.diagnostics] == []
    assert [b.describe() for b in p.award_bounds] == ["points: at most 52"]
