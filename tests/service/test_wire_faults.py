"""Faults on the wire get the caller's status, not the server's: bytes that do not parse as the
request message are INVALID_ARGUMENT, a client that drops its call is logged at info without a
traceback, and INTERNAL stays for the service's own bugs.

The server is real (127.0.0.1, port 0); the malformed requests go through a raw channel
method (no serializer), which sends the given bytes as the message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from tests.service.conftest import ServerProcess, request, start_server
from tests.service.raw_http2 import grpc_frame, post
from tests.service.test_process import log_events

SERVICE = "/loyalty.v1.LoyaltyRules/"


@pytest.fixture(scope="module")
def served() -> Iterator[ServerProcess]:
    """One ``loyalty serve`` process for the module; its JSON log is read from stderr."""
    process = start_server("--log-level", "debug")  # reflection calls are logged at debug
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def server(served: ServerProcess) -> Iterator[tuple[grpc.Channel, ServerProcess]]:
    """A fresh channel to the module's server."""
    with served.channel() as channel:
        yield channel, served


def wait_for_line(served: ServerProcess, predicate: Any, what: str, timeout: float = 10.0) -> dict[str, Any]:
    """The first log line matching ``predicate``, polling until ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_events(served):
            if predicate(line):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line for {what}: {log_events(served)[-10:]}")


def assert_no_error_logged(served: ServerProcess) -> None:
    """Nothing at warning or error level, and no traceback, in the server's log."""
    bad = [line for line in log_events(served)
           if line.get("level") in ("warning", "error", "critical") or "exception" in line]
    assert not bad, bad
    assert "Traceback" not in served.log_text()


# Bytes that are not the request message: a corrupt tag, a length running past the end, and a
# string field holding bytes that are not UTF-8.
CORRUPT_TAG = b"\xff\xff\xff\xff"
TRUNCATED_FIELD = b"\x0a\x05ab"
NOT_UTF8 = b"\x0a\x03\x0a\x01\xff"


CORRUPT = "Wire format was corrupt"
BAD_UTF8 = "String field had bad UTF-8"


