"""``loyalty serve``: serve the policies over gRPC.

Every flag has a matching ``LOYALTY_*`` environment variable (the flag wins);
``loyalty serve --help`` lists them. With no flags at all it serves the bundled
``policies/`` on 127.0.0.1:50051.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from service.watchdog import DEFAULT_MARGIN_S  # the standard library only: safe before prometheus

_TRUE = {"1", "true", "yes", "on"}


def _env(name: str, default: Any = None) -> Any:
    return os.environ.get(name, default)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0-65535; 0 picks a free one)")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _positive_or_off(text: str) -> int | None:
    """A positive count, or None for 0 (no limit)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative (0: no limit)")
    return value or None


def _seconds_or_off(text: str) -> float | None:
    """Seconds, or None for 0 (never)."""
    return _seconds(text) or None


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


def sample_rate(text: str) -> float:
    """A share of live decisions from a flag, 0 to 1 (``0.1``: one in ten).

    The standard library only: flags are parsed before ``--workers`` prepares
    prometheus-client's multiprocess mode, which must come before its first import.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number; give a share of live decisions from 0 to 1") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1 (0: none, 1: every live decision)")
    return value


class _DefaultsFormatter(argparse.HelpFormatter):
    """Shows a flag's default when it has a value worth showing (not for switches or unset)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, argparse.SUPPRESS) or isinstance(action.default, bool) \
                or "%(default)" in text:
            return text
        return text + " (default: %(default)s)"


def _bundled_policies() -> str:
    return str(Path(__file__).resolve().parents[2] / "policies")


