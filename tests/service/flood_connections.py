"""A connection flooder for the connection tests: ``python -m tests.service.flood_connections
PORT COUNT`` opens COUNT TCP connections to 127.0.0.1:PORT, each sending the HTTP/2 preface and
an empty SETTINGS frame and then nothing, prints ``opened N`` (connections whose connect
succeeded), holds them until its stdin closes or ``--hold`` seconds pass, and exits.

A process of its own, so that a test can flood with more connections than one process may
hold descriptors (20,000 from one host takes two of these at 10,000 each).
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import time

from tests.service.measure_resources import HTTP2_PREFACE


def main() -> None:
    """Open, report, hold, exit."""
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--hold", type=float, default=120.0, help="seconds to hold at most")
    parser.add_argument("--within", type=float, default=60.0, help="seconds to open them in at most")
    parser.add_argument("--rate", type=float, default=0.0, help="connections a second at most (0: no pause)")
    args = parser.parse_args()
    held: list[socket.socket] = []
    failed = 0
    began = time.monotonic()
    stop_opening = began + args.within
    for n in range(args.count):
        now = time.monotonic()
        if now > stop_opening:
            break
        if args.rate and n > (now - began) * args.rate:
            time.sleep(n / args.rate - (now - began))
        try:
            conn = socket.create_connection(("127.0.0.1", args.port), timeout=2)
            conn.sendall(HTTP2_PREFACE)
            conn.setblocking(False)
            held.append(conn)
        except OSError:
            failed += 1
    print(f"opened {len(held)} failed {failed}", flush=True)
    select.select([sys.stdin], [], [], args.hold)  # until stdin closes (or has data), or --hold
    for conn in held:
        conn.close()


if __name__ == "__main__":
    main()
