"""Build and run the gRPC server: servicer, health, reflection, interceptor, TLS, graceful shutdown.

:func:`create_server` builds a bound, not yet started server (tests bind
``127.0.0.1:0`` and read the port back). :func:`run` is one whole server process
as ``loyalty serve`` runs it: load the policies, serve, watch the directory,
reload on SIGHUP, and on SIGTERM or SIGINT stop accepting, finish the calls in
flight within the grace period and return 0. A :class:`service.watchdog.Watchdog`
ends the process if Python stalls (a call stuck in C code holding the GIL) or if
stopping takes longer than the grace period plus a margin; a second SIGTERM or
SIGINT while stopping exits at once.

(About 750 lines, one job: one server process's life. The handler table with its refusal of
malformed messages, the stall monitor and the signal handling are the parts of that life
:func:`run` wires together; none is used without it.)
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import structlog
from google.protobuf import descriptor as _descriptor
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dsl.library.runtime import use_evaluation_context
from service import logs
from service.admission import StreamAdmissionInterceptor, StreamLimits
from service.connections import ConnectionShedder, PeerActivity, ShedPolicy
from service.errors import InvalidArgument, Violation
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from service.interceptor import PROGRESS, CallProgress, ServiceInterceptor
from service.ledger import ExpiryTimer
from service.memory import freeze_startup_objects
from service.metrics import Metrics, default_shadow_metrics
from service.reloads import ReloadHelper
from service.servicer import DEFAULT_MAX_BATCH, LoyaltyRulesServicer
from service.shadow import DEFAULT_SAMPLE, Shadow, start_shadow
from service.state import StateError, StateStore, default_url, open_store
from service.state import metrics as _state_metrics  # noqa: F401  # registered: /metrics lists them
from service.store import PolicyStore
from service.watchdog import DEFAULT_MARGIN_S, Watchdog

log = structlog.get_logger("loyalty.server")

#: The service's descriptor: its methods are the RPCs a servicer must answer.
SERVICE = pb.DESCRIPTOR.services_by_name["LoyaltyRules"]
#: The full name of the service, as health checks and reflection know it.
SERVICE_NAME = SERVICE.full_name
#: The largest request or response accepted by default, in bytes.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Request threads per process by default.
DEFAULT_THREADS = 16

_SHARED_METRICS: Metrics | None = None


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one server process allows its clients' connections (gRPC core channel arguments).

    Without them an idle connection lives for ever: 20,000 idle TCP connections made a
    legitimate call miss its deadline and grew RSS by 176 MB (issue 9). A connection costs
    about 14.5 KB and a file descriptor (docs/performance.md), so the cap bounds both; the
    idle timeout frees
    connections that carry no call (raw sockets that never speak HTTP/2 included) with a
    GOAWAY, which a gRPC client answers by reconnecting when it next has a call.
    """

    #: Connections open at once (``grpc.max_allowed_incoming_connections``); beyond it a new
    #: connection is closed at once (the client sees UNAVAILABLE). None: no cap.
    max_connections: int | None = 10_000
    #: Seconds a connection may carry no call before the server closes it
    #: (``grpc.max_connection_idle_ms``). None: never.
    max_connection_idle_s: float | None = 300.0
    #: Calls at once on one connection (``grpc.max_concurrent_streams``); a client queues the rest.
    max_concurrent_streams: int = 100
    #: Least seconds between a client's keepalive pings when no data flows
    #: (``grpc.http2.min_ping_interval_without_data_ms``); gRPC core's own default is 300 s,
    #: which ends clients configured with the common 30 s keepalive.
    keepalive_min_interval_s: float = 30.0
    #: Whether a client may ping a connection that carries no call
    #: (``grpc.keepalive_permit_without_calls``): idle connections are closed anyway.
    keepalive_permit_without_calls: bool = False
    #: Pings too early tolerated before the server ends the connection with GOAWAY
    #: ``ENHANCE_YOUR_CALM`` "too_many_pings" (``grpc.http2.max_ping_strikes``; 0: no limit).
    max_ping_strikes: int = 2
    #: Seconds a new connection has to finish its handshake (TLS, and the client's HTTP/2
    #: preface and SETTINGS) before the server closes it (``grpc.server_handshake_timeout_ms``;
    #: gRPC core's default is 120 s). A connection that never speaks holds a slot of
    #: ``max_connections`` for this long at most. None: gRPC core's default.
    handshake_timeout_s: float | None = 10.0

    def options(self) -> list[tuple[str, int]]:
        """The gRPC server options that enforce these limits."""
        options = [
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.http2.min_ping_interval_without_data_ms", int(self.keepalive_min_interval_s * 1000)),
            ("grpc.keepalive_permit_without_calls", int(self.keepalive_permit_without_calls)),
            ("grpc.http2.max_ping_strikes", self.max_ping_strikes),
        ]
        if self.max_connections is not None:
            options.append(("grpc.max_allowed_incoming_connections", self.max_connections))
        if self.handshake_timeout_s is not None:
            options.append(("grpc.server_handshake_timeout_ms", max(1, int(self.handshake_timeout_s * 1000))))
        if self.max_connection_idle_s is not None:
            options.append(("grpc.max_connection_idle_ms", max(1, int(self.max_connection_idle_s * 1000))))
        return options


