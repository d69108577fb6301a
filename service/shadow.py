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
with both outcomes.

That thread shares the process, and so the GIL, with the request threads. What it may cost
the live path is bounded three ways (issue 17: a shadow policy costing 300 ms a decision once
took live p99 from 10.8 to 52.5 ms):

- a **per-decision budget** (:data:`DEFAULT_DECISION_BUDGET_S`): an evaluation still running
  after it is interrupted (an exception raised in the shadow thread by a small watcher
  thread), its decision dropped and counted (``loyalty_shadow_failed{reason="budget"}``);
- a **share of the time** (:data:`DEFAULT_SHARE`): after a turn of work the thread sleeps so
  that it works at most that share of the wall clock; samples beyond what it can take wait in
  the bounded backlog and are dropped and counted when it is full;
- a **short switch interval** while a shadow runs (:data:`SWITCH_INTERVAL_S`): a request
  thread that needs the GIL gets it within that time, not CPython's default 5 ms.
"""

from __future__ import annotations

import ctypes
import queue
import random
import sys
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

#: Longest the shadow set may take over one decision, in seconds, before it is interrupted and
#: the decision dropped (counted as a failure with reason "budget").
DEFAULT_DECISION_BUDGET_S = 0.02
#: The largest share of the wall clock the shadow thread works; it sleeps the rest.
DEFAULT_SHARE = 0.25
#: CPython's switch interval while a shadow runs: the longest a request thread waits for the GIL
#: while the shadow thread computes (CPython's default is 0.005).
SWITCH_INTERVAL_S = 0.001


class ShadowBudgetExceeded(Exception):
    """Raised inside the shadow thread when one decision takes longer than its budget."""


def _checkpoint() -> None:
    """A Python call: an interruption set for the thread is raised here at the latest."""


class _DecisionBudget:
    """Interrupts the shadow thread's evaluation of one decision once it runs over budget.

    The shadow thread marks each evaluation's start (:meth:`begin`) and end (:meth:`end`); a
    watcher thread looks every half budget while a turn of work is on (:meth:`turn`) and
    raises :class:`ShadowBudgetExceeded` in the shadow thread when the evaluation it saw
    started is still running past the budget. The mark is cleared under the lock the watcher
    fires under, so an interruption never outlives its evaluation's ``try``.
    """

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self._lock = threading.Lock()
        self._running: tuple[int, float] | None = None  # (evaluation number, start)
        self._count = 0
        self._target: int | None = None  # the shadow thread's id
        self._busy = threading.Event()
        self._thread: threading.Thread | None = None

    def turn(self, busy: bool) -> None:
        """Tell the watcher a turn of work starts (True) or ends (False)."""
        if busy:
            self._target = threading.get_ident()
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="shadow-budget", daemon=True)
                self._thread.start()
            self._busy.set()
        else:
            self._busy.clear()

    def begin(self) -> None:
        """An evaluation starts."""
        self._count += 1
        self._running = (self._count, time.perf_counter())

    def end(self) -> None:
        """The evaluation ended (returned or raised); call inside its ``try``."""
        with self._lock:
            self._running = None
        _checkpoint()

    def _watch(self) -> None:
        poll = max(0.001, self.budget_s / 2)
        while True:
            self._busy.wait()
            time.sleep(poll)
            with self._lock:
                running = self._running
                if running is None or time.perf_counter() - running[1] < self.budget_s:
                    continue
                self._running = None  # once per evaluation
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._target or 0), ctypes.py_object(ShadowBudgetExceeded))


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
        decision_budget_s: float = DEFAULT_DECISION_BUDGET_S,
        share: float = DEFAULT_SHARE,
    ) -> None:
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"sample must be between 0 and 1, not {sample}")
        self.store = store
        #: The share of live decisions offered to the shadow, 0 to 1.
        self.sample = sample
        self.metrics = metrics
        self.backlog = backlog
        self.drain_interval_s = DRAIN_INTERVAL_S
        #: Longest one shadow decision may take (seconds) before it is dropped.
        self.budget = _DecisionBudget(decision_budget_s)
        #: The largest share of the wall clock the shadow thread works (0 to 1].
        self.share = share
        #: Decisions dropped for running over the budget, since start.
        self.over_budget = 0
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
            # A request thread waiting for the GIL gets it within this, not 5 ms (module docstring).
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
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
        clock = time.perf_counter
        while True:
            entry = get()
            # Whatever else is queued goes in the same turn, and then the thread sleeps: waking
            # for every sampled call (a futex wake and a GIL handover from a request thread
            # each time) cost more CPU than the comparisons.
            started = clock()
            self.budget.turn(True)
            while entry is not None:
                self._take(entry)
                try:
                    entry = get_now()
                except queue.Empty:
                    break
            self.budget.turn(False)
            if entry is None:
                return
            # Rest so that work is at most ``share`` of the time: a costly shadow set takes its
            # samples more slowly, and the backlog bound drops the rest (counted).
            worked = clock() - started
            time.sleep(max(self.drain_interval_s, worked * (1.0 / self.share - 1.0)))

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
            budget = self.budget
            try:
                budget.begin()
                try:
                    if reads:
                        reader = (shadow_reader(state, customer["id"], applied, event.get("time"))
                                  if state is not None else None)
                        candidate = reads_and_counts(policy_set, customer, event, reader)[0]
                    else:
                        candidate = evaluate(customer, event)
                finally:
                    budget.end()
            except (EvaluationError, StateError) as exc:
                interrupted = isinstance(exc.__cause__ or exc.__context__, ShadowBudgetExceeded)
                if interrupted:
                    self.over_budget += 1
                if metrics is not None:
                    metrics.fail("budget" if interrupted else
                                 "state_unavailable" if isinstance(exc, StateError) else "policy_failed")
                continue
            except ShadowBudgetExceeded:  # raised outside the policies' own code
                self.over_budget += 1
                if metrics is not None:
                    metrics.fail("budget")
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
