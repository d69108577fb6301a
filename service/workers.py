"""``loyalty serve --workers N``: N server processes sharing one port, supervised.

The supervisor reserves the port (a socket with SO_REUSEPORT, bound but not
listening, so ``--port 0`` works too), forks the workers before any gRPC server
exists, announces the address once every worker is serving, replaces a worker
that dies, forwards SIGHUP, and on SIGTERM/SIGINT stops every worker gracefully
(a second SIGTERM/SIGINT kills them at once: the workers themselves do not act on a second
signal, since a terminal's Ctrl-C or systemd's stop reaches them directly as well as through
the supervisor).
With a metrics port, the workers write their metrics to
``PROMETHEUS_MULTIPROC_DIR`` and the supervisor serves their sum.

Workers never outlive the supervisor: each asks the kernel for SIGTERM when its parent dies
(``prctl(PR_SET_PDEATHSIG)`` on Linux), so a ``kill -9`` of the supervisor stops them within
``--grace`` plus the watchdog's margin instead of leaving them serving an old revision on the
shared port. A worker that is stopped (SIGSTOP, a debugger) still holds its share of the
port, and the kernel keeps routing new connections to it; the supervisor kills a worker that
stays stopped for :data:`STOPPED_LIMIT_S` and starts another.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:  # service.server imports prometheus-client, which must wait (see below)
    from service.server import ServeConfig

log = structlog.get_logger("loyalty.workers")

#: How long workers may take to load the policies and start serving.
STARTUP_TIMEOUT_S = 120.0
#: A worker that dies sooner than this after starting counts as crashing; the
#: supervisor then waits before replacing it, so a broken worker cannot fork-bomb.
_CRASH_WINDOW_S = 5.0
_OWNED_METRICS_DIR: str | None = None
#: How long a worker may stay stopped (SIGSTOP) before the supervisor replaces it.
STOPPED_LIMIT_S = 1.0
#: How often the supervisor looks at its workers.
_POLL_S = 0.2
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux); if ``parent``
    is already gone (it died before the request was made), exit now."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def is_stopped(pid: int) -> bool:
    """Whether ``pid`` is stopped (``T``) or stopped by a tracer (``t``), from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stat:
            # "pid (comm) state ...": comm may hold spaces and parentheses, the last ')' ends it.
            return stat.read().rpartition(")")[2].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def prepare_multiprocess_metrics() -> str:
    """Point prometheus-client at a fresh ``PROMETHEUS_MULTIPROC_DIR`` (before it is imported)."""
    global _OWNED_METRICS_DIR
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        for stale in Path(path).glob("*.db"):  # left by an earlier run: would be summed in
            stale.unlink()
    else:
        path = tempfile.mkdtemp(prefix="loyalty-metrics-")
        _OWNED_METRICS_DIR = path
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A bound, non-listening SO_REUSEPORT socket holding ``host:port`` for the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            from service.server import AddressInUse, format_host

            raise AddressInUse(f"{format_host(host)}:{port}") from None
        raise
    return sock, int(sock.getsockname()[1])


