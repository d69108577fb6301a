"""A small Python client for ``loyalty.v1.LoyaltyRules``, for backend teams to use as is.

::

    from service.client import LoyaltyClient, customer, flight

    with LoyaltyClient("127.0.0.1:50051") as client:
        decision = client.evaluate(
            customer("c-1001", member_since="2012-05-01", tier="GOLD", miles=120_000),
            flight("e-1", time="2026-03-01T09:30:00Z", origin="JFK", destination="LHR",
                   fare="420.00", cabin="business"),
        )
        print(decision.awards["miles"], decision.revision)

Errors are ``grpc.RpcError``; :func:`field_violations` reads the field paths and
reasons out of an INVALID_ARGUMENT. The helpers take Python values (``date``,
aware ``datetime``, ``Decimal``, ISO strings) and build the messages; the
messages themselves (``service.gen.loyalty.v1.loyalty_pb2``) work too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from service.wire import python_to_value

__all__ = [
    "SERVICE_CONFIG",
    "SERVICE_CONFIG_JSON",
    "LoyaltyClient",
    "appointment",
    "customer",
    "donation",
    "field_violations",
    "flight",
    "pb",
    "purchase",
    "retrying_channel_options",
    "timestamp",
    "visit",
]


_SERVICE = pb.DESCRIPTOR.services_by_name["LoyaltyRules"].full_name

#: Retrying a call that failed UNAVAILABLE: the status a client sees when the process that had its
#: call dies (a worker killed, a pod gone), when no process listens yet, or while one shuts down;
#: and CANCELLED from the server: gRPC core's answer to a call that reached a server as it began
#: to stop, before any handler took it (grpc/grpc#41785; 1 or 2 calls in 5 of 8 SIGTERMs under
#: load, docs/reliability.md). A caller's own cancellation ends its call locally and is never
#: retried.
#: gRPC retries an attempt only while no response headers have arrived, so a decision is never
#: answered twice. A second attempt is safe for every method: the evaluating ones are pure, and
#: Apply, ApplyBatch and Reverse are idempotent by their event and reversal ids (a retry of one
#: that committed returns the stored result, replayed; one that did not commit wrote nothing).
#: Five attempts (gRPC's own cap); the waits between them are random, up to 0.1, 0.2, 0.4 and
#: 0.8 s (1.5 s in all, 0.75 s on average): longer than a reconnect to a surviving worker takes
#: (see :func:`retrying_channel_options`), and short enough that a caller whose every attempt
#: fails (a server down, a plaintext client of a TLS server) sees UNAVAILABLE with the reason
#: within a 2 s deadline, rather than DEADLINE_EXCEEDED.
RETRY_POLICY: dict[str, object] = {
    "maxAttempts": 5,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"],
}

#: The gRPC service config for ``loyalty.v1.LoyaltyRules`` (docs/service.md, "Retries"): every
#: method retried on UNAVAILABLE, unary calls with a 30 s deadline when the caller sets none
#: (a call's own shorter deadline wins; it bounds all attempts together). EvaluateStream has no
#: timeout, since a stream may rightly stay open for hours; gRPC retries it only until the first
#: response arrives.
SERVICE_CONFIG: dict[str, object] = {
    "methodConfig": [
        {"name": [{"service": _SERVICE}], "timeout": "30s", "retryPolicy": RETRY_POLICY},
        # A method-specific entry wins over the service-wide one.
        {"name": [{"service": _SERVICE, "method": "EvaluateStream"}], "retryPolicy": RETRY_POLICY},
    ],
}
#: :data:`SERVICE_CONFIG` as the JSON text the ``grpc.service_config`` channel option takes.
SERVICE_CONFIG_JSON = json.dumps(SERVICE_CONFIG)
#: The channel's first wait before reconnecting after a failed connection attempt (gRPC's default
#: is 1 s, growing 1.6x per failure up to 120 s).
RECONNECT_BACKOFF_MS = 50


def retrying_channel_options() -> list[tuple[str, object]]:
    """Channel options that make a channel retry as :data:`SERVICE_CONFIG` says.

    The short first reconnect wait is measured, not cosmetic: a client whose worker is killed
    reconnects at once, and now and then that connection is reset (most likely it landed on the
    dying worker's listening socket, where the kernel completes handshakes until the process is
    gone). Until the channel's next attempt every call fails at once with UNAVAILABLE: with gRPC's
    1 s that outlasts five attempts (docs/reliability.md: thousands of failed calls in 2 of 10
    kills without this config). With 50 ms (60 ms at most, with jitter) the retry waits above
    outlast it for all but about 1 in 10,000 calls caught in it (from the waits' distribution, not
    measured). Later waits still grow 1.6 times per failed attempt, up to gRPC's 120 s.
    """
    # enable_retries is on by default in current grpcio; set it anyway, as older ones differ.
    return [
        ("grpc.service_config", SERVICE_CONFIG_JSON),
        ("grpc.enable_retries", 1),
        ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS),
    ]


class LoyaltyClient:
    """A channel and a stub with sensible defaults: a deadline on every call, optional TLS.

    ``target`` is a gRPC target: ``host:port``, or ``ipv4:10.0.0.1:50051,10.0.0.2:50051``
    or ``dns:///loyalty.svc:50051`` with ``round_robin=True`` to spread calls over
    several servers. ``root_certificates`` (PEM bytes or a path) switches TLS on;
    ``client_cert`` and ``client_key`` add a client certificate for mutual TLS.
    Calls that fail UNAVAILABLE are retried as :data:`SERVICE_CONFIG` says; ``retries=False``
    leaves out the service config and :func:`retrying_channel_options` (a plain gRPC channel,
    whose transparent retries of calls that never left it stay on).
    ``timeout`` bounds each call, all its attempts included.
    """

    def __init__(
        self,
        target: str,
        *,
        timeout: float = 5.0,
        root_certificates: bytes | str | Path | None = None,
        client_cert: bytes | str | Path | None = None,
        client_key: bytes | str | Path | None = None,
        server_name: str | None = None,
        round_robin: bool = False,
        retries: bool = True,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.timeout = timeout
        opts = list(options)
        given = {key for key, _ in opts}  # the caller's own service config or switch wins
        if retries:
            opts.extend(option for option in retrying_channel_options() if option[0] not in given)
        if round_robin:
            opts.append(("grpc.lb_policy_name", "round_robin"))
        if server_name:
            opts.append(("grpc.ssl_target_name_override", server_name))
        if root_certificates is not None or client_cert is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_pem(root_certificates),
                private_key=_pem(client_key),
                certificate_chain=_pem(client_cert),
            )
            self.channel = grpc.secure_channel(target, credentials, options=opts)
        else:
            self.channel = grpc.insecure_channel(target, options=opts)
        self.stub = pb_grpc.LoyaltyRulesStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def evaluate(
        self,
        customer: pb.Customer,
        event: pb.Event,
        *,
        explain: bool = False,
        only_policies: Iterable[str] = (),
        timeout: float | None = None,
    ) -> pb.Decision:
        """The decision for one event."""
        request = pb.EvaluateRequest(
            customer=customer, event=event, explain=explain, only_policies=list(only_policies)
        )
        return self.stub.Evaluate(request, timeout=timeout or self.timeout).decision

    def evaluate_batch(
        self,
        items: Iterable[tuple[pb.Customer, pb.Event]] | Iterable[pb.BatchItem],
        *,
        explain: bool = False,
        timeout: float | None = None,
    ) -> pb.EvaluateBatchResponse:
        """One result per item, in order: ``results[i].decision`` or ``results[i].error``.

        Items are (customer, event) pairs (numbered as their correlation ids) or
        ready ``BatchItem`` messages.
        """
        batch = [
            item if isinstance(item, pb.BatchItem)
            else pb.BatchItem(correlation_id=str(i), customer=item[0], event=item[1])
            for i, item in enumerate(items)
        ]
        request = pb.EvaluateBatchRequest(items=batch, explain=explain)
        return self.stub.EvaluateBatch(request, timeout=timeout or self.timeout)

    def stream(
        self, requests: Iterable[pb.EvaluateStreamRequest], *, timeout: float | None = None
    ) -> Iterator[pb.EvaluateStreamResponse]:
        """A bidirectional stream: responses come back in request order, one per request.

        ``timeout`` bounds the whole stream (none by default).
        """
        return iter(self.stub.EvaluateStream(iter(requests), timeout=timeout))

    def list_policies(self, *, timeout: float | None = None) -> pb.ListPoliciesResponse:
        """The loaded policies, the revision and the server's reload status."""
        return self.stub.ListPolicies(pb.ListPoliciesRequest(), timeout=timeout or self.timeout)

    def healthy(self, *, timeout: float | None = None) -> bool:
        """Whether the server reports SERVING for ``loyalty.v1.LoyaltyRules``."""
        try:
            reply = self._health.Check(
                health_pb2.HealthCheckRequest(service="loyalty.v1.LoyaltyRules"),
                timeout=timeout or self.timeout,
            )
        except grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    def wait_until_ready(self, timeout: float = 30.0) -> None:
        """Block until the channel connects (raises ``grpc.FutureTimeoutError`` after ``timeout``)."""
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> LoyaltyClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- building messages ------------------------------------------------------------------------


