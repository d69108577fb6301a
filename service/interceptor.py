"""The one server interceptor: exceptions to statuses, one canonical log line and metrics per RPC.

Servicer methods raise (:mod:`service.errors`, or the policy runtime's own
``InputError`` / ``EvaluationError``); this interceptor maps the exception to a
``google.rpc.Status`` with details, so no servicer calls ``context.abort``. It
starts a fresh dict of fields for every call (:func:`service.logs.begin_call`);
the servicer adds ``customer_id``, ``revision`` and the like
(:func:`service.logs.call_fields`), and they land on the call's canonical line.

The line and the metrics record the outcome the client saw: a handler that
returns (or fails) after the call's deadline passed, or after the client
cancelled, answers nobody, so the call is DEADLINE_EXCEEDED or CANCELLED, not OK.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import structlog
from grpc_status import rpc_status

from service import logs
from service.errors import code_name, status_for
from service.metrics import Metrics

log = structlog.get_logger("loyalty.rpc")

#: Codes that are the caller's business, logged at info; any other is a warning.
_EXPECTED = frozenset({"OK", "INVALID_ARGUMENT", "CANCELLED", "DEADLINE_EXCEEDED", "NOT_FOUND",
                       "ALREADY_EXISTS"})
#: Services whose calls are logged at debug level (probes would drown the log otherwise).
QUIET_SERVICES = ("/grpc.health.v1.", "/grpc.reflection.")


class CallProgress:
    """Calls started and finished in this process (health probes and reflection left out), so
    that a monitor can tell a service that cannot answer: calls in flight and none finishing.

    Each request thread counts in its own cell (no lock on the call's path); readers sum them.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._cells: list[list[int]] = []
        self._lock = threading.Lock()

    def cell(self) -> list[int]:
        """This thread's ``[started, finished]``."""
        try:
            return self._local.cell  # type: ignore[no-any-return]
        except AttributeError:
            cell = self._local.cell = [0, 0]
            with self._lock:
                self._cells.append(cell)
            return cell

    def totals(self) -> tuple[int, int]:
        """Calls started and finished so far."""
        with self._lock:
            cells = list(self._cells)
        return sum(c[0] for c in cells), sum(c[1] for c in cells)


#: The process's call progress (what :class:`service.server.StallMonitor` reads).
PROGRESS = CallProgress()


class ServiceInterceptor(grpc.ServerInterceptor):
    """Maps exceptions to statuses and records every call (log line and metrics)."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self._wrapped: dict[tuple[str, int], grpc.RpcMethodHandler] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Wrap the method's handler (once per method; the wrapper is cached)."""
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        key = (method, id(handler))
        wrapped = self._wrapped.get(key)
        if wrapped is None:
            wrapped = self._wrap(method, handler)
            self._wrapped[key] = wrapped
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        service, _, short = method.lstrip("/").rpartition("/")
        quiet = method.startswith(QUIET_SERVICES)
        kind = ("bidi_stream" if handler.stream_stream else "client_stream" if handler.stream_unary
                else "server_stream" if handler.unary_stream else "unary")
        record = self._recorder(short, quiet, service, kind)
        if not quiet:
            record = _counted(record)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary, record),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _streaming(handler.unary_stream, record),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _unary(handler.stream_unary, record),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            _streaming(handler.stream_stream, record),
            handler.request_deserializer,
            handler.response_serializer,
        )

    def _recorder(self, method: str, quiet: bool, service: str = "",
                  kind: str = "unary") -> Callable[[str, float, dict[str, Any]], None]:
        metrics = self.metrics
        rpc_line = logs.rpc_line

        def record(code: str, seconds: float, fields: dict[str, Any]) -> None:
            if metrics is not None:
                metrics.observe_rpc(method, code, seconds)
                metrics.observe_grpc(kind, service, method, code, seconds)
            level = "debug" if quiet else "info" if code in _EXPECTED else "warning"
            rpc_line(level, method, code, round(seconds * 1000, 3), fields)

        return record


def _counted(record: Callable[[str, float, dict[str, Any]], None]) -> Any:
    """``record`` that also counts each call in :data:`PROGRESS`: started when the handler
    begins (``begin``), finished when it records."""
    cell = PROGRESS.cell

    class Counted:
        __slots__ = ()

        def begin(self) -> None:
            cell()[0] += 1

        def __call__(self, code: str, seconds: float, fields: dict[str, Any]) -> None:
            cell()[1] += 1
            record(code, seconds, fields)

    return Counted()


