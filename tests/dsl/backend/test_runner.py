"""The one evaluate interface: compiled and interpreted runners behind ``PolicySet.evaluate``.

The selection (event kind and effective date), the ``only`` filter and ``finish`` are the
policy set's, written once; a runner only runs the policies it is given. These tests pin
that both runners, through that one interface, give the same decisions on the bundled
policies and on the selection cases, and that a runner sees only the policies selected.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dsl
from benchmarks import data
from dsl.backend.runner import COMPILED, INTERPRETED, RUNNERS, CompiledRunner, Runnable, Runner
from dsl.decision import Decision, Reason
from dsl.errors import EvaluationError
from tests.dsl.input.reference import prepare_customer, prepare_event

ROOT = Path(__file__).resolve().parents[3]
BUNDLED = dsl.load_directory(ROOT / "policies")
SCHEMA = BUNDLED.schema

CUSTOMER = {"id": "c1", "member_since": "2012-06-01", "tier": "GOLD"}
FLIGHT = {"id": "e1", "kind": "flight", "time": "2026-03-01T10:00:00Z", "origin": "JFK",
          "destination": "LHR", "fare": "812.40", "distance_miles": 3451, "cabin": "business"}
PURCHASE = {"id": "e2", "kind": "purchase", "time": "2026-03-01T10:00:00Z", "amount": "120.00"}


def prepared(customer: dict[str, Any], event: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return prepare_customer(SCHEMA, customer), prepare_event(SCHEMA, event)


def decisions(policy_set: dsl.PolicySet, customer: dict[str, Any], event: dict[str, Any],
              **options: Any) -> dict[str, Decision]:
    """Each runner's decision on the same prepared input, through ``evaluate(runner=...)``."""
    return {name: policy_set.evaluate(customer, event, runner=runner, **options)
            for name, runner in RUNNERS.items()}


@pytest.mark.parametrize("event", [FLIGHT, PURCHASE], ids=["flight", "purchase"])
@pytest.mark.parametrize("explain", [False, True], ids=["decide", "explain"])
def test_both_runners_decide_the_bundled_policies_alike(event: dict[str, Any], explain: bool) -> None:
    """On the bundled policies, the compiled and the interpreted runner give equal decisions,
    reasons included, through the one interface."""
    customer, prepared_event = prepared(CUSTOMER, event)
    got = decisions(BUNDLED, customer, prepared_event, explain=explain)
    assert got["compiled"] == got["interpreted"]
    assert got["compiled"].policies
    assert (got["compiled"].reasons is not None) == explain


WINDOWED = """
policy spring
  effective 2026-03-01 to 2026-05-31
  on flight
  rule bonus: award 100 miles

policy always
  on flight
  rule base: award 1 miles
"""


@pytest.mark.parametrize(("time", "policies"), [
    ("2026-02-28T23:59:00Z", ["always"]),
    ("2026-03-01T00:00:00Z", ["always", "spring"]),
    ("2026-06-01T00:00:00Z", ["always"]),
], ids=["before-the-window", "in-the-window", "after-the-window"])
def test_both_runners_share_the_date_selection(time: str, policies: list[str]) -> None:
    """The effective-date index is the set's: both runners run the same policies on every date."""
    ps = dsl.load_source(WINDOWED, schema=SCHEMA)
    customer, event = prepared(CUSTOMER, {**FLIGHT, "time": time})
    got = decisions(ps, customer, event)
    assert got["compiled"] == got["interpreted"]
    assert got["compiled"].policies == policies


@pytest.mark.parametrize("explain", [False, True], ids=["decide", "explain"])
def test_both_runners_see_only_the_policies_named(explain: bool) -> None:
    """``only`` is applied before the runner: both run exactly the named policies."""
    ps = dsl.load_source(WINDOWED, schema=SCHEMA)
    customer, event = prepared(CUSTOMER, FLIGHT)
    got = decisions(ps, customer, event, explain=explain, only=["spring"])
    assert got["compiled"] == got["interpreted"]
    assert got["compiled"].policies == ["spring"]
    assert got["compiled"].awards == {"miles": 100}


def test_both_runners_answer_an_event_no_policy_handles_alike() -> None:
    """An event of a kind no policy handles gets the same empty decision from both."""
    ps = dsl.load_source(WINDOWED, schema=SCHEMA)
    customer, event = prepared(CUSTOMER, PURCHASE)
    got = decisions(ps, customer, event, explain=True)
    assert got["compiled"] == got["interpreted"] == Decision(ps.revision, {}, [], None, [], [], [], None)


def test_both_runners_fail_alike() -> None:
    """A run-time fault is the same EvaluationError (policy, file, policy line, message) from both."""
    text = "policy risky\n  on flight\n  let per = 100 / (event.distance_miles otherwise 1)\n" \
           "  round miles down\n  rule r: award per miles\n"
    ps = dsl.load_source(text, file="risky.policy", schema=SCHEMA)
    customer, event = prepared(CUSTOMER, {**FLIGHT, "distance_miles": 0})
    errors = []
    for runner in (COMPILED, INTERPRETED):
        with pytest.raises(EvaluationError) as info:
            ps.evaluate(customer, event, runner=runner)
        errors.append((info.value.policy, info.value.file, info.value.line, info.value.message))
    assert errors == [("risky", "risky.policy", 3, "division by zero")] * 2


