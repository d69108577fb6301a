"""A server process whose Evaluate misbehaves on request: ``python -m tests.service.stuck_server``.

It runs :func:`service.server.run` (the signals, watchdog and shutdown of ``loyalty
serve``) around :class:`StuckServicer`, so tests can provoke a handler that holds the
GIL in C code without relying on any input bug, which the input bounds fix. It
prints ``listening on 127.0.0.1:PORT`` like ``loyalty serve``, and ``holding ID`` on
stdout when a call starts misbehaving.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from collections.abc import Iterable, Iterator
from decimal import Decimal

import grpc

from service import logs
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.server import ServeConfig, run
from service.testing import TrivialServicer

#: libc through ``PyDLL``: unlike ``CDLL``, its calls keep the GIL, like a long C call in a
#: handler would (``sleep`` makes the stall's length exact and costs no CPU on a shared machine).
_LIBC_HOLDING_THE_GIL = ctypes.PyDLL(None)


class StuckServicer(TrivialServicer):
    """TrivialServicer whose Evaluate misbehaves when the customer id says how:

    - ``hold-gil:SECONDS``: one C call that holds the GIL for whole SECONDS;
    - ``decimal:DIGITS``: ``int(Decimal("1E+DIGITS"))``, the C call of the measured incident;
    - ``sleep:SECONDS``: a Python sleep (the GIL is free; the call just takes long).
    """

    def Evaluate(self, request: pb.EvaluateRequest, context: grpc.ServicerContext) -> pb.EvaluateResponse:
        """Misbehave as the customer id asks, then answer the fixed decision."""
        how, _, amount = request.customer.id.partition(":")
        if how in ("hold-gil", "decimal", "sleep"):
            print(f"holding {request.customer.id}", flush=True)
        if how == "hold-gil":
            _LIBC_HOLDING_THE_GIL.sleep(int(amount))
        elif how == "decimal":
            int(Decimal(f"1E+{int(amount)}"))
        elif how == "sleep":
            time.sleep(float(amount))
        return super().Evaluate(request, context)

    def EvaluateStream(
        self, request_iterator: Iterable[pb.EvaluateStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.EvaluateStreamResponse]:
        """The fixed decision per message, after a Python sleep of SECONDS for a message whose
        correlation id is ``sleep:SECONDS``."""
        for request in request_iterator:
            how, _, amount = request.correlation_id.partition(":")
            if how == "sleep":
                time.sleep(float(amount))
            yield from super().EvaluateStream(iter([request]), context)


def main(argv: list[str] | None = None) -> int:
    """Serve :class:`StuckServicer` on 127.0.0.1 until SIGTERM/SIGINT; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--grace", type=float, default=1.0)
    parser.add_argument("--watchdog-margin", type=float, default=2.0)
    args = parser.parse_args(argv)
    logs.configure("info", "json")
    config = ServeConfig(port=args.port, grace=args.grace, watchdog_margin=args.watchdog_margin,
                         watch=False)
    return run(config, servicer=StuckServicer(),
               ready=lambda port: print(f"listening on 127.0.0.1:{port}", flush=True))


if __name__ == "__main__":
    sys.exit(main())
