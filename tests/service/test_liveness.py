"""Liveness of a real server process: SIGTERM is bounded by --grace plus the watchdog's margin, even
with a call stuck in C code that holds the GIL, and a second SIGTERM exits at once.

The misbehaving calls come from ``tests/service/stuck_server.py`` (the process life cycle of
``loyalty serve`` around a servicer that holds the GIL on request), not from any input bug.
"""

from __future__ import annotations

import signal
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from tests.service.conftest import ServerProcess
from tests.service.test_process import log_events, wait_for

STUCK = "tests.service.stuck_server"
GRACE_S = 1.0
MARGIN_S = 2.0
#: Time for the kernel to reap the process and the test to see it, beyond the watchdog's bound.
SLACK_S = 1.0


def misbehave(server: ServerProcess, how: str, timeout: float = 60) -> tuple[grpc.Channel, grpc.Future]:
    """Start an Evaluate that misbehaves as ``how`` says and wait until its handler is in it.

    The caller keeps the channel: closing it (or letting it be collected) cancels the call,
    and the server would then have no call in flight to wait for.
    """
    channel = server.channel()
    stub = pb_grpc.LoyaltyRulesStub(channel)
    future = stub.Evaluate.future(pb.EvaluateRequest(customer=pb.Customer(id=how)), timeout=timeout)
    wait_for(lambda: f"holding {how}\n" in server.stdout, what=f"the handler to start {how}")
    return channel, future


def health_check(server: ServerProcess, timeout: float) -> grpc.StatusCode:
    """One health check on a fresh connection: OK or the error's code."""
    with server.channel() as channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def exit_after(server: ServerProcess, start: float, limit: float) -> tuple[int, float]:
    """The exit status and seconds from ``start`` to the exit; fails if the process outlives ``limit``."""
    try:
        status = server.proc.wait(limit)
    except Exception:
        pytest.fail(f"the server was still running {limit:.1f} s later")
    return status, time.monotonic() - start


@pytest.fixture
def stuck(spawn) -> ServerProcess:
    """A stuck_server process with --grace 1 and a 2 s watchdog margin."""
    return spawn("--grace", str(GRACE_S), "--watchdog-margin", str(MARGIN_S), module=STUCK)  # type: ignore[no-any-return]


def test_sigterm_ends_a_process_stuck_in_c_code_within_grace_and_margin(stuck):
    """A handler holds the GIL in one C call for 60 s: health cannot answer (nothing in Python
    runs), and SIGTERM still ends the process within grace + margin, with the stuck call's
    traceback on stderr and status 1."""
    assert health_check(stuck, timeout=5) == grpc.StatusCode.OK
    channel, _call = misbehave(stuck, "hold-gil:60")
    assert health_check(stuck, timeout=0.5) == grpc.StatusCode.DEADLINE_EXCEEDED
    start = time.monotonic()
    stuck.signal(signal.SIGTERM)
    status, seconds = exit_after(stuck, start, GRACE_S + MARGIN_S + SLACK_S)
    print(f"SIGTERM to exit with a handler holding the GIL: {seconds:.2f} s")
    channel.close()
    assert status == 1
    assert "Timeout (0:00:03)!" in stuck.log_text()
    assert "in Evaluate" in stuck.log_text()  # faulthandler names the stuck call


def test_a_stall_while_serving_ends_the_process(stuck):
    """Without any signal, a GIL held for grace + margin ends the process (status 1) so that the
    supervisor or the orchestrator replaces it: a process that cannot answer is not live."""
    channel, _call = misbehave(stuck, "hold-gil:60")
    status, seconds = exit_after(stuck, time.monotonic(), GRACE_S + MARGIN_S + SLACK_S)
    print(f"stall to exit: {seconds:.2f} s")
    channel.close()
    assert status == 1


def test_a_call_that_outlasts_the_grace_period_is_ended_by_the_watchdog(stuck):
    """A handler that sleeps in Python past the grace period (the GIL free, but the call never
    returns) would hold the interpreter's exit; the watchdog ends it within grace + margin."""
    channel, call = misbehave(stuck, "sleep:60")
    start = time.monotonic()
    stuck.signal(signal.SIGTERM)
    status, seconds = exit_after(stuck, start, GRACE_S + MARGIN_S + SLACK_S)
    print(f"SIGTERM to exit with a handler sleeping past the grace period: {seconds:.2f} s")
    assert call.exception() is not None  # the grace period ended the call before the watchdog
    channel.close()
    assert status == 1
    assert any(e.get("event") == "stopped" for e in log_events(stuck))  # run() itself stopped in time


def test_a_second_sigterm_while_stopping_exits_at_once(spawn):
    """With a long grace period and a call in flight, a second SIGTERM exits at once (143)."""
    server = spawn("--grace", "30", "--watchdog-margin", str(MARGIN_S), module=STUCK)
    channel, _call = misbehave(server, "sleep:20")
    server.signal(signal.SIGTERM)
    wait_for(lambda: any(e.get("event") == "shutting down" for e in log_events(server)),
             what="shutting down")
    start = time.monotonic()
    server.signal(signal.SIGTERM)
    status, seconds = exit_after(server, start, SLACK_S + 1)
    print(f"second SIGTERM to exit: {seconds:.2f} s")
    assert status == 128 + signal.SIGTERM
    assert any(e.get("event") == "signal while stopping: exiting now" for e in log_events(server))
    channel.close()
