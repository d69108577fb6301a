"""Prometheus metrics: calls and latency by method and status, evaluations, rule hits, reloads.

Per-rule hit counts are the data that shows which rules never fire (and which to
kill): every rule of the loaded set is exported from the moment it loads, at zero.
With ``--workers N`` the workers write to ``PROMETHEUS_MULTIPROC_DIR`` and the
supervising process serves the sum (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
import threading
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Latency buckets, in seconds: sub-millisecond unary calls up to multi-second batches.
LATENCY_BUCKETS = (
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


class Metrics:
    """The service's metrics, registered in ``registry`` (the default registry if None)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kw: dict[str, Any] = {"registry": registry} if registry is not None else {}
        self.rpc_duration = Histogram(
            "loyalty_rpc_duration_seconds",
            "RPC latency by method and status code; _count is the number of calls.",
            ["method", "code"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.evaluations = Counter(
            "loyalty_evaluations",
            "Evaluations by outcome: ok, invalid_argument (a bad item), policy_failed.",
            ["outcome"],
            **kw,
        )
        self.rule_hits = Counter(
            "loyalty_rule_hits",
            "How often each rule's effects applied; a rule that stays at 0 never fires.",
            ["policy", "rule"],
            **kw,
        )
        self.policy_hits = Counter(
            "loyalty_policy_applied", "How often each policy applied to an event.", ["policy"], **kw
        )
        self.reloads = Counter(
            "loyalty_policy_reloads", "Policy directory loads by result: ok or refused.", ["result"], **kw
        )
        self.revision = Gauge(
            "loyalty_policy_revision",
            "1 for the revision this process serves, 0 for revisions it served before.",
            ["revision"],
            multiprocess_mode="liveall",
            **kw,
        )
        self.policies_loaded = Gauge(
            "loyalty_policies_loaded", "Policies in the serving set.", multiprocess_mode="liveall", **kw
        )
        self._rpc: dict[tuple[str, str], Any] = {}
        self._evals: dict[str, Any] = {}
        self._rules: dict[tuple[str, str], Any] = {}
        self._policies: dict[str, Any] = {}
        self._revisions: dict[str, Any] = {}
        self._lock = threading.Lock()

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """Record one finished RPC."""
        key = (method, code)
        child = self._rpc.get(key)
        if child is None:
            child = self._rpc[key] = self.rpc_duration.labels(method, code)
        child.observe(seconds)

    def count_evaluations(self, outcome: str, n: int = 1) -> None:
        """Record ``n`` evaluations with ``outcome``."""
        child = self._evals.get(outcome)
        if child is None:
            child = self._evals[outcome] = self.evaluations.labels(outcome)
        child.inc(n)

    def count_decision(self, fired: Iterable[tuple[str, str]], policies: Iterable[str]) -> None:
        """Record the rules and policies of one decision."""
        rules = self._rules
        for key in fired:
            child = rules.get(key)
            if child is None:
                child = rules[key] = self.rule_hits.labels(*key)
            child.inc()
        known = self._policies
        for name in policies:
            child = known.get(name)
            if child is None:
                child = known[name] = self.policy_hits.labels(name)
            child.inc()

    def count_tally(self, rules: Tally[tuple[str, str]], policies: Tally[str]) -> None:
        """Record the summed rules and policies of many decisions (a batch)."""
        for key, n in rules.items():
            child = self._rules.get(key)
            if child is None:
                child = self._rules[key] = self.rule_hits.labels(*key)
            child.inc(n)
        for name, n in policies.items():
            child = self._policies.get(name)
            if child is None:
                child = self._policies[name] = self.policy_hits.labels(name)
            child.inc(n)

    def loaded(self, revision: str, policies: Iterable[Any]) -> None:
        """A new set is serving: flip the revision gauge and export every rule at zero."""
        with self._lock:
            for old in self._revisions.values():
                old.set(0)
            child = self._revisions[revision] = self.revision.labels(revision)
            child.set(1)
            count = 0
            for info in policies:
                count += 1
                self.policy_hits.labels(info.name)
                for rule in getattr(info, "rules", ()):
                    self.rule_hits.labels(info.name, rule)
            self.policies_loaded.set(count)

    def reload(self, ok: bool) -> None:
        """Record one load attempt."""
        self.reloads.labels("ok" if ok else "refused").inc()


def multiprocess_registry() -> CollectorRegistry:
    """A registry that sums every worker's metrics (needs ``PROMETHEUS_MULTIPROC_DIR``)."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    return registry