def default_metrics() -> Metrics:
    """The process's metrics in the default registry (created once)."""
    global _SHARED_METRICS
    if _SHARED_METRICS is None:
        _SHARED_METRICS = Metrics()
    return _SHARED_METRICS


def server_credentials(
    cert_file: Path | str, key_file: Path | str, client_ca_file: Path | str | None = None
) -> grpc.ServerCredentials:
    """TLS credentials from PEM files; with ``client_ca_file``, clients need a certificate it signed."""
    cert = Path(cert_file).read_bytes()
    key = Path(key_file).read_bytes()
    ca = Path(client_ca_file).read_bytes() if client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def create_server(
    address: str = "127.0.0.1:0",
    *,
    policies: Path | str | None = None,
    store: PolicyStore | None = None,
    servicer: pb_grpc.LoyaltyRulesServicer | None = None,
    credentials: grpc.ServerCredentials | None = None,
    metrics: Metrics | None = None,
    health_servicer: health.HealthServicer | None = None,
    threads: int = DEFAULT_THREADS,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    log_decisions: bool = False,
    reuse_port: bool = False,
    max_connection_age_s: float | None = None,
    connection_limits: ConnectionLimits | None = None,
    shadow: Shadow | None = None,
    stream_limits: StreamLimits | None = None,
    activity: PeerActivity | None = None,
    state: StateStore | None = None,
) -> tuple[grpc.Server, int]:
    """A bound, not yet started server for ``address`` and the port it got (``:0`` picks one).

    The policies come from ``store``, or from a store made for the directory
    ``policies`` (loaded now: a bad directory raises ``dsl.PolicyError``; it is not
    watched), or the bundled ``policies/`` when neither is given. ``servicer``
    replaces the real servicer (the benchmarks' trivial one); health then reports
    SERVING at once. Otherwise health is NOT_SERVING until the store has a set.
    ``connection_limits`` default to :class:`ConnectionLimits`' documented defaults. A
    servicer that does not implement every RPC of the service is a ``TypeError``
    (see :func:`method_handlers`). ``shadow``: a candidate set the servicer feeds a sample
    of its decisions (:mod:`service.shadow`). ``stream_limits`` bound the request threads
    client-streaming calls may hold (:mod:`service.admission`; its defaults when not given).
    ``activity``: where every call's peer is recorded, for a :class:`ConnectionShedder`.
    ``state``: the customer state store Apply,
    ApplyBatch and Reverse commit to and Evaluate reads (None: those RPCs answer
    FAILED_PRECONDITION); the caller opens and closes it (in each worker, after the fork).
    """
    metrics = metrics if metrics is not None else default_metrics()
    if not structlog.is_configured():  # embedded (tests, benchmarks): log as deployed
        logs.configure()
    if servicer is None:
        if store is None:
            store = PolicyStore(policies if policies is not None else _bundled_policies())
            if not store.load():
                _raise_load_error(store)
        servicer = LoyaltyRulesServicer(
            store, max_batch=max_batch, metrics=metrics, log_decisions=log_decisions, shadow=shadow,
            max_reply_bytes=max_message_bytes,
            state=state,
        )
    handlers = method_handlers(servicer)  # before anything starts: a missing RPC fails here
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        *(connection_limits or ConnectionLimits()).options(),
    ]
    if max_connection_age_s:
        # Clients reconnect now and then, so new replicas get their share of the load.
        options.append(("grpc.max_connection_age_ms", int(max_connection_age_s * 1000)))
        options.append(("grpc.max_connection_age_grace_ms", 30_000))
    server = grpc.server(
        # RPC threads only serve evaluations, so they keep the evaluation's decimal context.
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rpc",
                                   initializer=use_evaluation_context),
        # Admission after the service interceptor: a refused stream gets its status and log line.
        interceptors=[ServiceInterceptor(metrics),
                      StreamAdmissionInterceptor(stream_limits or StreamLimits(), threads, activity)],
        options=options,
    )
    _register(server, handlers)
    health_servicer = health_servicer or health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    _wire_health(health_servicer, store)
    if store is not None:
        store.on_swap(lambda snapshot: metrics.loaded(snapshot.revision, snapshot.policy_set.policies))
    port = (
        server.add_secure_port(address, credentials)
        if credentials is not None
        else server.add_insecure_port(address)
    )
    if port == 0:
        raise OSError(f"could not bind {address}")
    return server, port


