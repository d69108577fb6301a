"""Admission control for calls that hold a request thread for as long as their client wants.

A client-streaming call (``EvaluateStream``, reflection's ``ServerReflectionInfo``) holds one
of the process's request threads from its first message to its last, and its client decides
when that is. Sixteen idle streams from one client once held all sixteen threads, and health
checks and unary calls then waited for ever (issue 17). So:

- such calls may take at most ``max_streams`` threads at once (by default half the pool), and
  at most ``max_streams_per_peer`` of those may come from one client host (the peer's address
  without its port); a call beyond either is refused at once with ``RESOURCE_EXHAUSTED``,
  so health and unary calls always find a thread;
- a stream that has sent no message for ``idle_timeout_s`` while the server waits for one is
  ended by the server with ``DEADLINE_EXCEEDED`` and a message saying so.

:class:`StreamAdmissionInterceptor` applies both to every client-streaming method the server
registers. Unary and server-streaming calls are not counted: their request is whole before a
thread takes them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from service.connections import PeerActivity
from service.errors import ResourceExhausted

log = structlog.get_logger("loyalty.admission")

#: Seconds a stream may wait for its client's next message before the server ends it.
DEFAULT_STREAM_IDLE_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """How many request threads client-streaming calls may hold, and for how long idle.

    None for ``max_streams`` means half the request threads (at least 1); None for
    ``max_streams_per_peer`` means half of ``max_streams`` (at least 1), so one client host
    can never take every streaming slot. ``idle_timeout_s`` None: a stream may idle for ever.
    """

    max_streams: int | None = None
    max_streams_per_peer: int | None = None
    idle_timeout_s: float | None = DEFAULT_STREAM_IDLE_TIMEOUT_S

    def resolved(self, threads: int) -> tuple[int, int]:
        """(streams in all, streams per peer host) for a pool of ``threads`` request threads."""
        total = self.max_streams if self.max_streams is not None else max(1, threads // 2)
        per_peer = self.max_streams_per_peer if self.max_streams_per_peer is not None else max(1, total // 2)
        return total, min(per_peer, total)


def peer_host(peer: str) -> str:
    """The client host of a gRPC peer string: ``ipv4:10.0.0.1:5000`` -> ``ipv4:10.0.0.1``,
    ``ipv6:[::1]:5000`` -> ``ipv6:[::1]``; a Unix socket peer is one host."""
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rpartition(":")[0]
    return peer.partition(":")[0]


class StreamAdmission:
    """Counts the client-streaming calls in progress, in all and per peer host."""

    def __init__(self, max_streams: int, max_streams_per_peer: int) -> None:
        self.max_streams = max_streams
        self.max_streams_per_peer = max_streams_per_peer
        self._lock = threading.Lock()
        self._total = 0
        self._by_host: dict[str, int] = {}
        #: Calls refused since start, for tests and figures.
        self.refused = 0

    def admit(self, host: str, method: str) -> None:
        """Take a slot for a call from ``host``, or raise :class:`ResourceExhausted` saying which
        limit it met; every admitted call must be :meth:`release`\\ d."""
        with self._lock:
            held = self._by_host.get(host, 0)
            if self._total >= self.max_streams:
                self.refused += 1
                raise ResourceExhausted(
                    f"{method}: the server already serves {self._total} streams, its limit "
                    f"(--max-streams {self.max_streams}); retry later, or use Evaluate or EvaluateBatch")
            if held >= self.max_streams_per_peer:
                self.refused += 1
                raise ResourceExhausted(
                    f"{method}: this client already has {held} streams open, the limit per client "
                    f"host (--max-streams-per-peer {self.max_streams_per_peer}); close one first")
            self._total += 1
            self._by_host[host] = held + 1

    def release(self, host: str) -> None:
        """Give back the slot :meth:`admit` took for ``host``."""
        with self._lock:
            self._total -= 1
            left = self._by_host[host] - 1
            if left:
                self._by_host[host] = left
            else:
                del self._by_host[host]

    @property
    def in_use(self) -> int:
        """Streams admitted and not yet released."""
        return self._total


class _Watched:
    """A stream's request iterator that records when the server started waiting for a message."""

    __slots__ = ("context", "method", "requests", "waiting_since")

    def __init__(self, requests: Iterator[Any], context: grpc.ServicerContext, method: str) -> None:
        self.requests = requests
        self.context = context
        self.method = method
        self.waiting_since: float | None = None

    def __iter__(self) -> _Watched:
        return self

    def __next__(self) -> Any:
        self.waiting_since = time.monotonic()
        try:
            return next(self.requests)
        finally:
            self.waiting_since = None


