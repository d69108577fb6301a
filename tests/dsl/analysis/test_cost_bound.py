"""Adversarial policies against the checker's cost bound: each is refused, or stays within it.

The checker promises, for every accepted policy, a :class:`~dsl.analysis.cost.CostBound`: the most
digits of any number it computes, the longest text, the aggregate steps and the characters
of text one evaluation takes. These tests write policies meant to break that promise
(literal chains, division chains, tiny-scale literals, nested aggregates, text built in
comprehensions, all at the input limits: 18-digit amounts, 10,000-item lists) and hold
each one to it. The measure is deterministic, never wall time: :class:`Measuring` is the
reference interpreter recording the largest number, text and list it computes and the
steps it takes, and compiled evaluation must give the same decision.

They also pin the evaluation context: a value that got past the input bounds fails at once
as a policy fault, in both evaluators, and the caller's own decimal context is left alone.
"""

from __future__ import annotations

import dataclasses
import decimal
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import (
    KINDS,
    SCHEMA,
    SIZE_CODES,
    UNAVOIDABLE,
    decisions,
    policy_sources,
    raw_customers,
    raw_events,
)

import dsl
from dsl.analysis.cost import MAX_BUILT_TEXT, MAX_STEPS, MAX_TEXT, CostBound
from dsl.backend.interpreter import Interpreter, interpret
from dsl.front import nodes as n
from dsl.library import runtime as rt
from dsl.library.builtins import BUILTINS
from dsl.library.runtime import MAX_NUMBER_DIGITS
from tests.dsl.input.reference import prepare_customer, prepare_event

#: The largest whole number and the longest decimal an input may hold (dsl.schema.schema's bounds).
LARGEST = 10**18 - 1
LONGEST_DECIMAL = "999999999999999999.999999999999999999"

CUSTOMER = {"id": "c1", "member_since": "2010-01-01", "score": -LARGEST,
            "balance": "-" + LONGEST_DECIMAL, "nickname": "n" * 10_000}
VISIT = {"id": "e1", "kind": "visit", "time": "2026-03-01T09:30:00Z", "party_size": LARGEST,
         "spend": LONGEST_DECIMAL, "venue": "v" * 10_000}


def purchase(items: int, sku: int = 12) -> dict[str, Any]:
    """A purchase at the limits: the largest amounts, ``items`` items (10,000 at most)."""
    return {"id": "e1", "kind": "purchase", "time": "2026-03-01T09:30:00Z", "amount": LONGEST_DECIMAL,
            "items": [{"sku": f"{i:0{sku}d}", "category": "c" * 10, "amount": LONGEST_DECIMAL,
                       "quantity": LARGEST} for i in range(items)]}


#: The largest purchase an input may hold (its skus kept short: 10,000 texts of 10,000
#: characters would be 100 MB of test input, and the texts' own bound is tested on VISIT).
BIG_PURCHASE = purchase(10_000)


def policy(*members: str, kind: str = "visit") -> str:
    return "policy p\n  on " + kind + "\n" + "".join(f"  {m}\n" for m in members)


# -- measuring evaluation ------------------------------------------------------------------------


@dataclass
class Measured:
    """The largest things one evaluation computed, and the work it did."""

    digits: int = 0
    significant: int = 0
    text: int = 0
    list_items: int = 0
    steps: int = 0
    built_text: int = 0


#: The builtins whose cost is one step per item of their list argument.
_LIST_CALLS = tuple(b.name for b in BUILTINS.values() if b.cost == "per_item")


