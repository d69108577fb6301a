"""Preparing policies: parse, check, generate and compile one policy, and a set of 1,000.

Stage by stage for the airline policy (pytest-benchmark), then the whole
pipeline (``dsl.load_directory``) for a generated set of 1,000 varied policies:
warm in this process, and cold in a fresh process, where its resident memory is
measured too (:mod:`benchmarks.probe`). Targets from the language issue: the
set under 2 s and under 100 MB resident. They are reported, not gated: CI gates
only ratios measured in the same run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import data
from benchmarks.conftest import Mode, Results

GROUP_ONE = "prepare: one policy"
GROUP_SET = "prepare: 1,000 policies"
FILE = "airline/earn_miles.policy"


def probe(directory: Path, *extra: str, cache_dir: str = "off") -> dict[str, Any]:
    """Load ``directory`` once in a fresh process (:mod:`benchmarks.probe`); its JSON report.

    ``cache_dir`` is the compiled-policy disk cache's directory (dsl.artifacts): "off" by
    default, so a cold load is cold whatever earlier runs left on disk.
    """
    import os

    env = {**os.environ, "LOYALTY_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-m", "benchmarks.probe", str(directory), *extra],
                         cwd=data.ROOT, capture_output=True, text=True, timeout=1800, check=True,
                         env=env)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def airline_source() -> str:
    """The bundled airline policy's text."""
    return data.airline_policy_source()


@pytest.fixture(scope="module")
def parsed(airline_source: str) -> Any:
    """The airline policy's AST."""
    from dsl.front.parser import parse

    return parse(airline_source, FILE)[0]


@pytest.fixture(scope="module")
def checked(parsed: Any, schema: Any) -> Any:
    """The airline policy's check result."""
    from dsl.analysis.checker import check_policy

    return check_policy(schema, parsed)


@pytest.fixture(scope="module")
def generated(parsed: Any, checked: Any, schema: Any) -> Any:
    """The airline policy's generated Python."""
    from dsl.backend.codegen import generate

    return generate(parsed, checked, schema)


@pytest.mark.benchmark(group=GROUP_ONE)
def test_parse(benchmark: Any, airline_source: str, mode: Mode) -> None:
    """Lark parse and AST building of the airline policy."""
    from dsl.front.parser import parse

    benchmark.pedantic(parse, (airline_source, FILE), rounds=mode.bench_rounds * 10,
                       warmup_rounds=2)


@pytest.mark.benchmark(group=GROUP_ONE)
def test_check(benchmark: Any, parsed: Any, schema: Any, mode: Mode) -> None:
    """Name and type checks of the parsed airline policy against the schema."""
    from dsl.analysis.checker import check_policy

    benchmark.pedantic(check_policy, (schema, parsed), rounds=mode.bench_rounds * 10,
                       warmup_rounds=2)


@pytest.mark.benchmark(group=GROUP_ONE)
def test_generate(benchmark: Any, parsed: Any, checked: Any, schema: Any, mode: Mode) -> None:
    """Code generation of the fast variant (the explain variant is generated on first use)."""
    from dsl.backend.codegen import generate

    benchmark.pedantic(generate, (parsed, checked, schema), rounds=mode.bench_rounds * 10,
                       warmup_rounds=2)


@pytest.mark.benchmark(group=GROUP_ONE)
def test_compile(benchmark: Any, generated: Any, mode: Mode) -> None:
    """Verifying the generated code against the allow-list, ``compile()`` and ``exec``."""
    from dsl.backend.compiler import compile_module

    benchmark.pedantic(compile_module, (generated.source, "<policy earn_miles_by_distance>"),
                       rounds=mode.bench_rounds * 10, warmup_rounds=2)


@pytest.mark.benchmark(group=GROUP_ONE)
def test_load_source(benchmark: Any, airline_source: str, schema: Any, mode: Mode) -> None:
    """The whole pipeline for one policy: ``dsl.load_source`` (all stages, the set, its index).

    ``dsl`` keeps already compiled files (keyed by name and text) for fast reloads;
    every round here names its file afresh, so every round compiles.
    """
    import itertools

    import dsl

    names = (f"airline/earn_miles_{i}.policy" for i in itertools.count())

    def fresh() -> tuple[tuple[str], dict[str, Any]]:
        return (airline_source,), {"file": next(names), "schema": schema}

    benchmark.pedantic(dsl.load_source, setup=fresh, rounds=mode.bench_rounds * 10,
                       warmup_rounds=2)


@pytest.fixture(scope="module")
def set_dir(policy_dirs: Any, mode: Mode) -> Path:
    """A directory of 1,000 varied generated policies (with the bundled schema)."""
    return policy_dirs("compile_set", data.compile_set(mode.compile_set))