def _failure(exc: Exception, context: grpc.ServicerContext,
             fields: dict[str, Any]) -> tuple[str, grpc.Status | None]:
    """The code name and status for ``exc``; no status when a handler below already aborted."""
    already = context.code()
    if already is not None:
        return already.name, None
    status = status_for(exc)
    name = code_name(status)
    if name == "INTERNAL":
        log.error("unhandled exception", exc_info=exc, **fields)
    return name, rpc_status.to_status(status)


def _dropped(exc: Exception, context: grpc.ServicerContext) -> bool:
    """Whether ``exc`` only says the client went away: gRPC raises a bare ``RpcError`` from a
    stream's request iterator once the call is cancelled. That is the client's choice, logged
    by the call's canonical line (CANCELLED, at info), not a failure with a traceback."""
    return isinstance(exc, grpc.RpcError) and not context.is_active()


def _gone(context: grpc.ServicerContext) -> str | None:
    """``DEADLINE_EXCEEDED`` or ``CANCELLED`` when the call is over for the client (whatever the
    handler answers now is dropped), None while the client still waits for the answer."""
    # The deadline is read from the clock: the core's own cancellation of an expired call
    # reaches the context only when the server's polling thread gets to it, maybe later.
    remaining = context.time_remaining()  # None for a call without a deadline
    if remaining is not None and remaining <= 0:
        return "DEADLINE_EXCEEDED"
    if not context.is_active():
        return "CANCELLED"
    return None


#: A W3C ``traceparent`` header: version 00, a 32-hex trace id, a 16-hex parent span id, flags.
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


def trace_context(context: grpc.ServicerContext, fields: dict[str, Any]) -> None:
    """Add the caller's W3C trace context (``traceparent`` metadata) to the call's fields as
    ``trace_id`` and ``parent_span_id``; a missing or malformed header (or the all-zero ids
    the spec calls invalid) adds nothing."""
    for key, value in context.invocation_metadata() or ():
        if key == "traceparent":
            match = _TRACEPARENT.fullmatch(value.strip()) if isinstance(value, str) else None
            if match and match[1] != "0" * 32 and match[2] != "0" * 16:
                fields["trace_id"] = match[1]
                fields["parent_span_id"] = match[2]
            return


def _unary(behavior: Callable[..., Any],
           record: Callable[[str, float, dict[str, Any]], None]) -> Callable[..., Any]:
    begin_call = logs.begin_call
    clock = time.perf_counter
    gone = _gone

    begin = getattr(record, "begin", None)

    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        if begin is not None:
            begin()
        fields = begin_call()
        start = clock()
        trace_context(context, fields)
        code = "OK"
        try:
            response = behavior(request, context)
            code = gone(context) or "OK"
            return response
        except Exception as exc:
            if _dropped(exc, context):
                code = gone(context) or "CANCELLED"
                raise  # gRPC's own exception for the end of the call: it knows, it does not log it
            code, status = _failure(exc, context, fields)
            code = gone(context) or code
            if status is None:
                raise
            context.abort_with_status(status)
        finally:
            record(code, clock() - start, fields)

    return handle


def _streaming(behavior: Callable[..., Any],
               record: Callable[[str, float, dict[str, Any]], None]) -> Callable[..., Any]:
    begin = getattr(record, "begin", None)

    def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        if begin is not None:
            begin()
        fields = logs.begin_call()
        start = time.perf_counter()
        trace_context(context, fields)
        code = "OK"
        try:
            yield from behavior(request, context)
            code = _gone(context) or "OK"
        except GeneratorExit:  # gRPC dropped the stream: the deadline passed or the client went away
            code = _gone(context) or "CANCELLED"
            raise
        except Exception as exc:
            if _dropped(exc, context):
                code = _gone(context) or "CANCELLED"
                raise  # gRPC's own exception for the end of the call: it knows, it does not log it
            code, status = _failure(exc, context, fields)
            code = _gone(context) or code
            if status is None:
                raise
            context.abort_with_status(status)
        finally:
            record(code, time.perf_counter() - start, fields)

    return handle
