"""Scaling: evaluation time against rules in one policy and policies loaded; preparation against set size.

- rules in one applying flight policy (1 to 1,000): evaluation should grow linearly
  with the rules that run, and nothing else;
- policies loaded (1 to 10,000; all but the airline policy never apply to the
  event): evaluation should not grow at all, since the set is indexed by event
  kind and effective window;
- preparation (parse, check, compile) time and resident memory against the
  number of policies, each size loaded cold in a fresh process.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import data
from benchmarks.conftest import Mode, Results
from benchmarks.test_parse_check_compile import probe
from benchmarks.timing import loop


def scaling_rounds(mode: Mode) -> int:
    """Rounds per sweep point: each round is short, so take enough to find a quiet one."""
    return max(15, mode.bench_rounds)


@pytest.mark.benchmark(group="scaling: rules in one policy")
def test_rules_in_one_policy(benchmark: Any, rule_count: int, schema: Any,
                             pairs: list[data.Pair], mode: Mode, results: Results) -> None:
    """Time per evaluation of one applying policy with ``rule_count`` rules."""
    import time

    import dsl

    t0 = time.perf_counter()
    policy_set = dsl.load_source(data.rules_policy(rule_count), file="many_rules.policy",
                                 schema=schema)
    results.figures.setdefault("rules_prepare_s", {})[str(rule_count)] = time.perf_counter() - t0
    subset = pairs[: mode.scaling_pairs]
    benchmark.extra_info.update(evaluations=len(subset), rules=rule_count)
    benchmark.pedantic(loop(policy_set.evaluate, subset), rounds=scaling_rounds(mode),
                       warmup_rounds=1)


@pytest.mark.benchmark(group="scaling: policies loaded")
def test_policies_loaded(benchmark: Any, set_size: int, policy_dirs: Any, airline_set: Any,
                         pairs: list[data.Pair], mode: Mode) -> None:
    """Time per evaluation with the airline policy among ``set_size`` loaded policies."""
    import dsl

    policy_set = dsl.load_directory(policy_dirs(f"loaded{set_size}", data.loaded_set(set_size)))
    assert len(policy_set.policies) == set_size
    subset = pairs[: mode.scaling_pairs]
    # The padding never applies: the decisions are the airline policy's alone.
    for customer, event in subset[:200]:
        got = policy_set.evaluate(customer, event)
        want = airline_set.evaluate(customer, event)
        assert (got.awards, got.fired, got.policies) == (want.awards, want.fired, want.policies)
    benchmark.extra_info.update(evaluations=len(subset), policies=set_size)
    benchmark.pedantic(loop(policy_set.evaluate, subset), rounds=scaling_rounds(mode),
                       warmup_rounds=1)


def test_prepare_time_and_memory(compile_size: int, policy_dirs: Any, results: Results) -> None:
    """Cold preparation time and resident memory of a set of ``compile_size`` varied policies."""
    report = probe(policy_dirs(f"compile{compile_size}", data.compile_set(compile_size)))
    results.figures.setdefault("prepare_scaling", {})[str(compile_size)] = report
