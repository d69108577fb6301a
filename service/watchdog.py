"""A watchdog that ends the process when Python stops running: GIL stalls and slow shutdowns.

Python runs signal handlers in the main thread, and only when it holds the GIL.
A handler stuck in one long C call that keeps the GIL (``int()`` of a Decimal
with a huge exponent, a regular expression that backtracks for ever) starves
every other thread, the health service included, and holds SIGTERM off until it
returns: nothing written in Python can bound that, because nothing in Python runs.

faulthandler's ``dump_traceback_later`` timer can: it waits in a C thread that
never takes the GIL, and when it expires it writes every thread's traceback to
stderr (naming the stuck call) and calls ``_exit(1)``. ``_exit`` works where a
signal would not: in a container the server is usually PID 1, and the kernel
drops signals to PID 1 that it has no handler for, SIGALRM and another process's
SIGKILL included. :class:`Watchdog` uses the timer two ways:

- while serving, a thread re-arms it every :func:`heartbeat_interval`, so it
  expires only when no Python thread has run for ``limit`` seconds;
- on the first stop signal (:meth:`Watchdog.stopping`) it is armed once more for
  ``limit`` and never re-armed, so the shutdown ends by then however it goes.

A stop signal arrives either while Python runs (the handler calls
:meth:`Watchdog.stopping` at once) or during a stall (the handler waits, but the
stall started before the signal and the heartbeat timer expires ``limit`` after
it started). Either way the process is gone at most ``limit`` seconds after the
signal. The timer is process-wide: only one watchdog may run in a process.

Its own output cannot hold it up: the tracebacks go to stderr opened afresh
(``/proc/self/fd/2``, a new open file description) in non-blocking mode, so a
pipe nobody reads or a full disk loses the tracebacks but never delays the
``_exit`` (:func:`nonblocking_stderr`).
"""

from __future__ import annotations

import contextlib
import faulthandler
import fcntl
import os
import sys
import threading
from typing import Any, TextIO

#: Seconds a stop may take beyond ``--grace``: the grace period is for calls in
#: flight; then the server still stops its threads and flushes logs and metrics.
DEFAULT_MARGIN_S = 5.0


def heartbeat_interval(limit: float) -> float:
    """How often the heartbeat re-arms a timer of ``limit`` seconds: a quarter of it, at most 1 s,
    so that a heartbeat delayed by a busy GIL is still far from letting the timer expire."""
    return min(1.0, limit / 4)


def nonblocking_stderr(stream: TextIO | None = None) -> Any:
    """``stream`` (stderr by default) opened again as a non-blocking binary file, or ``stream``
    itself where that cannot be done (a socket, a stream with no descriptor).

    Opening ``/proc/self/fd/N`` gives a new open file description, so its ``O_NONBLOCK`` does
    not change the descriptor everyone else writes to; faulthandler ignores a write that
    would block and goes on to ``_exit``.
    """
    stream = stream or sys.stderr
    try:
        fd = stream.fileno()
        file = open(f"/proc/self/fd/{fd}", "ab", buffering=0)  # noqa: SIM115 - the process's life
    except (OSError, ValueError, AttributeError):
        return stream
    with contextlib.suppress(OSError):
        flags = fcntl.fcntl(file.fileno(), fcntl.F_GETFL)
        fcntl.fcntl(file.fileno(), fcntl.F_SETFL, flags | os.O_NONBLOCK)
        return file
    file.close()
    return stream


class Watchdog:
    """Exits the process (status 1, tracebacks on ``file``) when Python stalls for ``limit``
    seconds while serving, or ``limit`` seconds after :meth:`stopping` at the latest."""

    def __init__(self, limit: float, file: Any = None) -> None:
        if limit <= 0:
            raise ValueError(f"the watchdog limit must be positive, not {limit}")
        self.limit = limit
        self.file = file if file is not None else nonblocking_stderr()
        # Held while arming, so the heartbeat can never re-arm after stopping() armed the last time.
        self._lock = threading.RLock()
        self._stopping = False
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Arm the timer and start the heartbeat that keeps re-arming it."""
        self._arm()
        self._thread = threading.Thread(target=self._beat, name="watchdog", daemon=True)
        self._thread.start()

    def stopping(self) -> None:
        """The process is stopping: it must be gone within ``limit`` seconds from now.

        Called from signal handlers and from the main thread, which a handler may
        interrupt while it holds the lock: hence a reentrant lock. Calling it again
        does not postpone the deadline.
        """
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            faulthandler.dump_traceback_later(self.limit, exit=True, file=self.file)
        self._ended.set()

    def _arm(self) -> None:
        with self._lock:
            if not self._stopping:
                faulthandler.dump_traceback_later(self.limit, exit=True, file=self.file)

    def _beat(self) -> None:
        interval = heartbeat_interval(self.limit)
        while not self._ended.wait(interval):
            self._arm()
