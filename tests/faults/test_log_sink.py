"""A log sink that blocks or fails never blocks or fails a call, and never holds up a stop.

Each test runs a real ``loyalty serve`` process whose stderr is the fault: a pipe nobody reads
(filled before the server starts, so its very first line would block), or ``/dev/full`` (every
write fails with ENOSPC). With ``--decision-log`` a batch of 100 items writes 101 lines, so a
few hundred calls overflow the log queue (:data:`service.logs.QUEUE_LINES`) many times over.
Every call must answer OK, health must stay SERVING (the service can answer), the dropped lines
must be counted in ``loyalty_log_lines_dropped_total``, and SIGTERM must end the process within
``--grace`` plus the watchdog's margin. docs/reliability.md has the figures.
Every load is bounded in calls and seconds and talks only to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service import logs
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from service.watchdog import DEFAULT_MARGIN_S, nonblocking_stderr
from tests.service.conftest import POLICIES, ROOT, gold_customer, jfk_lhr

#: Calls per test (each a batch of BATCH items, each item a decision log line).
CALLS = 300
BATCH = 100
#: The longest the load may take on a shared 2-core machine (it takes 3-10 s).
LOAD_S = 90.0
GRACE_S = 1.0
#: What docs/service.md promises for a stop: gone within --grace plus the watchdog's margin.
STOP_BOUND_S = GRACE_S + DEFAULT_MARGIN_S


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    metrics_port: int

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def metric(self, name: str) -> float:
        """The value of an unlabelled metric on the metrics port."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read()
        for line in text.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not exported")


def full_pipe() -> tuple[int, int]:
    """A pipe whose buffer is already full and that nobody will read: (read end, write end)."""
    read_end, write_end = os.pipe()
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(write_end, b"x" * 65536)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags)  # the server gets a blocking descriptor
    return read_end, write_end


