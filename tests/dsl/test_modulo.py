"""`%`: the remainder of floored division, exact for ints and decimals, end to end."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import dsl
from dsl.errors import PolicyError
from dsl.library import runtime as rt
from dsl.tools.formatter import format_source
from tests.dsl.input.reference import prepare_customer, prepare_event

SCHEMA = dsl.Schema.for_directory("policies")

CUSTOMER = {"id": "c", "member_since": "2020-01-01", "lifetime": {"visits": 9}}


def visit(**fields: Any) -> dict[str, Any]:
    """A visit event with ``fields`` set."""
    return {"id": "e", "kind": "visit", "time": "2026-03-01T10:00:00Z", **fields}


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param(17, 5, 2, id="ints"),
        pytest.param(10, 10, 0, id="multiple-is-zero"),
        pytest.param(3, 10, 3, id="smaller-than-divisor"),
        pytest.param(0, 7, 0, id="zero-dividend"),
        pytest.param(-7, 3, 2, id="negative-dividend-takes-divisor-sign"),
        pytest.param(7, -3, -2, id="negative-divisor-gives-negative"),
        pytest.param(-7, -3, -1, id="both-negative"),
        pytest.param(-9, 3, 0, id="negative-multiple-is-zero"),
        pytest.param(Decimal("7.5"), 2, Decimal("1.5"), id="decimal-by-int"),
        pytest.param(7, Decimal("2.5"), Decimal("2.0"), id="int-by-decimal"),
        pytest.param(Decimal("-7.5"), 2, Decimal("0.5"), id="negative-decimal"),
        pytest.param(Decimal("7.5"), Decimal("-2"), Decimal("-0.5"), id="decimal-negative-divisor"),
        pytest.param(Decimal("-7.5"), Decimal("2.5"), Decimal("0.0"), id="decimal-zero-is-unsigned"),
        pytest.param(Decimal("10.00"), Decimal("0.3"), Decimal("0.10"), id="keeps-the-finer-scale"),
        pytest.param(Decimal("0.000000000000000001"), 1, Decimal("0.000000000000000001"),
                     id="tiny-decimal-exact"),
        pytest.param(10**18 - 1, 10, 9, id="largest-input-int"),
        pytest.param(Decimal("999999999999999999.999999999999999999"), Decimal("0.000000000000000017"),
                     Decimal("0.000000000000000003"), id="largest-input-decimal-exact"),
    ],
)
def test_mod_values(a: int | Decimal, b: int | Decimal, expected: int | Decimal) -> None:
    """Each remainder has the divisor's sign, is exact, and is an int only for two ints."""
    result = rt.in_evaluation_context(rt.mod, a, b)
    assert result == expected
    assert type(result) is type(expected)
    assert str(result) == str(expected)


@given(st.integers(-10**18, 10**18), st.integers(-10**18, 10**18).filter(bool),
       st.integers(0, 18), st.integers(0, 18))
def test_mod_is_a_minus_b_times_floor_of_a_over_b(a: int, b: int, pa: int, pb: int) -> None:
    """For any decimals within the input bounds, a % b == a - b * floor(a / b), exactly."""
    x, y = Decimal(a).scaleb(-pa), Decimal(b).scaleb(-pb)

    def check() -> None:
        r = rt.mod(x, y)
        quotient = (x / y).to_integral_value(rounding="ROUND_FLOOR")
        # The quotient above is rounded to 100 digits; recompute it exactly from the remainder.
        assert (x - r) % y == 0
        assert abs(r) < abs(y)
        assert r == 0 or (r < 0) == (y < 0)
        if abs(quotient) < 10**28:
            assert r == x - y * quotient

    rt.in_evaluation_context(check)


@given(st.integers(-10**18, 10**18), st.integers(-10**18, 10**18).filter(bool))
def test_mod_of_ints_is_pythons(a: int, b: int) -> None:
    """On two ints, `%` is Python's own floored remainder."""
    assert rt.mod(a, b) == a % b
    assert type(rt.mod(a, b)) is int


def test_mod_by_zero_is_a_policy_fault() -> None:
    """`x % 0` is the same fault as `x / 0`."""
    for divisor in (0, Decimal("0.00")):
        with pytest.raises(rt.PolicyFault, match=r"^division by zero$"):
            rt.mod(7, divisor)


