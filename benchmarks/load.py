"""A bounded loopback load generator for the gRPC service, and the server processes it drives.

Every server runs in its own process (:mod:`benchmarks.serve`), so the load
generator and the server do not share a GIL, and its memory and CPU time can be
read from ``/proc``. Requests are serialised once, before timing, and sent as
bytes through a generic channel method; responses come back as bytes and are
not parsed on the timed path. The client's own protobuf work is thereby kept
off the measurement, and both arms of every comparison send identical bytes.

Every function here is bounded twice: by a number of calls or messages, and by
a deadline after which it gives up and reports what it managed.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "/loyalty.v1.LoyaltyRules"
#: Room for a 10,000-item batch in either direction.
MAX_MESSAGE = 256 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
]
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _die_with_parent() -> None:
    """In the child, before exec: receive SIGTERM if the benchmark process dies (Linux)."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class ServerProcess:
    """A server in a child process: ``with ServerProcess("real", policies_dir) as s: ...``.

    ``kind`` is ``real``, ``trivial`` or ``handwritten`` (:mod:`benchmarks.serve`: the servicer
    under test, or the service's trivial one, behind the same server), or ``cli``:
    the service exactly as deployed, ``python -m service serve`` (the ``loyalty
    serve`` command, with its policy watcher and everything else). The child's
    logs go to a temporary file. It stops when this object closes its standard
    input (``cli``: SIGTERM), and a benchmark server also stops on its own after
    ``max_seconds``. ``args``: more ``loyalty serve`` flags (``cli`` only).
    """

    def __init__(self, kind: str, policies: Path | str = ROOT / "policies",
                 max_seconds: float = 1800.0, start_timeout: float = 300.0,
                 args: tuple[str, ...] = ()) -> None:
        if args and kind != "cli":
            raise ValueError("only a cli server takes loyalty serve flags")
        self.kind = kind
        self.args = args
        self.policies = str(policies)
        self.max_seconds = max_seconds
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.startup_s = 0.0
        self.log: Any = None

    def command(self) -> list[str]:
        """The child's command line."""
        if self.kind == "cli":
            # coreutils timeout stops the server after max_seconds (and forwards SIGTERM).
            return ["timeout", str(int(self.max_seconds)), sys.executable, "-m", "service",
                    "serve", "--policies", self.policies, "--port", "0", "--log-format", "json",
                    *self.args]
        return [sys.executable, "-m", "benchmarks.serve", "--servicer", self.kind,
                "--policies", self.policies, "--max-seconds", str(self.max_seconds)]

    def __enter__(self) -> ServerProcess:
        t0 = time.perf_counter()
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            self.command(), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
            preexec_fn=_die_with_parent,
        )
        assert self.proc.stdout is not None
        line = ""
        deadline = t0 + self.start_timeout
        while time.perf_counter() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if ready:
                line = self.proc.stdout.readline()
                match = re.search(r"^PORT (\d+)|^listening on .*:(\d+)$", line.strip())
                if match:
                    self.port = int(match[1] or match[2])
                    break
                if not line:  # the child exited
                    break
        if not self.port:
            self.log.seek(0)
            tail = self.log.read()[-2000:]
            self.close()
            raise RuntimeError(f"server ({self.kind}) did not start: {line!r}\n{tail}")
        # The child may print more; keep its stdout drained so it never blocks on a full pipe.
        threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()
        channel = grpc.insecure_channel(self.address)
        try:
            grpc.channel_ready_future(channel).result(timeout=self.start_timeout)
        finally:
            channel.close()
        self.startup_s = time.perf_counter() - t0
        return self

    @staticmethod
    def _drain(stream: Any) -> None:
        for _ in stream:
            pass

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the child: close its input (``cli``: SIGTERM), then SIGTERM, then SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            if self.kind == "cli":
                proc.terminate()
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self.log is not None:
            self.log.close()
            self.log = None

    @property
    def pid(self) -> int:
        """The server's process id (for ``cli``, the child of ``timeout``)."""
        assert self.proc is not None
        if self.kind != "cli":
            return self.proc.pid
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return int(children[0]) if children else self.proc.pid

    def memory(self) -> dict[str, float]:
        """The server's resident size now (``rss``) and at its peak (``hwm``), in MiB."""
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss" if key == "VmRSS" else "hwm"] = int(value.split()[0]) / 1024
        return out

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Throughput:
    """A closed-loop run: how many calls (and items) completed in how long."""

    calls: int
    items: int
    seconds: float
    errors: int

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


