"""Errors that carry their gRPC status, and the one place that turns an exception into a status.

Servicer code raises; it never calls ``context.abort`` itself. The interceptor in
:mod:`service.interceptor` (and the per-item paths of EvaluateBatch and
EvaluateStream) call :func:`status_for` to get the ``google.rpc.Status`` for
any exception, so a caller's mistake is always INVALID_ARGUMENT with
``google.rpc.BadRequest`` field violations, a failing policy is
FAILED_PRECONDITION with its location, and only a bug in the service is INTERNAL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from dsl.errors import EvaluationError, InputError
from service.state.api import (
    AlreadyApplied,
    EventNotFound,
    InvalidStateInput,
    StateError,
    StateUnavailable,
    StateWriteFailed,
)


@dataclass(frozen=True, slots=True)
class Violation:
    """One problem with one request field: ``field`` is the request path, such as ``event.flight.origin``."""

    field: str
    description: str


class ServiceError(Exception):
    """An exception that knows its gRPC status code; subclasses fix the code."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> list[any_pb2.Any]:
        """``google.rpc`` detail messages to attach to the status."""
        return []

    def to_status(self) -> status_pb2.Status:
        """This error as a ``google.rpc.Status``."""
        return _status(self.code, self.message, self.details())


#: Field violations a refusal lists; the rest are counted in one more violation. A refusal
#: travels in the trailers (``grpc-status-details-bin``, base64), which gRPC caps at 16 KiB:
#: 150 uncapped violations once turned an INVALID_ARGUMENT into RESOURCE_EXHAUSTED (issue 17).
MAX_VIOLATIONS = 20
#: UTF-8 bytes kept of a violation's field path and of its description (cut with an ellipsis).
MAX_FIELD_BYTES = 120
MAX_DESCRIPTION_BYTES = 180
#: UTF-8 bytes kept of a status message (``grpc-message``, percent-encoded: up to 3 bytes each).
MAX_MESSAGE_BYTES = 512


def truncate_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (on a character boundary), ``...`` marking a cut."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[:max(0, limit - 3)].decode("utf-8", "ignore") + "..."


def capped_violations(violations: Sequence[Violation]) -> list[Violation]:
    """The first :data:`MAX_VIOLATIONS` violations, their text cut to size, and, when there were
    more, one violation counting the rest: with the message, a status of at most about 7 KB
    however bad the request (about 10.5 KB in the trailers: base64, and the message again,
    percent-encoded)."""
    kept = [Violation(truncate_text(v.field, MAX_FIELD_BYTES),
                      truncate_text(v.description, MAX_DESCRIPTION_BYTES))
            for v in violations[:MAX_VIOLATIONS]]
    if len(violations) > MAX_VIOLATIONS:
        rest = len(violations) - MAX_VIOLATIONS
        kept.append(Violation("", f"and {rest:,} more violation{'s' if rest != 1 else ''} not listed "
                                  f"(a refusal lists the first {MAX_VIOLATIONS})"))
    return kept


class InvalidArgument(ServiceError):
    """The request does not match the API or the schema; ``violations`` lists every bad field,
    its status the first :data:`MAX_VIOLATIONS` of them and a count of the rest
    (:func:`capped_violations`)."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: Sequence[Violation], message: str = "") -> None:
        #: Every violation found; the status carries :func:`capped_violations` of them.
        self.violations = list(violations)
        if not message:
            message = "; ".join(f"{v.field}: {v.description}" if v.field else v.description
                                for v in capped_violations(self.violations))
        super().__init__(truncate_text(message, MAX_MESSAGE_BYTES) or "invalid request")

    def details(self) -> list[any_pb2.Any]:
        """A ``google.rpc.BadRequest`` with one field violation per problem."""
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in capped_violations(self.violations)
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        return [packed]


class ResourceExhausted(ServiceError):
    """The server will not take this call now: a limit of the server's own (streams at once,
    streams per client host) is reached. The message names the limit and its flag."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class PolicyFailed(ServiceError):
    """A policy failed at run time (say, a division by zero): the policy set is at fault, not the caller."""

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, error: EvaluationError) -> None:
        super().__init__(str(error))
        self.error = error

    def details(self) -> list[any_pb2.Any]:
        """A ``google.rpc.ErrorInfo`` naming the policy, file and line."""
        info = error_details_pb2.ErrorInfo(
            reason="POLICY_EVALUATION_FAILED",
            domain="loyalty.v1",
            metadata={
                "policy": self.error.policy,
                "file": self.error.file,
                "line": str(self.error.line),
            },
        )
        packed = any_pb2.Any()
        packed.Pack(info)
        return [packed]