@contextlib.contextmanager
def serve(stderr: int, *args: str) -> Iterator[Server]:
    """``loyalty serve`` with ``stderr`` as its stderr; stdout is read for the ports."""
    command = [sys.executable, "-m", "service", "serve", "--port", "0", "--metrics-port", "0",
               "--log-format", "json", "--policies", str(POLICIES), "--grace", str(GRACE_S),
               "--no-watch", *args]
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL)
    ports: dict[str, int] = {}
    ready = threading.Event()

    def read_stdout() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode()
            if line.startswith("metrics on "):
                ports["metrics"] = int(line.rsplit(":", 1)[1])
            if line.startswith("listening on "):
                ports["grpc"] = int(line.rsplit(":", 1)[1])
                ready.set()

    threading.Thread(target=read_stdout, daemon=True).start()
    try:
        assert ready.wait(60), f"server did not start (exit {proc.poll()})"
        yield Server(proc, ports["grpc"], ports["metrics"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def batch() -> pb.EvaluateBatchRequest:
    return pb.EvaluateBatchRequest(items=[
        pb.BatchItem(correlation_id=str(i), customer=gold_customer(f"c-{i}"), event=jfk_lhr(f"e-{i}"))
        for i in range(BATCH)])


def load(server: Server) -> tuple[int, int, list[str]]:
    """CALLS batches at a 5 s deadline each, health checked every 20: (ok, failed, statuses)."""
    ok = failed = 0
    statuses: list[str] = []
    request = batch()
    deadline = time.monotonic() + LOAD_S
    with server.channel() as channel:
        stub = pb_grpc.LoyaltyRulesStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        for n in range(CALLS):
            if time.monotonic() > deadline:
                break
            try:
                response = stub.EvaluateBatch(request, timeout=5)
                ok += len(response.results) == BATCH
            except grpc.RpcError:
                failed += 1
            if n % 20 == 0:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                statuses.append(health_pb2.HealthCheckResponse.ServingStatus.Name(status))
    return ok, failed, statuses


def stop_seconds(server: Server) -> tuple[float, int | None]:
    """SIGTERM, then how long the process took to exit and its status (None: still running)."""
    start = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(STOP_BOUND_S + 5)
    except subprocess.TimeoutExpired:
        return time.monotonic() - start, None
    return time.monotonic() - start, code


def test_stderr_a_pipe_nobody_reads_loses_no_call_and_sigterm_still_stops():
    """The sink blocks from the first line: every call answers, health says SERVING, the dropped
    lines are counted, and SIGTERM ends the process within --grace plus the margin."""
    read_end, write_end = full_pipe()
    try:
        with serve(write_end, "--decision-log") as server:
            ok, failed, statuses = load(server)
            time.sleep(1.5)  # the metrics flusher exports the drop count every second
            dropped = server.metric("loyalty_log_lines_dropped_total")
            seconds, code = stop_seconds(server)
    finally:
        os.close(read_end)
        os.close(write_end)
    print(f"\nunread pipe: {ok}/{CALLS} calls OK, {failed} failed, {dropped:.0f} lines dropped, "
          f"SIGTERM to exit {seconds:.2f} s (code {code})")
    assert (ok, failed) == (CALLS, 0)
    assert set(statuses) == {"SERVING"}
    assert dropped > 0
    assert code == 0 and seconds < STOP_BOUND_S


def test_stderr_on_a_full_disk_fails_no_call():
    """Every write fails with ENOSPC (/dev/full): zero failed calls, the lines counted as dropped."""
    with open("/dev/full", "wb") as full, serve(full.fileno(), "--decision-log") as server:
        ok, failed, statuses = load(server)
        time.sleep(1.5)
        dropped = server.metric("loyalty_log_lines_dropped_total")
        seconds, code = stop_seconds(server)
    print(f"\n/dev/full: {ok}/{CALLS} calls OK, {failed} failed, {dropped:.0f} lines dropped, "
          f"SIGTERM to exit {seconds:.2f} s (code {code})")
    assert (ok, failed) == (CALLS, 0)
    assert set(statuses) == {"SERVING"}
    assert dropped >= CALLS * (BATCH + 1)  # every line: none could be written
    assert code == 0 and seconds < STOP_BOUND_S


def test_sigterm_with_a_blocked_log_and_a_stalled_interpreter_ends_within_the_bound():
    """The watchdog's own traceback goes to the same unread pipe: it must still _exit on time."""
    read_end, write_end = full_pipe()
    command = [sys.executable, "-m", "tests.service.stuck_server", "--grace", "1",
               "--watchdog-margin", "2"]
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=write_end, stdin=subprocess.DEVNULL,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        port = int(line.rsplit(":", 1)[1])
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pb_grpc.LoyaltyRulesStub(channel)
        stuck = stub.Evaluate.future(
            pb.EvaluateRequest(customer=pb.Customer(id="hold-gil:30"), event=jfk_lhr()), timeout=60)
        assert proc.stdout.readline().startswith("holding")
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(3 + 10)
        except subprocess.TimeoutExpired:
            code = None
        seconds = time.monotonic() - start
        stuck.cancel()
        channel.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(read_end)
        os.close(write_end)
    print(f"\nstalled and unread pipe: SIGTERM to exit {seconds:.2f} s (code {code})")
    assert code == 1  # the watchdog's _exit(1)
    assert seconds < 3 + 2  # grace + margin, plus the slack of a shared machine


# -- the queue itself, in process ----------------------------------------------------------------


def test_a_blocked_sink_drops_and_counts_without_blocking_the_caller():
    """put() never waits: beyond the queue's capacity lines are counted, and once the sink
    moves again the first line written says how many were lost."""
    release = threading.Event()
    written: list[bytes] = []

    def write(data: bytes) -> None:
        release.wait(10)
        written.append(data)

    sink = logs.LogSink(write, capacity=10)
    sink.put(b"first\n")
    time.sleep(0.2)  # the writer takes it and blocks in write()
    start = time.monotonic()
    for n in range(1000):
        sink.put(b"line %d\n" % n)
    assert time.monotonic() - start < 0.5
    assert sink.dropped() == 990
    release.set()
    assert sink.flush(5)
    sink.put(b"after\n")
    assert sink.flush(5)
    text = b"".join(written).decode()
    assert text.count("\n") == 1 + 1 + 10 + 1  # first, the note, the 10 queued, after
    assert text.splitlines()[1].startswith('{"event":"log lines dropped","dropped":990,')
    sink.close()


def test_a_failing_sink_counts_the_lines_it_could_not_write():
    """ENOSPC from the sink drops that batch, counted; the next good write owns up to it."""
    calls: list[bytes] = []

    def write(data: bytes) -> None:
        calls.append(data)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")

    sink = logs.LogSink(write)
    for n in range(5):
        sink.put(b"line %d\n" % n)
    assert sink.flush(5)
    assert sink.dropped() == 5
    sink.put(b"later\n")
    assert sink.flush(5)
    assert calls[-1].startswith(b'{"event":"log lines dropped","dropped":5')
    assert calls[-1].endswith(b"later\n")
    sink.close()


def test_the_watchdog_writes_to_stderr_reopened_non_blocking():
    """The watchdog's file is a new description of the same pipe with O_NONBLOCK; the server's
    own stderr descriptor stays blocking."""
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(os.dup(write_end), "w") as stream:
            file = nonblocking_stderr(stream)
            assert file is not stream
            assert fcntl.fcntl(file.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
            assert not fcntl.fcntl(stream.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
            file.write(b"ok")
            assert os.read(read_end, 2) == b"ok"
            file.close()
    finally:
        os.close(read_end)
        os.close(write_end)
