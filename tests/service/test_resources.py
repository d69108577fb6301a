"""Resources a real ``loyalty serve`` process must keep bounded whatever its clients and
operators do: memory across reloads, connections (idle ones included), and the wire.

Each test starts ``python -m service serve`` on 127.0.0.1, port 0; every wait is a poll with a
deadline.
"""

from __future__ import annotations

import time

import grpc
import pytest

from tests.service.measure_resources import (
    closed_by_peer,
    measure,
    open_idle_connections,
    timed_evaluate,
)
from tests.service.raw_http2 import ping_until_goaway

#: The HTTP/2 error code of a GOAWAY for a peer that misbehaves (RFC 9113, section 7).
ENHANCE_YOUR_CALM = 11

#: Reloads of distinct versions in the memory test: enough that versions kept for good would
#: show (about 1 MB each for the 14 KB policy: 40 MB, against a budget of 4 MiB), few enough
#: to take about 10 s on two shared cores.
RELOADS = 40
#: RSS two processes doing the same work differ by, run to run (measured within 1 MiB; thread
#: stacks touched and allocator arenas), with a margin: beyond it, something was kept.
RSS_SLACK_MIB = 4.0


@pytest.mark.slow
def test_memory_after_reloads_of_distinct_versions_stays_near_a_fresh_load(tmp_path):
    """After 40 reloads, each a different version of a 14 KB policy, the server's RSS is within
    1.2 times (plus a small slack) that of a fresh process that loaded only the last version:
    the compile cache is bounded by size and nothing else keeps old sets."""
    figures = measure(tmp_path, reloads=RELOADS, rules=250)
    assert figures["after"] <= 1.2 * figures["fresh"] + RSS_SLACK_MIB, figures


#: Idle connections in the connection tests: enough to see them cost nothing to a real call,
#: few enough to open in well under a second.
IDLE_CONNECTIONS = 300


def wait_until(predicate, timeout: float, what: str) -> None:
    """Poll ``predicate`` every 0.1 s until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_idle_connections_leave_a_real_call_its_deadline_and_are_closed_when_idle(spawn):
    """Among 300 connections that carry no call (half silent, half past the HTTP/2 preface), a
    legitimate Evaluate on a new connection meets a 1 s deadline; with --max-connection-idle 2
    the server closes every one of them by itself."""
    server = spawn("--no-watch", "--max-connection-idle", "2")
    timed_evaluate(server, deadline_s=30.0)  # the first call warms the server: not measured
    connections = open_idle_connections(server.port, IDLE_CONNECTIONS)
    try:
        assert timed_evaluate(server, deadline_s=1.0) < 1.0  # raises DEADLINE_EXCEEDED otherwise
        # 2 s of idleness, then the server's idle timer; the ceiling is a liveness bound only.
        wait_until(lambda: all(closed_by_peer(c) for c in connections), timeout=30,
                   what="the server to close every idle connection")
        assert timed_evaluate(server, deadline_s=1.0) < 1.0
    finally:
        for conn in connections:
            conn.close()


def test_connections_beyond_the_cap_are_closed_at_once_and_the_cap_frees_up(spawn):
    """With --max-connections 20, of 40 connections at most 20 stay open (the rest are closed
    by the server without waiting for any timeout); once they are gone, calls connect again."""
    server = spawn("--no-watch", "--max-connections", "20")
    connections = open_idle_connections(server.port, 40)
    try:
        wait_until(lambda: sum(closed_by_peer(c) for c in connections) >= 20, timeout=15,
                   what="the connections beyond the cap to be closed")
        assert sum(not closed_by_peer(c) for c in connections) <= 20
    finally:
        for conn in connections:
            conn.close()

    def serves() -> bool:
        try:
            timed_evaluate(server, deadline_s=1.0)
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            return False
        return True

    wait_until(serves, timeout=15, what="a call to connect once the connections were closed")


def test_pings_on_a_connection_without_calls_end_it_with_too_many_pings(spawn):
    """With the default keepalive enforcement (no pings without calls, 2 strikes), a client
    that floods an idle connection with PINGs gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings"."""
    server = spawn("--no-watch")
    ended = ping_until_goaway(server.port, pings=5)
    assert ended == (ENHANCE_YOUR_CALM, b"too_many_pings"), ended
