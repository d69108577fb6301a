"""Reloads off the request path: a helper process prepares each policy set.

Parsing, checking, generating and compiling a policy set is pure Python and holds the
interpreter lock: done on the store's thread, a 600-rule policy stalled every request thread
for most of its ~200 ms, reload after reload (live p99 331 ms, worst call 2.0 s during 1,000
reloads). Here one long-lived helper process per server process (``multiprocessing``'s
``spawn`` context: a fresh interpreter, nothing inherited from gRPC's threads) runs all of
that (:func:`dsl.parts.prepare_parts`) and sends back one byte string; the serving process
only reads it back (:func:`dsl.parts.from_parts`: unpickling in small records with a pause
between them, marshal, the bytecode verifier), about a sixth of the CPU, then builds the
snapshot and swaps.

The helper dies with its parent (``PR_SET_PDEATHSIG`` by
:func:`service.lifetime.die_with_parent`, as workers do, and an end of file on its pipe). A
helper that dies, hangs past :data:`PREPARE_TIMEOUT_S` or is not ready yet is never waited for:
it is killed and started again, and that load is prepared in-process instead (logged), so a
reload is never lost and never blocks a call for
longer than an in-process load would.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import structlog

from dsl.errors import PolicyError
from dsl.policyset import PolicySet, load_directory
from dsl.schema.schema import SchemaError
from service.lifetime import die_with_parent

__all__ = ["PREPARE_TIMEOUT_S", "HelperUnavailable", "ReloadHelper"]

log = structlog.get_logger("loyalty.reloads")

#: How long one preparation may take in the helper before it counts as hung (killed, restarted,
#: and the load done in-process). Far above a 20,000-policy set's load on a busy machine.
PREPARE_TIMEOUT_S = 120.0
#: How much lower the helper's CPU priority is than the server's (``nice``): it competes with
#: the request threads for the cores, and a reload can wait where a call cannot.
HELPER_NICENESS = 10
#: The pause between two records read back in the serving process (see :func:`_pause`).
PAUSE_S = 0.0002
#: The interpreter's switch interval while this process reads a set back: a request thread
#: waiting for the lock gets it after this long at most instead of the default 5 ms, which,
#: paid at each of the several times a call takes the lock, made calls 10-20 ms slower.
SWITCH_INTERVAL_S = 0.0005
#: How long a helper may take to start (import the compiler) before a load stops waiting for it.
START_TIMEOUT_S = 60.0


class HelperUnavailable(Exception):
    """The helper could not prepare this load (not started yet, dead, hung, or it failed in a way
    only an in-process load can report faithfully); ``fault`` is False for a helper still
    starting (the first load of a server, usually)."""

    def __init__(self, message: str, *, fault: bool = True) -> None:
        super().__init__(message)
        self.fault = fault


def _pause() -> None:
    """Between two records read back (each well under a millisecond of work): hand the
    interpreter lock to a request thread waiting for it. ``sleep(0)`` releases the lock but
    often takes it straight back; a real sleep, however short, lets the waiter run."""
    time.sleep(PAUSE_S)


def _helper_main(conn: Connection, parent: int) -> None:
    """The helper process: prepare each directory asked for until the pipe closes."""
    die_with_parent(parent, signal.SIGKILL)
    # Ctrl-C and an operator's SIGHUP to the process group are the server's to act on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # Below the server's threads on a busy machine: a reload may wait, a call should not.
    with contextlib.suppress(OSError):
        os.nice(HELPER_NICENESS)
    from dsl.parts import prepare_parts

    conn.send(("ready", os.getpid()))
    while True:
        try:
            directory = conn.recv()
        except (EOFError, OSError):  # the server has gone or closed the pipe
            return
        started = time.process_time()
        reply: tuple[Any, ...]
        try:
            reply = ("ok", prepare_parts(Path(directory)))
        except PolicyError as exc:
            reply = ("policy_error", exc.diagnostics)
        except SchemaError as exc:
            reply = ("schema_error", str(exc), exc.diagnostic)
        except Exception as exc:  # reported by an in-process load, which raises it faithfully
            reply = ("other", f"{type(exc).__name__}: {exc}")
        conn.send((*reply, time.process_time() - started))


class ReloadHelper:
    """One helper process preparing policy sets for this server process's stores.

    :meth:`load` is a :data:`service.store.Loader`: the set for a directory, prepared in the
    helper when it is up, in-process otherwise. One load at a time (the helper does one
    thing at a time); :meth:`stop` ends the helper.
    """

    def __init__(self, *, timeout_s: float = PREPARE_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._process: Any = None
        self._conn: Connection | None = None
        self._ready = False
        self._stopped = False
        #: Loads prepared in the helper, and loads prepared in-process (helper not up, or failed).
        self.prepared_in_helper = 0
        self.prepared_in_process = 0
        #: CPU seconds of the last load: in this process (reading back, or the whole in-process
        #: load), and in the helper (0 for an in-process load).
        self.last_cpu_s = (0.0, 0.0)

    @property
    def pid(self) -> int | None:
        """The helper's process id, while one runs."""
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    def start(self) -> ReloadHelper:
        """Start the helper (returns at once; it says when it is ready). Start it before the
        gRPC server, so that it is not a fork of a process with gRPC's threads (spawn does not
        fork, but the habit costs nothing)."""
        with self._lock:
            self._start()
        return self

    def _start(self) -> None:
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(target=_helper_main, args=(theirs, os.getpid()),
                                        name="loyalty-reload-helper", daemon=True)
        process.start()
        theirs.close()
        self._process, self._conn, self._ready = process, ours, False
        log.info("reload helper started", helper=process.pid)
        threading.Thread(target=self._note_ready, args=(ours,), name="reload-helper-start",
                         daemon=True).start()

    def _note_ready(self, conn: Connection) -> None:
        """Take the helper's first word as soon as it comes (a load would take it otherwise),
        so that the log says when reloads move off this process."""
        try:
            wait([conn], START_TIMEOUT_S)
        except OSError:  # closed meanwhile: a later helper took its place
            return
        with self._lock:
            if self._conn is conn:
                with contextlib.suppress(EOFError, OSError):  # dead: the next load restarts it
                    self._check_ready(0)

    def _check_ready(self, timeout: float) -> bool:
        """Whether the helper has said it is ready (waiting at most ``timeout`` for it)."""
        if self._ready:
            return True
        assert self._conn is not None
        if not self._conn.poll(timeout):
            return False
        message = self._conn.recv()
        self._ready = message[0] == "ready"
        log.info("reload helper ready", helper=message[1])
        return self._ready

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> bool:
        """Wait until the helper can take loads (tests and benchmarks; a load never waits)."""
        with self._lock:
            try:
                return self._process is not None and self._check_ready(timeout)
            except (EOFError, OSError):
                return False

    def stop(self) -> None:
        """End the helper: its pipe closes (it exits at once), then it is killed if it lingers."""
        with self._lock:
            self._stopped = True
            self._end(kill=False)

    def _end(self, *, kill: bool) -> None:
        process, conn = self._process, self._conn
        self._process, self._conn, self._ready = None, None, False
        if conn is not None:
            conn.close()
        if process is not None:
            if kill and process.is_alive():
                process.kill()
            process.join(1.0)
            if process.is_alive():
                process.kill()
                process.join(1.0)

    def load(self, directory: Path) -> PolicySet:
        """The policy set in ``directory``, prepared in the helper if it is up, else here.

        Raises what :func:`dsl.policyset.load_directory` raises for the directory.
        """
        with self._lock:
            try:
                return self._load_in_helper(directory)
            except HelperUnavailable as exc:
                (log.warning if exc.fault else log.info)(
                    "reload prepared in-process", reason=str(exc), directory=str(directory))
            started = time.thread_time()
            try:
                return load_directory(directory)
            finally:
                self.prepared_in_process += 1
                self.last_cpu_s = (time.thread_time() - started, 0.0)

    def _load_in_helper(self, directory: Path) -> PolicySet:
        if self._stopped:
            raise HelperUnavailable("the helper is stopped")
        if self._process is None:
            self._start()
        try:
            if not self._check_ready(0):
                if not self._process.is_alive():
                    raise EOFError("the helper died while starting")
                raise HelperUnavailable("the helper is still starting", fault=False)
            assert self._conn is not None
            self._conn.send(str(directory))
            ready = wait([self._conn, self._process.sentinel], self.timeout_s)
            if self._conn not in ready:
                raise TimeoutError(f"no answer within {self.timeout_s:g} s" if not ready
                                   else "the helper died")
            kind, *rest = self._conn.recv()
        except HelperUnavailable:
            raise
        except (EOFError, OSError, TimeoutError) as exc:
            pid = self._process.pid if self._process is not None else None
            self._end(kill=True)
            log.error("reload helper failed; restarting it", helper=pid,
                      error=f"{type(exc).__name__}: {exc}")
            self._start()
            raise HelperUnavailable(f"the helper failed ({type(exc).__name__}: {exc})") from None
        helper_cpu = rest[-1]
        started = time.thread_time()
        if kind == "policy_error":
            self.last_cpu_s = (0.0, helper_cpu)
            raise PolicyError(rest[0])
        if kind == "schema_error":
            self.last_cpu_s = (0.0, helper_cpu)
            raise SchemaError(rest[0], rest[1])
        if kind != "ok":
            raise HelperUnavailable(f"the helper could not load it: {rest[0]}")
        from dsl.parts import from_parts

        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, SWITCH_INTERVAL_S))
        try:
            policy_set = from_parts(rest[0], _pause)
        finally:
            sys.setswitchinterval(interval)
        self.prepared_in_helper += 1
        self.last_cpu_s = (time.thread_time() - started, helper_cpu)
        log.info("reload prepared in the helper", revision=policy_set.revision,
                 helper=self._process.pid if self._process is not None else None,
                 serving_cpu_ms=round(self.last_cpu_s[0] * 1000, 1),
                 helper_cpu_ms=round(helper_cpu * 1000, 1))
        return policy_set
