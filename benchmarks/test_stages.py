"""Where the time goes, stage by stage (:mod:`benchmarks.stages`): a batch item, the mapping path.

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


def test_mapping_path_stages(mode: Mode, results: Results) -> None:
    """Per-item CPU of each stage of the in-process mapping path (decode, evaluate and its parts).

    A figure for the report, not a gate: it says where the mapping path's ratio to
    the plain baseline comes from, and so which stage the issue's target has to move.
    """
    # All the pairs even in quick mode: the stages are short, and on a shared machine a
    # figure of 2,000 items over 3 rounds swung by a third from run to run.
    rounds, items = (7, 10_000) if mode.name == "full" else (5, mode.pairs)
    figures = stages.measure_mapping(rounds=rounds, items=items)
    results.figure("mapping_stages", figures)
    us = figures["us_per_item"]
    assert all(us[name] > 0 for name in ("plain", "decode", "evaluate", "mapping_path")), us
    # The path decodes and evaluates: it costs more than evaluating alone.
    assert us["mapping_path"] > us["evaluate"], us
