"""``loyalty replay``'s per-event cost against the plain baseline, in the same run.

The gate times one process's share of a replay (``dsl.tools.replay.replay_chunk`` on Parquet
chunks: read the columns, build the request mappings, decode through the policy set's
decoder, evaluate with the old and the new set, sum) against the plain-Python airline
function (``benchmarks/plain.py``) called twice on the same request mappings (old and new
decisions by hand, nothing else). The events/s figure over a whole history, on every
core, is ``python -m benchmarks.replay_measure`` (docs/performance.md, "Replaying a history").
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import plain
from benchmarks.conftest import Mode, Results
from benchmarks.history import airline_requests_stream, changed_policies, without_counters, write_history
from benchmarks.timing import Arm, time_arms
from dsl.tools.history import chunks
from dsl.tools.replay import replay_chunk
from service.cli.replay import _sets

POLICIES = Path(__file__).resolve().parents[1] / "policies"
#: Events per timed slice: one chunk, as a worker receives it.
SLICE = 2_000
#: A margin over the ratio measured in a quick run on this 2-core machine (2 December, load
#: average about 10: 6.12, median of rounds 6.16).
REPLAY_VS_PLAIN_LIMIT = 9.0


@pytest.fixture(scope="module")
def replay_arms(tmp_path_factory: pytest.TempPathFactory, mode: Mode) -> tuple[Arm, Arm]:
    root = tmp_path_factory.mktemp("replay-bench")
    events = max(SLICE * 2, mode.pairs // SLICE * SLICE)
    requests = next(airline_requests_stream(events))
    history = write_history(root / "history.parquet", [requests])
    old, new = _sets(str(POLICIES.resolve()), str(changed_policies(root / "new").resolve()))
    parts = list(chunks(history, "parquet", SLICE))
    mappings = [requests[i:i + SLICE] for i in range(0, len(requests), SLICE)]

    def plain_twice(part: list[dict[str, Any]]) -> None:
        for request in part:
            plain.earn_miles(request)
            plain.earn_miles(request)

    return (Arm("plain_twice", plain_twice, mappings, pairs=False),
            # The row path: thread CPU time would not see the columnar backend's Polars threads
            # (test_gate_columnar_replay_vs_polars_job times that one in process CPU time).
            Arm("replay", lambda chunk: replay_chunk(old, new, chunk, columnar=False), parts,
                pairs=False))


#: Events in the columnar gate's history (the 1,000,000-event figure is in docs/performance.md).
COLUMNAR_EVENTS = 200_000
#: The issue's target is 0.5 (replay at least half the job's speed: a time ratio of at most
#: 2). Measured on this 2-core machine, 8 December 2026, load average 2.2 to 3.4, fifteen
#: quick runs: 2.06 to 3.28 (best of rounds; medians of rounds 2.29 to 3.04), was 3.9 to 5.2.
#: The target is NOT met; the gate holds what is measured, with a margin (was 6.0).
COLUMNAR_VS_JOB_LIMIT = 4.5


#: Runs ``loyalty ARGS`` and writes its own ``VmHWM`` line to stderr at the end: the peak of
#: that process alone. ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` is not: it is the largest of
#: every child waited for so far, and a child started by vfork and exec carries into it the
#: parent's peak (pytest's, hundreds of MB after the benchmarks before it).
_OWN_PEAK = """
import sys
from service.cli import main
try:
    code = main(sys.argv[1:])
finally:
    with open("/proc/self/status") as status:
        sys.stderr.write(next(line for line in status if line.startswith("VmHWM:")))
sys.exit(code)
"""


def _peak_rss_kb(args: list[str]) -> tuple[int, str]:
    """Run ``loyalty ARGS`` in a fresh process: its own peak resident size in KB (VmHWM) and its
    stdout."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", _OWN_PEAK, *args], capture_output=True, text=True,
                          check=False)
    peak = [line for line in done.stderr.splitlines() if line.startswith("VmHWM:")]
    assert peak, done.stderr[-2000:]
    return int(peak[-1].split()[1]), done.stdout


