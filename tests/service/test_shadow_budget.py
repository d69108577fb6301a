"""A slow shadow cannot slow the live path beyond its documented bound (issue 17, item 5).

A candidate set with a deliberately costly policy (the local hour summed over every item, twenty
times: about 300 ms a decision at 10,000 items before this work) shadows every live decision
(``--shadow-sample 1``). Two servers run side by side in the same test, one with that shadow
and one without, and the same sequence of calls alternates between them, so both see the
same machine. The bound is generous and documented in docs/reliability.md: it is an
availability check, not a speed claim.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

import dsl
from service.client import purchase
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from tests.service.conftest import POLICIES, gold_customer
from tests.service.test_shadow import metric

#: Items per live purchase: enough for the shadow policy to cost several times its budget.
ITEMS = 2_000
#: Calls per server in a round (alternating), and rounds at most. The test machine is shared
#: (load averages of 7-11 on 2 cores were seen), and one neighbour's burst decides a p99 of
#: 200 calls: the bound must hold in one of the rounds. A shadow that costs the live path
#: systematically fails every round (the code before the budget: 69.4 / 17.5 and 91.3 / 28.5 ms).
CALLS = 200
ROUNDS = 3
#: The bound: live p99 with the shadow at most this factor of p99 without it, plus this slack.
P99_FACTOR = 2.0
P99_SLACK_MS = 10.0

#: Costly candidates, costliest first, each in 20 policies of one rule: the first the checker
#: accepts is used (the cost bound may refuse the first; the second stays within it while
#: still far over the shadow's budget at 2,000 items).
COSTLY_RULES = [
    'sum(hour(local(event.time, "Pacific/Kiritimati")) for i in event.items) > {k}',
    "sum(i.amount * i.quantity for i in event.items where i.category != \"x{k}\") > {k}",
]


def _costly_candidate(tmp_path: Path) -> Path:
    for condition in COSTLY_RULES:
        target = tmp_path / "candidate"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("*.test.toml"))
        for k in range(20):  # one rule a policy: each policy stays within the checker's cost bound
            (target / "retail" / f"slow_shadow_{k}.policy").write_text(
                f"policy slow_shadow_{k}\n  version 1\n  effective from 2026-01-01\n  on purchase\n"
                '  "A deliberately costly candidate."\n\n'
                f'  rule r when {condition.format(k=k)}: tag "r{k}"\n')
        try:
            dsl.load_directory(target)
        except dsl.PolicyError:
            continue
        return target
    raise AssertionError("no costly candidate is accepted by the checker")


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@pytest.mark.slow
def test_a_slow_shadow_keeps_live_p99_within_its_bound(spawn, tmp_path):
    """With a shadow costing far over its 20 ms budget on every decision, live p99 stays within
    2x (+10 ms) of a server without a shadow, every call answers, and the shadow's decisions
    are dropped over budget and counted (loyalty_shadow_failed{reason="budget"})."""
    candidate = _costly_candidate(tmp_path)
    shadowed = spawn("--no-watch", "--shadow", str(candidate), "--shadow-sample", "1",
                     "--metrics-port", "0")
    plain = spawn("--no-watch")
    items = [{"sku": f"s{i}", "category": "fresh", "amount": "1.00", "quantity": 1} for i in range(ITEMS)]
    req = pb.EvaluateRequest(customer=gold_customer(), event=purchase(
        "e-slow", time="2026-03-01T10:00:00Z", amount=f"{ITEMS}.00", items=items))
    rounds: list[tuple[float, float]] = []
    with shadowed.channel() as a, plain.channel() as b:
        stubs = {"shadow": pb_grpc.LoyaltyRulesStub(a), "plain": pb_grpc.LoyaltyRulesStub(b)}
        for stub in stubs.values():  # warm-up, not measured
            for _ in range(5):
                stub.Evaluate(req, timeout=30)
        for _ in range(ROUNDS):
            times: dict[str, list[float]] = {"shadow": [], "plain": []}
            for _ in range(CALLS):
                for name, stub in stubs.items():
                    started = time.perf_counter()
                    stub.Evaluate(req, timeout=5)  # every call must answer
                    times[name].append(time.perf_counter() - started)
            rounds.append((_p99(times["shadow"]) * 1000, _p99(times["plain"]) * 1000))
            if _within(*rounds[-1]):
                break
    over_budget = metric(shadowed, "loyalty_shadow_failed_total", reason="budget")
    shown = ", ".join(f"{w:.1f} / {wo:.1f}" for w, wo in rounds)
    print(f"\nlive p99 with the slow shadow / without, by round: {shown} ms ({CALLS} calls each, "
          f"{ITEMS} items); {over_budget:.0f} shadow decisions over budget")
    assert any(_within(w, wo) for w, wo in rounds), shown
    assert over_budget >= 1


def _within(with_shadow: float, without: float) -> bool:
    return with_shadow <= P99_FACTOR * without + P99_SLACK_MS
