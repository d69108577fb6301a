"""``loyalty replay``'s per-event cost against the plain baseline, in the same run.

The gate times one process's share of a replay (``dsl.tools.replay.replay_chunk`` on Parquet
chunks: read the columns, build the request mappings, decode through the policy set's
decoder, evaluate with the old and the new set, sum) against the plain-Python airline
function (``benchmarks/plain.py``) called twice on the same request mappings (old and new
decisions by hand, nothing else). The events/s figure over a whole history, on every
core, is ``python -m benchmarks.replay_measure`` (docs/performance.md, "Replaying a history").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import plain
from benchmarks.conftest import Mode, Results
from benchmarks.history import airline_requests_stream, changed_policies, write_history
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
            Arm("replay", lambda chunk: replay_chunk(old, new, chunk), parts, pairs=False))


def test_gate_replay_vs_plain(replay_arms: tuple[Arm, Arm], mode: Mode, results: Results) -> None:
    """Replaying an event (both decisions and the sums) takes at most 9 times the plain
    function called twice on it: a regression gate, not the issue's target (see the docs)."""
    baseline, candidate = replay_arms
    gate = results.gate(time_arms("replay_vs_plain_twice", baseline, candidate,
                                  limit=REPLAY_VS_PLAIN_LIMIT, repeats=mode.gate_rounds, chunk=1))
    results.figure("replay_us_per_event", gate.detail["replay_us"] / SLICE)
    assert gate.passed, gate.line()
