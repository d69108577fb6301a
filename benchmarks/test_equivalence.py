"""The hand-written baseline computes exactly the policy set's decisions: the comparison is honest.

These are correctness checks, not timings; they run in both modes (and in CI)
before any gate uses the hand-written function as a baseline.
"""

from __future__ import annotations

from typing import Any

from benchmarks import data


def _mismatches(evaluate: Any, expected: Any, pairs: list[data.Pair]) -> list[str]:
    out = []
    for customer, event in pairs:
        got, want = evaluate(customer, event), expected(customer, event)
        if got != want:
            out.append(f"customer={customer}\nevent={event}\n  policy set:  {got}\n"
                       f"  hand-written: {want}")
    return out


def test_handwritten_equals_policy_set_on_every_pair(airline_set: Any, handwritten: Any,
                                                      pairs: list[data.Pair]) -> None:
    """On all 10,000 benchmark pairs the hand-written function returns the policy set's Decision."""
    bad = _mismatches(airline_set.evaluate, handwritten, pairs)
    assert not bad, f"{len(bad)} of {len(pairs)} differ; first:\n" + "\n".join(bad[:3])


def test_handwritten_equals_policy_set_on_corner_cases(airline_set: Any, handwritten: Any,
                                                        schema: Any) -> None:
    """Anniversaries, 29 February joiners, the cap, zero miles, UTC dates, other kinds agree."""
    edge = data.prepare_pairs(schema, data.raw_edge_pairs())
    bad = _mismatches(airline_set.evaluate, handwritten, edge)
    assert not bad, f"{len(bad)} of {len(edge)} differ:\n" + "\n".join(bad)


def test_interpreter_equals_handwritten(airline_set: Any, handwritten: Any,
                                        pairs: list[data.Pair], mode: Any) -> None:
    """The reference interpreter (the specification) agrees with the baseline too."""
    subset = pairs[: mode.interpreter_pairs]
    bad = _mismatches(_interpreted(airline_set), handwritten, subset)
    assert not bad, f"{len(bad)} of {len(subset)} differ; first:\n" + "\n".join(bad[:3])


def test_the_data_set_has_its_advertised_mix(pairs: list[data.Pair]) -> None:
    """Every tier, every cabin, partner flights, missing distances and leap-day joiners occur."""
    mix = data.describe(pairs)
    assert set(mix["tiers"]) == {"None", "MVP", "GOLD", "PLATINUM", "75K"}
    assert set(mix["cabins"]) == {"economy", "premium_economy", "business", "first"}
    assert mix["partner"] > 500 and mix["distance_missing"] > 500
    assert mix["leap_day_joiners"] > 20 and mix["before_2026"] > 20


def _interpreted(policy_set: Any) -> Any:
    """``policy_set``'s reference-interpreter evaluation as ``f(customer, event)``."""
    def run(customer: Any, event: Any) -> Any:
        return policy_set.evaluate_interpreted(customer, event)

    return run
