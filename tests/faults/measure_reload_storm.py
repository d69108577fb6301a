"""Live latency during a storm of reloads of a 600-rule policy, for docs/reliability.md.

    python -m tests.faults.measure_reload_storm [--edits 200] [--rules 600] [--quiet-s 2]

Starts ``loyalty serve`` on 127.0.0.1 on the bundled policies plus a ``--rules``-rule flight
policy, waits for its reload helper (service.reloads), and runs a steady load of Evaluate calls
(3 callers, each on its own connection). The quiet window is a control run: a driver process
writes ``--edits`` versions of the big policy to a copy nobody serves. The storm window: the
same driver writes them to the served directory (each atomically, each followed by a SIGHUP,
20 ms apart), until the last one serves. Prints the quiet p99, the storm p99, the worst call and
the CPU of a reload in the serving process and in the helper (medians, from the server's log).
Every loop is bounded."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

import dsl
from service.client import LoyaltyClient
from tests.service.conftest import ServerProcess, gold_customer, jfk_lhr, start_server
from tests.service.measure_resources import MID_SIZE, mid_size_policy, policy_dir
from tests.service.test_process import log_events

#: How long a load or a wait may run at most, whatever happens.
MAX_SECONDS = 120.0


@dataclass
class TimedLoad:
    """``threads`` callers of Evaluate recording each call's latency, until :meth:`stop` or
    ``max_seconds``. ``latencies`` are (sent, seconds) per answered call, ``time.monotonic()``."""

    target: str
    threads: int = 3
    max_seconds: float = MAX_SECONDS
    latencies: list[tuple[float, float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> TimedLoad:
        """Start the callers (each connects, then calls without pause)."""
        for i in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"timed-load-{i}", daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def _run(self) -> None:
        options = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own
        with LoyaltyClient(self.target, timeout=10, options=options) as client:
            client.list_policies()  # connected before the first timed call
            deadline = time.monotonic() + self.max_seconds
            while not self._stop.is_set() and time.monotonic() < deadline:
                sent = time.monotonic()
                try:
                    client.evaluate(gold_customer(), jfk_lhr())
                except grpc.RpcError as exc:
                    with self._lock:
                        self.failures.append(f"{exc.code().name}: {exc.details()}")
                    continue
                with self._lock:
                    self.latencies.append((sent, time.monotonic() - sent))

    def between(self, start: float, end: float) -> list[float]:
        """Latencies (seconds) of the calls sent between ``start`` and ``end``."""
        with self._lock:
            return [s for sent, s in self.latencies if start <= sent < end]

    def stop(self) -> None:
        """Stop the callers and wait for them."""
        self._stop.set()
        for thread in self._workers:
            thread.join(15)


def p99(latencies: list[float]) -> float:
    """The 99th percentile of ``latencies``."""
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]


def median(values: Iterable[object]) -> float:
    """The median of ``values`` (numbers from the log), 0.0 for none."""
    numbers = [float(v) for v in values]  # type: ignore[arg-type]
    return statistics.median(numbers) if numbers else 0.0


def wait_for_log(server: ServerProcess, event: str, timeout: float = 60.0) -> dict[str, object]:
    """The first log line of ``event``, waiting for it at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_events(server):
            if line.get("event") == event:
                return line
        time.sleep(0.1)
    raise AssertionError(f"no {event!r} in the server's log within {timeout} s")


@dataclass
class StormFigures:
    """What one storm measured (milliseconds, calls, reloads)."""

    quiet_p99_ms: float
    storm_p99_ms: float
    worst_ms: float
    quiet_calls: int
    storm_calls: int
    failures: list[str]
    reloads: int
    in_process: int
    serving_cpu_ms: float
    helper_cpu_ms: float
    final_revision: str
    served_revision: str

    def line(self) -> str:
        """The figures in one line."""
        return (f"quiet p99 {self.quiet_p99_ms:.2f} ms ({self.quiet_calls} calls); storm p99 "
                f"{self.storm_p99_ms:.2f} ms, worst {self.worst_ms:.1f} ms ({self.storm_calls} calls, "
                f"{len(self.failures)} failed); {self.reloads} reloads ({self.in_process} in-process), "
                f"CPU per reload: serving process {self.serving_cpu_ms:.1f} ms, helper "
                f"{self.helper_cpu_ms:.1f} ms")


def write_version(directory: Path, text: str) -> None:
    """``text`` as the big policy, written in one rename (never read half written)."""
    path = directory / MID_SIZE
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(text)
    staged.replace(path)


