"""Interleaved timing and ratio gates: how the benchmarks stay honest on a shared, noisy machine.

pytest-benchmark times one benchmark after another, so a burst of load from a
neighbour can land on one side of a comparison only. The gates therefore time
their two arms themselves, alternating A and B on short slices of the same data
(ABBA order, so neither arm always goes first), and compare the *minimum* over
repeats: noise only ever adds time, so the fastest timing of each slice is the
best estimate of its cost. Evaluation gates use the thread's CPU time, which
excludes the time other processes hold the CPU. The median of the per-repeat
ratios is reported beside the gated ratio as a check.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
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
    check_label: str = "median of rounds"

    @property
    def passed(self) -> bool:
        return self.ratio <= self.limit if self.at_most else self.ratio >= self.limit

    def line(self) -> str:
        """``GATE name: ratio X (limit <= Y) PASS``, the line CI prints."""
        op = "<=" if self.at_most else ">="
        extra = ""
        if self.median_ratio is not None:
            extra = f", {self.check_label} {self.median_ratio:.3f}"
        return (f"GATE {self.name}: ratio {self.ratio:.3f} (limit {op} {self.limit:g}{extra}) "
                f"{'PASS' if self.passed else 'FAIL'}")

    def to_json(self) -> dict[str, Any]:
        """The gate as the JSON the report reads."""
        return {"name": self.name, "ratio": self.ratio, "limit": self.limit,
                "at_most": self.at_most, "median_ratio": self.median_ratio,
                "check_label": self.check_label,
                "passed": self.passed, "detail": self.detail}


def time_gate(
    name: str,
    baseline: tuple[str, Callable[[Any, Any], Any]],
    candidate: tuple[str, Callable[[Any, Any], Any]],
    pairs: Sequence[tuple[Any, Any]],
    *,
    limit: float,
    repeats: int,
    at_most: bool = True,
    chunk: int = 1000,
    clock: str = "cpu",
) -> Gate:
    """Compare two evaluation functions on ``pairs``, interleaved chunk by chunk.

    The pairs are cut into chunks of ``chunk``; each repeat times every chunk
    once with each arm, alternating which goes first. An arm's cost is the sum,
    over chunks, of its fastest time on that chunk, so both arms are charged
    for exactly the same pairs and a disturbance spoils one short chunk timing,
    not a whole comparison. ``clock="cpu"`` times the thread's CPU time, which
    does not count time the scheduler gave to other processes on a shared machine;
    ``clock="wall"`` uses ``perf_counter``. The gate is ``candidate / baseline``.
    """
    return time_arms(name, Arm(*baseline, pairs), Arm(*candidate, pairs), limit=limit,
                     repeats=repeats, at_most=at_most, chunk=chunk, clock=clock)


@dataclass(frozen=True)
class Arm:
    """One side of a timed comparison: a function and the items it is called on, in order.

    ``fn`` is called as ``fn(customer, event)`` on each (customer, event) pair of
    ``items``, or, with ``pairs=False``, as ``fn(item)`` (a request mapping).
    """

    name: str
    fn: Callable[..., Any]
    items: Sequence[Any]
    pairs: bool = True

    def runner(self) -> Callable[[Sequence[Any]], None]:
        """A function applying ``fn`` to every item of a slice of ``items``."""
        fn = self.fn
        if self.pairs:
            def run_pairs(part: Sequence[Any]) -> None:
                for customer, event in part:
                    fn(customer, event)

            return run_pairs

        def run_items(part: Sequence[Any]) -> None:
            for item in part:
                fn(item)

        return run_items


def time_arms(
    name: str,
    baseline: Arm,
    candidate: Arm,
    *,
    limit: float,
    repeats: int,
    at_most: bool = True,
    chunk: int = 1000,
    clock: str = "cpu",
) -> Gate:
    """:func:`time_gate` for two arms that may take different forms of the same items.

    Item ``i`` of one arm must be item ``i`` of the other in another form (a
    request mapping and its prepared pair, say): both arms are cut into the same
    chunks, so each chunk compares the same customers and events.
    """
    if len(baseline.items) != len(candidate.items):
        raise ValueError(f"{baseline.name} has {len(baseline.items)} items, "
                         f"{candidate.name} {len(candidate.items)}")
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    bname, cname = baseline.name, candidate.name
    arms = {bname: baseline, cname: candidate}
    runs = {a: arm.runner() for a, arm in arms.items()}
    chunks = {a: [arm.items[i:i + chunk] for i in range(0, len(arm.items), chunk)]
              for a, arm in arms.items()}
    for a in arms:  # warm up: caches, lazy imports, the airport table
        runs[a](chunks[a][0])
    count = len(chunks[bname])
    best = {a: [float("inf")] * count for a in arms}
    per_repeat = {a: [0.0] * repeats for a in arms}
    order = [bname, cname]
    for r in range(repeats):
        gc.collect()
        for k in range(count):
            order.reverse()
            for arm in order:
                run, part = runs[arm], chunks[arm][k]
                t0 = timer()
                run(part)
                dt = timer() - t0
                per_repeat[arm][r] += dt
                if dt < best[arm][k]:
                    best[arm][k] = dt
    b, c = sum(best[bname]), sum(best[cname])
    paired = statistics.median(
        ci / bi for bi, ci in zip(per_repeat[bname], per_repeat[cname], strict=True))
    n = len(baseline.items)
    detail = {
        "repeats": repeats, "chunk": chunk, "pairs": n, "clock": clock,
        "baseline": bname, "candidate": cname,
        f"{bname}_us": b / n * 1e6, f"{cname}_us": c / n * 1e6,
        f"{bname}_median_us": statistics.median(per_repeat[bname]) / n * 1e6,
        f"{cname}_median_us": statistics.median(per_repeat[cname]) / n * 1e6,
    }
    return Gate(name, c / b, limit, at_most, paired, detail)


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
