"""Prometheus metrics: calls and latency by method and status, evaluations, rule hits, reloads.

Per-rule hit counts are the data that shows which rules never fire (and which to
kill): every rule of the loaded set is exported from the moment it loads, at zero.
With ``--workers N`` the workers write to ``PROMETHEUS_MULTIPROC_DIR`` and the
supervising process serves the sum (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: How often per-thread counts reach the Prometheus counters, in seconds.
FLUSH_INTERVAL_S = 1.0
#: Latency buckets, in seconds: sub-millisecond unary calls up to multi-second batches.
LATENCY_BUCKETS = (
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

#: Revisions the ``loyalty_policy_revision`` gauge keeps a series for (the serving one included).
REVISIONS_KEPT = 8


def _multiprocess() -> bool:
    """Whether prometheus-client writes to files shared by worker processes (``--workers N``)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))  # the name the workers set


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
        # The names and labels of go-grpc-prometheus / py-grpc-prometheus, which stock gRPC
        # dashboards and alerts expect, beside the service's own.
        self.grpc_handled = Counter(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            **kw,
        )
        self.grpc_handling = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level "
            "handled by the server.",
            ["grpc_type", "grpc_service", "grpc_method"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.log_lines_dropped = Counter(
            "loyalty_log_lines_dropped",
            "Log lines dropped because the log sink was blocked (queue full) or failing (ENOSPC).",
            **kw,
        )
        self._log_dropped_seen = 0
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
        self._grpc: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
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

    def observe_grpc(self, kind: str, service: str, method: str, code: str, seconds: float) -> None:
        """Record one finished RPC under the standard gRPC metric names (``kind``: ``unary``,
        ``client_stream``, ``server_stream`` or ``bidi_stream``; ``service`` its full name)."""
        key = (kind, service, method, code)
        children = self._grpc.get(key)
        if children is None:
            children = self._grpc[key] = (
                self.grpc_handled.labels(kind, service, method, code),
                self.grpc_handling.labels(kind, service, method),
            )
        children[0].inc()
        children[1].observe(seconds)

    # Evaluation counts and rule hits are on every call's path: they go to plain
    # per-thread objects (no lock, no contention) and a background thread adds them to
    # the Prometheus counters every FLUSH_INTERVAL_S (and at shutdown, via flush()).
    # Rules and policies are appended to per-thread lists, counted by the flusher: a
    # list extend is one C call, where counting in dicts per decision is a loop.

    def count_evaluations(self, outcome: str, n: int = 1) -> None:
        """Record ``n`` evaluations with ``outcome``."""
        evals = self._tally().evals
        evals[outcome] = evals.get(outcome, 0) + n

    def count_decision(self, fired: Iterable[tuple[str, str]], policies: Iterable[str]) -> None:
        """Record one successful evaluation: its rules and policies."""
        try:
            tally = self._local.tally
        except AttributeError:
            tally = self._tally()
        tally.ok += 1
        tally.fired.extend(fired)
        tally.applied.extend(policies)

    def count_decisions(self, n: int, fired: Iterable[tuple[str, str]], policies: Iterable[str]) -> None:
        """Record ``n`` successful evaluations (a batch) and all their rules and policies."""
        tally = self._tally()
        tally.ok += n
        tally.fired.extend(fired)
        tally.applied.extend(policies)

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

    def _ensure_flusher(self) -> None:
        with self._lock:
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_loop, name="metrics-flush",
                                                 daemon=True)
                self._flusher.start()

    def _flush_loop(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL_S)
            self.flush()

    def flush(self) -> None:
        """Add every thread's counts since the last flush to the Prometheus counters."""
        from service import logs  # the log queue counts its drops itself; here they are exported

        dropped = logs.dropped_total()
        if dropped > self._log_dropped_seen:
            self.log_lines_dropped.inc(dropped - self._log_dropped_seen)
            self._log_dropped_seen = dropped
        with self._lock:
            for tally in self._tallies:
                # Each step is one C call, safe while the owning thread appends: take what
                # is there now, then delete exactly that much from the front.
                ok = tally.ok
                if ok != tally.seen_ok:
                    self._add_eval("ok", ok - tally.seen_ok)
                    tally.seen_ok = ok
                evals = dict(tally.evals)
                for key, value in evals.items():
                    delta = value - tally.seen_evals.get(key, 0)
                    if delta:
                        self._add_eval(key, delta)
                        tally.seen_evals[key] = value
                for pending, add in ((tally.fired, self._add_rule), (tally.applied, self._add_policy)):
                    n = len(pending)
                    if n:
                        counts = collections.Counter(pending[:n])
                        del pending[:n]
                        for key, count in counts.items():
                            add(key, count)

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
        self._ensure_flusher()  # also exports the log lines dropped, calls or not
        with self._lock:
            for old in self._revisions.values():
                old.set(0)
            self._revisions.pop(revision, None)  # a revision served again becomes the newest
            child = self._revisions[revision] = self.revision.labels(revision)
            child.set(1)
            # One series per revision ever served would grow with every reload: keep the
            # latest few (enough to see a rollback on a dashboard), drop the rest.
            while len(self._revisions) > REVISIONS_KEPT:
                oldest = next(iter(self._revisions))
                del self._revisions[oldest]
                if not _multiprocess():  # prometheus-client cannot remove series from its files
                    self.revision.remove(oldest)
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

    __slots__ = ("applied", "evals", "fired", "ok", "seen_evals", "seen_ok")

    def __init__(self) -> None:
        self.ok = 0
        self.seen_ok = 0
        self.evals: dict[str, int] = {}
        self.seen_evals: dict[str, int] = {}
        #: Rules and policies of decisions not yet counted (the flusher counts and clears).
        self.fired: list[tuple[str, str]] = []
        self.applied: list[str] = []