class Measuring(Interpreter):
    """The reference interpreter, recording every value it computes (see :class:`Measured`).

    It counts steps as the checker defines them: one per operation evaluated in an
    aggregate's body or condition, one per item an ``in`` or a list-taking call reads, and
    one per item of a list literal.
    """

    def __init__(self, compiled: Any) -> None:
        super().__init__(compiled.ast, compiled.schema, compiled.check.rounding)
        self.measured = Measured()
        self.item_roots = {id(x) for a in n.walk(compiled.ast) if isinstance(a, n.Aggregate)
                           for x in (a.body, a.where) if x is not None}
        self.inside = 0

    def observe(self, v: Any) -> None:
        m = self.measured
        if isinstance(v, bool):
            return
        if isinstance(v, int):
            digits = len(str(abs(v)))
            m.digits = max(m.digits, digits)
            m.significant = max(m.significant, digits)
        elif isinstance(v, Decimal):
            m.digits = max(m.digits, v.adjusted() + 1 if v else 1)
            m.significant = max(m.significant, len(v.as_tuple().digits))
        elif isinstance(v, str):
            m.text = max(m.text, len(v))
        elif isinstance(v, list):
            m.list_items = max(m.list_items, len(v))

    def eval(self, e: n.Expr, env: dict[str, Any]) -> Any:
        root = id(e) in self.item_roots
        self.inside += root
        try:
            return self.measured_eval(e, env)
        finally:
            self.inside -= root

    def measured_eval(self, e: n.Expr, env: dict[str, Any]) -> Any:
        if self.inside:
            self.measured.steps += 1
        if isinstance(e, n.Call) and e.func in _LIST_CALLS and len(e.args) == 1:
            arg = self.eval(e.args[0], env)
            if isinstance(arg, list):
                self.measured.steps += len(arg)
            value = BUILTINS[e.func].impl(arg)
        else:
            value = super().eval(e, env)
        if isinstance(e, n.ListExpr):
            self.measured.steps += len(value)
        self.observe(value)
        return value

    def visit_Binary(self, e: n.Binary, env: dict[str, Any]) -> Any:
        if e.op in ("in", "not in"):
            needle, haystack = self.eval(e.left, env), self.eval(e.right, env)
            self.measured.steps += len(haystack)
            found = rt.contains(haystack, needle)
            return found if e.op == "in" else not found
        value = super().visit_Binary(e, env)
        if e.op == "+" and isinstance(value, str):
            self.measured.built_text += len(value)
        return value


def measure(policy_set: dsl.PolicySet, customer: dict[str, Any], event: dict[str, Any]
            ) -> tuple[Measured, dsl.Decision]:
    """Evaluate the set's one policy by :class:`Measuring`: what it measured, and its decision."""
    (compiled,) = policy_set.compiled
    measuring = Measuring(compiled)
    instrumented = dataclasses.replace(compiled, interpreted=interpret(measuring))
    single = dsl.PolicySet(policy_set.schema, [instrumented], policy_set.revision)
    decision = single.evaluate_interpreted(prepare_customer(SCHEMA, customer), prepare_event(SCHEMA, event))
    for amount in decision.awards.values():
        measuring.observe(amount)
    return measuring.measured, decision


def assert_within(bound: CostBound, m: Measured) -> None:
    """What one evaluation computed is within what the checker promised, and the promise
    within the language's limits."""
    assert m.digits <= bound.digits <= MAX_NUMBER_DIGITS
    assert m.significant <= MAX_NUMBER_DIGITS  # the context's precision: exact or rounded
    assert bound.significant <= MAX_NUMBER_DIGITS
    assert m.text <= bound.text <= MAX_TEXT
    assert m.steps <= bound.steps <= MAX_STEPS
    assert m.built_text <= bound.built_text <= MAX_BUILT_TEXT


def refused_or_within(text: str, customer: dict[str, Any], event: dict[str, Any]) -> Measured | None:
    """None when the checker refuses ``text`` for its size or cost; else what evaluating it
    measured (within the promise), after checking the compiled evaluator agrees."""
    try:
        policy_set = dsl.load_source(text, schema=SCHEMA)
    except dsl.PolicyError as exc:
        codes = {d.code for d in exc.diagnostics if d.severity == "error"}
        assert codes and codes <= SIZE_CODES, exc.render()
        return None
    bound = policy_set.compiled[0].check.bound
    assert bound is not None
    measured, interpreted = measure(policy_set, customer, event)
    assert_within(bound, measured)
    c, e = prepare_customer(SCHEMA, customer), prepare_event(SCHEMA, event)
    for explain in (False, True):
        compiled = policy_set.evaluate(c, e, explain=explain)
        assert (compiled.awards, compiled.benefits) == (interpreted.awards, interpreted.benefits)
    return measured


# -- chains of literals and divisions ----------------------------------------------------------


def chain(start: str, step: str, k: int) -> str:
    return start + f" {step}" * k