def test_evaluate_interpreted_is_the_interpreted_runner() -> None:
    """``evaluate_interpreted`` is shorthand for ``evaluate(..., runner=INTERPRETED)``."""
    customer, event = prepared(CUSTOMER, FLIGHT)
    assert BUNDLED.evaluate_interpreted(customer, event, explain=True) == \
        BUNDLED.evaluate(customer, event, explain=True, runner=INTERPRETED)


class _Recording(Runner):
    """A runner that runs nothing and records what it was given."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bool]] = []

    def run(self, policies: Sequence[Runnable], customer: dict[str, Any], event: dict[str, Any],
            d: Decision, reasons: list[Reason] | None) -> None:
        self.calls.append(([p.info.name for p in policies], reasons is not None))


def test_a_runner_is_given_the_selected_policies_and_nothing_else() -> None:
    """The interface: a runner gets the selected policies and a reasons list when explaining;
    a kind no policy handles never reaches it."""
    ps = dsl.load_source(WINDOWED, schema=SCHEMA)
    runner = _Recording()
    customer, event = prepared(CUSTOMER, {**FLIGHT, "time": "2026-04-01T00:00:00Z"})
    ps.evaluate(customer, event, runner=runner)
    ps.evaluate(customer, event, explain=True, only=["spring"], runner=runner)
    ps.evaluate(*prepared(CUSTOMER, PURCHASE), runner=runner)
    assert runner.calls == [(["always", "spring"], False), (["spring"], True)]


def test_runners_are_named() -> None:
    """The runners are found by name (what a command line or a test table says)."""
    assert RUNNERS == {"compiled": COMPILED, "interpreted": INTERPRETED}
    assert repr(COMPILED) == "<compiled runner>"


# -- the fused hot path ------------------------------------------------------------------------
# A compiled evaluation without explain, only or windows runs each segment's policies and
# finish as one call (PolicySet's fused functions); a runner that is not the COMPILED object
# takes the general path. Both must decide exactly alike.

#: The compiled runner, but not the COMPILED object: PolicySet.evaluate's general path.
GENERAL = CompiledRunner()
MIXED = [(prepare_customer(SCHEMA, c), prepare_event(SCHEMA, e)) for c, e in data.raw_mixed_pairs(3000)]
WINDOWED_SET = dsl.load_source(WINDOWED, schema=SCHEMA)


def _outcome(policy_set: dsl.PolicySet, customer: dict[str, Any], event: dict[str, Any],
             runner: Runner) -> Any:
    try:
        return policy_set.evaluate(customer, event, runner=runner)
    except EvaluationError as exc:
        return ("failed", exc.policy, exc.file, exc.line, exc.message)


def test_the_fused_path_decides_every_bundled_kind_as_the_runner_path() -> None:
    """On every bundled policy, over a mix of every event kind: the fused hot path's decision
    equals the general path's, field by field (awards with their types, benefits, tier, tags,
    policies in order, fired rules)."""
    kinds = {e["kind"] for _, e in MIXED}
    assert len(kinds) >= 5
    fused = [_outcome(BUNDLED, c, e, COMPILED) for c, e in MIXED]
    general = [_outcome(BUNDLED, c, e, GENERAL) for c, e in MIXED]
    assert fused == general
    assert [[type(v) for v in d.awards.values()] for d in fused] == \
        [[type(v) for v in d.awards.values()] for d in general]
    assert sum(1 for d in fused if d.awards) > len(fused) // 4  # not a set of empty decisions


@settings(max_examples=150, deadline=None)
@given(index=st.integers(0, len(MIXED) - 1), shift=st.integers(-400 * 24, 400 * 24),
       windowed=st.booleans())
def test_the_fused_path_decides_any_date_as_the_runner_path(index: int, shift: int, windowed: bool) -> None:
    """Any bundled pair moved to any hour within about a year either side (across the
    policies' effective dates, and with a windowed set across its bounds) is decided alike by
    the fused and the general path."""
    customer, event = MIXED[index]
    ps = WINDOWED_SET if windowed else BUNDLED
    at = (event["time"] + timedelta(hours=shift)).astimezone(UTC)
    moved = {**event, "time": at, "date": at.date()}
    assert _outcome(ps, customer, moved, COMPILED) == _outcome(ps, customer, moved, GENERAL)


def test_the_fused_path_fails_as_the_runner_path() -> None:
    """A fault in the second policy of a segment names that policy and its line on both paths."""
    text = "policy first\n  on flight\n  rule r: award 1 miles\n\n" \
           "policy risky\n  on flight\n  let per = 100 / (event.distance_miles otherwise 1)\n" \
           "  round miles down\n  rule r: award per miles\n"
    ps = dsl.load_source(text, file="risky.policy", schema=SCHEMA)
    customer, event = prepared(CUSTOMER, {**FLIGHT, "distance_miles": 0})
    assert _outcome(ps, customer, event, COMPILED) == _outcome(ps, customer, event, GENERAL) == \
        ("failed", "risky", "risky.policy", 7, "division by zero")
