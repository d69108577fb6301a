"""Interleaved timing and ratio gates: how the benchmarks stay honest on a shared, noisy machine.

pytest-benchmark times one benchmark after another, so a burst of load from a
neighbour can land on one side of a comparison only. The gates therefore time
their two arms themselves, alternating A and B round by round (ABBA order,
so neither arm always goes first), and compare the *minimum* over rounds: noise
only ever adds time, so the fastest round of each arm is the best estimate of its
cost. The median of the per-round ratios is reported beside it as a check.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def interleave(
    arms: Mapping[str, Callable[[], Any]], rounds: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Time each arm once per round, alternating the order; seconds per call of each arm.

    ``warmup`` untimed rounds run first (caches, lazy imports, branch predictors).
    A full garbage collection runs before every timed call so that no arm pays
    for the garbage of another.
    """
    names = list(arms)
    for _ in range(warmup):
        for name in names:
            arms[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn = arms[name]
            gc.collect()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


@dataclass
class Gate:
    """One ratio gate: ``candidate / baseline`` (times or rates) against a limit.

    ``at_most`` gates pass when ``ratio <= limit``; the others when ``ratio >= limit``.
    """

    name: str
    ratio: float
    limit: float
    at_most: bool = True
    median_ratio: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.ratio <= self.limit if self.at_most else self.ratio >= self.limit

    def line(self) -> str:
        """``GATE name: ratio X (limit <= Y) PASS``, the line CI prints."""
        op = "<=" if self.at_most else ">="
        extra = ""
        if self.median_ratio is not None:
            extra = f", median of rounds {self.median_ratio:.3f}"
        return (f"GATE {self.name}: ratio {self.ratio:.3f} (limit {op} {self.limit:g}{extra}) "
                f"{'PASS' if self.passed else 'FAIL'}")

    def to_json(self) -> dict[str, Any]:
        """The gate as the JSON the report reads."""
        return {"name": self.name, "ratio": self.ratio, "limit": self.limit,
                "at_most": self.at_most, "median_ratio": self.median_ratio,
                "passed": self.passed, "detail": self.detail}


def time_gate(
    name: str,
    baseline: tuple[str, Callable[[], Any]],
    candidate: tuple[str, Callable[[], Any]],
    *,
    limit: float,
    rounds: int,
    at_most: bool = True,
    per_round: int = 1,
    warmup: int = 1,
) -> Gate:
    """Time ``candidate`` against ``baseline`` interleaved; the gate on ``min(cand) / min(base)``.

    ``per_round`` is how many operations one call performs (for per-operation
    figures in the detail).
    """
    (bname, bfn), (cname, cfn) = baseline, candidate
    times = interleave({bname: bfn, cname: cfn}, rounds, warmup)
    b, c = times[bname], times[cname]
    ratio = min(c) / min(b)
    paired = statistics.median(ci / bi for bi, ci in zip(b, c, strict=True))
    detail = {
        "rounds": rounds,
        "per_round": per_round,
        bname: _summary(b, per_round),
        cname: _summary(c, per_round),
        "baseline": bname,
        "candidate": cname,
    }
    return Gate(name, ratio, limit, at_most, paired, detail)


def _summary(times: list[float], per_round: int) -> dict[str, float]:
    return {
        "min_s": min(times),
        "median_s": statistics.median(times),
        "max_s": max(times),
        "min_per_op_us": min(times) / per_round * 1e6,
        "median_per_op_us": statistics.median(times) / per_round * 1e6,
    }


def loop(fn: Callable[[Any, Any], Any], pairs: list[tuple[Any, Any]]) -> Callable[[], None]:
    """A no-argument callable that applies ``fn`` to every (customer, event) pair once.

    Every arm of a comparison goes through this same loop, so the loop's own
    cost is the same on both sides.
    """
    def run() -> None:
        for customer, event in pairs:
            fn(customer, event)

    return run