#: (name, expression of ``k`` steps, the most steps the checker accepts, the largest ``k`` tried).
CHAINS = [
    # 18 digits, then 7 more per factor: 95 digits at 11 factors, 102 at 12.
    ("int-times-a-million", lambda k: chain("event.party_size", "* 1000000", k), 11, 14),
    # Each 1000000.5 adds 7 digits and 1 place to the 18 + 18 of the input: 99 + 9 at 9.
    ("decimal-times-a-decimal", lambda k: chain("event.spend", "* 1000000.5", k), 8, 10),
    # Dividing by 0.001 multiplies by up to 1000: 18 + 3k digits, 99 at 27.
    ("divided-by-a-thousandth", lambda k: chain("event.spend", "/ 0.001", k), 27, 30),
    # 0.000000000000000001 has 18 places: exact products need 18 + k + 18 + 18k digits.
    ("times-a-tiny-scale", lambda k: chain("event.spend", "* 0.000000000000000001", k), 3, 5),
    # A percent of a percent: 0.5 (1 place) each, exact, 18 + 18 + k digits: never too many.
    ("percent-of-percent", lambda k: chain("event.spend", "* 50%", k), 30, 30),
    # Whole numbers squared: 18, 36, 54, 72, 90 digits, then 108.
    ("int-powers", lambda k: " * ".join(["event.party_size"] * (k + 1)), 4, 6),
    # A sum of k inputs grows by a digit per term (bound 18 + k): 100 terms would be too many.
    ("long-sum", lambda k: chain("event.spend", "+ event.spend", k), 30, 30),
]


@pytest.mark.parametrize(("name", "make", "accepted", "tried"), CHAINS, ids=[c[0] for c in CHAINS])
def test_chains_are_refused_exactly_past_the_bound(name: str, make: Any, accepted: int, tried: int) -> None:
    """A chain of k arithmetic steps at the input limits is accepted while its bound allows,
    and evaluates within it; one step more is refused with number_too_large."""
    for k in range(1, tried + 1):
        text = policy(f"let v = {make(k)}", "rule r: award round(v) miles",
                      'rule s: grant "voucher" with value = v, note = "x"')
        measured = refused_or_within(text, CUSTOMER, VISIT)
        assert (measured is not None) == (k <= accepted), f"{name} with {k} steps"


def test_decimal_chains_at_the_bound_are_exact() -> None:
    """The longest accepted exact product is computed exactly (the context holds every digit),
    by compiled and interpreted evaluation alike."""
    text = policy("let v = " + chain("event.spend", "* 0.000000000000000001", 3),
                  'rule s: grant "voucher" with value = v, note = "x"')
    policy_set = dsl.load_source(text, schema=SCHEMA)
    exact = Decimal(LONGEST_DECIMAL).scaleb(-54, decimal.Context(prec=200))
    for d in decisions(policy_set, CUSTOMER, VISIT):
        (benefit,) = d.benefits
        assert benefit.params["value"] == exact
        assert benefit.params["value"].as_tuple() == exact.as_tuple()


def test_a_division_chain_past_the_bound_is_pinned() -> None:
    """Dividing by a small value grows the quotient: the diagnostic says by how much, and what to do."""
    expression = chain("event.spend", "/ 0.001", 28)
    with pytest.raises(dsl.PolicyError) as caught:
        dsl.load_source(policy(f"let v = {expression}", "rule r: award round(v) miles"), schema=SCHEMA)
    assert [d.render() for d in caught.value.diagnostics if d.severity == "error"] == [
        f"<policy>:3:11: number_too_large: {expression} could grow past 100 digits: evaluating it "
        "would have no bounded cost\n"
        f"    |   let v = {expression}\n"
        "    |" + " " * 11 + "^" * len(expression) + "\n"
        "    = hint: dividing by 0.001 multiplies by up to 10^3; divide by a value with fewer "
        "decimal places, for example round(x, 2)"
    ]


def test_a_tiny_scale_literal_counts_its_places() -> None:
    """0.000000000000000001 is 18 places, not one digit: four of them times an input need more
    significant digits than the context holds, refused as pinned."""
    expression = chain("event.spend", "* 0.000000000000000001", 4)
    with pytest.raises(dsl.PolicyError) as caught:
        dsl.load_source(policy(f"let v = {expression}", "rule r: award round(v) miles"), schema=SCHEMA)
    assert [d.render() for d in caught.value.diagnostics if d.severity == "error"] == [
        f"<policy>:3:11: number_too_large: {expression} could need more than 100 significant "
        "digits (22 before the point, 90 after), so it could not be computed exactly\n"
        f"    |   let v = {expression}\n"
        "    |" + " " * 11 + "^" * len(expression) + "\n"
        "    = hint: round a part to fewer decimal places first, for example round(x, 2)"
    ]


