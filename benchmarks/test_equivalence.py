"""The baselines compute exactly the policy set's decisions: the comparisons are honest.

These are correctness checks, not timings; they run in both modes (and in CI)
before any gate uses the plain or the hand-written function as a baseline.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import data, handwritten_dict, messages, plain
from benchmarks.mapping import decider


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


@pytest.mark.parametrize("which", ["benchmark pairs", "corner cases"])
def test_handwritten_dict_equals_policy_set(airline_set: Any, pairs: list[data.Pair], schema: Any,
                                            which: str) -> None:
    """The dict-in, dict-out hand-written function returns the awards, benefit names and tags
    of the policy set's decision on every benchmark pair and every corner case."""
    items = pairs if which == "benchmark pairs" else data.prepare_pairs(schema, data.raw_edge_pairs())
    bad = [f"customer={c}\nevent={e}" for c, e in items
           if handwritten_dict.earn_miles(c, e) != plain.outcome(airline_set.evaluate(c, e))]
    assert not bad, f"{len(bad)} of {len(items)} differ; first:\n" + "\n".join(bad[:3])


def test_plain_equals_policy_set_on_every_item(airline_set: Any, pairs: list[data.Pair],
                                               plain_requests: list[dict[str, Any]]) -> None:
    """On all 10,000 benchmark items the plain baseline, given the request mapping, returns the
    awards, benefit names and tags of the policy set's decision on the prepared pair."""
    bad = [f"request={request}\n  policy set: {plain.outcome(airline_set.evaluate(c, e))}\n"
           f"  plain:      {plain.earn_miles(request)}"
           for request, (c, e) in zip(plain_requests, pairs, strict=True)
           if plain.earn_miles(request) != plain.outcome(airline_set.evaluate(c, e))]
    assert not bad, f"{len(bad)} of {len(pairs)} differ; first:\n" + "\n".join(bad[:3])


def test_plain_equals_policy_set_on_corner_cases(airline_set: Any, schema: Any) -> None:
    """Anniversaries, 29 February joiners, the cap, zero miles, UTC dates, other kinds agree."""
    raw = data.raw_edge_pairs()
    bad = [f"request={request}\n  policy set: {plain.outcome(airline_set.evaluate(c, e))}\n"
           f"  plain:      {plain.earn_miles(request)}"
           for request, (c, e) in zip([data.request_mapping(c, e) for c, e in raw],
                                      data.prepare_pairs(schema, raw), strict=True)
           if plain.earn_miles(request) != plain.outcome(airline_set.evaluate(c, e))]
    assert not bad, f"{len(bad)} of {len(raw)} differ:\n" + "\n".join(bad)


def test_mapping_path_equals_prepared_path(airline_set: Any, pairs: list[data.Pair],
                                           plain_requests: list[dict[str, Any]]) -> None:
    """Decoding the request mapping and evaluating gives the very Decision the prepared pair gets."""
    decide = decider(airline_set)
    bad = [str(request) for request, (c, e) in zip(plain_requests, pairs, strict=True)
           if decide(request) != airline_set.evaluate(c, e)]
    assert not bad, f"{len(bad)} of {len(pairs)} differ; first:\n" + "\n".join(bad[:3])


def test_request_mappings_are_the_proto3_json_of_the_service_requests(mode: Any) -> None:
    """Every request mapping parses (``json_format.ParseDict``) to the message the service
    benchmarks send for the same pair: the plain baseline reads what a backend would hold."""
    from google.protobuf import json_format

    from service.gen.loyalty.v1 import loyalty_pb2 as pb

    raw = data.raw_airline_pairs(min(mode.pairs, 2_000)) + data.raw_edge_pairs()
    for (customer, event), message in zip(raw, messages.evaluate_requests(raw), strict=True):
        parsed = json_format.ParseDict(data.request_mapping(customer, event), pb.EvaluateRequest())
        assert not parsed.event.kind  # the kind travels as the details object
        parsed.event.kind = event["kind"]
        assert parsed == message, (customer, event)


@pytest.mark.parametrize(("change", "error"), [
    ({"time": "2026-03-01T09:30:00"}, "needs a time zone"),
    ({"time": "2026-02-30T09:30:00Z"}, "day is out of range"),
    ({"distanceMiles": "-5"}, "must not be negative"),
    ({"distanceMiles": "12.5"}, "invalid literal for int"),
], ids=["time without a zone", "a day that does not exist", "negative distance",
        "fractional distance"])
def test_plain_refuses_what_it_cannot_read(change: dict[str, str], error: str) -> None:
    """The plain baseline parses what it reads and refuses what does not parse: not a strawman's
    string compare, not a cheat that trusts its input."""
    request = data.request_mapping({"id": "C1", "member_since": "2012-02-29"},
                                   {"id": "E1", "kind": "flight", "time": "2026-03-01T09:30:00Z",
                                    "origin": "JFK", "destination": "LHR", "fare": "420.00"})
    if "time" in change:
        request["event"]["time"] = change["time"]
    else:
        request["event"]["flight"].update(change)
    with pytest.raises(ValueError, match=error):
        plain.earn_miles(request)


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
