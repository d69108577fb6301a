"""The runtime's built-ins and rounding rules, which compiled code and the interpreter share."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsl.library import runtime as rt


@pytest.mark.parametrize(
    ("since", "on", "years"),
    [
        pytest.param(date(2016, 3, 1), date(2026, 3, 1), 10, id="on-the-anniversary"),
        pytest.param(date(2016, 3, 2), date(2026, 3, 1), 9, id="day-before-anniversary"),
        pytest.param(date(2016, 2, 29), date(2026, 2, 28), 10, id="leap-joiner-feb-28-non-leap-year"),
        pytest.param(date(2016, 2, 29), date(2026, 2, 27), 9, id="leap-joiner-before-feb-28"),
        pytest.param(date(2016, 2, 29), date(2028, 2, 28), 11, id="leap-joiner-leap-year-waits-for-29"),
        pytest.param(date(2016, 2, 29), date(2028, 2, 29), 12, id="leap-joiner-leap-year-on-29"),
        pytest.param(date(2026, 5, 1), date(2026, 4, 1), 0, id="future-member-is-zero"),
        pytest.param(date(2026, 5, 1), date(2026, 5, 1), 0, id="joined-today-is-zero"),
    ],
)
def test_tenure_years(since: date, on: date, years: int) -> None:
    """Tenure counts anniversaries; a 29 February joiner's falls on 28 February in other years."""
    assert rt.tenure_years(since, on) == years


def test_tenure_years_of_instants_uses_their_utc_dates() -> None:
    """Instants count by their UTC calendar date."""
    since = datetime(2016, 3, 1, 23, 0, tzinfo=UTC)
    assert rt.tenure_years(since, datetime(2026, 3, 1, 0, 30, tzinfo=UTC)) == 10


@pytest.mark.parametrize(
    ("value", "decimals", "mode", "expected"),
    [
        pytest.param(Decimal("2.5"), 0, "down", 2, id="down"),
        pytest.param(Decimal("2.1"), 0, "up", 3, id="up"),
        pytest.param(Decimal("2.5"), 0, "half even", 2, id="half-even-to-even-down"),
        pytest.param(Decimal("3.5"), 0, "half even", 4, id="half-even-to-even-up"),
        pytest.param(Decimal("2.5"), 0, "half up", 3, id="half-up"),
        pytest.param(Decimal("-2.5"), 0, "down", -2, id="down-is-toward-zero"),
        pytest.param(Decimal("1.005"), 2, "half even", Decimal("1.00"), id="two-decimals-half-even"),
        pytest.param(Decimal("1.005"), 2, "half up", Decimal("1.01"), id="two-decimals-half-up"),
        pytest.param(7, 0, "up", 7, id="whole-numbers-unchanged"),
    ],
)
def test_round_award(value: Decimal | int, decimals: int, mode: str, expected: Decimal | int) -> None:
    """Each rounding mode rounds as its name says, to the currency's decimals."""
    result = rt.round_award(value, decimals, mode)
    assert result == expected
    assert type(result) is type(expected)


@given(st.integers(-10**12, 10**12), st.integers(1, 10**6))
def test_round_ratio_half_even_matches_decimal(numerator: int, denominator: int) -> None:
    """The integer half-even rounding used by compiled code agrees with Decimal's."""
    exact = Decimal(numerator) / Decimal(denominator)  # 28 digits (the default) hold these
    expected = int(exact.quantize(Decimal(1), ROUND_HALF_EVEN))
    assert rt.round_ratio_half_even(numerator, denominator) == expected


def test_division_by_zero_is_a_policy_fault() -> None:
    """Dividing by zero raises the runtime's own fault, which callers turn into a positioned error."""
    with pytest.raises(rt.PolicyFault, match="division by zero"):
        rt.div(1, 0)


def test_unknown_airport_is_a_policy_fault() -> None:
    """distance_miles() with an unknown code is a fault naming the code."""
    with pytest.raises(rt.PolicyFault, match='unknown airport code "ZZZ"'):
        rt.distance_miles("JFK", "ZZZ")


@pytest.mark.parametrize(
    ("a", "b", "lo", "hi"),
    [
        pytest.param("JFK", "LHR", 3400, 3500, id="new-york-london"),
        pytest.param("SFO", "SYD", 7350, 7500, id="san-francisco-sydney"),
        pytest.param("BOS", "JFK", 180, 195, id="short-hop"),
    ],
)
def test_distance_miles_is_great_circle(a: str, b: str, lo: int, hi: int) -> None:
    """Great-circle distances from real airport coordinates land in the published ranges."""
    miles = rt.distance_miles(a, b)
    assert lo <= miles <= hi
    assert miles == rt.distance_miles(b, a)


def test_weekday_is_iso() -> None:
    """weekday() is ISO: Monday is 1 and Sunday is 7."""
    assert rt.weekday(date(2026, 11, 23)) == 1
    assert rt.weekday(date(2026, 11, 29)) == 7