def test_dividing_by_a_value_that_can_be_tiny_is_refused() -> None:
    """A sum with a quotient in it can be arbitrarily close to zero; dividing by it is refused,
    and the hint says how far it could grow."""
    with pytest.raises(dsl.PolicyError) as caught:
        dsl.load_source(policy("let v = event.spend / (event.spend / 3 - 1)",
                               "rule r: award round(v) miles"), schema=SCHEMA)
    (error,) = [d for d in caught.value.diagnostics if d.severity == "error"]
    assert error.message == ("event.spend / (event.spend / 3 - 1) could grow past 100 digits: "
                             "evaluating it would have no bounded cost")
    assert error.hint == ("dividing by event.spend / 3 - 1 multiplies by up to 10^119; divide by a "
                          "value with fewer decimal places, for example round(x, 2)")


def test_dividing_by_a_rounded_value_is_bounded() -> None:
    """Rounding a divisor to two places bounds what dividing by it can give: accepted, and within
    the bound at the input limits."""
    measured = refused_or_within(policy("let v = event.spend / round(event.spend / 3 - 1, 2)",
                                        "rule r: award round(v) miles"),
                                 CUSTOMER, {**VISIT, "spend": "3.3"})
    assert measured is not None


# -- aggregates at 10,000 items ---------------------------------------------------------------------


#: (name, policy members over a purchase, accepted).
AGGREGATES = [
    ("sum-of-products", ["let v = sum(i.amount * i.amount * i.quantity for i in event.items)",
                         "rule r: award round(v) miles"], True),
    ("sum-of-cubes-of-decimals", ["let v = sum(i.amount * i.amount * i.amount for i in event.items)",
                                  "rule r: award round(v) miles"], False),
    ("sum-of-sums-of-products", [
        "let v = sum(sum(i.amount * j.amount for j in event.items) for i in event.items)",
        "rule r: award round(v) miles"], False),
    ("sum-of-sums-over-a-literal-list", [
        "let v = sum(sum(i.amount * k for k in [1, 2, 3, 4, 5]) for i in event.items)",
        "rule r: award round(v) miles"], True),
    ("three-levels-over-literal-lists", [
        "let v = sum(sum(sum(i.quantity * j * k for k in [7, 8, 9]) for j in [1, 2, 3]) "
        "for i in event.items)",
        "rule r: award v miles"], True),
    ("count-inside-a-condition", [
        "let v = count(i for i in event.items where count(j for j in event.items "
        "where j.amount > i.amount) > 0)",
        "rule r: award v miles"], False),
    ("in-a-list-of-amounts-inside-an-aggregate", [
        "let amounts = sum(i.amount for i in event.items)",
        "let v = count(i for i in event.items where i.amount in [amounts, 1, 2])",
        "rule r: award v miles"], True),
    ("fifty-passes", [f"let v{k} = sum(i.amount for i in event.items)" for k in range(50)]
     + ["rule r: award round(" + " + ".join(f"v{k}" for k in range(0, 50, 5)) + ") miles"], True),
    ("fifty-one-passes", [f"let v{k} = sum(i.amount for i in event.items)" for k in range(51)]
     + ["rule r: award round(v0 + v50) miles"], False),
    # round() weighs 16 steps and a division 10: 30 steps an item, three passes.
    ("rounded-quotients-three-passes",
     [f"let v{k} = sum(round(i.amount / 7, 12) for i in event.items)" for k in range(3)]
     + ["rule r: award round(v0 + v2) miles", "round miles down"], True),
    ("rounded-quotients-four-passes",
     [f"let v{k} = sum(round(i.amount / 7, 12) for i in event.items)" for k in range(4)]
     + ["rule r: award round(v0 + v3) miles"], False),
    ("quotient-of-aggregates", [
        "let v = event.amount / sum(i.amount for i in event.items)",
        "let w = max(i.amount for i in event.items) * count(i for i in event.items)",
        "rule r: award round(v + w) miles"], True),
]


