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
        short = method.rsplit("/", 1)[-1]
        quiet = method.startswith(QUIET_SERVICES)
        record = self._recorder(short, quiet)
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

    def _recorder(self, method: str, quiet: bool) -> Callable[[str, float, dict[str, Any]], None]:
        metrics = self.metrics
        rpc_line = logs.rpc_line

        def record(code: str, seconds: float, fields: dict[str, Any]) -> None:
            if metrics is not None:
                metrics.observe_rpc(method, code, seconds)
            level = "debug" if quiet else "info" if code in _EXPECTED else "warning"
            rpc_line(level, method, code, round(seconds * 1000, 3), fields)

        return record


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


def _unary(behavior: Callable[..., Any],
           record: Callable[[str, float, dict[str, Any]], None]) -> Callable[..., Any]:
    begin_call = logs.begin_call
    clock = time.perf_counter
    gone = _gone

    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        fields = begin_call()
        start = clock()
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
    def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        fields = logs.begin_call()
        start = time.perf_counter()
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
