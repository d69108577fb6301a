"""Award bounds (dsl/analysis/bounds.py): the most one event can be awarded, per policy and currency.

Table tests pin the bound (or the unbounded reason, in full) for small policies; the bundled
policies' bounds are pinned as `loyalty check --bounds` prints them; property tests try to
break the bound with Hypothesis inputs within the schema's bounds, over the bundled policies
and generated ones.
"""

from __future__ import annotations

import decimal
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, Phase, given, note, reject, settings
from hypothesis import strategies as st
from strategies import KINDS, SCHEMA, SIZE_CODES, UNAVOIDABLE, policy_sources, raw_customers, raw_events

import dsl
from dsl.analysis.bounds import AwardBound, BoundsPass, Interval, award_bounds, event_bounds
from dsl.library.builtins import BUILTINS
from service.cli import main
from tests.dsl.input.reference import prepare_customer, prepare_event

ROOT = Path(__file__).resolve().parents[3]
POLICIES = ROOT / "policies"
BUNDLED = dsl.Schema.for_directory(POLICIES)

WIDE = decimal.Context(prec=200)

HEADER = "policy p\n  on purchase\n"


def bounds_of(body: str, schema: dsl.Schema = BUNDLED, header: str = HEADER) -> list[str]:
    """The described bounds of a one-policy text."""
    policy_set = dsl.load_source(header + body, file="p.policy", schema=schema)
    (compiled,) = policy_set.compiled
    return [b.describe() for b in compiled.award_bounds]


CASES = [
    ("a literal award is its own bound", "  rule r: award 50 points\n", ["points: at most 50"]),
    ("awards of one rule add up", "  rule r:\n    award 50 points\n    award 25 points\n",
     ["points: at most 75"]),
    ("stacked rules add up", "  rule a: award 50 points\n  rule b: award 7 points\n",
     ["points: at most 57"]),
    ("a group takes the largest of its rules",
     "  group g takes best points:\n    rule a: award 50 points\n    rule b: award 70 points\n"
     "  rule c: award 1 points\n", ["points: at most 71"]),
    ("takes first is bounded by its largest rule too: any one may be the one that fires",
     "  group g takes first:\n    rule a when event.amount > 5: award 10 points\n"
     "    rule b: award 30 points\n", ["points: at most 30"]),
    ("a table's largest row bounds a lookup",
     '  table t by event.channel:\n    "app" -> 20\n    "online" -> 35\n    else -> 5\n'
     "  rule r: award t points\n", ["points: at most 35"]),
    ("a decision table collecting rows bounds their sum",
     "  decide promos collect:\n    when event.amount > 10 -> 10\n    when event.amount > 20 -> 15\n"
     "  rule r: award sum(x for x in promos) points\n", ["points: at most 25"]),
    ("an unbounded amount is bounded by `up to`, rounded up to the currency (true however "
     "awards are rounded)",
     "  rule r: award event.amount points up to 99.9\n  round points down\n", ["points: at most 100"]),
    ("an unbounded amount is bounded by the policy's cap",
     "  rule r: award event.amount points\n  cap points at 5000\n  round points down\n",
     ["points: at most 5,000"]),
    ("a cap above the rules' total does not raise the bound",
     "  rule r: award 10 points\n  cap points at 5000\n", ["points: at most 10"]),
    ("a percentage of a capped amount", "  rule r: award 25% of min(event.amount, 1000) points\n"
     "  round points down\n", ["points: at most 250"]),
    ("rounding is counted up: 2.5 rounds to at most 3",
     "  rule r: award 2.5 points\n  round points half even\n", ["points: at most 3"]),
    ("a currency with decimals keeps them", "  rule r: award 1.234 credit\n  round credit down\n",
     ["credit: at most 1.24"]),
    ("a negative award is raised to zero", "  rule r: award -5 points\n", ["points: at most 0"]),
    ("the number of items bounds a count: at most 10,000 items",
     "  rule r: award count(i for i in event.items) points\n", ["points: at most 10,000"]),
    ("tenure is at most 9,998 whole years", "  rule r: award 2 * tenure_years(customer.member_since, "
     "event.date) points\n", ["points: at most 19,996"]),
    ("the schema's cap_per_event bounds every policy's award",
     "  rule r: award floor(event.amount) miles\n", ["miles: at most 100,000"]),
    ("a division by a value away from zero", "  rule r: award min(event.amount, 100) / 4 points\n"
     "  round points up\n", ["points: at most 25"]),
    ("`if` takes the larger branch", "  rule r: award (if event.amount > 5 then 7 else 9) points\n",
     ["points: at most 9"]),
    ("a field with no maximum makes the award unbounded, and says where and what to do",
     "  rule spend_points: award event.amount points\n  round points down\n",
     ["points: unbounded: rule spend_points at line 3: award event.amount points: event.amount "
      "has no maximum in the schema (only the 18-digit input limit); add `up to ...` to the "
      "award or `cap points at ...` to the policy"]),
    ("a value reached through a let names the field and its line",
     "  let spent = event.amount * 2\n  rule r: award spent points\n  round points down\n",
     ["points: unbounded: rule r at line 4: award spent points: event.amount has no maximum in "
      "the schema (only the 18-digit input limit) at line 3; add `up to ...` to the award or "
      "`cap points at ...` to the policy"]),
    ("a divisor that may be zero or near it is unbounded",
     "  rule r: award 10 / round(min(event.amount, 5) - 1, 2) points\n  round points down\n",
     ["points: unbounded: rule r at line 3: award 10 / round(min(event.amount, 5) - 1, 2) points: "
      "round(min(event.amount, 5) - 1, 2) may be zero or near it, so the quotient has no bound; "
      "add `up to ...` to the award or `cap points at ...` to the policy"]),
    ("a whole divisor other than zero is at least 1 in size",
     "  rule r: award 100 / (customer.lifetime.visits - 30) points\n  round points down\n",
     ["points: at most 100"]),
    ("a divisor kept away from zero by the schema's min",
     "  rule r: award 10 / (min(event.amount, 5) + 1) points\n  round points down\n",
     ["points: at most 10"]),
    ("a field's max in the schema bounds an award that follows it (nights: at most 365)",
     "  rule r: award 1000 * event.nights points\n", ["points: at most 365,000"], "stay"),
    ("a whole-number quotient is bounded by its dividend, rounded down",
     "  rule r: award event.nights div 7 + tenure_months(customer.member_since, event.date) "
     "div 12 points\n", ["points: at most 10,050"], "stay"),  # 365 div 7 + 119,987 div 12
    ("quarter() is 1 to 4", "  rule r: award 10 * quarter(event.date) points\n",
     ["points: at most 40"]),
    ("a policy that awards nothing has no bounds", '  rule r: tag "x"\n', []),
]