@pytest.mark.parametrize(("name", "members", "accepted"), AGGREGATES, ids=[a[0] for a in AGGREGATES])
def test_aggregates_at_the_input_limits(name: str, members: list[str], accepted: bool) -> None:
    """Aggregates over the longest list of the largest amounts are refused when their digits or
    steps have no bound (nested aggregates multiply), and otherwise stay within the promise."""
    measured = refused_or_within(policy(*members, kind="purchase"), CUSTOMER, BIG_PURCHASE)
    assert (measured is not None) == accepted
    if measured is not None:
        assert measured.steps >= 10_000  # the whole list was visited


def test_too_many_passes_are_pinned() -> None:
    """A policy whose aggregates together pass the step limit is refused at its name, as pinned."""
    members = [f"let v{k} = sum(i.amount for i in event.items)" for k in range(51)]
    with pytest.raises(dsl.PolicyError) as caught:
        dsl.load_source(policy(*members, "rule r: award round(v0 + v50) miles", kind="purchase"),
                        schema=SCHEMA)
    errors = [d.render() for d in caught.value.diagnostics if d.severity == "error"]
    assert errors == [
        "<policy>:1:8: too_costly: policy p could take 1020000 steps in aggregates in one evaluation; "
        "the limit is 1000000\n"
        "    | policy p\n"
        "    |        ^\n"
        "    = hint: aggregate each list once, in a `let`, and reuse the result; or split the policy"
    ]


# -- text -------------------------------------------------------------------------------------------


TEXTS = [
    ("ten-venues", "let v = " + " + ".join(["(event.venue otherwise \"\")"] * 10), True),
    ("eleven-venues", "let v = " + " + ".join(["(event.venue otherwise \"\")"] * 11), False),
    ("texts-built-over-the-items",
     'let v = count(i for i in event.items where i.sku + i.category == "x")', False),
    ("texts-built-over-a-literal-list",
     'let v = count(s for s in ["a", "b", "c"] where s + (event.venue otherwise "") + s == "x")', True),
    ("enum-text-over-the-items", 'let v = count(i for i in event.items where event.channel + "-" == "app-")',
     True),
]


@pytest.mark.parametrize(("name", "member", "accepted"), TEXTS, ids=[t[0] for t in TEXTS])
def test_text_built_at_the_input_limits(name: str, member: str, accepted: bool) -> None:
    """Text built from the longest texts, in and out of comprehensions, is refused past the
    text bounds and otherwise stays within the promise."""
    kind = "purchase" if "items" in member else "visit"
    event = purchase(10_000, sku=10_000) if name == "texts-built-over-the-items" else (
        BIG_PURCHASE if kind == "purchase" else VISIT)
    award = "rule r: award count(x for x in [v]) miles"
    measured = refused_or_within(policy(member, award, kind=kind), CUSTOMER, event)
    assert (measured is not None) == accepted


def test_text_past_its_bound_is_pinned() -> None:
    """Eleven texts of up to 10,000 characters could pass 100,000: text_too_long, as pinned."""
    expression = " + ".join(["(event.venue otherwise \"\")"] * 11)
    with pytest.raises(dsl.PolicyError) as caught:
        dsl.load_source(policy(f"let v = {expression}", "rule r: award count(x for x in [v]) miles"),
                        schema=SCHEMA)
    assert [d.render() for d in caught.value.diagnostics if d.severity == "error"] == [
        f"<policy>:3:11: text_too_long: {expression} could grow past 100000 characters: evaluating "
        "it would have no bounded cost\n"
        f"    |   let v = {expression}\n"
        "    |" + " " * 11 + "^" * len(expression) + "\n"
        "    = hint: this text is built from long texts; build it from shorter parts"
    ]


def test_text_built_in_a_comprehension_is_pinned() -> None:
    """Concatenating item texts over a 10,000-item list could build 200 million characters:
    refused with too_costly, as pinned."""
    member = 'let v = count(i for i in event.items where i.sku + i.category == "x")'
    with pytest.raises(dsl.PolicyError) as caught:
        dsl.load_source(policy(member, "rule r: award v miles", kind="purchase"), schema=SCHEMA)
    assert [d.render() for d in caught.value.diagnostics if d.severity == "error"] == [
        "<policy>:3:46: too_costly: i.sku + i.category could build 200000000 characters of text in "
        "one evaluation (10000 texts of up to 20000); the limit is 10000000\n"
        f"    |   {member}\n"
        "    |" + " " * 46 + "^" * len("i.sku + i.category") + "\n"
        "    = hint: build the text once, in a `let` outside the aggregate"
    ]


