"""A steady, bounded load of Evaluate calls on loopback, through the bundled retrying client.

Each thread has its own :class:`~service.client.LoyaltyClient` and so its own TCP connection,
which with ``--workers N`` lands on one worker (SO_REUSEPORT spreads connections, not calls).
Every thread stops by itself after ``max_calls`` calls or ``max_seconds``, whichever comes first.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import grpc

from service.client import LoyaltyClient
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from tests.service.conftest import gold_customer, jfk_lhr


@dataclass
class Failure:
    """One call that did not answer OK: the thread that made it, its status and message, and when
    it was sent (``time.monotonic()``; 0.0 for the ListPolicies a caller starts with)."""

    thread: int
    code: str
    details: str
    sent: float = 0.0


@dataclass
class Load:
    """``threads`` callers of Evaluate against ``target`` until :meth:`stop` or their bounds.

    ``retries=False`` gives the callers a client without the service config's retry policy
    (the control measurement). ``instances[i]`` is the server process thread ``i`` is connected to
    (``host/pid`` from ListPolicies, asked once on the thread's connection before its load starts).
    ``customer`` makes the customer of every call (the standard GOLD member unless told).
    """

    target: str
    threads: int = 3
    retries: bool = True
    max_calls: int = 20_000
    max_seconds: float = 15.0
    timeout: float = 10.0
    customer: Callable[[], pb.Customer] = gold_customer
    #: More channel options for every caller (a ``grpc.service_config`` here replaces the bundled one).
    options: list[tuple[str, object]] = field(default_factory=list)
    ok: int = 0
    failures: list[Failure] = field(default_factory=list)
    revisions: Counter[str] = field(default_factory=Counter)
    instances: dict[int, str] = field(default_factory=dict)
    started: float = 0.0
    #: Seconds from :meth:`start` to :meth:`stop`.
    elapsed: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)
    _connected: threading.Barrier | None = None

    def start(self) -> Load:
        """Start the callers; returns once every one of them has its connection."""
        self._connected = threading.Barrier(self.threads + 1)
        self.started = time.monotonic()
        for i in range(self.threads):
            thread = threading.Thread(target=self._run, args=(i,), name=f"load-{i}", daemon=True)
            thread.start()
            self._workers.append(thread)
        self._connected.wait(30)
        return self

    def _run(self, index: int) -> None:
        assert self._connected is not None
        # A private subchannel pool: a connection of its own, not one shared by every client.
        with LoyaltyClient(self.target, timeout=self.timeout, retries=self.retries,
                           options=[("grpc.use_local_subchannel_pool", 1), *self.options]) as client:
            try:
                self.instances[index] = client.list_policies().status.instance
            except grpc.RpcError as exc:  # counted like any other failed call, and this caller stops
                with self._lock:
                    self.failures.append(Failure(index, exc.code().name, f"ListPolicies: {exc.details()}"))
                return
            finally:
                self._connected.wait(30)
            deadline = time.monotonic() + self.max_seconds
            for _ in range(self.max_calls):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                sent = time.monotonic()
                try:
                    revision = client.evaluate(self.customer(), jfk_lhr()).revision
                except grpc.RpcError as exc:
                    with self._lock:
                        self.failures.append(Failure(index, exc.code().name, exc.details() or "", sent))
                    continue
                with self._lock:
                    self.ok += 1
                    self.revisions[revision] += 1

    def answered(self) -> int:
        """Calls answered OK so far."""
        with self._lock:
            return self.ok

    def wait_for_calls(self, count: int, *, window: float = 0.0, timeout: float = 15.0) -> None:
        """Wait until ``count`` more calls than now have answered OK (the load is still flowing),
        and the load has run for at least ``window`` seconds since it started."""
        target = self.answered() + count
        deadline = time.monotonic() + timeout
        while self.answered() < target or time.monotonic() - self.started < window:
            if time.monotonic() > deadline or not any(t.is_alive() for t in self._workers):
                raise AssertionError(f"the load stalled: {self.answered()} of {target} calls answered, "
                                     f"failures {self.failures[:5]}")
            time.sleep(0.02)

    def running(self) -> int:
        """Callers still running (0 once :meth:`stop` has returned, unless one is stuck)."""
        return sum(thread.is_alive() for thread in self._workers)

    def stop(self) -> None:
        """Stop the callers and wait for them (each finishes the call it is in)."""
        self._stop.set()
        for thread in self._workers:
            thread.join(self.timeout + 5)
        self.elapsed = time.monotonic() - self.started

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
