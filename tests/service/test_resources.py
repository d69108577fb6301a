"""Resources a real ``loyalty serve`` process must keep bounded whatever its clients and
operators do: memory across reloads, connections (idle ones included), and the wire.

Each test starts ``python -m service serve`` on 127.0.0.1, port 0; every wait is a poll with a
deadline.
"""

from __future__ import annotations

from tests.service.measure_resources import measure

#: Reloads of distinct versions in the memory test: enough that versions kept for good would
#: show (about 1 MB each for the 14 KB policy: 40 MB, against a budget of 4 MiB), few enough
#: to take about 10 s on two shared cores.
RELOADS = 40
#: RSS two processes doing the same work differ by, run to run (measured within 1 MiB; thread
#: stacks touched and allocator arenas), with a margin: beyond it, something was kept.
RSS_SLACK_MIB = 4.0


def test_memory_after_reloads_of_distinct_versions_stays_near_a_fresh_load(tmp_path):
    """After 40 reloads, each a different version of a 14 KB policy, the server's RSS is within
    1.2 times (plus a small slack) that of a fresh process that loaded only the last version:
    the compile cache is bounded by size and nothing else keeps old sets."""
    figures = measure(tmp_path, reloads=RELOADS, rules=250)
    assert figures["after"] <= 1.2 * figures["fresh"] + RSS_SLACK_MIB, figures