# -- every builtin at the input limits, timed ------------------------------------------------------


#: For every builtin, and each operation the checker weighs beside them, a condition on one
#: item of a purchase that calls it with its costliest arguments (a zone looked up per call,
#: 16 arguments to min and max, decimals of 36 digits). A new builtin needs a row.
COSTLIEST = {
    "min": "min(" + ", ".join(["i.amount"] * 16) + ") > 0",
    "max": "max(" + ", ".join(["event.time"] * 16) + ") > 2000-01-01T00:00Z",
    "floor": "floor(i.amount) > 0",
    "ceil": "ceil(i.amount) > 0",
    "round": "round(i.amount, 12) > 0",
    "abs": "abs(customer.patience otherwise 90 minutes) > 1 minute",
    "tenure_years": "tenure_years(customer.member_since, event.time) > 0",
    "tenure_months": "tenure_months(customer.member_since, event.time) > 0",
    "days_between": "days_between(customer.member_since, event.time) > 0",
    "quarter": "quarter(event.time) > 0",
    "year": "year(event.time) > 0",
    "month": "month(event.time) > 0",
    "day": "day(event.time) > 0",
    "weekday": "weekday(event.time) > 0",
    "date": "date(event.time) > 2000-01-01",
    "hour": "hour(event.time) > 0",
    "minute": "minute(event.time) > 0",
    "local": 'local(event.time, "Pacific/Kiritimati") > 2000-01-01T00:00Z',
    "local-of-a-field": "local(event.time, customer.zone) > 2000-01-01T00:00Z",
    "minutes": "minutes(customer.patience otherwise 90 minutes) > 0",
    "distance_miles": 'distance_miles("JFK", "SYD") > 0',
    "sum": "sum([i.amount, i.amount, i.amount]) > 0",
    "count": "count([i.amount, i.amount, i.amount]) > 0",
    "between": "event.time between 15:00 and 18:00",
    "local-between": 'local(event.time, "Asia/Tokyo") between 15:00 and 18:00',
    "duration-times-a-number": "(customer.patience otherwise 90 minutes) * 3 > 1 minute",
    "datetime-plus-a-duration": "event.time + 3 days > 2000-01-01T00:00Z",
    "date-minus-a-duration": "date(event.time) - 3 days > 2000-01-01",
    "minutes-of-local-arithmetic": 'minutes(event.time - local(event.time, "Asia/Tokyo") + 3 days) > 0',
    "weekday-of-a-local-date": 'weekday(date(local(event.time, "Asia/Tokyo")) - 3 days) > 0',
    "date-plus-a-calendar-span": "date(event.time) + 3 months > 2000-01-01",
    "datetime-minus-a-calendar-span": "event.time - 1 quarter > 2000-01-01T00:00Z",
    "whole-number-division": "i.quantity div 3 > 0",
}

#: How far past the bound's time the costliest accepted policy may run: the bound's unit is
#: measured in the same run, so only the noise of a shared machine is left.
_TIME_MARGIN = 1.5


def _passes(condition: str, k: int) -> str:
    lets = [f"let v{j} = count(i for i in event.items where {condition})" for j in range(k)]
    return policy(*lets, "rule r: award " + " + ".join(f"v{j}" for j in range(k)) + " miles",
                  kind="purchase")


def _cpu_time(policy_set: dsl.PolicySet, rounds: int = 3) -> float:
    """The least CPU time of the evaluating thread over ``rounds`` evaluations at the limits."""
    import time

    customer = prepare_customer(SCHEMA, {**CUSTOMER, "zone": "Asia/Kolkata"})
    event = prepare_event(SCHEMA, BIG_PURCHASE)
    policy_set.evaluate(customer, event)  # warm up
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time()
        policy_set.evaluate(customer, event)
        best = min(best, time.thread_time() - start)
    return best