@pytest.mark.parametrize(("body", "expected", "kind"), [(*c[1:3], c[3] if len(c) > 3 else "purchase")
                                                        for c in CASES], ids=[c[0] for c in CASES])
def test_bounds_of_small_policies(body: str, expected: list[str], kind: str) -> None:
    """Each small policy's bound (or the full unbounded reason) is as stated."""
    assert bounds_of(body, header=f"policy p\n  on {kind}\n") == expected


def test_the_bundled_policies_bounds() -> None:
    """The bundled programme's bounds, as `loyalty check --bounds` computes them."""
    policy_set = dsl.load_directory(POLICIES)
    got = {p.name: [b.describe() for b in p.award_bounds] for p in policy_set.compiled}
    assert got["earn_miles_by_distance"] == ["miles: at most 25,000"]
    assert got["earn_points_on_purchases"] == ["points: at most 5,000"]
    assert got["giving_season_credit"] == ["credit: at most 25.00"]
    assert got["late_arrival_grace"] == ["points: at most 10"]
    assert got["spring_garden_points"] == ["points: at most 300"]
    assert got["donor_recognition"] == []
    assert got["know_our_regulars"][0].startswith(
        "points: unbounded: rule regular at line 18: award event.spend points: event.spend has no "
        "maximum in the schema")


