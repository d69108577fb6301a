"""Run one benchmark server in its own process: the real servicer or a trivial one.

``python -m benchmarks.serve --servicer real|trivial --policies DIR [--max-seconds S]``

It binds 127.0.0.1 on a free port, prints ``PORT <n>`` on stdout, and serves
until its standard input closes (the benchmark process exits or closes the
pipe), SIGTERM, or ``--max-seconds`` pass, whichever comes first: a benchmark
server never outlives its run.

Both servicers are served by the same ``service.create_server`` (same thread
pool, options and interceptors), so a comparison measures only what the
servicer does with the same messages. The trivial servicer is the service's own
``service.testing.TrivialServicer`` when it exists.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any


def trivial_servicer() -> Any:
    """The service's trivial servicer: same messages, a constant decision, no evaluation."""
    from service.testing import TrivialServicer

    return TrivialServicer()


def real_server(policies: str) -> tuple[Any, int]:
    """The real service on 127.0.0.1, port 0, serving ``policies``."""
    from service.server import create_server

    return create_server("127.0.0.1:0", policies=policies)


def trivial_server() -> tuple[Any, int]:
    """The trivial servicer behind the service's own server construction."""
    from service.server import create_server

    return create_server("127.0.0.1:0", servicer=trivial_servicer())


def main(argv: list[str] | None = None) -> int:
    """Start the server, announce its port, and wait for the end of input, SIGTERM or a timeout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servicer", choices=["real", "trivial"], required=True)
    parser.add_argument("--policies", default="policies")
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    args = parser.parse_args(argv)
    server, port = real_server(args.policies) if args.servicer == "real" else trivial_server()
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"PORT {port} PID {os.getpid()}", flush=True)
    stop.wait(args.max_seconds)
    server.stop(grace=1.0).wait(5.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