def test_gate_columnar_replay_vs_polars_job(tmp_path_factory: pytest.TempPathFactory, mode: Mode,
                                            results: Results) -> None:
    """`loyalty replay`'s in-process replay (the columnar backend, every row of this history
    columnar) against the hand-written Polars job on the same Parquet history: the same
    figures, and at most COLUMNAR_VS_JOB_LIMIT times its CPU time (process CPU time: both use
    Polars' threads). Peak memory of each, in a fresh process, is reported."""
    import time

    from benchmarks import polars_job
    from dsl.tools.replay_figures import Replay
    from service.cli.replay import replay_locally

    root = tmp_path_factory.mktemp("columnar-bench")
    history = write_history(root / "history.parquet", airline_requests_stream(COLUMNAR_EVENTS))
    # The bundled programme less its counter policies: the airline replay the Polars job
    # writes (a set with counters replays on the row path, in time order per customer).
    new_dir = str(without_counters(changed_policies(root / "new")).resolve())
    old_dir = str(without_counters(Path(shutil.copytree(POLICIES, root / "old"))).resolve())

    def job() -> polars_job.JobFigures:
        return polars_job.run(history)

    def replay() -> Replay:
        return replay_locally(old_dir, new_dir, chunks(history, "parquet", 50_000), 1)

    figures, got = job(), replay()
    assert got.columnar_events == got.events == figures.events
    assert (got.totals_before["miles"], got.totals_after["miles"], got.changed,
            got.customers_changed) == (figures.miles_before, figures.miles_after,
                                       figures.events_changed, figures.customers_changed)
    best = {"job": float("inf"), "replay": float("inf")}
    ratios = []
    for i in range(max(3, mode.gate_rounds // 3)):
        order = [("job", job), ("replay", replay)]
        spent = {}
        for name, arm in order if i % 2 == 0 else reversed(order):
            started = time.process_time()
            arm()
            spent[name] = time.process_time() - started
            best[name] = min(best[name], spent[name])
        ratios.append(spent["replay"] / spent["job"])
    ratios.sort()
    from benchmarks.timing import Gate

    gate = results.gate(Gate("columnar_replay_vs_polars_job", best["replay"] / best["job"],
                             COLUMNAR_VS_JOB_LIMIT, median_ratio=ratios[len(ratios) // 2],
                             detail={"job_us": best["job"] / COLUMNAR_EVENTS * 1e6,
                                     "replay_us": best["replay"] / COLUMNAR_EVENTS * 1e6}))
    results.figure("columnar_replay_us_per_event", best["replay"] / COLUMNAR_EVENTS * 1e6)
    results.figure("polars_job_us_per_event", best["job"] / COLUMNAR_EVENTS * 1e6)
    rss, out = _peak_rss_kb(["replay", old_dir, new_dir, str(history), "--jobs", "1",
                             "--format", "json", "--no-progress"])
    results.figure("columnar_replay_peak_rss_mb", rss / 1024)
    assert f'"columnar_events": {COLUMNAR_EVENTS}' in out
    print(f"\n{gate.line()}; CPU per event: replay {gate.detail['replay_us']:.2f} us, "
          f"job {gate.detail['job_us']:.2f} us; peak RSS of loyalty replay --jobs 1: {rss / 1024:.0f} MB")
    assert gate.passed, gate.line()


def test_gate_replay_vs_plain(replay_arms: tuple[Arm, Arm], mode: Mode, results: Results) -> None:
    """Replaying an event (both decisions and the sums) takes at most 9 times the plain
    function called twice on it: a regression gate, not the issue's target (see the docs)."""
    baseline, candidate = replay_arms
    gate = results.gate(time_arms("replay_vs_plain_twice", baseline, candidate,
                                  limit=REPLAY_VS_PLAIN_LIMIT, repeats=mode.gate_rounds, chunk=1))
    results.figure("replay_us_per_event", gate.detail["replay_us"] / SLICE)
    assert gate.passed, gate.line()