@pytest.mark.parametrize("method,body,reason", [
    ("Evaluate", CORRUPT_TAG, CORRUPT),
    ("Evaluate", TRUNCATED_FIELD, CORRUPT),
    ("Evaluate", NOT_UTF8, BAD_UTF8),
    ("EvaluateBatch", CORRUPT_TAG, CORRUPT),
    ("EvaluateBatch", TRUNCATED_FIELD, CORRUPT),
    ("EvaluateBatch", NOT_UTF8, BAD_UTF8),
    # ListPoliciesRequest has no fields: other fields' bytes are kept as unknown, not checked.
    ("ListPolicies", CORRUPT_TAG, CORRUPT),
    ("ListPolicies", TRUNCATED_FIELD, CORRUPT),
], ids=lambda v: v if isinstance(v, str) and " " not in v else None)
def test_bytes_that_do_not_parse_are_invalid_argument(server, method, body, reason):
    """A unary request whose bytes are not its message is INVALID_ARGUMENT naming the message
    type and the parser's reason, with a BadRequest detail, and logged as the caller's mistake
    (info, no traceback)."""
    message_type = f"loyalty.v1.{method}Request"
    channel, served = server
    raw = channel.unary_unary(SERVICE + method, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as info:
        raw(body, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (
        f"the request: is not a valid {message_type} message ({reason})")
    status = rpc_status.from_call(info.value)
    assert status is not None and status.details[0].type_url.endswith("google.rpc.BadRequest")
    line = wait_for_line(served, lambda e: e.get("event") == "rpc" and e.get("method") == method
                         and e.get("code") == "INVALID_ARGUMENT", what="the call's canonical line")
    assert line["level"] == "info"
    assert_no_error_logged(served)


def test_a_malformed_message_ends_the_stream_with_invalid_argument(server):
    """The messages before it are answered; the malformed one ends the stream INVALID_ARGUMENT
    naming its place (its correlation id cannot be read)."""
    channel, served = server
    good = pb.EvaluateStreamRequest(correlation_id="a", customer=request().customer,
                                    event=request().event).SerializeToString()
    raw = channel.stream_stream(SERVICE + "EvaluateStream", request_serializer=None,
                                response_deserializer=None)
    responses = raw(iter([good, CORRUPT_TAG, good]), timeout=5)
    first = pb.EvaluateStreamResponse.FromString(next(responses))
    assert first.correlation_id == "a" and first.decision.awards["miles"] == "8949"
    with pytest.raises(grpc.RpcError) as info:
        next(responses)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (
        "messages[1]: is not a valid loyalty.v1.EvaluateStreamRequest message (Wire format was corrupt)")
    assert_no_error_logged(served)


def test_an_empty_body_is_an_empty_message_judged_by_the_schema(server):
    """Zero bytes are a valid (empty) message: the schema says what is missing."""
    channel, _captured = server
    raw = channel.unary_unary(SERVICE + "Evaluate", request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as info:
        raw(b"", timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "customer" in info.value.details()


def _held_stream(first: Any, release: threading.Event) -> Iterator[Any]:
    yield first
    release.wait(10)  # the client cancels while the stream is open


def test_a_client_cancelling_its_stream_is_logged_at_info_without_a_traceback(server):
    """EvaluateStream cancelled by the client mid-stream: one info line, no error, no traceback.

    The line's code is CANCELLED, or OK in a few cases in a hundred: grpcio ends the server's
    request iterator for a cancelled call either by raising (CANCELLED) or, when the pending
    read completes empty before the cancellation is recorded, as a stream the client closed;
    the handler then returns and the call still looks active. Either way nothing is an error.
    """
    channel, served = server
    release = threading.Event()
    message = pb.EvaluateStreamRequest(correlation_id="cancel-me", customer=request().customer,
                                       event=request().event)
    call = pb_grpc.LoyaltyRulesStub(channel).EvaluateStream(_held_stream(message, release), timeout=10)
    try:
        assert next(call).correlation_id == "cancel-me"
        call.cancel()
        line = wait_for_line(
            served, lambda e: e.get("event") == "rpc" and e.get("method") == "EvaluateStream"
            and e.get("messages") == 1 and e.get("code") in ("CANCELLED", "OK"),
            what="the cancelled stream's line")
    finally:
        release.set()  # only now may the client's request stream end
    assert line["level"] == "info"
    assert_no_error_logged(served)


def test_a_client_dropping_its_reflection_stream_is_not_an_error(server):
    """grpcurl-style reflection stream, cancelled after one answer: no error, no traceback."""
    channel, served = server
    release = threading.Event()
    ask = reflection_pb2.ServerReflectionRequest(list_services="")
    call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        _held_stream(ask, release), timeout=10)
    assert next(call).list_services_response.service
    call.cancel()
    release.set()
    wait_for_line(served, lambda e: e.get("event") == "rpc" and e.get("method") == "ServerReflectionInfo",
                  what="the reflection stream's line")
    assert_no_error_logged(served)


def test_a_bug_is_still_internal():
    """INTERNAL stays for the service's own bugs: a handler that raises a plain exception."""
    from service.server import create_server
    from service.testing import TrivialServicer

    class Buggy(TrivialServicer):
        def ListPolicies(self, request: Any, context: Any) -> Any:
            """Fails as a bug would."""
            raise KeyError("a bug")

    srv, port = create_server("127.0.0.1:0", servicer=Buggy())
    srv.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError) as info:
            pb_grpc.LoyaltyRulesStub(channel).ListPolicies(pb.ListPoliciesRequest(), timeout=5)
    finally:
        srv.stop(0).wait(5)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == "internal error (logged on the server)"


# -- the HTTP/2 layer: content-type and frames (a raw HTTP/2 client) --------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None],
                         ids=["text_plain", "application_json", "missing"])
def test_any_content_type_is_served_as_grpc_since_grpc_core_drops_the_header(served, content_type):
    """A wrong or missing content-type cannot be refused by the service: gRPC core's http-server
    filter removes the header before any Python code runs (no interceptor or handler sees it)
    and refuses nothing for it, so the call is answered as gRPC. Pinned so that a grpcio that
    starts refusing it (415, as the gRPC spec suggests) is noticed (see service.md)."""
    reply = post(served.port, SERVICE + "Evaluate", grpc_frame(request().SerializeToString()),
                 content_type=content_type)
    assert reply.grpc_status == 0, reply
    assert reply.headers["content-type"] == "application/grpc"
    decision = pb.EvaluateResponse.FromString(reply.data[5:]).decision
    assert decision.awards["miles"] == "8949"


@pytest.mark.parametrize("body", ["framed", "unframed"])
def test_a_json_body_under_a_json_content_type_is_invalid_argument(served, body):
    """What a wrong content-type usually carries, a JSON request, still goes through the
    protobuf deserializer: INVALID_ARGUMENT, never a decision read from it, never INTERNAL."""
    text = json_format.MessageToJson(request()).encode()
    reply = post(served.port, SERVICE + "Evaluate", grpc_frame(text) if body == "framed" else text,
                 content_type="application/json")
    assert reply.grpc_status == grpc.StatusCode.INVALID_ARGUMENT.value[0], reply
    assert not reply.data


def test_a_unary_message_cut_short_is_unimplemented_by_grpcio(served):
    """A unary request whose message is cut short (the frame says more bytes than come) reaches
    no service code: grpcio answers UNIMPLEMENTED "requires exactly one request message" itself.
    Pinned as documented (service.md, "Wire faults"); the right status would be INVALID_ARGUMENT."""
    frame = grpc_frame(request().SerializeToString())
    reply = post(served.port, SERVICE + "Evaluate", frame[:20])
    assert reply.grpc_status == grpc.StatusCode.UNIMPLEMENTED.value[0], reply
    assert "requires exactly one request message" in reply.grpc_message
