"""Health says NOT_SERVING while the service cannot answer, and SERVING again once it can.

A real server process (``tests.service.stuck_server``, the life cycle of ``loyalty serve``
around a servicer that misbehaves on request) gets a call that sleeps 8 s: a call in flight
and none finishing, as when every request thread is stuck. Health probes go on being answered
(they are not stuck), so they must report the stall rather than SERVING. Talks only to 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from tests.service.conftest import ROOT, jfk_lhr

#: StallMonitor's default: no call finished for this long with calls in flight.
STALL_S = 5.0
SLEEP_S = 8


def test_health_is_not_serving_while_no_call_finishes_and_serving_after():
    """NOT_SERVING within the stall bound (plus a probe interval); SERVING once the call ends."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.service.stuck_server", "--grace", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().rsplit(":", 1)[1])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def status() -> str:
                response = health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

            assert status() == "SERVING"
            stub = pb_grpc.LoyaltyRulesStub(channel)
            slow = stub.Evaluate.future(pb.EvaluateRequest(
                customer=pb.Customer(id=f"sleep:{SLEEP_S}"), event=jfk_lhr()), timeout=30)
            start = time.monotonic()
            seen: list[tuple[float, str]] = []
            while time.monotonic() - start < SLEEP_S + 4:
                seen.append((round(time.monotonic() - start, 1), status()))
                time.sleep(0.25)
            slow.result()
    finally:
        proc.terminate()
        proc.wait(20)
    not_serving = [t for t, s in seen if s == "NOT_SERVING"]
    print(f"\nNOT_SERVING from {not_serving[0] if not_serving else None} s "
          f"to {not_serving[-1] if not_serving else None} s of a {SLEEP_S} s stuck call")
    assert not_serving and not_serving[0] <= STALL_S + 1.5
    assert seen[-1][1] == "SERVING"