class Unavailable(ServiceError):
    """The server cannot answer yet (no policy set loaded) or is shutting down."""

    code = grpc.StatusCode.UNAVAILABLE


class AlreadyExists(ServiceError):
    """An id (an event's, a reversal's) was used before with another body."""

    code = grpc.StatusCode.ALREADY_EXISTS

    def __init__(self, message: str, field: str, stored_digest: str, new_digest: str) -> None:
        super().__init__(message)
        self.field = field
        self.stored_digest = stored_digest
        self.new_digest = new_digest

    def details(self) -> list[any_pb2.Any]:
        """A ``google.rpc.ErrorInfo`` with the field and both digests."""
        return [_pack(error_details_pb2.ErrorInfo(
            reason="ID_REUSED_WITH_ANOTHER_BODY", domain="loyalty.v1",
            metadata={"field": self.field, "stored_digest": self.stored_digest,
                      "request_digest": self.new_digest}))]


class NotFound(ServiceError):
    """The request names something the service does not have (an event never applied)."""

    code = grpc.StatusCode.NOT_FOUND

    def __init__(self, message: str, field: str, resource_type: str, name: str) -> None:
        super().__init__(message)
        self.field = field
        self.resource_type = resource_type
        self.name = name

    def details(self) -> list[any_pb2.Any]:
        """A ``google.rpc.ResourceInfo`` naming what was not found, and the field that named it."""
        return [_pack(error_details_pb2.ResourceInfo(
            resource_type=self.resource_type, resource_name=self.name[:128],
            description=f"named by the request field {self.field}"))]


class StateRefused(ServiceError):
    """The customer state store refuses writes (a read-only file, a full disk): an operator
    must act, so retrying is no use; pure evaluation keeps answering."""

    code = grpc.StatusCode.FAILED_PRECONDITION

    def details(self) -> list[any_pb2.Any]:
        """A ``google.rpc.ErrorInfo`` with reason ``STATE_WRITE_FAILED``."""
        return [_pack(error_details_pb2.ErrorInfo(reason="STATE_WRITE_FAILED", domain="loyalty.v1"))]


class DeadlineExceeded(ServiceError):
    """The call's deadline passed before the work was done."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


def input_violations(error: InputError) -> list[Violation]:
    """The field problems of a schema :class:`InputError` as violations, paths unchanged."""
    return [Violation(e.path, e.reason) for e in error.errors]


def status_for(exc: BaseException) -> status_pb2.Status:
    """The ``google.rpc.Status`` for any exception raised while serving a call."""
    if isinstance(exc, ServiceError):
        return exc.to_status()
    if isinstance(exc, InputError):
        return InvalidArgument(input_violations(exc)).to_status()
    if isinstance(exc, EvaluationError):
        return PolicyFailed(exc).to_status()
    if isinstance(exc, StateError):
        return service_error(exc).to_status()
    return _status(grpc.StatusCode.INTERNAL, "internal error (logged on the server)", ())


#: Store errors' fields in the request's own words.
_REQUEST_FIELDS = {"customer_id": "customer.id", "event_id": "event.id"}
#: Longest id repeated in a message.
_ID_SHOWN = 128


def service_error(exc: StateError) -> ServiceError:
    """The status a customer state store error is for a caller, in the request's words."""
    if isinstance(exc, StateUnavailable):
        return Unavailable(f"the customer state store is unavailable (nothing was written; retry): {exc}")
    if isinstance(exc, StateWriteFailed):
        return StateRefused(f"the customer state store refuses writes (nothing was written; Evaluate "
                            f"still answers): {exc}")
    if isinstance(exc, InvalidStateInput):
        return InvalidArgument([Violation(_REQUEST_FIELDS.get(exc.field, exc.field), exc.reason)])
    if isinstance(exc, AlreadyApplied):
        field = "reversal_id" if exc.what == "reversal" else "event.id"
        return AlreadyExists(str(exc), field, exc.stored_digest, exc.new_digest)
    if isinstance(exc, EventNotFound):
        return NotFound(f"event_id: event {exc.event_id[:_ID_SHOWN]!r} was never applied", "event_id",
                        "event", exc.event_id)
    return Unavailable(f"the customer state store failed: {exc}")


def code_name(status: status_pb2.Status) -> str:
    """The status code's name, such as ``INVALID_ARGUMENT``."""
    return code_pb2.Code.Name(status.code)


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _status(code: grpc.StatusCode, message: str, details: Iterable[any_pb2.Any]) -> status_pb2.Status:
    return status_pb2.Status(code=code.value[0], message=message, details=list(details))
