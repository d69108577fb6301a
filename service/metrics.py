"""Prometheus metrics: calls and latency by method and status, evaluations, rule hits, reloads.

Per-rule hit counts are the data that shows which rules never fire (and which to
kill): every rule of the loaded set is exported from the moment it loads, at zero.
With ``--workers N`` the workers write to ``PROMETHEUS_MULTIPROC_DIR`` and the
supervising process serves the sum (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: How often per-thread counts reach the Prometheus counters, in seconds.
FLUSH_INTERVAL_S = 1.0
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
        self._local = threading.local()
        self._tallies: list[_ThreadTally] = []
        self._flusher: threading.Thread | None = None

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """Record one finished RPC."""
        key = (method, code)
        child = self._rpc.get(key)
        if child is None:
            child = self._rpc[key] = self.rpc_duration.labels(method, code)
        child.observe(seconds)

    # Evaluation counts and rule hits are on every call's path: they go to plain
    # per-thread dicts (no lock, no contention) and a background thread adds them to
    # the Prometheus counters every FLUSH_INTERVAL_S (and at shutdown, via flush()).

    def count_evaluations(self, outcome: str, n: int = 1) -> None:
        """Record ``n`` evaluations with ``outcome``."""
        evals = self._tally().evals
        evals[outcome] = evals.get(outcome, 0) + n

    def count_decision(self, fired: Iterable[tuple[str, str]], policies: Iterable[str]) -> None:
        """Record one successful evaluation: its rules and policies."""
        tally = self._tally()
        evals = tally.evals
        evals["ok"] = evals.get("ok", 0) + 1
        rules = tally.rules
        for key in fired:
            rules[key] = rules.get(key, 0) + 1
        applied = tally.policies
        for name in policies:
            applied[name] = applied.get(name, 0) + 1

    def count_tally(self, rules: Mapping[tuple[str, str], int], policies: Mapping[str, int]) -> None:
        """Record the summed rules and policies of many decisions (a batch)."""
        tally = self._tally()
        for key, n in rules.items():
            tally.rules[key] = tally.rules.get(key, 0) + n
        for name, n in policies.items():
            tally.policies[name] = tally.policies.get(name, 0) + n

    def _tally(self) -> _ThreadTally:
        try:
            return self._local.tally  # type: ignore[no-any-return]
        except AttributeError:
            tally = self._local.tally = _ThreadTally()
            with self._lock:
                self._tallies.append(tally)
                if self._flusher is None:
                    self._flusher = threading.Thread(target=self._flush_loop, name="metrics-flush",
                                                     daemon=True)
                    self._flusher.start()
            return tally

    def _flush_loop(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL_S)
            self.flush()

    def flush(self) -> None:
        """Add every thread's counts since the last flush to the Prometheus counters."""
        with self._lock:
            for tally in self._tallies:
                for source, seen, add in (
                    (tally.evals, tally.seen_evals, self._add_eval),
                    (tally.rules, tally.seen_rules, self._add_rule),
                    (tally.policies, tally.seen_policies, self._add_policy),
                ):
                    now = dict(source)  # one C-level copy: safe while the owner writes
                    for key, value in now.items():
                        delta = value - seen.get(key, 0)
                        if delta:
                            add(key, delta)
                            seen[key] = value

    def _add_eval(self, outcome: str, n: int) -> None:
        child = self._evals.get(outcome)
        if child is None:
            child = self._evals[outcome] = self.evaluations.labels(outcome)
        child.inc(n)

    def _add_rule(self, key: tuple[str, str], n: int) -> None:
        child = self._rules.get(key)
        if child is None:
            child = self._rules[key] = self.rule_hits.labels(*key)
        child.inc(n)

    def _add_policy(self, name: str, n: int) -> None:
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


class _ThreadTally:
    """One request thread's counts, and how much of them the counters already have."""

    __slots__ = ("evals", "policies", "rules", "seen_evals", "seen_policies", "seen_rules")

    def __init__(self) -> None:
        self.evals: dict[str, int] = {}
        self.rules: dict[tuple[str, str], int] = {}
        self.policies: dict[str, int] = {}
        self.seen_evals: dict[str, int] = {}
        self.seen_rules: dict[tuple[str, str], int] = {}
        self.seen_policies: dict[str, int] = {}


def multiprocess_registry() -> CollectorRegistry:
    """A registry that sums every worker's metrics (needs ``PROMETHEUS_MULTIPROC_DIR``)."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    return registry