def multiprocess_registry() -> CollectorRegistry:
    """A registry that sums every worker's metrics (needs ``PROMETHEUS_MULTIPROC_DIR``)."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    return registry


class ShadowMetrics:
    """The shadow set's metrics (``loyalty serve --shadow DIR``): what it was compared on, what
    it would have changed, what it would have awarded, and what it could not keep up with.

    Only the shadow's own thread writes the comparison counters, off the response path, so
    they go straight to Prometheus; the request threads only count drops.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kw: dict[str, Any] = {"registry": registry} if registry is not None else {}
        self.compared = Counter(
            "loyalty_shadow_decisions_compared",
            "Live decisions the shadow set was evaluated on and compared with.", **kw)
        self.changed = Counter(
            "loyalty_shadow_decisions_changed",
            "Compared decisions whose outcome (awards, benefits, tier, tags) the shadow set "
            "would have changed.", **kw)
        self.awarded = Counter(
            "loyalty_shadow_awarded",
            "Awards over compared decisions by currency, as the live set and as the shadow set "
            "decided them (set=live|shadow); the delta is shadow minus live.",
            ["currency", "set"], **kw)
        self.failed = Counter(
            "loyalty_shadow_failed",
            "Sampled decisions the shadow set could not decide, by reason: invalid_argument "
            "(its schema refuses the request), policy_failed, not_loaded, state_unavailable (the live "
            "state could not be read), budget (it ran over its per-decision budget and was "
            "interrupted).", ["reason"], **kw)
        self.dropped = Counter(
            "loyalty_shadow_dropped",
            "Sampled decisions dropped because the shadow's queue was full (never waited for).", **kw)
        self.reloads = Counter(
            "loyalty_shadow_reloads", "Shadow directory loads by result: ok or refused.", ["result"], **kw)
        self.revision = Gauge(
            "loyalty_shadow_revision", "1 for the revision the shadow set is at, 0 for earlier ones.",
            ["revision"], multiprocess_mode="liveall", **kw)
        self._awarded: dict[tuple[str, str], Any] = {}
        self._failed: dict[str, Any] = {}
        self._revisions: dict[str, Any] = {}

    def add_awards(self, which: str, awards: dict[str, Any]) -> None:
        """Add one decision's awards (``which``: live or shadow)."""
        for currency, amount in awards.items():
            key = (currency, which)
            child = self._awarded.get(key)
            if child is None:
                child = self._awarded[key] = self.awarded.labels(currency, which)
            if amount > 0:  # awards are never negative; a counter must not go down
                child.inc(float(amount))

    def fail(self, reason: str) -> None:
        """Count one sampled decision the shadow could not decide."""
        child = self._failed.get(reason)
        if child is None:
            child = self._failed[reason] = self.failed.labels(reason)
        child.inc()

    def loaded(self, revision: str) -> None:
        """The shadow set is now at ``revision``."""
        for old in self._revisions.values():
            old.set(0)
        self._revisions.pop(revision, None)
        self._revisions[revision] = child = self.revision.labels(revision)
        child.set(1)
        while len(self._revisions) > REVISIONS_KEPT:
            oldest = next(iter(self._revisions))
            del self._revisions[oldest]
            if not _multiprocess():
                self.revision.remove(oldest)


_SHARED_SHADOW_METRICS: ShadowMetrics | None = None


def default_shadow_metrics() -> ShadowMetrics:
    """The process's shadow metrics in the default registry (created once, when first asked:
    a server without a shadow exports none)."""
    global _SHARED_SHADOW_METRICS
    if _SHARED_SHADOW_METRICS is None:
        _SHARED_SHADOW_METRICS = ShadowMetrics()
    return _SHARED_SHADOW_METRICS
