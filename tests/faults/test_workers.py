"""Workers die with their supervisor, and a stopped worker does not keep its share of new
connections: real ``loyalty serve --workers 2`` processes on 127.0.0.1, bounded in time."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import grpc

from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from service.watchdog import DEFAULT_MARGIN_S
from service.workers import STOPPED_LIMIT_S, is_stopped
from tests.service.conftest import request, spawn  # noqa: F401 - the fixture

GRACE_S = 1.0
#: A worker told by the kernel that its parent died stops like on SIGTERM: within the grace
#: period plus the watchdog's margin (docs/service.md).
ORPHAN_BOUND_S = GRACE_S + DEFAULT_MARGIN_S
NEW_CONNECTIONS = 10


def workers_of(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, reaped by nobody once orphaned, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def test_kill_9_of_the_supervisor_ends_both_workers(spawn):  # noqa: F811
    """PR_SET_PDEATHSIG: the workers get SIGTERM when the supervisor dies, and are gone within
    --grace plus the watchdog's margin, instead of serving on, orphaned, on the shared port."""
    server = spawn("--workers", "2", "--grace", str(GRACE_S))
    workers = workers_of(server.proc.pid)
    assert len(workers) == 2
    start = time.monotonic()
    server.proc.kill()
    server.proc.wait(5)
    while any(alive(pid) for pid in workers) and time.monotonic() - start < ORPHAN_BOUND_S + 10:
        time.sleep(0.05)
    seconds = time.monotonic() - start
    left = [pid for pid in workers if alive(pid)]
    for pid in left:  # do not leave them behind when the test fails
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    print(f"\nkill -9 of the supervisor: both workers gone after {seconds:.2f} s")
    assert not left and seconds < ORPHAN_BOUND_S


def test_a_stopped_worker_is_replaced_and_new_connections_succeed(spawn):  # noqa: F811
    """SIGSTOP one worker: within STOPPED_LIMIT_S plus a poll the supervisor replaces it, and
    every new connection then answers at a 1 s deadline."""
    server = spawn("--workers", "2", "--grace", str(GRACE_S))
    victim = workers_of(server.proc.pid)[0]
    os.kill(victim, signal.SIGSTOP)
    try:
        start = time.monotonic()
        while alive(victim) and time.monotonic() - start < STOPPED_LIMIT_S + 10:
            time.sleep(0.05)
        replaced_s = time.monotonic() - start
        assert not alive(victim), "the stopped worker is still there"
        deadline = time.monotonic() + 30  # the replacement loads the policies (a second or two)
        while len([p for p in workers_of(server.proc.pid) if not is_stopped(p)]) < 2:
            assert time.monotonic() < deadline, "no replacement worker"
            time.sleep(0.1)
        ok = 0
        failures = []
        for _ in range(NEW_CONNECTIONS):
            with server.channel() as channel:  # its own connection each time
                try:
                    pb_grpc.LoyaltyRulesStub(channel).Evaluate(request(), timeout=1.0)
                    ok += 1
                except grpc.RpcError as exc:
                    failures.append(exc.code().name)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    print(f"\nSIGSTOP of a worker: replaced after {replaced_s:.2f} s; {ok}/{NEW_CONNECTIONS} new "
          f"connections answered at a 1 s deadline")
    assert replaced_s < STOPPED_LIMIT_S + 1.0
    assert ok == NEW_CONNECTIONS, failures
