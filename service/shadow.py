"""Shadow traffic: a candidate policy set evaluated beside the serving one on live requests.

``loyalty serve --shadow DIR`` loads ``DIR`` into a second :class:`PolicyStore`, with the
same reload semantics as the serving one (its own watcher, its own last good set, SIGHUP
reloads both) and none of its power: the shadow never answers a call, and a shadow that is
broken, missing or empty is reported (ListPolicies, logs, ``loyalty_shadow_reloads``) while
the serving set goes on as if it were not there.

The request path does as little as possible: after the live decision is made it draws
the sample (``--shadow-sample``) and, when the call is sampled, hands the inputs it already
converted and the live decision to :meth:`Shadow.offer`, which takes a lock, checks the
backlog and appends to a queue. It never waits: a full backlog drops the sample and counts
it (``loyalty_shadow_dropped``). One thread per process then evaluates the shadow set on
those inputs (converted again only when the shadow's schema differs from the serving one),
compares the outcomes and counts, and writes a rate-limited log line per changed decision
with both outcomes. That thread still takes CPU (and the GIL) from the same process:
docs/performance.md measures what it costs the live path.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import structlog

from dsl.decision import decision_changed
from dsl.errors import EvaluationError
from dsl.library.runtime import use_evaluation_context
from service.apply import has_windows, reads_and_counts, shadow_reader
from service.errors import InvalidArgument
from service.metrics import ShadowMetrics
from service.state.api import StateError, StateStore
from service.store import PolicyStore, Snapshot

log = structlog.get_logger("loyalty.shadow")

#: The share of live decisions the shadow is evaluated on when ``--shadow-sample`` is not given.
DEFAULT_SAMPLE = 0.1
#: Sampled decisions that may wait for the shadow thread; beyond it samples are dropped.
DEFAULT_BACKLOG = 1000
#: Changed-decision log lines written per second at most (per process); the rest are counted
#: in the next line's ``suppressed``.
DEFAULT_LOG_PER_SECOND = 5.0

#: Longest the shadow thread works before it hands the GIL to a request thread that may be
#: waiting for it, in seconds (CPython's own switch interval is 5 ms).
YIELD_INTERVAL_S = 0.0002

#: Seconds the shadow thread sleeps after emptying its queue, so that it wakes at most about
#: 1/DRAIN_INTERVAL_S times a second however many calls are sampled.
DRAIN_INTERVAL_S = 0.01

#: One sampled decision: the live inputs as converted, the request messages, the live decision.
Sample = tuple[dict[str, Any], dict[str, Any], Any, Any, Any]


def _outcome_fields(decision: Any) -> dict[str, Any]:
    data = decision.to_dict()
    data.pop("reasons", None)
    # One type per log field: awards are decimal strings in every line (the decision log's too),
    # never a number here and a string there.
    data["awards"] = {currency: str(amount) for currency, amount in sorted(decision.awards.items())}
    return data


class Shadow:
    """A candidate policy set fed a sample of live decisions, compared off the response path."""

    def __init__(
        self,
        store: PolicyStore,
        *,
        sample: float = DEFAULT_SAMPLE,
        metrics: ShadowMetrics | None = None,
        backlog: int = DEFAULT_BACKLOG,
        log_per_second: float = DEFAULT_LOG_PER_SECOND,
    ) -> None:
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"sample must be between 0 and 1, not {sample}")
        self.store = store
        #: The share of live decisions offered to the shadow, 0 to 1.
        self.sample = sample
        self.metrics = metrics
        self.backlog = backlog
        self.drain_interval_s = DRAIN_INTERVAL_S
        #: Decisions compared, changed, and samples dropped, since start (ListPolicies shows them).
        self.compared = 0
        self.changed = 0
        self.dropped = 0
        self._queue: queue.SimpleQueue[tuple[Snapshot, list[Sample], Any] | None] = queue.SimpleQueue()
        self._waiting = 0  # decisions queued, under _lock
        self._lock = threading.Lock()
        self._log_interval = 1.0 / log_per_second if log_per_second > 0 else float("inf")
        self._next_log = 0.0
        self._suppressed = 0
        self._thread: threading.Thread | None = None
        #: The live customer state store the shadow set reads its periods from (never writes),
        #: or None: every period then sums to zero.
        self.state: StateStore | None = None
        if metrics is not None:
            store.on_attempt(lambda ok, _status: metrics.reloads.labels("ok" if ok else "refused").inc())
            store.on_swap(lambda snapshot: metrics.loaded(snapshot.revision))

    @property
    def directory(self) -> Path:
        """The shadow policy directory."""
        return self.store.directory

    # -- the request path --------------------------------------------------------------------

    def sampled(self) -> bool:
        """Draw whether this call's decisions go to the shadow."""
        rate = self.sample
        return rate >= 1.0 or (rate > 0.0 and random.random() < rate)

    def offer(self, live: Snapshot, samples: list[Sample], applied: Mapping[str, Any] | None = None) -> None:
        """Queue sampled decisions for the shadow thread; those beyond the backlog's room are
        dropped and counted. Never waits beyond a short lock. ``applied``: the samples were
        committed by Apply, which counted these amounts at each event's time; the shadow's
        reads take them out again, so it sees the state the live decision saw."""
        n = len(samples)
        with self._lock:
            take = min(n, self.backlog - self._waiting)
            self._waiting += max(take, 0)
            if take < n:
                self.dropped += n - max(take, 0)
        if take < n:
            if self.metrics is not None:
                self.metrics.dropped.inc(n - max(take, 0))
            if take <= 0:
                return
            samples = samples[:take]
        self._queue.put((live, samples, applied))

    # -- the shadow thread -------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread that evaluates and compares."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread once it has compared what is queued (or ``timeout`` passed)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        use_evaluation_context()  # as the RPC threads: evaluation's own decimal context
        get, get_now = self._queue.get, self._queue.get_nowait
        while True:
            entry = get()
            # Whatever else is queued goes in the same turn, and then the thread sleeps: waking
            # for every sampled call (a futex wake and a GIL handover from a request thread
            # each time) cost more CPU than the comparisons.
            while entry is not None:
                self._take(entry)
                try:
                    entry = get_now()
                except queue.Empty:
                    break
            if entry is None:
                return
            time.sleep(self.drain_interval_s)

    def _take(self, entry: tuple[Snapshot, list[Sample], Any]) -> None:
        live, samples, applied = entry
        try:
            self.compare(live, samples, applied)
        except Exception:  # a bug here must not end the thread, nor reach the live path
            log.exception("shadow comparison failed")
        finally:
            with self._lock:
                self._waiting -= len(samples)

    def compare(self, live: Snapshot, samples: Iterable[Sample],
                applied: Mapping[str, Any] | None = None) -> None:
        """Evaluate the shadow set on each sample and compare it with the live decision; a set
        with periods reads the live state (writing none), less ``applied`` (see :meth:`offer`)."""
        shadow = self.store.current
        metrics = self.metrics
        if shadow is None:
            if metrics is not None:
                for _ in samples:
                    metrics.fail("not_loaded")
            return
        same_schema = shadow.policy_set.schema.digest == live.policy_set.schema.digest
        policy_set = shadow.policy_set
        reads = has_windows(policy_set)
        evaluate = policy_set.evaluate
        state = self.state
        clock = time.perf_counter
        next_yield = clock() + YIELD_INTERVAL_S
        for customer, event, customer_msg, event_msg, decision in samples:
            if clock() >= next_yield:
                # Hand the GIL to a request thread that may be waiting for it: otherwise this
                # thread keeps it for the whole switch interval and a live call waits. Not
                # before every decision: a sleep(0) costs more CPU than evaluating one.
                time.sleep(0)
                next_yield = clock() + YIELD_INTERVAL_S
            if not same_schema:  # the live set's records were judged by another schema
                try:
                    customer, event = shadow.converter.inputs(customer_msg, event_msg)
                except InvalidArgument:
                    if metrics is not None:
                        metrics.fail("invalid_argument")
                    continue
            try:
                if reads:
                    reader = (shadow_reader(state, customer["id"], applied, event.get("time"))
                              if state is not None else None)
                    candidate = reads_and_counts(policy_set, customer, event, reader)[0]
                else:
                    candidate = evaluate(customer, event)
            except (EvaluationError, StateError) as exc:
                if metrics is not None:
                    metrics.fail("state_unavailable" if isinstance(exc, StateError) else "policy_failed")
                continue
            self.compared += 1
            changed = decision_changed(decision, candidate)
            if changed:
                self.changed += 1
            if metrics is not None:
                metrics.compared.inc()
                metrics.add_awards("live", decision.awards)
                metrics.add_awards("shadow", candidate.awards)
                if changed:
                    metrics.changed.inc()
            if changed:
                self._log_change(customer, event, decision, candidate)

    def _log_change(self, customer: dict[str, Any], event: dict[str, Any], live: Any, shadow: Any) -> None:
        now = time.monotonic()
        if now < self._next_log:
            self._suppressed += 1
            return
        self._next_log = now + self._log_interval
        suppressed, self._suppressed = self._suppressed, 0
        log.info(
            "shadow decision changed",
            customer_id=customer.get("id"),
            event_id=event.get("id"),
            kind=event.get("kind"),
            live=_outcome_fields(live),
            shadow=_outcome_fields(shadow),
            suppressed=suppressed,
        )


def start_shadow(
    directory: Path | str,
    *,
    sample: float = DEFAULT_SAMPLE,
    metrics: ShadowMetrics | None = None,
    watch: bool = True,
    allow_empty: bool = False,
) -> Shadow:
    """Load ``directory`` as a shadow set, start its watcher and its thread; a directory that
    does not load is logged and reported, and the shadow waits for a good version."""
    store = PolicyStore(directory, allow_empty=allow_empty)
    shadow = Shadow(store, sample=sample, metrics=metrics)
    store.start(watch=watch)
    if not store.load():
        log.error("shadow policies refused; the serving set is unaffected",
                  directory=str(directory), error=store.status.last_error)
    shadow.start()
    return shadow