def closed_loop(address: str, method: str, payloads: list[bytes], calls: int, concurrency: int,
                items_per_call: int = 1, deadline_s: float = 120.0) -> Throughput:
    """``calls`` unary calls from ``concurrency`` workers that each wait for their reply.

    Stops at ``deadline_s`` whatever has completed. The client is ``grpc.aio``: on
    this machine it needs about half the CPU per call of the future-based sync client,
    which keeps the server, not the generator, the bottleneck.
    """
    return asyncio.run(_closed_loop(address, method, payloads, calls, concurrency,
                                    items_per_call, deadline_s))


async def _closed_loop(address: str, method: str, payloads: list[bytes], calls: int,
                       concurrency: int, items_per_call: int, deadline_s: float) -> Throughput:
    async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        call = channel.unary_unary(f"{SERVICE}/{method}")
        await call(payloads[0], timeout=60.0)  # connect and warm up off the clock
        return await _run_calls(call, payloads, 0, calls, concurrency, items_per_call, deadline_s)


async def _run_calls(call: Any, payloads: list[bytes], first: int, calls: int, concurrency: int,
                     items_per_call: int, deadline_s: float) -> Throughput:
    """``calls`` calls on ``call`` from ``concurrency`` workers, payloads from index ``first`` on."""
    n = len(payloads)
    state = {"next": 0, "done": 0, "errors": 0}

    async def worker() -> None:
        while state["next"] < calls:
            i = state["next"]
            state["next"] += 1
            try:
                await call(payloads[(first + i) % n], timeout=60.0)
            except grpc.aio.AioRpcError:
                state["errors"] += 1
            state["done"] += 1

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=max(deadline_s, 0.001))
    seconds = time.perf_counter() - t0
    for task in pending:
        task.cancel()
    done, errors = state["done"], state["errors"]
    ok = done - errors
    return Throughput(ok, ok * items_per_call, seconds, errors + (calls - done))


@dataclass
class Turns:
    """One server's share of :func:`alternating_closed_loop`: a result per turn, and the
    server CPU seconds its turns used (0.0 without a CPU reader)."""

    runs: list[Throughput]
    cpu_s: float = 0.0


def alternating_closed_loop(targets: dict[str, str], method: str, payloads: list[bytes],
                            calls_per_turn: int, rounds: int, concurrency: int,
                            cpu: dict[str, Callable[[], float]] | None = None,
                            warmup_calls: int = 200, deadline_s: float = 300.0) -> dict[str, Turns]:
    """Closed-loop turns of ``calls_per_turn`` calls on each of ``targets`` (name -> address),
    one turn per target per round, the order reversed every round (A B, B A, A B, ...).

    One channel per target stays open for the whole run (connected and warmed up
    with ``warmup_calls`` calls off the clock), so turns can be short: two adjacent
    turns see nearly the same machine, which is what a comparison on a shared
    machine needs. Every target's turn in a round sends the same payloads.
    ``cpu[name]()``, when given, reads that server's CPU seconds before and after
    each of its turns. Stops at ``deadline_s`` with the rounds completed so far.
    """
    return asyncio.run(_alternating(targets, method, payloads, calls_per_turn, rounds, concurrency,
                                    cpu or {}, warmup_calls, deadline_s))


async def _alternating(targets: dict[str, str], method: str, payloads: list[bytes],
                       calls_per_turn: int, rounds: int, concurrency: int,
                       cpu: dict[str, Callable[[], float]], warmup_calls: int,
                       deadline_s: float) -> dict[str, Turns]:
    end = time.perf_counter() + deadline_s
    channels = {name: grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
                for name, address in targets.items()}
    try:
        calls = {name: channel.unary_unary(f"{SERVICE}/{method}")
                 for name, channel in channels.items()}
        for call in calls.values():  # connect, and start every server's threads, off the clock
            await _run_calls(call, payloads, 0, warmup_calls, concurrency, 1, 60.0)
        out = {name: Turns([]) for name in targets}
        order = list(targets)
        for r in range(rounds):
            if time.perf_counter() >= end:
                break
            first = r * calls_per_turn
            turns: dict[str, tuple[Throughput, float]] = {}
            for name in order:
                read = cpu.get(name)
                cpu0 = read() if read else 0.0
                result = await _run_calls(calls[name], payloads, first, calls_per_turn, concurrency,
                                          1, end - time.perf_counter())
                turns[name] = (result, read() - cpu0 if read else 0.0)
            if time.perf_counter() >= end and any(t.errors for t, _ in turns.values()):
                break  # a turn the deadline cut short: the round is not a fair pair
            for name, (result, cpu_s) in turns.items():
                out[name].runs.append(result)
                out[name].cpu_s += cpu_s
            order.reverse()
        return out
    finally:
        for channel in channels.values():
            await channel.close()


