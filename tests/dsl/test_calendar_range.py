"""Dates and durations at the ends of their range (issue 17, item 8): the checker's interval
analysis refuses arithmetic that always leaves the calendar and warns of arithmetic that can,
and evaluation that leaves it stops with the language's own words, never a Python class name."""

from __future__ import annotations

from typing import Any

import pytest

import dsl
from dsl.backend.interpreter import fault_message
from dsl.library import runtime as rt
from tests.dsl.input.reference import prepare_customer, prepare_event

SCHEMA = dsl.Schema.for_directory("policies")
CUSTOMER = {"id": "c1", "member_since": "2020-01-01"}


def visit(when: str = "2026-03-01T09:30:00Z") -> dict[str, Any]:
    return {"id": "e1", "kind": "visit", "time": when}


def load(*members: str) -> dsl.PolicySet:
    source = "policy p\n  on visit\n" + "".join(f"  {m}\n" for m in members)
    return dsl.load_source(source, file="p.policy", schema=SCHEMA)


def warnings_of(*members: str) -> list[str]:
    (compiled,) = load(*members).compiled
    return [d.render() for d in compiled.check.diagnostics if d.severity == "warning"]


def failures(policy_set: dsl.PolicySet, customer: dict[str, Any], event: dict[str, Any]) -> set[str]:
    """What compiled and interpreted evaluation say when the policy fails (both must fail)."""
    c, e = prepare_customer(SCHEMA, customer), prepare_event(SCHEMA, event)
    messages = set()
    for evaluate in (policy_set.evaluate, policy_set.evaluate_interpreted):
        with pytest.raises(dsl.EvaluationError) as caught:
            evaluate(c, e)
        messages.add(caught.value.message)
    return messages


def test_a_date_that_can_pass_the_calendar_is_warned_of() -> None:
    """``event.date + 1 day`` passes 9999-12-31 on the calendar's last day: a warning, as pinned
    (every date input reaches the calendar's ends, so refusing would refuse all date arithmetic)."""
    assert warnings_of("let later = event.date + 1 day",
                       "rule r when later > 2026-01-01: award 1 points") == [
        "p.policy:3:15: warning: date_out_of_range: event.date + 1 day could be a date past "
        "9999-12-31, outside the calendar (evaluation then fails: \"date outside the calendar: "
        "past 9999-12-31 or before 0001-01-01\")\n"
        "    |   let later = event.date + 1 day\n"
        "    |               ^^^^^^^^^^^^^^^^^^\n"
        "    = hint: compare with days_between() instead of adding a duration to the date"
    ]


def test_a_duration_that_can_pass_its_range_is_warned_of() -> None:
    """``customer.lifetime.visits * 1 day`` with 10^18 - 1 visits is past timedelta's range."""
    assert warnings_of("let span = customer.lifetime.visits * 1 day",
                       "rule r when span > 1 day: award 1 points") == [
        "p.policy:3:14: warning: duration_too_long: customer.lifetime.visits * 1 day could be a "
        "duration of 999,999,999,999,999,999 days; the longest is 999,999,999 days (evaluation "
        "then fails: \"duration beyond ±999,999,999 days\")\n"
        "    |   let span = customer.lifetime.visits * 1 day\n"
        "    |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        "    = hint: multiply by a smaller number, or compare counts instead of durations"
    ]


@pytest.mark.parametrize(("expr", "code"), [
    ("9999-12-31 + 1 day", "date_out_of_range"),
    ("0001-01-01 - 1 day", "date_out_of_range"),
    ("999999999 days + 999999999 days", "duration_too_long"),
])
def test_arithmetic_always_out_of_range_is_refused(expr: str, code: str) -> None:
    """Arithmetic whose every value leaves the range is an error, not a warning."""
    with pytest.raises(dsl.PolicyError) as caught:
        load(f"let v = {expr}", "rule r when v != v: award 1 points")
    assert [d.code for d in caught.value.diagnostics if d.severity == "error"] == [code]


@pytest.mark.parametrize("members", [
    ["let since = event.date - customer.member_since", "rule r when since > 1 day: award 1 points"],
    ["let soon = 2026-01-01 + 6000 weeks", "rule r when soon > 2026-01-01: award 1 points"],
    ["let t = local(event.time, \"Asia/Tokyo\")", "rule r when hour(t) > 3: award 1 points"],
])
def test_arithmetic_within_range_is_not_warned_of(members: list[str]) -> None:
    """A difference of two dates, literal arithmetic within the calendar and local() earn no
    warning (local() near the calendar's ends fails at run time with its own message)."""
    assert warnings_of(*members) == []


def test_the_coffee_policy_at_the_end_of_the_calendar_in_tokyo() -> None:
    """An order at 9999-12-31T23:59:59Z in Tokyo is already 10000-01-01 on the store's clock:
    a clear evaluation error, not "arithmetic error: OverflowError"."""
    policy_set = dsl.load_directory("policies/coffee", schema=SCHEMA)
    order = {"id": "e1", "kind": "order", "time": "9999-12-31T23:59:59Z",
             "drinks": 1, "store_zone": "Asia/Tokyo"}
    assert failures(policy_set, CUSTOMER, order) == {"local time past 9999-12-31 in Asia/Tokyo"}


def test_a_date_past_the_calendar_at_run_time() -> None:
    """The warned-of ``event.date + 1 day`` on the calendar's last day stops the evaluation
    with the language's words."""
    policy_set = load("let later = event.date + 1 day", "rule r when later > 2026-01-01: award 1 points")
    assert failures(policy_set, CUSTOMER, visit("9999-12-31T12:00:00Z")) == {rt.OUTSIDE_THE_CALENDAR}


@pytest.mark.parametrize("visits", [10**9, 10**18 - 1])
def test_a_duration_past_its_range_at_run_time(visits: int) -> None:
    """``visits * 1 day`` past 999,999,999 days (and past a machine integer) says so."""
    policy_set = load("let span = customer.lifetime.visits * 1 day",
                      "rule r when span > 1 day: award 1 points")
    customer = {**CUSTOMER, "lifetime": {"visits": visits}}
    assert failures(policy_set, customer, visit()) == {rt.DURATION_TOO_LONG}


@pytest.mark.parametrize("exc", [OverflowError("date value out of range"),
                                 OverflowError("days=1000000000; must have magnitude <= 999999999"),
                                 OverflowError("Python int too large to convert to C int"),
                                 OverflowError("something else"), ArithmeticError("x"),
                                 KeyError("x"), TypeError("x"), RecursionError()])
def test_no_fault_message_names_a_python_class(exc: BaseException) -> None:
    """Whatever fails inside an evaluation, its message is in the language's words."""
    message = fault_message(exc)
    assert type(exc).__name__ not in message
    assert "Error" not in message
