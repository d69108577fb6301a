"""Structured logging with structlog: JSON lines in production, a readable console on a terminal.

Every RPC writes one canonical line (method, status, latency, customer id,
revision); with the decision log switched on, every decision writes a line with
its effects. No line carries personal data beyond the caller's ids.

Lines never reach the sink on a request thread: every line, structlog's, the
canonical line's and the standard library's (grpc's), is rendered and handed to
a bounded queue (:class:`LogSink`, the shape of ``QueueHandler`` and
``QueueListener``); one writer thread drains it to the file descriptor. When the
sink blocks (stderr a pipe nobody reads) the queue fills and new lines are
dropped; when it fails (``ENOSPC``, ``EPIPE``) the writer drops what it could not
write. Either way the lines are counted (:func:`dropped_total`, exported as
``loyalty_log_lines_dropped_total``) and the next line that gets through is one
saying how many were lost. A call never waits for, or fails because of, its log.

The canonical line's fields are a plain dict per call (:func:`begin_call`,
:func:`call_fields`), not structlog context variables: binding three of those
and merging them back cost more than converting a request. In JSON mode the
line is rendered straight to bytes (:func:`rpc_line`) with exactly the keys and
values structlog's chain gives it; tests hold the two to the same output.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import select
import sys
import threading
import time
from typing import Any, TextIO

import orjson
import structlog

#: Log formats ``--log-format`` accepts; ``auto`` is console on a terminal and JSON otherwise.
FORMATS = ("auto", "json", "console")
#: Longest time a line waits in the queue before the writer takes it, in seconds.
FLUSH_INTERVAL_S = 0.05
#: Lines the queue holds; beyond it new lines are dropped (and counted). At about 300 bytes a
#: line that is 3 MB at most, and some seconds of a busy server's lines.
QUEUE_LINES = 10_000
#: Lines the writer takes from the queue for one write.
_BATCH_LINES = 1_000


class LogSink:
    """A bounded queue of rendered lines and the one thread that writes them to ``write``.

    :meth:`put` is what request threads call: an append to a deque, or, when the
    queue is full, a count in the calling thread's own cell (no lock, so a signal
    handler may log too). ``write`` is called by the writer thread only; whatever it
    raises drops the batch it was given, counted.
    """

    def __init__(self, write: Any, capacity: int = QUEUE_LINES, json_lines: bool = True) -> None:
        self._write = write
        self.capacity = capacity
        self._json = json_lines
        self._lines: collections.deque[bytes] = collections.deque()
        self._local = threading.local()
        self._cells: list[list[int]] = []  # one per thread that dropped a line: [count]
        self._cells_lock = threading.Lock()
        self._failed = 0  # lines the writer could not write (written by the writer only)
        self._reported = 0  # dropped lines a line has already owned up to
        self._busy = False
        self._wake = threading.Event()
        self._closed = False
        self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def after_fork(self) -> None:
        """In a forked child: new locks (another thread may have held them), an empty queue
        (the parent writes what it had queued) and counts of its own, and a new writer."""
        self._lines = collections.deque()
        self._local = threading.local()
        self._cells = []
        self._failed = self._reported = 0
        self._cells_lock = threading.Lock()
        self._wake = threading.Event()
        self._busy = False
        self._start()

    def put(self, line: bytes) -> None:
        """Queue one line (with its newline); drop and count it when the queue is full."""
        if len(self._lines) < self.capacity:
            self._lines.append(line)
            return
        try:
            cell = self._local.cell
        except AttributeError:
            cell = self._local.cell = [0]
            with self._cells_lock:
                self._cells.append(cell)
        cell[0] += 1

    def dropped(self) -> int:
        """Lines dropped so far: the queue full, or the sink failing."""
        return self._failed + sum(cell[0] for cell in list(self._cells))

    def flush(self, timeout: float = 1.0) -> bool:
        """Wait (at most ``timeout`` seconds) until the queue is written; False if it was not."""
        deadline = time.monotonic() + timeout
        while self._lines or self._busy:
            self._wake.set()
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return False
            time.sleep(0.002)
        return True

    def close(self, timeout: float = 1.0) -> None:
        """Write what is queued (within ``timeout``) and end the writer."""
        self.flush(timeout)
        self._closed = True
        self._wake.set()

    def _run(self) -> None:
        lines = self._lines
        while not self._closed:
            self._wake.wait(FLUSH_INTERVAL_S)
            self._wake.clear()
            while lines:
                self._busy = True
                batch = [lines.popleft() for _ in range(min(len(lines), _BATCH_LINES))]
                dropped = self.dropped()
                note = dropped - self._reported
                if note:
                    batch.insert(0, self._drop_line(note))
                try:
                    self._write(b"".join(batch))
                except Exception:  # ENOSPC, EPIPE, a closed stream: never anyone else's problem
                    self._failed += len(batch) - (1 if note else 0)
                else:
                    self._reported = dropped
            self._busy = False

    def _drop_line(self, count: int) -> bytes:
        event = {"event": "log lines dropped", "dropped": count,
                 "reason": "the log sink was full, blocked or failing", "level": "warning",
                 "pid": _pid}
        _timestamp(None, "warning", event)
        if self._json:
            return orjson.dumps(event) + b"\n"
        return (f"{event['timestamp']} [warning  ] log lines dropped  dropped={count}\n").encode()


def _fd_writer(fd: int) -> Any:
    """Write all of ``data`` to ``fd`` (os.write may write part of it)."""

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(fd, view)
            except BlockingIOError:  # someone made the descriptor non-blocking: wait a little
                if not select.select([], [fd], [], 1.0)[1]:
                    raise
                continue
            view = view[written:]

    return write


def _stream_writer(stream: Any) -> Any:
    """Write to a stream that is not a file descriptor (a test's StringIO or BytesIO)."""
    binary = getattr(stream, "buffer", None)

    def write(data: bytes) -> None:
        if binary is not None:
            binary.write(data)
            binary.flush()
        else:
            stream.write(data.decode("utf-8", "replace"))
            stream.flush()

    return write


def _writer_for(stream: Any) -> Any:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return _stream_writer(stream)
    with contextlib.suppress(OSError, ValueError):
        stream.flush()  # what was written through the stream before goes first
    return _fd_writer(fd)


#: The sink lines go to (the last :func:`configure` made it); None before any.
_sink: LogSink | None = None


def _after_fork() -> None:
    if _sink is not None:
        _sink.after_fork()  # threads do not survive fork


os.register_at_fork(after_in_child=_after_fork)


class QueueLogger:
    """A structlog logger handing each rendered line (str or bytes) to the current sink's queue.

    It looks the sink up per line: structlog caches loggers on first use, and a logger cached
    before a later :func:`configure` must not write to the sink that configuration replaced.
    """

    def msg(self, message: str | bytes) -> None:
        """Queue one line."""
        if message.__class__ is not bytes:
            message = message.encode("utf-8", "replace")  # type: ignore[union-attr]
        sink = _sink
        if sink is not None:
            sink.put(message + b"\n")  # type: ignore[operator]

    log = debug = info = warn = warning = msg
    err = error = critical = exception = fatal = msg


class _QueueHandler(logging.Handler):
    """A standard-library handler queueing formatted records (grpc's own logging)."""

    def __init__(self, sink: LogSink) -> None:
        super().__init__()
        self._put = sink.put

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._put((self.format(record) + "\n").encode("utf-8", "replace"))
        except Exception:  # a record that does not format must not fail its caller
            self.handleError(record)


def flush(timeout: float = 1.0) -> bool:
    """Wait (at most ``timeout`` seconds) until the queued lines are written; False if they were not
    (the sink blocks): shutdown never waits longer than that for its logs."""
    return _sink.flush(timeout) if _sink is not None else True


def dropped_total() -> int:
    """Log lines dropped by this process so far (the queue full, or the sink failing)."""
    return _sink.dropped() if _sink is not None else 0


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


def _add_trace(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    # A line written while serving a call (the decision log's, an error's) carries the caller's
    # W3C trace context, which the interceptor put in the call's fields.
    fields = getattr(_call, "fields", None)
    if fields:
        trace_id = fields.get("trace_id")
        if trace_id is not None and "trace_id" not in event:
            event["trace_id"] = trace_id
            event["parent_span_id"] = fields["parent_span_id"]
    return event


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
    """Configure structlog (and route stdlib logging, as from grpc, through the same queue)."""
    global _fast, _rpc_log, _sink
    _fast = None
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    previous = _sink
    sink = LogSink(_writer_for(stream), json_lines=fmt == "json")
    if previous is not None:
        previous.close(0.5)
    _sink = sink
    renderer: Any
    exc: list[Any] = []
    if fmt == "json":
        exc = [structlog.processors.dict_tracebacks]
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _add_trace,
            _add_pid,
            _timestamp,
            *exc,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=lambda *_args: QueueLogger(),
        cache_logger_on_first_use=True,
    )
    _rpc_log = structlog.get_logger("loyalty.rpc")  # a proxy cached before would keep the old setup
    if fmt == "json":
        _fast = (sink.put, numeric)
    handler = _QueueHandler(sink)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
