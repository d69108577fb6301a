"""Run one benchmark server in its own process: the real servicer or the trivial one.

``python -m benchmarks.serve --servicer real|trivial|handwritten --policies DIR [--max-seconds S]``

It binds 127.0.0.1 on a free port, prints ``PORT <n>`` on stdout, and serves
until its standard input closes (the benchmark process exits or closes the
pipe), SIGTERM, or ``--max-seconds`` pass, whichever comes first: a benchmark
server never outlives its run.

Both servicers are served by the same :func:`service.server.create_server` (same
thread pool, options, interceptor, metrics and per-RPC log line, logged as
``loyalty serve`` logs by default: JSON lines on stderr), so a comparison
measures only what the servicer does with the same messages. The trivial one is
the service's own :class:`service.testing.TrivialServicer`; the hand-written one
(:mod:`benchmarks.handwritten_servicer`) serves the airline policy by hand and names the
revision of ``--policies`` (a directory holding that policy alone).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    """Start the server, announce its port, and wait for the end of input, SIGTERM or a timeout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servicer", choices=["real", "trivial", "handwritten"], required=True)
    parser.add_argument("--policies", default="policies")
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    args = parser.parse_args(argv)

    from service import logs
    from service.server import create_server

    logs.configure("info", "json", sys.stderr)
    if args.servicer == "real":
        server, port = create_server("127.0.0.1:0", policies=args.policies)
    elif args.servicer == "handwritten":
        from benchmarks.handwritten_servicer import HandwrittenServicer, revision_of

        server, port = create_server("127.0.0.1:0",
                                     servicer=HandwrittenServicer(revision_of(args.policies)))
    else:
        from service.testing import TrivialServicer

        server, port = create_server("127.0.0.1:0", servicer=TrivialServicer())
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"PORT {port}", flush=True)
    stop.wait(args.max_seconds)
    server.stop(grace=1.0).wait(5.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