def timestamp(value: datetime | str) -> timestamp_pb2.Timestamp:
    """A ``Timestamp`` from an aware datetime or an ISO 8601 string with a zone (``...Z``)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("a timestamp needs a time zone (for example a trailing Z for UTC)")
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def _date(value: date | str | None) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, date) else value


def _decimal(value: Decimal | int | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        raise TypeError("use a Decimal or a string for money, not a float")
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _attributes(values: Mapping[str, Any] | None) -> dict[str, pb.Value]:
    return {k: python_to_value(v) for k, v in (values or {}).items()}


def customer(
    id: str,
    *,
    member_since: date | str,
    tier: str | None = None,
    birthday: date | str | None = None,
    miles: int = 0,
    flights: int = 0,
    spend: Decimal | str | int | None = None,
    visits: int = 0,
    appointments: int = 0,
    donations: Decimal | str | int | None = None,
    donation_years: int = 0,
    attributes: Mapping[str, Any] | None = None,
) -> pb.Customer:
    """A ``Customer``; ``attributes`` holds the schema's extension fields (Python values)."""
    return pb.Customer(
        id=id,
        member_since=_date(member_since),
        tier=tier or "",
        birthday=_date(birthday),
        lifetime=pb.Lifetime(
            miles=miles, flights=flights, spend=_decimal(spend), visits=visits,
            appointments=appointments, donations=_decimal(donations), donation_years=donation_years,
        ),
        attributes=_attributes(attributes),
    )


