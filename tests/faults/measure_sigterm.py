"""What callers see when ``loyalty serve --workers 2`` gets SIGTERM under load, for docs/reliability.md.

    python -m tests.faults.measure_sigterm [--runs 8] [--threads 3]

For each run, with the bundled retry policy (``service.client.SERVICE_CONFIG``: UNAVAILABLE and
CANCELLED) and with one that retries UNAVAILABLE only: starts the server on 127.0.0.1, runs
``--threads`` callers (one connection each) for 0.5 s, sends SIGTERM to the supervisor, waits for
it to exit, stops the load and prints the calls that failed by status, with the seconds between
the signal and the moment each was sent. Every load is bounded (20,000 calls, 15 s per thread).
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from collections import Counter

from service.client import RETRY_POLICY, SERVICE_CONFIG
from tests.faults.load import Load
from tests.service.conftest import start_server


def unavailable_only() -> str:
    """The bundled service config with a retry policy for UNAVAILABLE alone (the control)."""
    policy = {**RETRY_POLICY, "retryableStatusCodes": ["UNAVAILABLE"]}
    methods = [{**entry, "retryPolicy": policy} for entry in SERVICE_CONFIG["methodConfig"]]  # type: ignore[attr-defined]
    return json.dumps({"methodConfig": methods})


def one_run(options: list[tuple[str, object]], threads: int) -> tuple[Counter[str], list[float], int, float]:
    """(failed calls by status, when each was sent after the signal, the exit status, seconds from
    the signal to the exit)."""
    server = start_server("--workers", "2")
    try:
        with Load(server.target, threads=threads, options=options) as load:
            time.sleep(0.5)  # a measurement, not a test: the load runs before the signal
            signalled = time.monotonic()
            server.signal(signal.SIGTERM)
            status = server.proc.wait(30)
            exited = time.monotonic() - signalled
        sent = sorted(round(f.sent - signalled, 3) for f in load.failures)
        return Counter(f.code for f in load.failures), sent, status, exited
    finally:
        server.stop()


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=3)
    args = parser.parse_args()
    for name, options in (("bundled (UNAVAILABLE, CANCELLED)", []),
                          ("UNAVAILABLE only", [("grpc.service_config", unavailable_only())])):
        cancelled_runs, totals = 0, Counter[str]()
        for _ in range(args.runs):
            failed, sent, status, exited = one_run(options, args.threads)
            cancelled_runs += failed["CANCELLED"] > 0
            totals.update(failed)
            print(f"{name}: failed {dict(failed)}, sent {sent} s after SIGTERM; exit {status} "
                  f"after {exited:.2f} s", flush=True)
        print(f"{name}: {args.runs} runs, failed calls by status {dict(totals)}, "
              f"runs with a CANCELLED call: {cancelled_runs}")


if __name__ == "__main__":
    main()