def _serialize(response: Any) -> bytes:
    """A response message's bytes; a response a servicer already serialised, as it is."""
    return response if response.__class__ is bytes else response.SerializeToString()  # type: ignore[no-any-return]


#: The grpc handler factory for each kind of method: (client streams, server streams) -> factory.
_HANDLER_KINDS: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


@dataclass(frozen=True, slots=True)
class MalformedRequest:
    """What the request deserializer hands on for bytes that do not parse as the request
    message; the handler refuses it with INVALID_ARGUMENT (:func:`refuse_malformed`).

    gRPC's own answer to a deserializer that raises is INTERNAL ("Exception deserializing
    request!"), which says the server is at fault; the caller is.
    """

    message_type: str
    error: str

    def invalid_argument(self, where: str = "") -> InvalidArgument:
        """The refusal: which message did not parse, and the parser's reason."""
        reason = self.error.rpartition(": ")[2] or self.error
        return InvalidArgument([Violation(
            where, f"is not a valid {self.message_type} message ({reason}); "
                   "send the bytes of a serialised message")],
            message=f"{where or 'the request'}: is not a valid {self.message_type} message ({reason})")


def tolerant_parser(message_class: Any) -> Callable[[bytes], Any]:
    """A request deserializer that never raises: a message, or a :class:`MalformedRequest`."""
    parse = message_class.FromString
    name = message_class.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as exc:  # DecodeError, and whatever a corrupt input makes the parser raise
            return MalformedRequest(name, str(exc))

    deserialize.message_class = message_class  # type: ignore[attr-defined]  # what it parses
    return deserialize