def _event(id: str, time: datetime | str, attributes: Mapping[str, Any] | None, **details: Any) -> pb.Event:
    return pb.Event(id=id, time=timestamp(time), attributes=_attributes(attributes), **details)


def flight(
    id: str,
    *,
    time: datetime | str,
    origin: str,
    destination: str,
    fare: Decimal | str | int,
    distance_miles: int | None = None,
    currency: str = "",
    cabin: str = "",
    partner: bool = False,
    carrier: str = "",
    attributes: Mapping[str, Any] | None = None,
) -> pb.Event:
    """A flight ``Event``."""
    details = pb.Flight(
        origin=origin, destination=destination, fare=_decimal(fare), currency=currency,
        cabin=cabin, partner=partner, carrier=carrier,
    )
    if distance_miles is not None:
        details.distance_miles = distance_miles
    return _event(id, time, attributes, flight=details)


def purchase(
    id: str,
    *,
    time: datetime | str,
    amount: Decimal | str | int,
    currency: str = "",
    channel: str = "",
    items: Iterable[Mapping[str, Any]] = (),
    attributes: Mapping[str, Any] | None = None,
) -> pb.Event:
    """A purchase ``Event``; ``items`` are mappings with sku, category, amount and quantity."""
    lines = []
    for item in items:
        line = pb.Item(sku=item["sku"], category=item["category"], amount=_decimal(item["amount"]))
        if item.get("quantity") is not None:
            line.quantity = item["quantity"]
        lines.append(line)
    details = pb.Purchase(amount=_decimal(amount), currency=currency, channel=channel, items=lines)
    return _event(id, time, attributes, purchase=details)


def visit(
    id: str,
    *,
    time: datetime | str,
    venue: str = "",
    party_size: int | None = None,
    spend: Decimal | str | int | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> pb.Event:
    """A visit ``Event``."""
    details = pb.Visit(venue=venue, spend=_decimal(spend))
    if party_size is not None:
        details.party_size = party_size
    return _event(id, time, attributes, visit=details)


def appointment(
    id: str,
    *,
    time: datetime | str,
    service: str,
    scheduled_at: datetime | str,
    arrived_at: datetime | str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> pb.Event:
    """An appointment ``Event``."""
    details = pb.Appointment(service=service, scheduled_at=timestamp(scheduled_at))
    if arrived_at is not None:
        details.arrived_at.CopyFrom(timestamp(arrived_at))
    return _event(id, time, attributes, appointment=details)


def donation(
    id: str,
    *,
    time: datetime | str,
    amount: Decimal | str | int,
    currency: str = "",
    campaign: str = "",
    recurring: bool = False,
    attributes: Mapping[str, Any] | None = None,
) -> pb.Event:
    """A donation ``Event``."""
    details = pb.Donation(amount=_decimal(amount), currency=currency, campaign=campaign, recurring=recurring)
    return _event(id, time, attributes, donation=details)


# -- reading errors ----------------------------------------------------------------------------------


def field_violations(error: grpc.RpcError | Any) -> list[tuple[str, str]]:
    """(field path, reason) for every field violation in an INVALID_ARGUMENT.

    ``error`` is a ``grpc.RpcError`` from a call, or a ``google.rpc.Status`` (a
    batch item's or stream message's ``error``).
    """
    if isinstance(error, grpc.Call | grpc.RpcError):
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        if status is None:
            return []
        details = status.details
    else:
        details = error.details
    out = []
    for detail in details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.extend((v.field, v.description) for v in bad.field_violations)
    return out


def _pem(value: bytes | str | Path | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()