def test_the_bound_is_reached_when_the_policy_allows_it() -> None:
    """Not just an upper bound: a policy whose rules all fire at their largest reaches it."""
    text = HEADER + ("  rule r: award min(event.amount, 1000) points up to 700\n"
                     "  rule s: award 20% of min(event.amount, 1000) points\n  round points down\n")
    policy_set = dsl.load_source(text, file="p.policy", schema=BUNDLED)
    (bound,) = policy_set.compiled[0].award_bounds
    customer = prepare_customer(BUNDLED, {"id": "c", "member_since": "2020-01-01"})
    event = prepare_event(BUNDLED, {"id": "e", "kind": "purchase", "time": "2026-03-01T10:00:00Z",
                                   "amount": "5000"})
    assert policy_set.evaluate(customer, event).awards["points"] == bound.maximum == 900


def test_an_unknown_builtin_fails_loudly() -> None:
    """A builtin the analysis does not know raises rather than guessing a range."""
    policy_set = dsl.load_source(HEADER + "  rule r: award 1 points\n", file="p.policy", schema=BUNDLED)
    cp = policy_set.compiled[0]
    with pytest.raises(NotImplementedError, match="does not know the range of mystery"):
        BoundsPass(cp.schema, cp.ast, cp.check).visit(dsl.front.nodes.Call("mystery", []), {})


# -- loyalty check --bounds -----------------------------------------------------------------------


def test_check_bounds_prints_them(capsys: pytest.CaptureFixture[str]) -> None:
    """`loyalty check --bounds` prints each policy's bounds after the usual summary."""
    assert main(["check", "--bounds", str(POLICIES / "airline")]) == 0
    out = capsys.readouterr().out
    assert out.endswith("award bounds (the most one event can be awarded; an upper bound, see "
                        "docs/language.md):\n  earn_miles_by_distance:\n    miles: at most 25,000\n"
                        f"\none event of each kind, all policies in {POLICIES / 'airline'} together:\n"
                        "  flight: miles: at most 25,000\n")


def test_check_bounds_adds_up_the_policies_of_each_event_kind(capsys: pytest.CaptureFixture[str]) -> None:
    """Per event kind, the policies on it add up (5,000 + 300 + 1,000 purchase points in the
    bundled retail programme, and the card's 75.00 cashback); one unbounded policy makes the kind
    unbounded; a per-period bound is reported beside the per-event one."""
    assert main(["check", "--bounds", "--format", "json", str(POLICIES)]) == 0
    report = json.loads(capsys.readouterr().out)
    kinds = report["event_bounds"][str(POLICIES)]
    assert kinds["purchase"] == [{"currency": "points", "max": "6300", "unbounded_reason": ""},
                                 {"currency": "cashback", "max": "75.00", "unbounded_reason": ""}]
    assert kinds["order"] == [{"currency": "stars", "max": "20", "unbounded_reason": ""}]
    assert kinds["flight"] == [{"currency": "miles", "max": "25000", "unbounded_reason": ""}]
    assert kinds["visit"][0]["max"] is None
    # nights = { type = "int", min = 1, max = 365 } in the bundled schema bounds the hotel
    assert kinds["stay"] == [{"currency": "points", "max": "735000", "unbounded_reason": ""}]
    assert kinds["visit"][0]["unbounded_reason"].startswith("rule regular at line 18")


def test_cap_per_event_limits_the_kind_total() -> None:
    """Two policies of 80,000 miles each on flights: the schema's cap_per_event (100,000) wins."""
    text = ("policy a\n  on flight\n  rule r: award 80000 miles\n"
            "policy b\n  on flight\n  rule r: award 80000 miles\n")
    policy_set = dsl.load_source(text, file="p.policy", schema=BUNDLED)
    kinds = event_bounds(BUNDLED, [(p.info.kinds, p.award_bounds) for p in policy_set.compiled])
    assert [b.describe() for b in kinds["flight"]] == ["miles: at most 100,000"]


def test_check_bounds_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    """With --format json the bounds are a `bounds` object: policy -> currency, max, reason."""
    assert main(["check", "--bounds", "--format", "json", str(POLICIES / "restaurant")]) == 0
    data = json.loads(capsys.readouterr().out)
    (bound,) = data["bounds"]["know_our_regulars"]
    assert bound["currency"] == "points" and bound["max"] is None
    assert bound["unbounded_reason"].startswith("rule regular at line 18")


def test_check_without_bounds_prints_none(capsys: pytest.CaptureFixture[str]) -> None:
    """Plain `loyalty check` output is unchanged."""
    assert main(["check", "--format", "json", str(POLICIES / "airline")]) == 0
    assert "bounds" not in json.loads(capsys.readouterr().out)