def add_parser(subparsers: Any) -> None:
    """Register ``serve`` and its flags."""
    p = subparsers.add_parser(
        "serve",
        help="serve the policies over gRPC",
        description=(
            "Serve loyalty.v1.LoyaltyRules (with gRPC health checking and reflection). "
            "Every flag can also be set by the environment variable named in its help; "
            "the flag wins. The policy directory is watched and reloaded on change and "
            "on SIGHUP; SIGTERM or SIGINT stops gracefully."
        ),
        formatter_class=_DefaultsFormatter,
    )
    p.add_argument("--policies", metavar="DIR", type=Path,
                   default=_env("LOYALTY_POLICIES", _bundled_policies()),
                   help="policy directory (with its schema.toml) [LOYALTY_POLICIES]")
    p.add_argument("--host", default=_env("LOYALTY_HOST", "127.0.0.1"),
                   help="address to listen on; 0.0.0.0 or :: for every interface [LOYALTY_HOST]")
    p.add_argument("--port", type=_port, default=_env("LOYALTY_PORT", "50051"),
                   help="gRPC port; 0 picks a free one. The chosen address is printed on stdout as "
                        "'listening on HOST:PORT' [LOYALTY_PORT]")
    p.add_argument("--workers", type=_positive, default=_env("LOYALTY_WORKERS", "1"),
                   help="server processes sharing the port (SO_REUSEPORT); a worker that dies is "
                        "replaced [LOYALTY_WORKERS]")
    p.add_argument("--threads", type=_positive, default=_env("LOYALTY_THREADS", "16"),
                   help="request threads per process [LOYALTY_THREADS]")
    p.add_argument("--metrics-port", type=_port, default=_env("LOYALTY_METRICS_PORT"),
                   help="serve Prometheus metrics on this port (0 picks one and prints "
                        "'metrics on HOST:PORT'); off when unset [LOYALTY_METRICS_PORT]")
    p.add_argument("--metrics-host", default=_env("LOYALTY_METRICS_HOST"),
                   help="address for the metrics port; defaults to --host [LOYALTY_METRICS_HOST]")
    p.add_argument("--tls-cert", metavar="PEM", type=Path, default=_env("LOYALTY_TLS_CERT"),
                   help="server certificate chain; enables TLS [LOYALTY_TLS_CERT]")
    p.add_argument("--tls-key", metavar="PEM", type=Path, default=_env("LOYALTY_TLS_KEY"),
                   help="server private key [LOYALTY_TLS_KEY]")
    p.add_argument("--tls-client-ca", metavar="PEM", type=Path, default=_env("LOYALTY_TLS_CLIENT_CA"),
                   help="CA bundle for client certificates; enables mutual TLS (clients must "
                        "present a certificate it signed) [LOYALTY_TLS_CLIENT_CA]")
    p.add_argument("--grace", metavar="SECONDS", type=_seconds, default=_env("LOYALTY_GRACE", "10"),
                   help="on SIGTERM/SIGINT, how long calls in flight may take to finish; the "
                        f"process is gone {DEFAULT_MARGIN_S:g} s later at the latest, even with a "
                        "call stuck in C code, and at once on a second signal [LOYALTY_GRACE]")
    p.add_argument("--max-batch", type=_positive, default=_env("LOYALTY_MAX_BATCH", "10000"),
                   help="most items in one EvaluateBatch call [LOYALTY_MAX_BATCH]")
    p.add_argument("--max-message-bytes", type=_positive,
                   default=_env("LOYALTY_MAX_MESSAGE_BYTES", str(16 * 1024 * 1024)),
                   help="largest request or response message [LOYALTY_MAX_MESSAGE_BYTES]")
    p.add_argument("--max-connection-age", metavar="SECONDS", type=_seconds,
                   default=_env("LOYALTY_MAX_CONNECTION_AGE"),
                   help="close client connections after this long so clients rebalance across "
                        "replicas; off when unset [LOYALTY_MAX_CONNECTION_AGE]")
    p.add_argument("--max-connections", type=_positive_or_off,
                   default=_env("LOYALTY_MAX_CONNECTIONS", "10000"),
                   help="client connections open at once per process; a connection beyond it is "
                        "closed at once (the client sees UNAVAILABLE); 0 for no cap "
                        "[LOYALTY_MAX_CONNECTIONS]")
    p.add_argument("--max-connections-per-peer", type=_positive_or_off,
                   default=_env("LOYALTY_MAX_CONNECTIONS_PER_PEER", "1000"),
                   help="connections one client host may hold: beyond it, and beyond 80%% of "
                        "--max-connections in all, connections that carry no call (for 2 s) are "
                        "shed, so a new client finds room (Linux); 0 for no per-host limit "
                        "[LOYALTY_MAX_CONNECTIONS_PER_PEER]")
    p.add_argument("--max-connection-idle", metavar="SECONDS", type=_seconds_or_off,
                   default=_env("LOYALTY_MAX_CONNECTION_IDLE", "300"),
                   help="close a connection that has carried no call for this long (GOAWAY; a "
                        "gRPC client reconnects when it next calls); 0 for never "
                        "[LOYALTY_MAX_CONNECTION_IDLE]")
    p.add_argument("--max-concurrent-streams", type=_positive,
                   default=_env("LOYALTY_MAX_CONCURRENT_STREAMS", "100"),
                   help="calls at once on one connection; the client queues the rest "
                        "[LOYALTY_MAX_CONCURRENT_STREAMS]")
    p.add_argument("--handshake-timeout", metavar="SECONDS", type=_seconds,
                   default=_env("LOYALTY_HANDSHAKE_TIMEOUT", "10"),
                   help="close a new connection that has not finished its handshake (TLS, HTTP/2 "
                        "preface and SETTINGS) within this long [LOYALTY_HANDSHAKE_TIMEOUT]")
    p.add_argument("--max-streams", type=_positive, default=_env("LOYALTY_MAX_STREAMS"),
                   help="client-streaming calls (EvaluateStream, reflection) served at once per "
                        "process, each holding a request thread; beyond it RESOURCE_EXHAUSTED. "
                        "Default: half of --threads, so health and unary calls always find one "
                        "[LOYALTY_MAX_STREAMS]")
    p.add_argument("--max-streams-per-peer", type=_positive, default=_env("LOYALTY_MAX_STREAMS_PER_PEER"),
                   help="of those, how many one client host may hold; beyond it RESOURCE_EXHAUSTED. "
                        "Default: half of --max-streams [LOYALTY_MAX_STREAMS_PER_PEER]")
    p.add_argument("--stream-idle-timeout", metavar="SECONDS", type=_seconds_or_off,
                   default=_env("LOYALTY_STREAM_IDLE_TIMEOUT", "60"),
                   help="end a stream whose client has sent no message for this long with "
                        "DEADLINE_EXCEEDED; 0 for never [LOYALTY_STREAM_IDLE_TIMEOUT]")
    p.add_argument("--keepalive-min-interval", metavar="SECONDS", type=_seconds,
                   default=_env("LOYALTY_KEEPALIVE_MIN_INTERVAL", "30"),
                   help="least time between a client's keepalive pings while no data flows; "
                        "pings more often count as strikes [LOYALTY_KEEPALIVE_MIN_INTERVAL]")
    p.add_argument("--keepalive-permit-without-calls", action="store_true",
                   default=_env_flag("LOYALTY_KEEPALIVE_PERMIT_WITHOUT_CALLS"),
                   help="let clients ping connections that carry no call (otherwise such a "
                        "ping is a strike) [LOYALTY_KEEPALIVE_PERMIT_WITHOUT_CALLS=1]")
    p.add_argument("--max-ping-strikes", type=int,
                   default=_env("LOYALTY_MAX_PING_STRIKES", "2"),
                   help="strikes tolerated before the connection is ended with GOAWAY "
                        "too_many_pings; 0 for no limit [LOYALTY_MAX_PING_STRIKES]")
    p.add_argument("--decision-log", action="store_true", default=_env_flag("LOYALTY_DECISION_LOG"),
                   help="log every decision with its effects (ids only, no personal data) "
                        "[LOYALTY_DECISION_LOG=1]")
    p.add_argument("--no-watch", dest="watch", action="store_false",
                   default=not _env_flag("LOYALTY_NO_WATCH"),
                   help="do not watch the policy directory (SIGHUP still reloads) "
                        "[LOYALTY_NO_WATCH=1]")
    p.add_argument("--wait-for-policies", action="store_true",
                   default=_env_flag("LOYALTY_WAIT_FOR_POLICIES"),
                   help="start even when the directory does not load (health NOT_SERVING until a "
                        "good version appears) instead of exiting with status 2 "
                        "[LOYALTY_WAIT_FOR_POLICIES=1]")
    p.add_argument("--allow-empty", action="store_true", default=_env_flag("LOYALTY_ALLOW_EMPTY"),
                   help="serve a policy directory that holds no policies (every decision empty); "
                        "without it such a directory is refused like a broken one, at start and "
                        "on reload [LOYALTY_ALLOW_EMPTY=1]")
    p.add_argument("--shadow", metavar="DIR", type=Path, default=_env("LOYALTY_SHADOW"),
                   help="a candidate policy directory evaluated beside --policies on a sample of "
                        "live decisions, off the response path, and compared (metrics, logs, "
                        "ListPolicies); it never answers a call, and one that does not load is "
                        "reported and never touches the serving set. Watched and reloaded like "
                        "--policies; each worker has its own [LOYALTY_SHADOW]")
    p.add_argument("--shadow-sample", metavar="RATE", type=sample_rate,
                   default=_env("LOYALTY_SHADOW_SAMPLE", "0.1"),
                   help="share of live decisions the shadow is evaluated on, 0 to 1 (a batch is "
                        "sampled whole) [LOYALTY_SHADOW_SAMPLE]")
    p.add_argument("--state", metavar="PATH_OR_URL", default=_env("LOYALTY_STATE"),
                   help="the customer state store Apply and Reverse commit to and Evaluate reads: a "
                        "SQLite file (created with its directory), sqlite:///PATH (add "
                        "?synchronous=normal to flush commits at checkpoints only: see "
                        "docs/state.md) or postgresql://...; default $LOYALTY_DATA_DIR/state.sqlite3, else "
                        "./data/state.sqlite3 [LOYALTY_STATE]")
    p.add_argument("--expire-every", metavar="SECONDS", type=float,
                   default=float(_env("LOYALTY_EXPIRE_EVERY", "3600")),
                   help="seconds between runs of the ledger's expiry job in the server, off the "
                        "request path (idempotent; 0: off, run `loyalty state expire` instead) "
                        "[LOYALTY_EXPIRE_EVERY]")
    p.add_argument("--log-level", default=_env("LOYALTY_LOG_LEVEL", "info"),
                   choices=["debug", "info", "warning", "error"],
                   help="least severe log level written; 'info' includes one line per RPC "
                        "[LOYALTY_LOG_LEVEL]")
    p.add_argument("--log-format", default=_env("LOYALTY_LOG_FORMAT", "auto"),
                   choices=["auto", "json", "console"],
                   help="log format on stderr; auto is console on a terminal, JSON lines "
                        "otherwise [LOYALTY_LOG_FORMAT]")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; returns 0 after a graceful stop, 2 if policies do not load."""
    if args.workers > 1 and args.metrics_port is not None:
        # Workers share their metrics through files; prometheus-client picks its storage
        # when first imported, so this must happen before anything imports it.
        from service.workers import prepare_multiprocess_metrics

        prepare_multiprocess_metrics()
    from service.admission import StreamLimits
    from service.connections import ShedPolicy
    from service.server import ConnectionLimits, ServeConfig

    config = ServeConfig(
        policies=Path(args.policies),
        host=args.host,
        port=args.port,
        workers=args.workers,
        threads=args.threads,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        grace=args.grace,
        max_batch=args.max_batch,
        max_message_bytes=args.max_message_bytes,
        max_connection_age_s=args.max_connection_age,
        connection_limits=ConnectionLimits(
            max_connections=args.max_connections,
            max_connection_idle_s=args.max_connection_idle,
            max_concurrent_streams=args.max_concurrent_streams,
            keepalive_min_interval_s=args.keepalive_min_interval,
            keepalive_permit_without_calls=args.keepalive_permit_without_calls,
            max_ping_strikes=args.max_ping_strikes,
            handshake_timeout_s=args.handshake_timeout,
        ),
        shed_policy=ShedPolicy(max_per_peer=args.max_connections_per_peer),
        stream_limits=StreamLimits(
            max_streams=args.max_streams,
            max_streams_per_peer=args.max_streams_per_peer,
            idle_timeout_s=args.stream_idle_timeout,
        ),
        log_decisions=args.decision_log,
        watch=args.watch,
        wait_for_policies=args.wait_for_policies,
        allow_empty=args.allow_empty,
        shadow=Path(args.shadow) if args.shadow is not None else None,
        shadow_sample=args.shadow_sample,
        state=args.state,
        expire_every=args.expire_every,
    )
    if (config.tls_cert is None) != (config.tls_key is None):
        print("loyalty serve: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if config.tls_client_ca is not None and config.tls_cert is None:
        print("loyalty serve: --tls-client-ca needs --tls-cert and --tls-key", file=sys.stderr)
        return 2
    if not config.policies.is_dir() and not config.wait_for_policies:
        print(f"loyalty serve: {config.policies}: no such directory", file=sys.stderr)
        return 2

    from service import logs
    from service.server import AddressInUse

    logs.configure(args.log_level, args.log_format)
    try:
        if config.workers > 1:
            from service.workers import run_workers

            return run_workers(config, announce=_announce(config))
        from service.server import run as run_server

        return run_server(config, ready=_announce(config))
    except AddressInUse as exc:  # one line, no traceback: the operator's to fix
        print(f"loyalty serve: {exc}", file=sys.stderr)
        return 2


def _announce(config: Any) -> Any:
    from service.server import format_host

    def ready(port: int) -> None:
        print(f"listening on {format_host(config.host)}:{port}", flush=True)

    return ready
