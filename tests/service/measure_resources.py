"""Memory of ``loyalty serve`` across reloads of distinct policy versions, for docs/performance.md.

    python -m tests.service.measure_resources [--reloads 1000] [--rules 500]
    python -m tests.service.measure_resources --idle-connections 5000 [--max-connections N]

Starts a real server (127.0.0.1, port 0, ``--no-watch``) on the bundled policies plus one
mid-size flight policy of ``--rules`` rules, then ``--reloads`` times: writes a new version of
that policy (a different cap, so a different text and revision), sends SIGHUP and waits until
ListPolicies shows the new revision. It prints VmRSS of that process, then of a fresh process
that loaded only the last version (after the same warm-up calls). Every wait is bounded.

With ``--idle-connections N`` it opens N TCP connections that carry no call (half send the
HTTP/2 preface, half nothing) to a server with the default connection limits, then times 20
Evaluate calls with a 1 s deadline, each on a new connection, and prints the slowest and RSS.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import grpc

from benchmarks.data import rules_policy
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from tests.service.conftest import POLICIES, ServerProcess, request, start_server
from tests.service.test_process import list_policies, wait_for

#: Where the mid-size policy lives in the served directory.
MID_SIZE = Path("mid") / "many_rules.policy"


def mid_size_policy(version: int, rules: int = 250) -> str:
    """Version ``version`` of a flight policy of ``rules`` rules (250: about 14 KB of text);
    versions differ only in their cap, as a routine edit of one constant would."""
    text = rules_policy(rules)
    return text.replace("cap miles at 25000", f"cap miles at {25000 + version}")


def policy_dir(target: Path, rules: int, version: int = 0) -> Path:
    """The bundled policies (without their tests) plus version ``version`` of the mid-size one."""
    shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("*.test.toml"))
    (target / MID_SIZE).parent.mkdir()
    (target / MID_SIZE).write_text(mid_size_policy(version, rules))
    return target


def rss_mib(pid: int) -> float:
    """The resident set of process ``pid`` in MiB (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def warm_up(server: ServerProcess, calls: int = 20) -> None:
    """The same few calls on every server measured, so their RSS differs only by the reloads."""
    with server.channel() as channel:
        stub = pb_grpc.LoyaltyRulesStub(channel)
        for _ in range(calls):
            stub.Evaluate(request(), timeout=5)
    list_policies(server)


def reload_versions(server: ServerProcess, directory: Path, versions: range, rules: int,
                    timeout: float = 30.0) -> None:
    """For each version: write it, SIGHUP, and wait (at most ``timeout`` s) until it serves."""
    for version in versions:
        before = list_policies(server).revision
        (directory / MID_SIZE).write_text(mid_size_policy(version, rules))
        server.signal(signal.SIGHUP)
        wait_for(lambda b=before: list_policies(server).revision != b,  # type: ignore[misc]
                 timeout=timeout, what=f"version {version} to serve")


def measure(root: Path, reloads: int, rules: int) -> dict[str, float]:
    """RSS (MiB) of a server at start, after ``reloads`` distinct versions, and of a fresh
    server on the last version; plus the seconds the reloads took."""
    directory = policy_dir(root / "policies", rules)
    server = start_server("--no-watch", policies=directory)
    try:
        warm_up(server)
        start = rss_mib(server.proc.pid)
        began = time.monotonic()
        reload_versions(server, directory, range(1, reloads + 1), rules)
        seconds = time.monotonic() - began
        warm_up(server)
        after = rss_mib(server.proc.pid)
    finally:
        server.stop()
    fresh_server = start_server("--no-watch", policies=directory)
    try:
        warm_up(fresh_server)
        fresh = rss_mib(fresh_server.proc.pid)
    finally:
        fresh_server.stop()
    return {"start": start, "after": after, "fresh": fresh, "seconds": seconds}


def main() -> None:
    """Print the figures for docs/performance.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reloads", type=int, default=1000)
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--idle-connections", type=int, default=0)
    parser.add_argument("--max-connections", help="passed to loyalty serve (default: its own)")
    args = parser.parse_args()
    if args.idle_connections:
        extra = ("--max-connections", args.max_connections) if args.max_connections else ()
        idle = measure_idle(args.idle_connections, *extra)
        print(f"{args.idle_connections} idle connections (opened in {idle['opened_s']:.1f} s, "
              f"{idle['still_open']:.0f} still open): slowest of {20 - idle['failed']:.0f} calls "
              f"that succeeded {idle['slowest'] * 1000:.1f} ms, {idle['failed']:.0f} failed; "
              f"RSS {idle['before']:.1f} -> {idle['after']:.1f} MiB")
        return
    print(f"policy text: {len(mid_size_policy(1, args.rules))} bytes ({args.rules} rules)")
    with tempfile.TemporaryDirectory() as tmp:
        figures = measure(Path(tmp), args.reloads, args.rules)
    print(f"RSS at start {figures['start']:.1f} MiB; after {args.reloads} reloads "
          f"{figures['after']:.1f} MiB ({figures['seconds']:.0f} s); fresh process on the last "
          f"version {figures['fresh']:.1f} MiB; ratio {figures['after'] / figures['fresh']:.2f}")


# -- idle connections ----------------------------------------------------------------------------

#: What a client sends first on an HTTP/2 connection: the preface and an empty SETTINGS frame.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")


def open_idle_connections(port: int, count: int, *, preface_every: int = 2) -> list[socket.socket]:
    """``count`` TCP connections to 127.0.0.1:``port`` that carry no call: every
    ``preface_every``-th sends the HTTP/2 preface and then idles, the others send nothing."""
    connections = []
    for i in range(count):
        conn = socket.create_connection(("127.0.0.1", port), timeout=5)
        if preface_every and i % preface_every == 0:
            conn.sendall(HTTP2_PREFACE)
        conn.setblocking(False)
        connections.append(conn)
    return connections


def closed_by_peer(conn: socket.socket) -> bool:
    """Whether the server has closed ``conn`` (what it sent before, such as its SETTINGS and a
    GOAWAY, is read and dropped). The socket must be non-blocking."""
    try:
        while True:
            if conn.recv(65536) == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


def timed_evaluate(server: ServerProcess, deadline_s: float = 1.0) -> float:
    """Seconds one Evaluate takes on a fresh channel (a new connection) with a deadline."""
    with server.channel() as channel:
        began = time.monotonic()
        pb_grpc.LoyaltyRulesStub(channel).Evaluate(request(), timeout=deadline_s)
        return time.monotonic() - began


def measure_idle(count: int, *server_args: str, calls: int = 20) -> dict[str, float]:
    """A server with the default limits (or ``server_args``), then ``count`` idle connections:
    the slowest of ``calls`` Evaluate calls that succeeded (each on a new connection, 1 s
    deadline), how many failed, and RSS before and after."""
    server = start_server("--no-watch", *server_args)
    try:
        warm_up(server)
        before = rss_mib(server.proc.pid)
        began = time.monotonic()
        connections = open_idle_connections(server.port, count)
        opened = time.monotonic() - began
        try:
            times, failed = [], 0
            for _ in range(calls):
                try:
                    times.append(timed_evaluate(server))
                except grpc.RpcError:
                    failed += 1
            slowest = max(times, default=float("nan"))
            after = rss_mib(server.proc.pid)
            still_open = sum(not closed_by_peer(c) for c in connections)
        finally:
            for conn in connections:
                conn.close()
    finally:
        server.stop()
    return {"before": before, "after": after, "slowest": slowest, "failed": failed,
            "opened_s": opened, "still_open": still_open}


if __name__ == "__main__":
    main()