# -- trying to break the bound ----------------------------------------------------------------------

PROPERTY = settings(
    max_examples=150, deadline=None, print_blob=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def assert_within(policy_set: dsl.PolicySet, customer: dict[str, Any], event: dict[str, Any]) -> None:
    """The decision's award of each currency is at most the sum of its policies' bounds."""
    try:
        decision = policy_set.evaluate(customer, event)
    except dsl.EvaluationError:
        reject()
    limits: dict[str, Decimal | None] = {}
    for p in policy_set.applicable(event):
        for b in p.award_bounds:
            prev = limits.get(b.currency, Decimal(0))
            # Added in a wide context: the default 28 digits would round the sum down.
            limits[b.currency] = (None if prev is None or b.maximum is None
                                  else WIDE.add(prev, b.maximum))
    for currency, amount in decision.awards.items():
        limit = limits.get(currency)
        assert currency in limits, f"{currency} awarded by no applicable policy"
        if limit is not None:
            hypothesis.event("bounded award")
            assert amount <= limit, f"{amount} {currency} is above the bound {limit}"


_BUNDLED_SET = dsl.load_directory(POLICIES)
_KINDS = sorted({k for p in _BUNDLED_SET.compiled for k in p.info.kinds})


@PROPERTY
@given(st.data())
def test_bundled_policies_never_award_above_their_bound(data: st.DataObject) -> None:
    """Inputs within the bundled schema's bounds never get more than the bundled bounds."""
    kind = data.draw(st.sampled_from(_KINDS))
    customer = prepare_customer(BUNDLED, data.draw(raw_customers(BUNDLED)))
    raw = data.draw(raw_events(BUNDLED, kind))
    raw["time"] = data.draw(st.sampled_from(["2026-03-14T10:00:00Z", "2026-11-28T18:30:00Z",
                                             "2026-12-02T09:15:00+05:30"]))
    assert_within(_BUNDLED_SET, customer, prepare_event(BUNDLED, raw))


@PROPERTY
@given(st.data())
def test_generated_policies_never_award_above_their_bound(data: st.DataObject) -> None:
    """Generated policies (tests/dsl/strategies.py) never award above their computed bound."""
    kind = data.draw(st.sampled_from(KINDS))
    source = data.draw(policy_sources(kind))
    note(f"policy text:\n{source}")
    try:
        policy_set = dsl.load_source(source, file="generated.policy", schema=SCHEMA)
    except dsl.PolicyError as exc:
        codes = {d.code for d in exc.diagnostics if d.severity == "error"}
        # The checker rightly refuses some generated policies (tests/dsl/backend/test_differential.py).
        if codes <= UNAVOIDABLE | SIZE_CODES:
            reject()
        raise
    for p in policy_set.compiled:
        note(f"bounds of {p.name}: {[b.describe() for b in p.award_bounds]}")
    customer = prepare_customer(SCHEMA, data.draw(raw_customers(SCHEMA)))
    event = prepare_event(SCHEMA, data.draw(raw_events(SCHEMA, kind)))
    assert_within(policy_set, customer, event)


def test_award_bounds_function_matches_the_cached_property() -> None:
    """CompiledPolicy.award_bounds is award_bounds() of its schema, AST and check result."""
    for p in _BUNDLED_SET.compiled:
        assert p.award_bounds == award_bounds(p.schema, p.ast, p.check)
        assert all(isinstance(b, AwardBound) for b in p.award_bounds)


@pytest.mark.parametrize("builtin", sorted(BUILTINS), ids=str)
def test_every_builtin_has_a_range(builtin: str) -> None:
    """The analysis knows every builtin (an unknown one raises): each one's example call,
    bound to a let, is analysed, and a number it gives has a range that holds its value."""
    example, value = BUILTINS[builtin].example
    text = HEADER + f"  let x = {example}\n  rule r: tag \"t\"\n"
    policy_set = dsl.load_source(text, file="p.policy", schema=BUNDLED)
    cp = policy_set.compiled[0]
    env = BoundsPass(cp.schema, cp.ast, cp.check).bindings()
    got = env["x"]
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        assert isinstance(got, Interval)
        assert got.lo is None or got.lo <= value
        assert got.hi is None or value <= got.hi
