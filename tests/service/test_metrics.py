"""Per-thread evaluation and rule counts reach the Prometheus counters exactly, flushes or not."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from service.metrics import Metrics


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return value if value is not None else 0.0


def test_counts_from_many_threads_survive_concurrent_flushes():
    """Threads count decisions and batches while another thread flushes: nothing lost, nothing twice."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    fired = [("p", "a"), ("p", "b")]
    stop = threading.Event()

    def count() -> None:
        for i in range(3000):
            metrics.count_decision(fired, ["p"])
            if i % 500 == 0:
                metrics.count_decisions(10, fired * 10, ["p"] * 10)
                metrics.count_evaluations("invalid_argument", 2)

    def flush() -> None:
        while not stop.is_set():
            metrics.flush()

    flusher = threading.Thread(target=flush)
    flusher.start()
    workers = [threading.Thread(target=count) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    flusher.join()
    metrics.flush()
    decisions = 4 * (3000 + 6 * 10)
    assert _value(registry, "loyalty_evaluations_total", outcome="ok") == decisions
    assert _value(registry, "loyalty_evaluations_total", outcome="invalid_argument") == 4 * 6 * 2
    assert _value(registry, "loyalty_rule_hits_total", policy="p", rule="a") == decisions
    assert _value(registry, "loyalty_rule_hits_total", policy="p", rule="b") == decisions
    assert _value(registry, "loyalty_policy_applied_total", policy="p") == decisions