def stream_run(address: str, payloads: list[bytes], messages: int,
               deadline_s: float = 120.0) -> Throughput:
    """One ``EvaluateStream`` carrying ``messages`` requests; counts the responses."""
    return asyncio.run(_stream_run(address, payloads, messages, deadline_s))


async def _stream_run(address: str, payloads: list[bytes], messages: int,
                      deadline_s: float) -> Throughput:
    async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        await channel.channel_ready()
        stream = channel.stream_stream(f"{SERVICE}/EvaluateStream")(timeout=deadline_s)
        n = len(payloads)
        received = 0

        async def write() -> None:
            for k in range(messages):
                await stream.write(payloads[k % n])
            await stream.done_writing()

        t0 = time.perf_counter()
        writer = asyncio.create_task(write())
        errors = 0
        try:
            async for _ in stream:
                received += 1
            await writer
        except grpc.aio.AioRpcError:
            errors += 1
            writer.cancel()
        seconds = time.perf_counter() - t0
        return Throughput(received, received, seconds, errors + (messages - received))


@dataclass
class Latency:
    """An open-loop run at a fixed offered rate; latencies count from each call's scheduled time."""

    offered_per_s: float
    calls: int
    completed: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile latency in milliseconds (nearest rank)."""
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        k = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[k]

    def summary(self) -> dict[str, float]:
        """Offered and achieved rate, p50/p90/p99/p99.9/max latency, errors."""
        return {
            "offered_per_s": self.offered_per_s,
            "achieved_per_s": self.completed / self.seconds if self.seconds else 0.0,
            "calls": self.calls,
            "errors": self.errors,
            "p50_ms": self.percentile(50),
            "p90_ms": self.percentile(90),
            "p99_ms": self.percentile(99),
            "p999_ms": self.percentile(99.9),
            "max_ms": max(self.latencies_ms, default=float("nan")),
            "mean_ms": statistics.fmean(self.latencies_ms) if self.latencies_ms else float("nan"),
        }


def open_loop(address: str, payloads: list[bytes], rate: float, seconds: float,
              method: str = "Evaluate", deadline_s: float | None = None) -> Latency:
    """Offer ``rate`` calls per second for ``seconds``, whatever the server does.

    Each call is issued at its scheduled time (or as soon after as the generator
    can), and its latency counts from the schedule, so a slow server cannot hide
    its queueing by slowing the generator down (no coordinated omission).
    """
    limit = deadline_s if deadline_s is not None else seconds + 30.0
    return asyncio.run(_open_loop(address, method, payloads, rate, seconds, limit))


async def _open_loop(address: str, method: str, payloads: list[bytes], rate: float,
                     seconds: float, deadline_s: float) -> Latency:
    async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        call = channel.unary_unary(f"{SERVICE}/{method}")
        await call(payloads[0], timeout=60.0)
        calls = int(rate * seconds)
        latencies: list[float] = []
        errors = 0

        async def one(i: int, scheduled: float) -> None:
            nonlocal errors
            try:
                await call(payloads[i % len(payloads)], timeout=30.0)
            except grpc.aio.AioRpcError:
                errors += 1
                return
            latencies.append((time.perf_counter() - scheduled) * 1000)

        tasks = []
        t0 = time.perf_counter() + 0.05
        for i in range(calls):
            scheduled = t0 + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0.0005:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
        _, pending = await asyncio.wait(tasks, timeout=deadline_s) if tasks else ((), ())
        for task in pending:
            task.cancel()
        elapsed = time.perf_counter() - t0
        return Latency(rate, calls, len(latencies), errors + len(pending), elapsed, latencies)


class MemorySampler:
    """Samples a server's resident size every ``interval`` seconds in a background thread."""

    def __init__(self, server: ServerProcess, interval: float = 0.5) -> None:
        self.server = server
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.perf_counter()
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - t0, self.server.memory()["rss"]))
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)
