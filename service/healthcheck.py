"""``python -m service.healthcheck``: exit 0 when the local server reports SERVING (for Docker HEALTHCHECK).

It asks the standard gRPC health service for ``loyalty.v1.LoyaltyRules``. The
address defaults to 127.0.0.1 and ``LOYALTY_PORT``; with ``LOYALTY_TLS_CERT``
set it speaks TLS (trusting ``LOYALTY_HEALTHCHECK_CA``, or the server's own
certificate) and presents ``LOYALTY_HEALTHCHECK_CERT``/``_KEY`` for mutual TLS.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _read(name: str) -> bytes | None:
    path = os.environ.get(name)
    return Path(path).read_bytes() if path else None


def main(argv: list[str] | None = None) -> int:
    """Check once; 0 for SERVING, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=f"127.0.0.1:{os.environ.get('LOYALTY_PORT', '50051')}")
    parser.add_argument("--service", default="loyalty.v1.LoyaltyRules")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    if os.environ.get("LOYALTY_TLS_CERT"):
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read("LOYALTY_HEALTHCHECK_CA") or _read("LOYALTY_TLS_CERT"),
            private_key=_read("LOYALTY_HEALTHCHECK_KEY"),
            certificate_chain=_read("LOYALTY_HEALTHCHECK_CERT"),
        )
        options = [("grpc.ssl_target_name_override", os.environ.get("LOYALTY_HEALTHCHECK_NAME", "localhost"))]
        channel = grpc.secure_channel(args.address, credentials, options=options)
    else:
        channel = grpc.insecure_channel(args.address)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.RpcError as exc:
            print(f"unhealthy: {exc.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
