"""Benchmark configuration: quick and full modes, shared data, and the run's extra results.

``--quick`` (or ``LOYALTY_BENCH_QUICK=1``) selects the CI mode: the same
benchmarks and gates with fewer rounds and smaller sweeps, a few minutes on two
shared cores. Without it the full mode runs (more rounds, sweeps up to 10,000
policies and rules, longer service loads).

Beside pytest-benchmark's own figures, tests record gates, memory, service and
profile results in :class:`Results`; they are printed at the end of the run and
written into the pytest-benchmark JSON under the ``"loyalty"`` key, which is
what ``benchmarks/report.py`` reads.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchmarks import data
from benchmarks.timing import Gate

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"


@dataclass(frozen=True)
class Mode:
    """How much a run measures. Every loop in the suite is bounded by these numbers."""

    name: str
    pairs: int
    bench_rounds: int
    gate_rounds: int
    interpreter_pairs: int
    interpreter_rounds: int
    rule_counts: tuple[int, ...]
    set_sizes: tuple[int, ...]
    compile_sizes: tuple[int, ...]
    compile_set: int
    compile_rounds: int
    unary_calls: int
    service_rounds: int
    batch_sizes: tuple[int, ...]
    batch_items: int
    stream_messages: int
    offered_loads: tuple[int, ...]
    load_seconds: float
    soak_seconds: float
    profile_pairs: int
    scaling_pairs: int


QUICK = Mode(
    name="quick", pairs=10_000, bench_rounds=5, gate_rounds=15,
    interpreter_pairs=1_000, interpreter_rounds=5,
    rule_counts=(1, 10, 100, 1000), set_sizes=(1, 10, 100, 1000),
    compile_sizes=(1, 10, 100), compile_set=1000, compile_rounds=1,
    unary_calls=500, service_rounds=21, batch_sizes=(10, 100, 1000, 10_000), batch_items=20_000,
    stream_messages=5_000, offered_loads=(1000,), load_seconds=2.0, soak_seconds=5.0,
    profile_pairs=2_000, scaling_pairs=1_000,
)
FULL = Mode(
    name="full", pairs=10_000, bench_rounds=20, gate_rounds=41,
    interpreter_pairs=10_000, interpreter_rounds=7,
    rule_counts=(1, 3, 10, 30, 100, 300, 1000), set_sizes=(1, 10, 100, 1000, 3000, 10_000),
    compile_sizes=(1, 10, 100, 1000, 3000, 10_000), compile_set=1000, compile_rounds=3,
    unary_calls=2_000, service_rounds=41, batch_sizes=(10, 30, 100, 300, 1000, 3000, 10_000),
    batch_items=100_000, stream_messages=30_000, offered_loads=(250, 500, 1000, 2000),
    load_seconds=10.0, soak_seconds=120.0, profile_pairs=10_000, scaling_pairs=5_000,
)


@dataclass
class Results:
    """What a run measured beyond pytest-benchmark's timings; serialised into its JSON."""

    mode: str
    started: float = field(default_factory=time.time)
    load_before: tuple[float, float, float] = field(default_factory=os.getloadavg)
    gates: list[Gate] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def gate(self, gate: Gate) -> Gate:
        """Record a gate; returns it, so a test can ``assert results.gate(g).passed``."""
        self.gates = [g for g in self.gates if g.name != gate.name] + [gate]
        return gate

    def figure(self, key: str, value: Any) -> None:
        """Record a figure (any JSON-able value) under ``key``."""
        self.figures[key] = value

    def to_json(self) -> dict[str, Any]:
        """The ``"loyalty"`` section of the run's JSON."""
        return {
            "mode": self.mode,
            "started": self.started,
            "seconds": time.time() - self.started,
            "load_before": list(self.load_before),
            "load_after": list(os.getloadavg()),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "processor": _cpu_model(),
            "gates": [g.to_json() for g in self.gates],
            "figures": self.figures,
        }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# -- pytest hooks --------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("loyalty benchmarks")
    group.addoption("--quick", action="store_true", default=False,
                    help="CI mode: fewer rounds and smaller sweeps (also LOYALTY_BENCH_QUICK=1)")
    group.addoption("--full", action="store_true", default=False,
                    help="full mode (the default): more rounds, sweeps up to 10,000")