@pytest.mark.benchmark(group=GROUP_SET)
def test_load_directory_1000(benchmark: Any, set_dir: Path, mode: Mode, tmp_path: Path) -> None:
    """``dsl.load_directory`` on 1,000 varied policies, in this (warm) process, compiling all.

    Each round loads a fresh copy of the directory (other paths), so that ``dsl``'s
    cache of compiled files does not answer.
    """
    import itertools
    import shutil

    import dsl

    if mode.name == "quick":
        pytest.skip("full mode only: the quick run loads this set once, cold (the next test)")
    copies = (tmp_path / f"copy{i}" for i in itertools.count())

    def fresh() -> tuple[tuple[Path], dict[str, Any]]:
        target = next(copies)
        shutil.copytree(set_dir, target)
        return (target,), {}

    benchmark.extra_info["policies"] = mode.compile_set
    policy_set = benchmark.pedantic(dsl.load_directory, setup=fresh, rounds=mode.compile_rounds)
    assert len(policy_set.policies) == mode.compile_set


@pytest.mark.benchmark(group=GROUP_SET)
def test_reload_unchanged_1000(benchmark: Any, set_dir: Path, mode: Mode) -> None:
    """Reloading the same 1,000 unchanged files: what the service's hot reload pays, cache warm."""
    import dsl

    dsl.load_directory(set_dir)
    benchmark.extra_info["policies"] = mode.compile_set
    benchmark.pedantic(dsl.load_directory, (set_dir,), rounds=mode.compile_rounds * 3)


def test_load_directory_1000_cold(set_dir: Path, mode: Mode, results: Results) -> None:
    """A cold load of the 1,000-policy set in a fresh process: time and resident memory."""
    report = probe(set_dir)
    report["target_s"], report["target_peak_rss_mib"] = 2.0, 100.0
    results.figure("prepare_1000_cold", report)
    results.figure("prepare_1000_cold_s", report["load_s"])
    results.figure("prepare_1000_peak_rss_mib", report["peak_rss_mib"])
    results.figure("prepare_1000_cold_cpu_s", report["load_cpu_s"])
    print(f"\nprepare 1,000 policies, cold, no disk cache: {report['load_cpu_s']:.2f} s CPU "
          f"(target < 2 s: {'met' if report['load_cpu_s'] < 2 else 'NOT met'})")


def test_load_directory_1000_from_disk_cache(set_dir: Path, tmp_path: Path, results: Results) -> None:
    """A fresh process loading the 1,000-policy set with the disk cache filled by another
    process (a restart, or a new worker): CPU time against the issue's target of 1 s.
    The code objects it reads still pass the bytecode verifier."""
    directory = tmp_path / "compiled"
    directory.mkdir(mode=0o700)
    probe(set_dir, cache_dir=str(directory))  # fills the cache
    report = probe(set_dir, cache_dir=str(directory))
    results.figure("prepare_1000_disk_cache", report)
    results.figure("prepare_1000_disk_cache_cpu_s", report["load_cpu_s"])
    print(f"\nprepare 1,000 policies from the disk cache: {report['load_cpu_s']:.2f} s CPU "
          f"(target < 1 s: {'met' if report['load_cpu_s'] < 1 else 'NOT met'})")
    # A regression guard. Measured 0.7-0.8 s when the cache landed; 1.40-1.52 s on the evening
    # of 7 December on a loaded machine (the same code measured 0.77-1.12 s at load 5 the next
    # night), of which the cyclic collector's passes over the growing heap were about 0.4 s:
    # builds now pause it, 0.49-0.81 s at load 5 (interleaved with the code before).
    assert report["load_cpu_s"] < 1.5, report


def test_stage_split_for_a_set(set_dir: Path, schema: Any, mode: Mode, results: Results) -> None:
    """Where a set's preparation time goes: each stage timed over the first policies of the set."""
    import time

    from dsl.analysis.checker import check_policy
    from dsl.backend.codegen import generate
    from dsl.backend.compiler import compile_module
    from dsl.front.parser import parse

    count = 200 if mode.name == "quick" else mode.compile_set
    sources = [(f, t) for f, t in sorted(data.compile_set(mode.compile_set).items())][:count]
    t0 = time.perf_counter()
    policies = [p for f, t in sources for p in parse(t, f)]
    t1 = time.perf_counter()
    checks = [check_policy(schema, p) for p in policies]
    t2 = time.perf_counter()
    gens = [generate(p, c, schema) for p, c in zip(policies, checks, strict=True)]
    t3 = time.perf_counter()
    for p, g in zip(policies, gens, strict=True):
        compile_module(g.source, f"<policy {p.name}>")
    t4 = time.perf_counter()
    results.figure("prepare_stage_split", {
        "policies": count,
        "parse_ms_per_policy": (t1 - t0) / count * 1e3,
        "check_ms_per_policy": (t2 - t1) / count * 1e3,
        "generate_ms_per_policy": (t3 - t2) / count * 1e3,
        "compile_ms_per_policy": (t4 - t3) / count * 1e3,
        "generated_lines_per_policy": sum(g.source.count("\n") for g in gens) / count,
    })