class IdleStreams:
    """One thread that ends streams whose client has sent nothing for ``timeout_s`` while the
    server waited (the handler blocked in the request iterator)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._streams: set[_Watched] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: Streams ended for idling since start.
        self.ended = 0

    def watch(self, requests: Iterator[Any], context: grpc.ServicerContext, method: str) -> _Watched:
        """``requests`` as an iterator the watcher times; :meth:`forget` it when the call ends."""
        watched = _Watched(iter(requests), context, method)
        with self._lock:
            self._streams.add(watched)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="idle-streams", daemon=True)
                self._thread.start()
        return watched

    def forget(self, watched: _Watched) -> None:
        """Stop timing a stream whose call has ended."""
        with self._lock:
            self._streams.discard(watched)

    def _run(self) -> None:
        # A quarter of the timeout between looks: a stream ends within 1.25 timeouts of idling.
        interval = min(1.0, max(0.05, self.timeout_s / 4))
        while True:
            time.sleep(interval)
            now = time.monotonic()
            with self._lock:
                idle = [w for w in self._streams
                        if w.waiting_since is not None and now - w.waiting_since >= self.timeout_s]
                self._streams.difference_update(idle)
            for watched in idle:
                self.ended += 1
                end_call(watched.context, grpc.StatusCode.DEADLINE_EXCEEDED,
                         f"{watched.method}: no message from the client for {self.timeout_s:g} s "
                         "(the server's --stream-idle-timeout); the server ended the stream: open a "
                         "new one to send more")


def end_call(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> None:
    """End a call from another thread than its handler's with ``code`` and ``details``.

    grpcio's public ``ServicerContext.cancel`` ends it with a bare ``CANCELLED``; the call
    object under the context can cancel it with a status of our choosing, which gRPC core
    sends to the client as the call's status (its handler's request iterator then raises, as
    for a cancel). Where that object is not there (another grpcio), the public cancel.
    """
    call = getattr(getattr(context, "_rpc_event", None), "call", None)
    try:
        if call is not None:
            call.cancel(code.value[0], details)
            return
    except Exception:  # an interface that changed: the public way still ends the call
        log.debug("cancel with status failed; cancelling", exc_info=True)
    context.cancel()


class StreamAdmissionInterceptor(grpc.ServerInterceptor):
    """Applies :class:`StreamAdmission` and :class:`IdleStreams` to client-streaming methods.

    Put it after :class:`service.interceptor.ServiceInterceptor`, so that a refusal
    (:class:`ResourceExhausted`) gets its status and its log line there.
    """

    def __init__(self, limits: StreamLimits, threads: int, activity: PeerActivity | None = None) -> None:
        total, per_peer = limits.resolved(threads)
        self.admission = StreamAdmission(total, per_peer)
        self.idle = IdleStreams(limits.idle_timeout_s) if limits.idle_timeout_s else None
        #: Where every call's peer is recorded for :class:`service.connections.ConnectionShedder`.
        self.activity = activity
        self._wrapped: dict[tuple[str, int], grpc.RpcMethodHandler] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Client-streaming handlers behind admission (wrapped once per method); others as they are."""
        handler = continuation(handler_call_details)
        if handler is None or (not handler.request_streaming and self.activity is None):
            return handler
        method = handler_call_details.method
        key = (method, id(handler))
        wrapped = self._wrapped.get(key)
        if wrapped is None:
            wrapped = self._wrap(method.rsplit("/", 1)[-1], handler)
            self._wrapped[key] = wrapped
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        admission, idle, activity = self.admission, self.idle, self.activity
        if not handler.request_streaming:
            assert activity is not None
            return _recording(handler, activity)

        def enter(requests: Iterator[Any], context: grpc.ServicerContext) -> tuple[str, Any]:
            peer = context.peer()
            host = peer_host(peer)
            admission.admit(host, method)
            if activity is not None:
                activity.begin(peer)
            return peer, (idle.watch(requests, context, method) if idle is not None else requests)

        def leave(peer: str, requests: Any) -> None:
            admission.release(peer_host(peer))
            if activity is not None:
                activity.end(peer)
            if idle is not None:
                idle.forget(requests)

        if handler.stream_stream:
            behaviour = handler.stream_stream

            def streaming(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
                host, watched = enter(requests, context)
                try:
                    yield from behaviour(watched, context)
                finally:
                    leave(host, watched)

            return grpc.stream_stream_rpc_method_handler(
                streaming, handler.request_deserializer, handler.response_serializer)
        unary_behaviour = handler.stream_unary

        def unary(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            host, watched = enter(requests, context)
            try:
                return unary_behaviour(watched, context)
            finally:
                leave(host, watched)

        return grpc.stream_unary_rpc_method_handler(
            unary, handler.request_deserializer, handler.response_serializer)


def _recording(handler: grpc.RpcMethodHandler, activity: PeerActivity) -> grpc.RpcMethodHandler:
    """A unary-request handler that records its call in ``activity`` (its connection is busy)."""
    if handler.unary_unary:
        behaviour = handler.unary_unary

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            peer = context.peer()
            activity.begin(peer)
            try:
                return behaviour(request, context)
            finally:
                activity.end(peer)

        return grpc.unary_unary_rpc_method_handler(
            unary, handler.request_deserializer, handler.response_serializer)
    streaming_behaviour = handler.unary_stream

    def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        peer = context.peer()
        activity.begin(peer)
        try:
            yield from streaming_behaviour(request, context)
        finally:
            activity.end(peer)

    return grpc.unary_stream_rpc_method_handler(
        streaming, handler.request_deserializer, handler.response_serializer)
