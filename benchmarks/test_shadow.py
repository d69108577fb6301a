"""What shadow traffic (``loyalty serve --shadow DIR``) costs the live path at 1,000 calls/s.

Two ``loyalty serve`` processes on the bundled policies run side by side: one without a
shadow (the baseline), one with a candidate set as its shadow at ``--shadow-sample 1``,
the most it can be asked to do. The candidate pays a larger business-cabin bonus, so
some decisions change and the comparison, the counters and the rate-limited log line all
run. Open-loop runs at 1,000 calls/s alternate between the two, round by round, with the
same request bytes; the figures are p50/p99 latency of each (all rounds pooled), the
median over rounds of the p50 ratio, and the server CPU per call of each.

Bounded: a fixed number of rounds of fixed length, each with a deadline; both server
processes stop when the module ends.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from benchmarks import data, load
from benchmarks.conftest import Mode, Results
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc

#: The offered load of the issue's target.
RATE = 1000
#: Open-loop rounds per arm, and their length in seconds.
ROUNDS = {"quick": 4, "full": 8}
ROUND_SECONDS = {"quick": 2.0, "full": 10.0}


@pytest.fixture(scope="module")
def unary_payloads(mode: Mode) -> list[bytes]:
    """The benchmark's Evaluate requests, serialised once before any timing."""
    from benchmarks import messages

    return [r.SerializeToString() for r in messages.evaluate_requests(data.raw_airline_pairs(mode.pairs))]


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled policies with a 60% business-cabin bonus instead of 50%."""
    target = tmp_path_factory.mktemp("shadow") / "candidate"
    shutil.copytree(data.POLICIES_DIR, target, ignore=shutil.ignore_patterns("*.test.toml"))
    policy = target / "airline" / "earn_miles.policy"
    text = policy.read_text()
    old = '"business": award 50% of base miles'
    assert old in text
    policy.write_text(text.replace(old, '"business": award 60% of base miles'))
    return target


def test_shadow_cost_at_1000_calls_per_s(candidate: Path, unary_payloads: list[bytes], mode: Mode,
                                         results: Results) -> None:
    """Live latency and server CPU at 1,000 calls/s with a full-sample shadow against none."""
    rounds = ROUNDS.get(mode.name, ROUNDS["quick"])
    seconds = ROUND_SECONDS.get(mode.name, ROUND_SECONDS["quick"])
    # An open-loop client keeps every late call in flight on its one connection: past the
    # default 100 streams a stalled server (a busy machine) refuses them (RST_STREAM
    # REFUSED_STREAM), a failure that is no part of this comparison.
    both = ("--max-concurrent-streams", "5000")
    shadow_args = (*both, "--shadow", str(candidate), "--shadow-sample", "1")
    with load.ServerProcess("cli", data.POLICIES_DIR, args=both) as plain, \
            load.ServerProcess("cli", data.POLICIES_DIR, args=shadow_args) as shadowed:
        servers = {"without": plain, "with": shadowed}
        runs: dict[str, list[load.Latency]] = {"without": [], "with": []}
        cpu = {"without": 0.0, "with": 0.0}
        order = ["without", "with"]
        for _ in range(rounds):
            for arm in order:
                server = servers[arm]
                before = server.cpu_seconds()
                runs[arm].append(load.open_loop(server.address, unary_payloads, RATE, seconds))
                cpu[arm] += server.cpu_seconds() - before
            order.reverse()
        time.sleep(1.0)  # let the shadow thread finish what is queued
        with grpc.insecure_channel(shadowed.address) as channel:
            listed = pb_grpc.LoyaltyRulesStub(channel).ListPolicies(pb.ListPoliciesRequest(), timeout=10)
        status = listed.shadow

    out: dict[str, Any] = {}
    for arm, arm_runs in runs.items():
        pooled = load.Latency(RATE, sum(r.calls for r in arm_runs), sum(r.completed for r in arm_runs),
                              sum(r.errors for r in arm_runs), sum(r.seconds for r in arm_runs),
                              [x for r in arm_runs for x in r.latencies_ms])
        out[arm] = pooled.summary() | {
            "completed": pooled.completed,
            "cpu_us_per_call": cpu[arm] / max(pooled.completed, 1) * 1e6,
            "round_p50_ms": [r.percentile(50) for r in arm_runs],
        }
    out["p50_ratio"] = out["with"]["p50_ms"] / out["without"]["p50_ms"]
    out["p99_ratio"] = out["with"]["p99_ms"] / out["without"]["p99_ms"]
    out["median_round_p50_ratio"] = statistics.median(
        w / o for w, o in zip(out["with"]["round_p50_ms"], out["without"]["round_p50_ms"], strict=True))
    out["cpu_ratio"] = out["with"]["cpu_us_per_call"] / out["without"]["cpu_us_per_call"]
    out["shadow"] = {"compared": status.decisions_compared, "changed": status.decisions_changed,
                     "dropped": status.decisions_dropped}
    results.figure("shadow_cost_1000_per_s", out)
    for arm in ("without", "with"):
        s = out[arm]
        print(f"\n{arm:>7} shadow: p50 {s['p50_ms']:.3f} ms, p99 {s['p99_ms']:.3f} ms, "
              f"mean {s['mean_ms']:.3f} ms, {s['cpu_us_per_call']:.0f} us CPU/call, "
              f"{s['achieved_per_s']:.0f} calls/s, errors {s['errors']}")
    print(f"ratios: p50 {out['p50_ratio']:.3f}, p99 {out['p99_ratio']:.3f}, "
          f"median round p50 {out['median_round_p50_ratio']:.3f}, CPU {out['cpu_ratio']:.3f}; "
          f"shadow compared {status.decisions_compared}, changed {status.decisions_changed}, "
          f"dropped {status.decisions_dropped}")
    # The shadow really ran on every call its server answered.
    assert status.decisions_compared + status.decisions_dropped >= out["with"]["completed"]
    assert status.decisions_changed > 0


def test_shadow_cost_per_decision(candidate: Path, unary_payloads: list[bytes], mode: Mode,
                                  results: Results) -> None:
    """In one process, without gRPC: the CPU the request path pays per sampled decision (the
    draw and the offer to the queue) and the CPU the shadow thread spends per decision
    (evaluate, compare, count), each beside the live evaluation of the same decisions in the
    same run. CPU time of the measuring thread, not wall time: the shadow thread yields the
    GIL (``time.sleep(0)``) before each decision, which on a busy machine also yields the core
    for a while, and that wait costs nobody anything."""
    from prometheus_client import CollectorRegistry

    from dsl.library.runtime import use_evaluation_context
    from service.metrics import ShadowMetrics
    from service.shadow import Shadow
    from service.store import PolicyStore

    use_evaluation_context()
    live_store, shadow_store = PolicyStore(data.POLICIES_DIR), PolicyStore(candidate)
    assert live_store.load() and shadow_store.load()
    live = live_store.current
    assert live is not None
    requests = [pb.EvaluateRequest.FromString(p) for p in unary_payloads[:2000]]
    inputs = [live.converter.inputs(r.customer, r.event) for r in requests]
    evaluate = live.policy_set.evaluate
    rounds = 5 if mode.name == "quick" else 15

    def timed(run: Any) -> float:
        best = float("inf")
        for _ in range(rounds):
            started = time.thread_time()
            run()
            best = min(best, time.thread_time() - started)
        return best / len(inputs) * 1e6

    decisions = [evaluate(c, e) for c, e in inputs]
    samples = [(c, e, r.customer, r.event, d)
               for (c, e), r, d in zip(inputs, requests, decisions, strict=True)]
    live_us = timed(lambda: [evaluate(c, e) for c, e in inputs])
    shadow = Shadow(shadow_store, sample=1.0, metrics=ShadowMetrics(CollectorRegistry()),
                    backlog=len(samples) * rounds * 2, log_per_second=0)

    def hook() -> None:  # what the servicer adds to a unary call: draw, then offer
        for s in samples:
            if shadow.sampled():
                shadow.offer(live, [s])

    hook_us = timed(hook)  # the thread is not started: the queue only fills
    compare_us = timed(lambda: shadow.compare(live, samples))
    out = {"live_evaluate_us": live_us, "request_path_us": hook_us, "shadow_thread_us": compare_us,
           "request_path_ratio": hook_us / live_us, "shadow_thread_ratio": compare_us / live_us}
    results.figure("shadow_cost_per_decision", out)
    print(f"\nCPU per decision: live evaluate {live_us:.2f} us, request-path hook {hook_us:.2f} us, "
          f"shadow thread (evaluate + compare + count) {compare_us:.2f} us")
    assert shadow.compared == len(samples) * rounds