def refuse_malformed(behaviour: Callable[..., Any], client_streaming: bool) -> Callable[..., Any]:
    """``behaviour`` behind a check for :class:`MalformedRequest`: a malformed request is
    INVALID_ARGUMENT; in a stream, a malformed message ends the stream with it (its
    correlation id cannot be read, so no response could say which message it was)."""
    if client_streaming:
        @functools.wraps(behaviour)
        def streaming(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            return behaviour(_checked_messages(requests), context)

        return streaming

    @functools.wraps(behaviour)
    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        if request.__class__ is MalformedRequest:
            raise request.invalid_argument()
        return behaviour(request, context)

    return unary


def _checked_messages(requests: Iterator[Any]) -> Iterator[Any]:
    for index, request in enumerate(requests):
        if request.__class__ is MalformedRequest:
            raise request.invalid_argument(f"messages[{index}]")
        yield request


def bytes_variant_name(method_name: str) -> str:
    """The servicer attribute that answers ``method_name`` with serialised responses:
    ``EvaluateBatch`` -> ``evaluate_batch_bytes``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", method_name).lower() + "_bytes"


def implementation(servicer: object, method: _descriptor.MethodDescriptor) -> Callable[..., Any] | None:
    """What answers ``method`` on ``servicer``: its bytes variant if it has one, else the method
    itself, or None when it has neither (the generated base class's UNIMPLEMENTED stub counts
    as neither)."""
    variant = getattr(servicer, bytes_variant_name(method.name), None)
    if variant is not None:
        return variant  # type: ignore[no-any-return]
    behaviour = getattr(servicer, method.name, None)
    stub = getattr(pb_grpc.LoyaltyRulesServicer, method.name, None)
    if behaviour is None or getattr(behaviour, "__func__", None) is stub:
        return None
    return behaviour  # type: ignore[no-any-return]


def method_handlers(servicer: object) -> dict[str, grpc.RpcMethodHandler]:
    """A handler for every method of ``loyalty.v1.LoyaltyRules``, built from the service
    descriptor so that none can be left out.

    Where the servicer has a bytes variant (``evaluate_bytes`` for ``Evaluate``, see
    :func:`bytes_variant_name`) it answers with that (responses already serialised:
    parsing them into messages only for gRPC to serialise them again costs as much as
    the rules), and any response may be given as bytes. Raises ``TypeError`` naming
    every method the servicer does not implement: a server that would answer one of
    its RPCs UNIMPLEMENTED must not start.
    """
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    missing: list[str] = []
    for method in SERVICE.methods:
        behaviour = implementation(servicer, method)
        if behaviour is None:
            missing.append(method.name)
            continue
        kind = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        request = GetMessageClass(method.input_type)
        handlers[method.name] = kind(refuse_malformed(behaviour, method.client_streaming),
                                     tolerant_parser(request), _serialize)
    if missing:
        raise TypeError(f"{type(servicer).__name__} does not implement " + "; ".join(
            f"{SERVICE_NAME}/{name}: define {name} (or {bytes_variant_name(name)})" for name in missing))
    return handlers


def _register(server: grpc.Server, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
    """Register ``handlers`` (:func:`method_handlers`) as ``loyalty.v1.LoyaltyRules``: what the
    generated ``add_LoyaltyRulesServicer_to_server`` does with its own table."""
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


def _wire_health(health_servicer: health.HealthServicer, store: PolicyStore | None) -> None:
    serving = health_pb2.HealthCheckResponse.SERVING

    def set_all(status: Any) -> None:
        health_servicer.set("", status)
        health_servicer.set(SERVICE_NAME, status)

    if store is None:
        set_all(serving)
        return
    set_all(health_pb2.HealthCheckResponse.NOT_SERVING)
    store.on_swap(lambda _snapshot: set_all(serving))


def _bundled_policies() -> Path:
    return Path(__file__).resolve().parent.parent / "policies"


def _raise_load_error(store: PolicyStore) -> None:
    import dsl

    status = store.status
    if status.diagnostics:
        raise dsl.PolicyError(status.diagnostics)
    raise RuntimeError(f"cannot load policies from {store.directory}: {status.last_error}")


class StallMonitor:
    """Health NOT_SERVING while the service cannot answer: calls are in flight and none has
    finished for ``stall_s`` seconds (every request thread stuck, whatever holds it); SERVING
    again once calls finish, if a policy set is loaded.

    Health probes are not counted (:class:`service.interceptor.CallProgress`): they can go on
    being answered while every real call is stuck, which is exactly when they must not say
    SERVING.
    """

    def __init__(self, health_servicer: health.HealthServicer, store: PolicyStore | None,
                 progress: CallProgress = PROGRESS, stall_s: float = 5.0, interval_s: float = 0.5) -> None:
        self._health = health_servicer
        self._store = store
        self._progress = progress
        self.stall_s = stall_s
        self._interval = interval_s
        self._done = threading.Event()
        self.stalled = False
        self._thread = threading.Thread(target=self._run, name="stall-monitor", daemon=True)

    def start(self) -> StallMonitor:
        """Start watching."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (the shutdown sets health itself)."""
        self._done.set()

    def _set(self, status: Any) -> None:
        self._health.set("", status)
        self._health.set(SERVICE_NAME, status)

    def _run(self) -> None:
        clock = time.monotonic
        _, last_finished = self._progress.totals()
        last_change = clock()
        while not self._done.wait(self._interval):
            started, finished = self._progress.totals()
            now = clock()
            if finished != last_finished or started == finished:
                last_finished, last_change = finished, now
                if self.stalled:
                    self.stalled = False
                    log.warning("calls are finishing again")
                    if self._store is None or self._store.current is not None:
                        self._set(health_pb2.HealthCheckResponse.SERVING)
                continue
            if now - last_change >= self.stall_s:
                if not self.stalled:
                    log.error("no call finished for a while: health NOT_SERVING",
                              in_flight=started - finished, stalled_s=round(now - last_change, 1))
                self.stalled = True
                self._set(health_pb2.HealthCheckResponse.NOT_SERVING)  # again, over a reload's SERVING


# -- one server process --------------------------------------------------------------------------


@dataclass
class ServeConfig:
    """Everything ``loyalty serve`` can be told (flags or LOYALTY_* variables)."""

    policies: Path = field(default_factory=_bundled_policies)
    host: str = "127.0.0.1"
    port: int = 50051
    workers: int = 1
    threads: int = DEFAULT_THREADS
    metrics_port: int | None = None
    metrics_host: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    grace: float = 10.0
    #: Seconds beyond ``grace`` before the watchdog ends a stop that has not finished,
    #: and, with ``grace``, the longest stall of Python it tolerates while serving.
    watchdog_margin: float = DEFAULT_MARGIN_S
    max_batch: int = DEFAULT_MAX_BATCH
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_connection_age_s: float | None = None
    connection_limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    stream_limits: StreamLimits = field(default_factory=StreamLimits)
    #: When idle connections are shed and how many one client host may hold (Linux).
    shed_policy: ShedPolicy = field(default_factory=ShedPolicy)
    log_decisions: bool = False
    watch: bool = True
    wait_for_policies: bool = False
    #: Serve a directory without policies; otherwise such a load is refused like a broken one.
    allow_empty: bool = False
    #: A candidate policy directory evaluated beside the serving one (``--shadow``), or None.
    shadow: Path | None = None
    #: The share of live decisions the shadow is evaluated on (``--shadow-sample``), 0 to 1.
    shadow_sample: float = DEFAULT_SAMPLE
    #: The customer state store (``--state``): a SQLite path, ``sqlite:///path`` or a
    #: ``postgresql://`` URL; None: ``$LOYALTY_DATA_DIR/state.sqlite3``, else ``./data/state.sqlite3``.
    state: str | None = None
    #: Seconds between runs of the ledger's expiry job in the server (``--expire-every``; 0: off).
    expire_every: float = 3600.0

    @property
    def address(self) -> str:
        """``host:port`` for gRPC (IPv6 hosts in brackets)."""
        return f"{format_host(self.host)}:{self.port}"

    def credentials(self) -> grpc.ServerCredentials | None:
        """TLS credentials when a certificate is configured."""
        if self.tls_cert is None:
            return None
        if self.tls_key is None:
            raise ValueError("--tls-cert needs --tls-key")
        return server_credentials(self.tls_cert, self.tls_key, self.tls_client_ca)


class AddressInUse(OSError):
    """The address to listen on is taken (by another server, or a worker left behind)."""

    def __init__(self, address: str, flag: str = "--port") -> None:
        super().__init__(f"cannot listen on {address}: the address is already in use (another "
                         f"server on this port? stop it, or pick another {flag}; 0 picks a free one)")
        self.address = address


def check_address_free(host: str, port: int, flag: str = "--port") -> None:
    """Raise :class:`AddressInUse` when ``host:port`` cannot be bound, before anything loads
    (gRPC's own failure comes later, as a traceback after a line of its C core's log)."""
    import socket

    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(f"{format_host(host)}:{port}", flag) from None
            raise


def format_host(host: str) -> str:
    """A host for an address: IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def run(
    config: ServeConfig,
    *,
    ready: Callable[[int], None] | None = None,
    reuse_port: bool = False,
    serve_metrics: bool = True,
    stop: threading.Event | None = None,
    servicer: pb_grpc.LoyaltyRulesServicer | None = None,
    supervised: bool = False,
) -> int:
    """Run one server process until SIGTERM/SIGINT (or ``stop``); returns the exit status.

    ``ready(port)`` is called once the server is listening with a policy set loaded
    (or, with ``wait_for_policies``, listening and waiting for one). ``servicer``
    replaces the real servicer (tests run the process's whole life cycle around one
    that misbehaves on purpose). In the main thread, the process is given a
    :class:`Watchdog` of ``grace + watchdog_margin`` seconds: it exits with status 1
    when Python stalls that long or a stop takes that long. A second SIGTERM/SIGINT
    while stopping exits at once, unless ``supervised`` (a worker of
    :mod:`service.workers`, whose supervisor decides that).
    """
    stop = stop or threading.Event()
    if not reuse_port:  # a worker shares the port on purpose; the supervisor checked it
        check_address_free(config.host, config.port)
    if serve_metrics and config.metrics_port is not None:
        check_address_free(config.metrics_host or config.host, config.metrics_port, "--metrics-port")
    # Reloads are prepared in a helper process (service.reloads), started before any gRPC
    # thread exists; the first load runs here while it starts, before any call is served.
    helper = ReloadHelper().start()
    freeze_startup_objects()  # shorter collections after each reload; before any set is loaded
    store = PolicyStore(config.policies, allow_empty=config.allow_empty, loader=helper.load)
    reloadable = [store]  # and the shadow's, once it exists: SIGHUP reloads both
    # Until the real handlers are in (after the first load, which can take seconds), a SIGHUP
    # asks for a reload rather than ending the process, SIGHUP's default: a supervisor forwards
    # SIGHUPs to workers that may still be starting, and so may an operator's reload storm.
    original_hup = None
    if threading.current_thread() is threading.main_thread():
        original_hup = signal.signal(
            signal.SIGHUP, lambda _signum, _frame: [s.request_reload() for s in reloadable])
    metrics = default_metrics()
    store.on_attempt(lambda ok, _status: metrics.reload(ok))
    store.start(watch=config.watch)  # before the first load, so no change slips between
    if not store.load() and not config.wait_for_policies:
        store.stop()
        helper.stop()
        if original_hup is not None:
            signal.signal(signal.SIGHUP, original_hup)
        _print_refusal(store)
        return 2
    credentials = config.credentials()
    try:  # here, in the process that serves: connections and pools must not cross a fork
        state = open_store(config.state)
    except StateError as exc:
        store.stop()
        helper.stop()
        if original_hup is not None:
            signal.signal(signal.SIGHUP, original_hup)
        print(f"loyalty serve: cannot open the state store {config.state or default_url()}: {exc}",
              file=sys.stderr)
        return 2
    shadow = None
    if config.shadow is not None:  # a shadow that does not load is reported, never fatal
        shadow = start_shadow(config.shadow, sample=config.shadow_sample,
                              metrics=default_shadow_metrics(), watch=config.watch,
                              allow_empty=config.allow_empty)
        shadow.state = state  # reads live state, writes none
        reloadable.append(shadow.store)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    activity = PeerActivity()
    try:
        server, port = _create_bound_server(
            config,
            store=store,
            servicer=servicer,
            credentials=credentials,
            metrics=metrics,
            health_servicer=health_servicer,
            reuse_port=reuse_port,
            shadow=shadow,
            activity=activity,
            state=state,
        )
    except BaseException:
        store.stop()
        helper.stop()
        state.close()
        if shadow is not None:
            shadow.stop()
            shadow.store.stop()
        if original_hup is not None:
            signal.signal(signal.SIGHUP, original_hup)
        raise
    server.start()
    expiry = ExpiryTimer(state, config.expire_every, schema=lambda: _schema_now(store)).start()
    monitor = StallMonitor(health_servicer, store).start()
    shedder = ConnectionShedder(port, config.connection_limits.max_connections, activity, config.shed_policy)
    shedder.start()
    if serve_metrics and config.metrics_port is not None:
        metrics_port = start_metrics_server(config.metrics_port, config.metrics_host or config.host)
        print(f"metrics on {format_host(config.metrics_host or config.host)}:{metrics_port}", flush=True)
    watchdog = None
    if threading.current_thread() is threading.main_thread():  # as for signal handlers: one per process
        watchdog = Watchdog(config.grace + config.watchdog_margin)
        watchdog.start()
    previous = _install_signals(stop, reloadable, watchdog, second_exits=not supervised)
    if original_hup is not None and signal.SIGHUP in previous:
        previous[signal.SIGHUP] = original_hup  # restored as it was before run(), not the early one
    log.info(
        "serving",
        address=f"{format_host(config.host)}:{port}",
        tls=credentials is not None,
        mutual_tls=config.tls_client_ca is not None,
        policies=str(config.policies),
        revision=store.current.revision if store.current else None,
        threads=config.threads,
        shadow=str(config.shadow) if config.shadow is not None else None,
        state=_describe_state(state),
    )
    if ready is not None:
        ready(port)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        if watchdog is not None:  # also when ``stop`` was set without a signal
            watchdog.stopping()
        log.info("shutting down", grace_s=config.grace)
        shedder.stop()
        monitor.stop()
        expiry.stop()
        health_servicer.enter_graceful_shutdown()
        server.stop(config.grace).wait()
        store.stop()
        helper.stop()
        if shadow is not None:
            shadow.stop()
            shadow.store.stop()
        state.close()
        metrics.flush()
        _restore_signals(previous)
        log.info("stopped")
        logs.flush(1.0)  # bounded: a blocked sink drops the last lines, it does not hold the exit
    return 0


def _describe_state(state: StateStore) -> str:
    """The store for the log: its backend and file, or its URL without the password."""
    path = getattr(state, "path", None)
    if path is not None:
        return f"sqlite:{path}"
    url = str(getattr(state, "url", ""))
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


def _create_bound_server(config: ServeConfig, **kwargs: Any) -> tuple[grpc.Server, int]:
    """:func:`create_server` with ``config``'s settings; a taken address is :class:`AddressInUse`."""
    try:
        return create_server(
            config.address,
            threads=config.threads,
            max_batch=config.max_batch,
            max_message_bytes=config.max_message_bytes,
            log_decisions=config.log_decisions,
            max_connection_age_s=config.max_connection_age_s,
            connection_limits=config.connection_limits,
            stream_limits=config.stream_limits,
            **kwargs,
        )
    except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
        if "Failed to bind" in str(exc):
            raise AddressInUse(config.address) from None
        raise


def start_metrics_server(port: int, host: str, registry: Any = None) -> int:
    """Serve Prometheus metrics over HTTP on ``host:port`` (0 picks a port); returns the port."""
    from prometheus_client import REGISTRY, start_http_server

    httpd, _thread = start_http_server(port, addr=host, registry=registry or REGISTRY)
    return int(httpd.server_port)


def _print_refusal(store: PolicyStore) -> None:
    status = store.status
    if status.diagnostics:
        for d in status.diagnostics:
            print(d.render(), file=sys.stderr)
    elif status.last_error.startswith(str(store.directory)):  # the error names the directory
        print(f"loyalty serve: cannot load policies: {status.last_error}", file=sys.stderr)
    else:
        print(f"loyalty serve: cannot load {store.directory}: {status.last_error}", file=sys.stderr)


def _install_signals(stop: threading.Event, stores: list[PolicyStore], watchdog: Watchdog | None,
                     second_exits: bool) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}

    def on_stop(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        # The deadline first: nothing before it may block (logging cannot, but this must stay
        # true whatever the log does).
        if watchdog is not None:
            watchdog.stopping()
        if second_exits and stop.is_set():  # asked twice: the sender will not wait for the grace period
            log.warning("signal while stopping: exiting now", signal=name)
            with contextlib.suppress(Exception):
                logs.flush(0.5)  # bounded: a blocked log sink loses the line, not the exit
            os._exit(128 + signum)
        stop.set()
        log.info("signal", signal=name)

    def on_hup(_signum: int, _frame: Any) -> None:
        log.info("signal", signal="SIGHUP")
        for store in stores:
            store.request_reload()

    for sig, handler in ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop), (signal.SIGHUP, on_hup)):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _schema_now(store: PolicyStore) -> Any:
    """The loaded programme's schema (None before a load): the tier job reads its [qualification]."""
    snapshot = store.current()
    return None if snapshot is None else snapshot.policy_set.schema
