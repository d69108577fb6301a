"""The bundled client's retry service config: what it says, and that a real channel obeys it.

A small in-process server on 127.0.0.1, port 0, answers UNAVAILABLE to the first attempt of each
call (as a killed worker's calls end); the retrying client must get the second attempt's answer.
The same fault with real processes is ``tests/faults/test_faults_under_load.py``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from service.client import SERVICE_CONFIG, SERVICE_CONFIG_JSON, LoyaltyClient
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from tests.service.conftest import gold_customer, jfk_lhr

SERVICE = pb.DESCRIPTOR.services_by_name["LoyaltyRules"]


class FlakyServicer(pb_grpc.LoyaltyRulesServicer):
    """Fails every odd-numbered attempt with ``code``, answers the others."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code
        self.attempts = 0
        self._lock = threading.Lock()

    def _fail_first(self, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.attempts += 1
            fail = self.attempts % 2 == 1
        if fail:
            context.abort(self.code, "this attempt fails")

    def Evaluate(self, request: pb.EvaluateRequest, context: grpc.ServicerContext) -> pb.EvaluateResponse:
        self._fail_first(context)
        return pb.EvaluateResponse(decision=pb.Decision(revision="r-second-attempt"))

    def ListPolicies(self, request: pb.ListPoliciesRequest,
                     context: grpc.ServicerContext) -> pb.ListPoliciesResponse:
        self._fail_first(context)
        return pb.ListPoliciesResponse(revision="r-second-attempt")


@pytest.fixture
def flaky(request: pytest.FixtureRequest) -> Iterator[tuple[FlakyServicer, str]]:
    """A server whose first attempt of each call fails with the parametrised status."""
    servicer = FlakyServicer(getattr(request, "param", grpc.StatusCode.UNAVAILABLE))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_LoyaltyRulesServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        server.stop(0).wait(5)


def test_the_service_config_retries_unavailable_and_cancelled_on_every_method():
    """One service-wide entry (so no method can be left out) retries UNAVAILABLE and CANCELLED
    only, with a timeout; EvaluateStream's own entry retries without a timeout (a stream may stay open)."""
    assert json.loads(SERVICE_CONFIG_JSON) == SERVICE_CONFIG
    every, stream = SERVICE_CONFIG["methodConfig"]  # type: ignore[misc]
    assert every["name"] == [{"service": SERVICE.full_name}] == [{"service": "loyalty.v1.LoyaltyRules"}]
    assert every["timeout"] == "30s"
    assert stream["name"] == [{"service": SERVICE.full_name, "method": "EvaluateStream"}]
    assert "EvaluateStream" in SERVICE.methods_by_name and "timeout" not in stream
    for entry in (every, stream):
        policy = entry["retryPolicy"]
        assert policy["retryableStatusCodes"] == ["UNAVAILABLE", "CANCELLED"]
        assert policy["maxAttempts"] == 5


@pytest.mark.parametrize("flaky", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED],
                         indirect=True, ids=["unavailable", "cancelled"])
def test_the_client_retries_a_call_that_failed_unavailable_or_cancelled(flaky):
    """Evaluate and ListPolicies whose first attempt ends UNAVAILABLE, or CANCELLED by the server
    (as gRPC core ends a call that arrives while the server stops), answer from the second."""
    servicer, target = flaky
    with LoyaltyClient(target) as client:
        assert client.evaluate(gold_customer(), jfk_lhr()).revision == "r-second-attempt"
        assert client.list_policies().revision == "r-second-attempt"
    assert servicer.attempts == 4


def test_without_the_service_config_unavailable_reaches_the_caller(flaky):
    """The control: a client without the retry policy sees the first attempt's UNAVAILABLE."""
    servicer, target = flaky
    with LoyaltyClient(target, retries=False) as client, pytest.raises(grpc.RpcError) as info:
        client.evaluate(gold_customer(), jfk_lhr())
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.attempts == 1


@pytest.mark.parametrize("flaky", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL],
                         indirect=True, ids=["invalid_argument", "internal"])
def test_other_statuses_are_not_retried(flaky):
    """Only UNAVAILABLE and CANCELLED are retried: a refusal or a bug is answered at once,
    attempted once."""
    servicer, target = flaky
    with LoyaltyClient(target) as client, pytest.raises(grpc.RpcError) as info:
        client.evaluate(gold_customer(), jfk_lhr())
    assert info.value.code() == servicer.code
    assert servicer.attempts == 1


def test_a_callers_own_service_config_wins(flaky):
    """A service config passed in ``options`` replaces the bundled one (here: no retries)."""
    servicer, target = flaky
    own = json.dumps({"methodConfig": [{"name": [{"service": SERVICE.full_name}], "timeout": "5s"}]})
    with (LoyaltyClient(target, options=[("grpc.service_config", own)]) as client,
          pytest.raises(grpc.RpcError) as info):
        client.evaluate(gold_customer(), jfk_lhr())
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.attempts == 1


class HeldServicer(pb_grpc.LoyaltyRulesServicer):
    """Counts Evaluate attempts and holds each until ``release`` is set."""

    def __init__(self) -> None:
        self.attempts = 0
        self.release = threading.Event()

    def Evaluate(self, request: pb.EvaluateRequest, context: grpc.ServicerContext) -> pb.EvaluateResponse:
        self.attempts += 1
        self.release.wait(5)
        return pb.EvaluateResponse(decision=pb.Decision(revision="r-held"))


def test_a_callers_own_cancellation_is_not_retried():
    """Retrying CANCELLED never repeats a call its caller cancelled: the cancellation ends the call
    on the client, and the server sees one attempt."""
    servicer = HeldServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_LoyaltyRulesServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with LoyaltyClient(f"127.0.0.1:{port}") as client:
            request = pb.EvaluateRequest(customer=gold_customer(), event=jfk_lhr())
            call = client.stub.Evaluate.future(request, timeout=10)
            deadline = time.monotonic() + 5
            while servicer.attempts == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert call.cancel()
            servicer.release.set()
            time.sleep(0.5)  # a retry, were there one, would have reached the server by now
            assert call.cancelled() and servicer.attempts == 1
    finally:
        servicer.release.set()
        server.stop(0).wait(5)
