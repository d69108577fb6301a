"""Where a batch item's server CPU goes, stage by stage, beside the floors (:mod:`benchmarks.stages`).

A figure for the report, not a gate: it says which stage a batch optimisation
has to move, and how far any Python servicer could go (reading the fields, the
hand-written airline function and the encoding are floors no conversion or
evaluation can go under).
"""

from __future__ import annotations

from benchmarks import stages
from benchmarks.conftest import Mode, Results


def test_batch_stages(mode: Mode, results: Results) -> None:
    """Per-item CPU of each batch stage; the whole method costs at least its floors."""
    rounds, batches = (7, 10) if mode.name == "full" else (3, 5)
    figures = stages.measure(rounds=rounds, batches=batches)
    results.figure("batch_stages", figures)
    us = figures["us_per_item"]
    assert all(value > 0 for value in us.values()), us
    # The servicer reads every field and encodes every decision: it cannot beat those floors.
    assert us["servicer"] > us["read"] + us["encode"], us