@pytest.fixture(scope="module")
def unit_time() -> float:
    """The bound's time: fifty passes of ``sum(i.amount ...)`` (MAX_STEPS steps), this run."""
    members = [f"let v{k} = sum(i.amount for i in event.items)" for k in range(50)]
    text = policy(*members, "rule r: award round(" + " + ".join(f"v{k}" for k in range(50)) + ") miles",
                  kind="purchase")
    policy_set = dsl.load_source(text, schema=SCHEMA)
    assert policy_set.compiled[0].check.bound.steps == MAX_STEPS
    return _cpu_time(policy_set, rounds=5)


def test_every_builtin_has_a_costliest_case() -> None:
    """The timed table below covers every builtin the language has."""
    assert set(BUILTINS) <= set(COSTLIEST)


@pytest.mark.parametrize("name", list(COSTLIEST))
def test_the_costliest_accepted_aggregate_stays_within_the_bound(name: str, unit_time: float) -> None:
    """As many passes of an aggregate calling the builtin per item as the checker accepts at
    10,000 items take no more CPU than the bound's MAX_STEPS unit steps, measured in the same
    run (a ratio, so the machine's speed cancels out); one more pass is refused."""
    condition = COSTLIEST[name]
    one = dsl.load_source(_passes(condition, 1), schema=SCHEMA).compiled[0].check.bound.steps
    k = MAX_STEPS // one
    assert k >= 1, f"{name}: one pass over 10,000 items is refused ({one} steps)"
    with pytest.raises(dsl.PolicyError) as caught:
        dsl.load_source(_passes(condition, k + 1), schema=SCHEMA)
    assert {d.code for d in caught.value.diagnostics if d.severity == "error"} == {"too_costly"}
    policy_set = dsl.load_source(_passes(condition, k), schema=SCHEMA)
    ratio = _cpu_time(policy_set) / unit_time
    assert ratio <= _TIME_MARGIN, (f"{name}: {k} passes of {one} steps took {ratio:.2f} times the "
                                   "bound's time: raise its weight (the Builtin entry's steps)")


#: The issue's policies (issue 17, item 4), once accepted at 6.4 to 10.8 times the documented
#: worst case: each is refused now, and one pass of each is accepted and within the bound.
_KIRITIMATI = 'local(event.time, "Pacific/Kiritimati")'
ISSUE_17 = [
    ("twenty-hours-of-local-time", f"sum(hour({_KIRITIMATI}) for i in event.items)", 20),
    ("minutes-of-local-arithmetic",
     f"sum(minutes(event.time - {_KIRITIMATI} + 3 days) for i in event.items)", 2),
    ("weekday-of-a-local-date",
     f"sum(weekday(date({_KIRITIMATI}) - 3 days) for i in event.items)", 2),
    ("local-between",
     f"count(i for i in event.items where {_KIRITIMATI} between 15:00 and 18:00)", 2),
]


@pytest.mark.parametrize(("name", "aggregate", "passes"), ISSUE_17, ids=[c[0] for c in ISSUE_17])
def test_the_issues_time_aggregates_are_refused(name: str, aggregate: str, passes: int) -> None:
    """Time-of-day aggregates the checker once counted as a few plain steps are refused for
    their real cost."""
    members = [f"let v{k} = {aggregate}" for k in range(passes)]
    with pytest.raises(dsl.PolicyError) as caught:
        dsl.load_source(policy(*members, "rule r: award v0 miles", kind="purchase"), schema=SCHEMA)
    assert {d.code for d in caught.value.diagnostics if d.severity == "error"} == {"too_costly"}
    dsl.load_source(policy(f"let v0 = {aggregate}", "rule r: award v0 miles", kind="purchase"),
                    schema=SCHEMA)


# -- generated policies --------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(st.data())
def test_generated_policies_stay_within_their_bound(data: st.DataObject) -> None:
    """Every generated policy the checker accepts evaluates within its promised bound, on
    generated inputs that reach the input limits."""
    kind = data.draw(st.sampled_from(KINDS))
    text = data.draw(policy_sources(kind))
    try:
        policy_set = dsl.load_source(text, file="generated.policy", schema=SCHEMA)
    except dsl.PolicyError as exc:
        codes = {d.code for d in exc.diagnostics if d.severity == "error"}
        assert codes <= UNAVOIDABLE | SIZE_CODES, exc.render()
        assume(False)
        return
    customer = data.draw(raw_customers(SCHEMA))
    event = data.draw(raw_events(SCHEMA, kind))
    for compiled in policy_set.compiled:
        single = dsl.PolicySet(policy_set.schema, [compiled], policy_set.revision)
        bound = compiled.check.bound
        assert bound is not None
        try:
            measured, _ = measure(single, customer, event)
        except dsl.EvaluationError:
            continue  # division by zero and the like: faults, not costs
        assert_within(bound, measured)


