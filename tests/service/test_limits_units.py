"""The small pieces behind issue 17's server limits, without a server: refusal caps, peer
strings, /proc addresses, stream admission."""

from __future__ import annotations

import pytest

from service.admission import StreamAdmission, StreamLimits, peer_host
from service.connections import PeerActivity, _hex_address
from service.errors import (
    MAX_VIOLATIONS,
    InvalidArgument,
    ResourceExhausted,
    Violation,
    capped_violations,
    truncate_text,
)


@pytest.mark.parametrize(("text", "limit", "expected"), [
    pytest.param("short", 10, "short", id="fits"),
    pytest.param("a" * 20, 10, "a" * 7 + "...", id="ascii_cut"),
    pytest.param("é" * 10, 9, "é" * 3 + "...", id="never_splits_a_character"),
])
def test_truncate_text_cuts_to_utf8_bytes(text, limit, expected):
    """Text is cut to a number of UTF-8 bytes on a character boundary, marked with an ellipsis."""
    assert truncate_text(text, limit) == expected
    assert len(truncate_text(text, limit).encode()) <= limit


def test_a_refusal_lists_twenty_violations_and_counts_the_rest():
    """150 violations with long paths and reasons: the status lists 20, cut to size, and one
    more counting the other 130; the exception keeps all 150 for the log and the tests."""
    violations = [Violation(f"event.purchase.items[{i}].amount" + "x" * 500, "bad " * 200)
                  for i in range(150)]
    error = InvalidArgument(violations)
    assert len(error.violations) == 150
    capped = capped_violations(violations)
    assert len(capped) == MAX_VIOLATIONS + 1
    assert capped[-1] == Violation("", "and 130 more violations not listed (a refusal lists the first 20)")
    assert len(error.to_status().SerializeToString()) < 8_000
    assert len(error.message.encode()) <= 1024


@pytest.mark.parametrize(("peer", "host"), [
    ("ipv4:10.0.0.1:5000", "ipv4:10.0.0.1"),
    ("ipv6:[::1]:5000", "ipv6:[::1]"),
    ("unix:/tmp/s", "unix"),
])
def test_peer_host_drops_the_port(peer, host):
    """A client host is its peer string without the port: all its connections count together."""
    assert peer_host(peer) == host


@pytest.mark.parametrize(("entry", "peer"), [
    ("0100007F:D431", "ipv4:127.0.0.1:54321"),
    ("0000000000000000FFFF00000100007F:D431", "ipv4:127.0.0.1:54321"),
    ("00000000000000000000000001000000:0050", "ipv6:[::1]:80"),
])
def test_proc_net_tcp_addresses_read_as_grpc_peers(entry, peer):
    """/proc/net/tcp{,6} addresses are read as gRPC spells peers (IPv4-mapped IPv6 as IPv4)."""
    assert _hex_address(entry) == peer


def test_stream_admission_refuses_beyond_the_host_share_and_the_total():
    """Half the threads by default, half of that per host; refusals name the flag."""
    assert StreamLimits().resolved(16) == (8, 4)
    admission = StreamAdmission(3, 2)
    admission.admit("a", "EvaluateStream")
    admission.admit("a", "EvaluateStream")
    with pytest.raises(ResourceExhausted, match="--max-streams-per-peer 2"):
        admission.admit("a", "EvaluateStream")
    admission.admit("b", "EvaluateStream")
    with pytest.raises(ResourceExhausted, match="--max-streams 3"):
        admission.admit("c", "EvaluateStream")
    admission.release("a")
    admission.admit("c", "EvaluateStream")
    assert admission.in_use == 3 and admission.refused == 2


def test_peer_activity_counts_calls_in_flight_and_recent_ones():
    """A peer is busy while a call is in flight and for the grace after its last one ends."""
    activity = PeerActivity()
    activity.begin("p")
    assert activity.busy(since=float("inf")) == {"p"}
    activity.end("p")
    assert activity.busy(since=0.0) == {"p"}
    assert activity.busy(since=float("inf")) == set()