FREE_DRINK = """policy coffee
  on visit
  rule free_drink when (customer.lifetime.visits + 1) % 10 == 0: award 1 points
  rule change: award floor(event.spend % 1 * 100) points
"""


@pytest.mark.parametrize(("visits", "spend", "points"), [
    pytest.param(9, "3.25", 1 + 25, id="tenth-visit-free-drink"),
    pytest.param(10, "3.25", 25, id="eleventh-visit-none"),
    pytest.param(19, "4.00", 1, id="twentieth-visit-free-drink"),
])
def test_every_tenth_visit(visits: int, spend: str, points: int) -> None:
    """The docs' example: a free drink on every 10th visit, compiled and interpreted alike."""
    policy_set = dsl.load_source(FREE_DRINK, file="coffee.policy", schema=SCHEMA)
    customer = prepare_customer(SCHEMA, {**CUSTOMER, "lifetime": {"visits": visits}})
    event = prepare_event(SCHEMA, visit(spend=spend))
    for evaluate in (policy_set.evaluate, policy_set.evaluate_interpreted):
        assert evaluate(customer, event).awards == {"points": points}


def test_mod_by_zero_at_run_time_is_an_evaluation_error() -> None:
    """A zero divisor stops the evaluation with the policy, file and line, as `/` does."""
    source = "policy p\n  on visit\n  rule r: award event.party_size % (event.party_size - 1) points\n"
    policy_set = dsl.load_source(source, file="p.policy", schema=SCHEMA)
    event = prepare_event(SCHEMA, visit(party_size=1))
    for evaluate in (policy_set.evaluate, policy_set.evaluate_interpreted):
        with pytest.raises(dsl.EvaluationError) as info:
            evaluate(prepare_customer(SCHEMA, CUSTOMER), event)
        assert str(info.value) == "p.policy:3: policy p: division by zero"


@pytest.mark.parametrize(("expr", "kind"), [
    pytest.param("event.party_size % 3", "int", id="int-int-int"),
    pytest.param("event.spend % 3", "decimal", id="decimal-int-decimal"),
    pytest.param("event.party_size % 2.5", "decimal", id="int-decimal-decimal"),
    pytest.param("event.spend % event.spend", "decimal", id="decimal-decimal-decimal"),
])
def test_mod_types(expr: str, kind: str) -> None:
    """int % int is an int; a decimal on either side gives a decimal."""
    source = f"policy p\n  on visit\n  let x = {expr}\n  rule r when x > 0: tag \"t\"\n"
    policy_set = dsl.load_source(source, file="p.policy", schema=SCHEMA)
    [p] = policy_set.compiled
    assert p.check.type_of(p.ast.lets[0].value).kind == kind


def test_mod_by_a_value_near_zero_has_no_cost_bound() -> None:
    """The quotient behind a remainder must fit the precision: a divisor that can be arbitrarily
    close to zero is refused, as for `/`."""
    source = "policy p\n  on visit\n  rule r: award round(event.spend % (event.spend / 3 - 1)) points\n"
    with pytest.raises(PolicyError) as info:
        dsl.load_source(source, file="p.policy", schema=SCHEMA)
    assert [d.code for d in info.value.diagnostics] == ["number_too_large"]


@pytest.mark.parametrize(("source", "canonical"), [
    pytest.param("a % b * c", "a % b * c", id="left-to-right"),
    pytest.param("a % (b * c)", "a % (b * c)", id="right-product-keeps-parens"),
    pytest.param("(a % b) * c", "a % b * c", id="left-parens-dropped"),
    pytest.param("a + b % c", "a + b % c", id="binds-tighter-than-plus"),
    pytest.param("(a + b) % c", "(a + b) % c", id="sum-keeps-parens"),
    pytest.param("-a % b", "-a % b", id="unary-minus-tighter"),
    pytest.param("a%10", "a % 10", id="spaced"),
])
def test_mod_formats_with_product_precedence(source: str, canonical: str) -> None:
    """`%` sits with `*` and `/`: the formatter keeps only the parentheses that matter."""
    text = f"policy p\n  on visit\n  let a = 1\n  let b = 2\n  let c = 3\n  let x = {source}\n" \
           "  rule r when x > 0: tag \"t\"\n"
    out = format_source(text)
    assert f"  let x = {canonical}\n" in out
    assert format_source(out) == out
