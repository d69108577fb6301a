"""Structured logging with structlog: JSON lines in production, a readable console on a terminal.

Every RPC writes one canonical line (method, status, latency, customer id,
revision); with the decision log switched on, every decision writes a line with
its effects. No line carries personal data beyond the caller's ids.

JSON lines are rendered with orjson and written to a buffer that a background
thread flushes every :data:`FLUSH_INTERVAL_S` (and :func:`flush` at shutdown):
the canonical line is on every call's path, and a write and flush per call
would cost as much as evaluating the rules.

The canonical line's fields are a plain dict per call (:func:`begin_call`,
:func:`call_fields`), not structlog context variables: binding three of those
and merging them back cost more than converting a request. In JSON mode the
line is rendered straight to bytes (:func:`rpc_line`) with exactly the keys and
values structlog's chain gives it; tests hold the two to the same output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import Any, BinaryIO, TextIO

import orjson
import structlog

#: Log formats ``--log-format`` accepts; ``auto`` is console on a terminal and JSON otherwise.
FORMATS = ("auto", "json", "console")
#: Longest time a JSON log line waits in the buffer, in seconds.
FLUSH_INTERVAL_S = 0.2

_buffers: list[BinaryIO] = []


class BufferedBytesLogger:
    """A structlog logger writing rendered bytes lines to a binary stream, flushed periodically."""

    def __init__(self, file: BinaryIO) -> None:
        self._write = file.write

    def msg(self, message: bytes) -> None:
        """Write one line (BufferedWriter.write is thread-safe)."""
        self._write(message + b"\n")

    log = debug = info = warn = warning = msg
    err = error = critical = exception = fatal = msg


def flush() -> None:
    """Write out whatever JSON lines are buffered."""
    for buffer in _buffers:
        with contextlib.suppress(OSError, ValueError):  # a closed pipe at shutdown
            buffer.flush()


def _flush_loop() -> None:
    while True:
        time.sleep(FLUSH_INTERVAL_S)
        flush()


def _start_flusher() -> None:
    threading.Thread(target=_flush_loop, name="log-flush", daemon=True).start()


#: (whole second, its ISO 8601 text), replaced as one value so threads never mix two.
_second: tuple[int, str] = (0, "")


def _timestamp(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    # ISO 8601 in UTC with microseconds; the seconds part is formatted once a second.
    global _second
    now = time.time()
    second = int(now)
    cached = _second
    if second != cached[0]:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    event["timestamp"] = f"{cached[1]}.{int((now - second) * 1_000_000):06d}Z"
    return event


#: This process's id (asking the kernel on every line costs a system call).
_pid = os.getpid()


def _refresh_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)


def _add_pid(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    # With --workers N several processes share one stream: say which one wrote the line.
    event["pid"] = _pid
    return event


# -- the canonical line per RPC ----------------------------------------------------------

_call = threading.local()
_rpc_log = structlog.get_logger("loyalty.rpc")
#: Level names as the canonical line uses them, and their numbers.
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
#: The fast JSON path: (write, least level) while JSON lines go to a binary buffer, else None.
_fast: tuple[Any, int] | None = None


def begin_call() -> dict[str, Any]:
    """Start the fields of a new RPC on this thread (the interceptor does, per call); the
    servicer adds to them through :func:`call_fields`; they end on the call's line."""
    fields: dict[str, Any] = {}
    _call.fields = fields
    return fields


def call_fields() -> dict[str, Any]:
    """The fields of the RPC this thread serves (``customer_id``, ``revision``, ...), to add
    to; outside a call, an empty dict that nobody reads."""
    try:
        return _call.fields  # type: ignore[no-any-return]
    except AttributeError:
        return {}


def rpc_line(level: str, method: str, code: str, ms: float, fields: dict[str, Any]) -> None:
    """Write the canonical line of one RPC: ``event="rpc"``, method, code, ms and ``fields``."""
    fast = _fast
    if fast is None:
        getattr(_rpc_log, level)("rpc", method=method, code=code, ms=ms, **fields)
        return
    if _LEVELS[level] < fast[1]:
        return
    # The keys in the order structlog's chain gives them (kwargs, event, level, pid, timestamp).
    event = {"method": method, "code": code, "ms": ms, **fields, "event": "rpc", "level": level,
             "pid": _pid}
    fast[0](orjson.dumps(_timestamp(None, level, event)) + b"\n")


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog (and route stdlib logging, as from grpc, through the same output)."""
    global _fast, _rpc_log
    _fast = None
    fast: tuple[Any, int] | None = None
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    renderer: Any
    factory: Any = structlog.WriteLoggerFactory(file=stream)
    exc: list[Any] = []
    if fmt == "json":
        exc = [structlog.processors.dict_tracebacks]
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            stream.flush()
            renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
            factory = lambda *_args: BufferedBytesLogger(buffer)  # noqa: E731
            if not _buffers:
                _start_flusher()
                os.register_at_fork(after_in_child=_start_flusher)  # threads do not survive fork
            if buffer not in _buffers:
                _buffers.append(buffer)
            fast = (buffer.write, numeric)
        else:
            renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _add_pid,
            _timestamp,
            *exc,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    _rpc_log = structlog.get_logger("loyalty.rpc")  # a proxy cached before would keep the old setup
    _fast = fast
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