def final_revision(directory: Path, text: str) -> str:
    """The revision of ``directory`` with ``text`` as its big policy (computed on a copy: the
    revision names files relative to their directory)."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "policies"
        shutil.copytree(directory, copy)
        write_version(copy, text)
        return dsl.load_directory(copy).revision


def drive(directory: Path, pid: int, edits: int, rules: int) -> None:
    """The storm itself, run as a process of its own (``--drive``): ``edits`` versions of the big
    policy, each written atomically and followed by a SIGHUP to ``pid``, 20 ms apart. Apart from
    the process measuring: its writes would otherwise take that process's interpreter lock from
    the callers and count against the server (they doubled the p99 with no reload at all)."""
    texts = [mid_size_policy(version, rules) for version in range(1, edits + 1)]
    for text in texts:
        write_version(directory, text)
        if pid:  # 0: the control run, the same writes to a directory nobody serves
            os.kill(pid, signal.SIGHUP)
        time.sleep(0.02)


def run_driver(directory: Path, pid: int, edits: int, rules: int) -> None:
    """:func:`drive` in a process of its own."""
    subprocess.run([sys.executable, "-m", "tests.faults.measure_reload_storm", "--drive",
                    str(directory), "--pid", str(pid), "--edits", str(edits),
                    "--rules", str(rules)], check=True, timeout=MAX_SECONDS)


def storm(server: ServerProcess, directory: Path, *, edits: int, rules: int,
          quiet_s: float) -> StormFigures:
    """Measure a quiet window, then a storm of ``edits`` versions, on a running server.

    The quiet window is a control run of the storm: the same load, and the same writes by the
    same driver process, to a copy of the directory that nobody serves, without SIGHUPs, then
    ``quiet_s`` seconds more. So the two windows differ by the reloads alone: on a busy shared
    machine the driver's own start and writes doubled the p99 of a window with no reload at all.
    """
    wait_for_log(server, "reload helper ready")
    final = final_revision(directory, mid_size_policy(edits, rules))  # before the load starts
    scratch = Path(tempfile.mkdtemp(prefix="reload-control-"))
    control = scratch / "policies"
    shutil.copytree(directory, control)
    load = TimedLoad(server.target).start()
    try:
        time.sleep(1.0)  # connections up and warm
        quiet_from = time.monotonic()
        run_driver(control, 0, edits, rules)
        time.sleep(quiet_s)
        storm_from = time.monotonic()
        run_driver(directory, server.proc.pid, edits, rules)
        deadline = time.monotonic() + MAX_SECONDS
        with LoyaltyClient(server.target, timeout=10) as client:  # one connection for the polls
            served = client.list_policies().revision
            while served != final and time.monotonic() < deadline:
                time.sleep(0.1)
                served = client.list_policies().revision
        storm_to = time.monotonic()
    finally:
        load.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    quiet, during = load.between(quiet_from, storm_from), load.between(storm_from, storm_to)
    loaded = [e for e in log_events(server) if e.get("event") == "reload prepared in the helper"]
    # In-process loads for a fault (the first load, made while the helper starts, is not one).
    in_process = [e for e in log_events(server) if e.get("event") == "reload prepared in-process"
                  and e.get("level") == "warning"]
    return StormFigures(
        quiet_p99_ms=p99(quiet) * 1000, storm_p99_ms=p99(during) * 1000,
        worst_ms=max(during) * 1000, quiet_calls=len(quiet), storm_calls=len(during),
        failures=load.failures, reloads=len(loaded) + len(in_process), in_process=len(in_process),
        serving_cpu_ms=median(e["serving_cpu_ms"] for e in loaded),
        helper_cpu_ms=median(e["helper_cpu_ms"] for e in loaded),
        final_revision=final, served_revision=served,
    )


def main() -> None:
    """Print the figures of one storm."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--rules", type=int, default=600)
    parser.add_argument("--quiet-s", type=float, default=2.0)
    parser.add_argument("--drive", type=Path, help=argparse.SUPPRESS)  # see drive()
    parser.add_argument("--pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive is not None:
        drive(args.drive, args.pid, args.edits, args.rules)
        return
    root = Path(tempfile.mkdtemp(prefix="reload-storm-"))
    try:
        directory = policy_dir(root / "policies", args.rules)
        server = start_server("--log-level", "debug", policies=directory)
        try:
            print(storm(server, directory, edits=args.edits, rules=args.rules,
                        quiet_s=args.quiet_s).line(), flush=True)
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
