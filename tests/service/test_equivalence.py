"""Every RPC answers exactly what ``PolicySet.evaluate`` decides for the same input.

The expected decisions take the documented Python path, independent of the
service's converter and encoder: the reference ``prepare_*`` (tests/dsl/input/reference.py)
on the loose mappings, then
``PolicySet.evaluate``, then :func:`service.wire.decision_message` (the
message built field by field). The service gets the same pairs as protobuf
messages, over a real channel: batch, unary and stream.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

import dsl
from benchmarks import data, messages
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.wire import decision_message
from tests.dsl.input.reference import prepare_customer, prepare_event
from tests.service.conftest import POLICIES


@pytest.fixture(scope="module")
def pairs() -> list[data.Pair]:
    """Every event kind, customers that recur, and customers that share an id but not their data."""
    out = data.raw_mixed_pairs(1200)
    for customer, event in out[:150]:
        changed = copy.deepcopy(customer)
        changed["tier"] = "75K" if customer.get("tier") != "75K" else "MVP"
        changed.setdefault("lifetime", {})["miles"] = 7
        out.append((changed, event))  # the same id as an earlier item, other data
    return out


@pytest.fixture(scope="module")
def expected(pairs: list[data.Pair]) -> dict[bool, list[pb.Decision]]:
    """The policy set's decisions (without and with explain), as messages built field by field."""
    policy_set = dsl.load_directory(POLICIES)
    schema = policy_set.schema
    prepared = [(prepare_customer(schema, c), prepare_event(schema, e)) for c, e in pairs]
    return {explain: [decision_message(policy_set.evaluate(c, e, explain)) for c, e in prepared]
            for explain in (False, True)}


@pytest.fixture(scope="module")
def requests(pairs: list[data.Pair]) -> list[pb.EvaluateRequest]:
    return messages.evaluate_requests(pairs)


def _differences(got: list[pb.Decision], want: list[pb.Decision]) -> list[str]:
    assert len(got) == len(want)
    return [f"item {i}:\n{g}\nexpected:\n{w}" for i, (g, w) in enumerate(zip(got, want, strict=True))
            if g != w]


@pytest.mark.parametrize("explain", [False, True])
def test_batch_decisions_are_the_policy_sets(stub: Any, requests: list[pb.EvaluateRequest],
                                             expected: dict[bool, list[pb.Decision]], explain: bool):
    """EvaluateBatch, item by item: all pairs in one batch (the test server takes 2,000)."""
    got: list[pb.Decision] = []
    for start in range(0, len(requests), 2000):
        items = [pb.BatchItem(correlation_id=str(start + k), customer=r.customer, event=r.event)
                 for k, r in enumerate(requests[start:start + 2000])]
        response = stub.EvaluateBatch(pb.EvaluateBatchRequest(items=items, explain=explain), timeout=30)
        assert response.failed == 0
        assert [r.correlation_id for r in response.results] == [i.correlation_id for i in items]
        got += [r.decision for r in response.results]
    bad = _differences(got, expected[explain])
    assert not bad, f"{len(bad)} differ; first: {bad[0]}"


def test_unary_decisions_are_the_policy_sets(stub: Any, requests: list[pb.EvaluateRequest],
                                             expected: dict[bool, list[pb.Decision]]):
    """Evaluate, for every fourth pair (and with explain for every twentieth)."""
    for i in range(0, len(requests), 4):
        explain = i % 20 == 0
        request = pb.EvaluateRequest(customer=requests[i].customer, event=requests[i].event,
                                     explain=explain)
        assert stub.Evaluate(request, timeout=5).decision == expected[explain][i], f"item {i}"


def test_stream_decisions_are_the_policy_sets(stub: Any, requests: list[pb.EvaluateRequest],
                                              expected: dict[bool, list[pb.Decision]]):
    """EvaluateStream, in order, each response with its correlation id."""
    sent = [pb.EvaluateStreamRequest(correlation_id=str(i), customer=r.customer, event=r.event,
                                     explain=i % 7 == 0)
            for i, r in enumerate(requests[:600])]
    responses = list(stub.EvaluateStream(iter(sent), timeout=30))
    assert [r.correlation_id for r in responses] == [s.correlation_id for s in sent]
    bad = _differences([r.decision for r in responses],
                       [expected[s.explain][i] for i, s in enumerate(sent)])
    assert not bad, f"{len(bad)} differ; first: {bad[0]}"