def pytest_configure(config: pytest.Config) -> None:
    quick = config.getoption("--quick", False) or os.environ.get("LOYALTY_BENCH_QUICK") == "1"
    if config.getoption("--full", False):
        quick = False
    mode = QUICK if quick else FULL
    config.stash[_MODE] = mode
    # Evaluations run in threads that stay in the evaluation's decimal context, as the
    # service's RPC threads do; test_evaluate.py reports what a swap per call costs.
    from dsl.library.runtime import use_evaluation_context

    use_evaluation_context()
    config.stash[_RESULTS] = Results(mode.name)
    option = config.option
    if not hasattr(option, "benchmark_storage"):
        return  # pytest-benchmark is not active (-p no:benchmark)
    # Every run leaves its JSON (benchmarks/results/quick.json or full.json, which the report
    # reads) and a numbered copy in benchmarks/results/history for --benchmark-compare.
    if option.benchmark_storage == "file://./.benchmarks":
        option.benchmark_storage = f"file://{RESULTS_DIR / 'history'}"
    if option.benchmark_json is None:
        RESULTS_DIR.mkdir(exist_ok=True)
        option.benchmark_json = RESULTS_DIR / f"{mode.name}.json"
    if not option.benchmark_save and not option.benchmark_autosave:
        from pytest_benchmark.utils import get_tag

        option.benchmark_autosave = get_tag()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The full mode's sweeps and service loads outlast the project's 300 s default.
    if config.stash[_MODE].name == "full":
        for item in items:
            item.add_marker(pytest.mark.timeout(3600))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Sweeps are parametrised from the mode, so quick and full runs differ only in size.
    mode = metafunc.config.stash[_MODE]
    sweeps = {"rule_count": ("rules", mode.rule_counts), "set_size": ("policies", mode.set_sizes),
              "compile_size": ("policies", mode.compile_sizes),
              "batch_size": ("items", mode.batch_sizes), "offered_load": ("per_s", mode.offered_loads)}
    for name, (unit, values) in sweeps.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, values, ids=[f"{unit}={v}" for v in values])


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict) -> None:
    output_json["loyalty"] = config.stash[_RESULTS].to_json()
    output_json["loyalty"]["settings"] = asdict(config.stash[_MODE])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash[_RESULTS]
    tr = terminalreporter
    tr.section(f"loyalty benchmarks ({results.mode} mode)")
    load = os.getloadavg()
    tr.write_line(f"load average before {results.load_before[0]:.2f}, after {load[0]:.2f} "
                  f"on {os.cpu_count()} CPUs")
    for key, value in sorted(results.figures.items()):
        if isinstance(value, int | float | str):
            tr.write_line(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    for gate in results.gates:
        tr.write_line(gate.line(), red=not gate.passed, green=gate.passed)


_MODE = pytest.StashKey[Mode]()
_RESULTS = pytest.StashKey[Results]()


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mode(pytestconfig: pytest.Config) -> Mode:
    """The run's :class:`Mode` (quick or full)."""
    return pytestconfig.stash[_MODE]


@pytest.fixture(scope="session")
def results(pytestconfig: pytest.Config) -> Results:
    """The run's :class:`Results`, for gates and figures."""
    return pytestconfig.stash[_RESULTS]


@pytest.fixture(scope="session")
def schema() -> Any:
    """The bundled schema (``policies/schema.toml`` over ``dsl/schema/schema.toml``)."""
    from dsl.schema.schema import Schema

    return Schema.for_directory(data.POLICIES_DIR)


@pytest.fixture(scope="session")
def pairs(schema: Any, mode: Mode, results: Results) -> list[data.Pair]:
    """The benchmark's prepared (customer, flight event) pairs, 10,000 of them."""
    prepared = data.airline_pairs(schema, mode.pairs)
    results.figure("data", data.describe(prepared))
    return prepared


@pytest.fixture(scope="session")
def plain_requests(mode: Mode) -> list[dict[str, Any]]:
    """The same pairs, in order, as request mappings (the proto3 JSON form a backend holds)."""
    return data.airline_requests(mode.pairs)


@pytest.fixture(scope="session")
def policy_dirs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A function writing a policy directory (with the bundled schema) once per name."""
    made: dict[str, Path] = {}

    def make(name: str, files: dict[str, str]) -> Path:
        if name not in made:
            made[name] = data.write_policy_dir(tmp_path_factory.mktemp(name), files)
        return made[name]

    return make


@pytest.fixture(scope="session")
def airline_set(policy_dirs: Any) -> Any:
    """A policy set holding only the bundled airline policy."""
    import dsl

    return dsl.load_directory(policy_dirs("airline", data.loaded_set(1)))


@pytest.fixture(scope="session")
def handwritten(airline_set: Any, schema: Any) -> Any:
    """The hand-written airline function, naming ``airline_set``'s revision."""
    from benchmarks.handwritten import evaluator

    cap = schema.currencies["miles"].cap_per_event
    return evaluator(airline_set.revision, set_cap=cap if cap is not None else 10**18)


@pytest.fixture(scope="session")
def padded_set(policy_dirs: Any) -> Any:
    """The airline policy plus 1,000 policies that never apply to a 2026 flight."""
    import dsl

    return dsl.load_directory(policy_dirs("padded", data.loaded_set(1001)))


@pytest.fixture(scope="session")
def bundled_set() -> Any:
    """Every bundled policy (``policies/``)."""
    import dsl

    return dsl.load_directory(data.POLICIES_DIR)