class _Supervisor:
    def __init__(self, config: ServeConfig, port: int) -> None:
        self.config = config
        self.port = port
        self.children: dict[int, float] = {}  # pid -> start time
        self.ready_r, self.ready_w = os.pipe()
        self.stop = threading.Event()
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self.stopped_since: dict[int, float] = {}  # pid -> when it was first seen stopped

    def spawn(self) -> int:
        """Fork one worker; in the child, serve until told to stop, then exit."""
        supervisor = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                die_with_parent(supervisor)  # before anything that could take time
                os.close(self.ready_r)
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                # A SIGHUP before server.run() takes it over is ignored, never fatal: the first
                # load is still to come, and reads the directory as it is then.
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                from service import server

                worker = replace(self.config, port=self.port, workers=1)
                code = server.run(
                    worker,
                    ready=lambda _port: os.write(self.ready_w, b"."),
                    reuse_port=True,
                    serve_metrics=False,
                    supervised=True,
                )
            except BaseException:  # never return into the supervisor's code
                log.exception("worker failed")
            finally:
                from service import logs

                logs.flush(1.0)
                os._exit(code)
        self.children[pid] = time.monotonic()
        log.info("worker started", pid=pid)
        return pid

    def wait_ready(self, count: int) -> bool:
        """Wait until ``count`` workers say they serve; False if one died or time ran out."""
        got = 0
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while got < count:
            left = deadline - time.monotonic()
            if left <= 0 or self.stop.is_set():
                return False
            readable, _, _ = select.select([self.ready_r], [], [], min(left, 0.2))
            if readable:
                got += len(os.read(self.ready_r, 64))
            if self._reap(respawn=False):
                return False  # a worker died while starting: the policies do not load, say
        return True

    def _reap(self, respawn: bool) -> bool:
        died = False
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return died
            if pid == 0:
                return died
            started = self.children.pop(pid, None)
            if started is None:
                continue
            died = True
            code = os.waitstatus_to_exitcode(status)
            log.warning("worker exited", pid=pid, code=code)
            if self.multiprocess:
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(pid)
            if respawn and not self.stop.is_set():
                if time.monotonic() - started < _CRASH_WINDOW_S:
                    self.stop.wait(1.0)
                if not self.stop.is_set():
                    self.spawn()

    def supervise(self) -> None:
        """Replace dead workers until a stop signal."""
        os.set_blocking(self.ready_r, False)
        while not self.stop.wait(_POLL_S):
            self._reap(respawn=True)
            self._replace_stopped()
            with contextlib.suppress(BlockingIOError):
                os.read(self.ready_r, 4096)  # replacements announce themselves too

    def _replace_stopped(self) -> None:
        """SIGKILL a worker stopped for STOPPED_LIMIT_S: the kernel goes on handing it new
        connections that nobody accepts. :meth:`_reap` then starts its replacement."""
        now = time.monotonic()
        for pid in list(self.children):
            if not is_stopped(pid):
                self.stopped_since.pop(pid, None)
                continue
            since = self.stopped_since.setdefault(pid, now)
            if now - since >= STOPPED_LIMIT_S:
                log.error("worker stopped; replacing it", pid=pid, stopped_s=round(now - since, 1))
                self.stopped_since.pop(pid, None)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def signal_all(self, sig: int) -> None:
        """Send ``sig`` to every live worker."""
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def shutdown(self) -> int:
        """SIGTERM every worker, wait (then SIGKILL); 0 if all stopped cleanly."""
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.config.grace + 10.0
        worst = 0
        while self.children and time.monotonic() < deadline:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)
                continue
            if self.children.pop(pid, None) is not None:
                worst = max(worst, abs(os.waitstatus_to_exitcode(status)))
        if self.children:
            log.error("workers did not stop in time; killing", pids=sorted(self.children))
            self.signal_all(signal.SIGKILL)
            for pid in list(self.children):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            self.children.clear()
            worst = max(worst, 1)
        return 0 if worst == 0 else 1


def run_workers(config: ServeConfig, *, announce: Callable[[int], None] | None = None) -> int:
    """Run ``config.workers`` worker processes on one port until SIGTERM/SIGINT."""
    reserved, port = reserve_port(config.host, config.port)
    supervisor = _Supervisor(config, port)
    previous: dict[int, Any] = {}

    def on_stop(signum: int, _frame: Any) -> None:
        log.info("signal", signal=signal.Signals(signum).name)
        if supervisor.stop.is_set():  # asked twice: do not wait for the workers' grace period
            log.warning("signal while stopping: killing the workers", pids=sorted(supervisor.children))
            supervisor.signal_all(signal.SIGKILL)
        supervisor.stop.set()

    def on_hup(_signum: int, _frame: Any) -> None:
        log.info("signal", signal="SIGHUP", forwarded_to=len(supervisor.children))
        supervisor.signal_all(signal.SIGHUP)

    for sig, handler in ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop), (signal.SIGHUP, on_hup)):
        previous[sig] = signal.signal(sig, handler)
    try:
        for _ in range(config.workers):
            supervisor.spawn()
        if not supervisor.wait_ready(config.workers):
            log.error("workers did not start")
            supervisor.shutdown()
            return 2
        from service.server import format_host

        if config.metrics_port is not None:
            from service.metrics import multiprocess_registry
            from service.server import start_metrics_server

            host = config.metrics_host or config.host
            metrics_port = start_metrics_server(config.metrics_port, host, multiprocess_registry())
            print(f"metrics on {format_host(host)}:{metrics_port}", flush=True)
        log.info("serving", address=f"{format_host(config.host)}:{port}", workers=config.workers)
        if announce is not None:
            announce(port)
        supervisor.supervise()
        return supervisor.shutdown()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reserved.close()
        if _OWNED_METRICS_DIR:
            shutil.rmtree(_OWNED_METRICS_DIR, ignore_errors=True)