# -- the evaluation context --------------------------------------------------------------------------


#: (name, policy members, field, value past the input bounds) for visits prepared and then
#: altered, as a caller that skipped the decoders could pass them.
OVERSIZED = [
    ("rounded-award", ["rule r: award round(event.spend) miles"], "spend", Decimal("1E+999999")),
    ("award-rounded-down", ["rule r: award event.spend * 2 miles", "round miles down"],
     "spend", Decimal("1E+999999")),
    ("plain-award-rounded-down", ["rule r: award event.spend miles", "round miles down"],
     "spend", Decimal("1E+999999")),
    ("floor", ["rule r: award floor(event.spend) miles"], "spend", Decimal("9E+999999")),
    ("quotient", ["rule r: award round(event.spend / 3) miles"], "spend", Decimal("1E+999999")),
    ("product", ['rule r: grant "voucher" with value = event.spend * 10, note = "x"'],
     "spend", Decimal("1E+99")),
    ("two-decimal-award", ["rule r: award event.spend credit", "round credit down"],
     "spend", Decimal("1E+999999")),
    ("huge-whole-number-divided", ["rule r: award round(event.party_size / 3) miles"],
     "party_size", 10**100_000),
]


@pytest.mark.parametrize(("name", "members", "name_of_field", "value"), OVERSIZED,
                         ids=[o[0] for o in OVERSIZED])
def test_a_value_past_the_bounds_is_a_policy_fault(name: str, members: list[str], name_of_field: str,
                                                   value: Any) -> None:
    """A number far past the input bounds that reaches evaluation anyway fails at once as a
    policy fault naming the bounds, in compiled and interpreted evaluation alike (it used to
    spend half a minute in int() building a million digits)."""
    policy_set = dsl.load_source(policy(*members), schema=SCHEMA)
    customer = prepare_customer(SCHEMA, CUSTOMER)
    event = {**prepare_event(SCHEMA, VISIT), name_of_field: value}
    for evaluate in (policy_set.evaluate, policy_set.evaluate_interpreted):
        for explain in (False, True):
            with pytest.raises(dsl.EvaluationError) as caught:
                evaluate(customer, event, explain=explain)
            assert caught.value.message == "arithmetic error: a value exceeded the language's bounds"


def test_evaluation_ignores_and_restores_the_callers_context() -> None:
    """A caller whose decimal context keeps 3 digits still gets exact decisions, and keeps its
    context afterwards."""
    policy_set = dsl.load_source(policy('rule s: grant "voucher" with value = event.spend * 3, note = "x"'),
                                 schema=SCHEMA)
    customer, event = prepare_customer(SCHEMA, CUSTOMER), prepare_event(SCHEMA, VISIT)
    mine = decimal.Context(prec=3)
    with decimal.localcontext(mine) as active:
        for evaluate in (policy_set.evaluate, policy_set.evaluate_interpreted):
            (benefit,) = evaluate(customer, event).benefits
            assert benefit.params["value"] == Decimal("2999999999999999999.999999999999999997")
            assert decimal.getcontext() is active
            assert decimal.getcontext().prec == 3


def test_a_thread_can_stay_in_the_evaluation_context() -> None:
    """use_evaluation_context() leaves a thread in the context, so evaluation swaps nothing there."""
    seen: list[Any] = []

    def serve() -> None:
        rt.use_evaluation_context()
        context = decimal.getcontext()
        policy_set = dsl.load_source(policy("rule r: award round(event.spend / 3) miles"), schema=SCHEMA)
        policy_set.evaluate(prepare_customer(SCHEMA, CUSTOMER), prepare_event(SCHEMA, VISIT))
        seen.extend([type(context), decimal.getcontext() is context, context.prec, context.Emax])

    worker = threading.Thread(target=serve)
    worker.start()
    worker.join()
    assert seen == [rt.EvaluationContext, True, MAX_NUMBER_DIGITS, MAX_NUMBER_DIGITS - 1]
