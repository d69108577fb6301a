"""Reloads off the request path: a storm of reloads of a 600-rule policy under a steady load, and
the reload helper killed mid-reload (service.reloads; docs/reliability.md has the figures).

Each test runs its own ``loyalty serve`` on 127.0.0.1 (one process, so that every call meets the
reloads); every load and wait is bounded.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.load import Load
from tests.faults.measure_reload_storm import (
    final_revision,
    storm,
    wait_for_log,
    write_version,
)
from tests.service.conftest import ServerProcess, start_server
from tests.service.measure_resources import mid_size_policy, policy_dir
from tests.service.test_process import list_policies, log_events

#: The big policy's rules: the size of the policy the stall was measured with.
RULES = 600
#: Versions written in the storm (each followed by a SIGHUP, 20 ms apart).
EDITS = 200
#: Seconds of quiet load measured after the control run of the storm (see ``storm``).
QUIET_S = 2.0
#: The storm's p99 may be this many times the quiet one. Compiling in the serving process
#: made it 20-60 times (331 ms); reading back what the helper prepared, it was 1.1-1.5 times on a
#: busy shared 2-core machine, where the quiet p99 itself moves between 5 and 17 ms from run to
#: run: 2 is the target of issue 15, with that noise as its margin.
P99_RATIO = 2.0


@pytest.fixture
def big(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    """A server on the bundled policies plus a 600-rule one, its reload helper ready."""
    directory = policy_dir(tmp_path / "policies", RULES)
    server = start_server(policies=directory)
    try:
        wait_for_log(server, "reload helper ready")
        yield server, directory
    finally:
        assert server.stop() == 0


def test_a_reload_storm_keeps_the_live_p99_within_twice_the_quiet_one(big):
    """200 new versions of a 600-rule policy in a few seconds, under a steady load: no call
    fails, the p99 of the calls sent during the storm stays within twice the quiet p99 measured
    just before, the reloads are prepared in the helper, and the final version serves."""
    server, directory = big
    figures = storm(server, directory, edits=EDITS, rules=RULES, quiet_s=QUIET_S)
    print(figures.line())
    assert not figures.failures, figures.failures[:5]
    assert figures.served_revision == figures.final_revision
    assert figures.reloads >= 1 and figures.in_process == 0, figures.line()
    assert figures.storm_p99_ms <= P99_RATIO * figures.quiet_p99_ms, figures.line()


def helper_pid(server: ServerProcess, after: int = 0) -> int:
    """The pid of the newest reload helper that said it is ready (waiting for one other than
    ``after``)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready = [e for e in log_events(server) if e.get("event") == "reload helper ready"]
        if ready and int(ready[-1]["helper"]) != after:  # type: ignore[call-overload]
            return int(ready[-1]["helper"])  # type: ignore[call-overload]
        time.sleep(0.1)
    raise AssertionError("no new reload helper became ready within 60 s")


def reload_to(server: ServerProcess, directory: Path, version: int) -> str:
    """Write version ``version`` of the big policy, SIGHUP, and wait until it serves."""
    text = mid_size_policy(version, RULES)
    revision = final_revision(directory, text)
    write_version(directory, text)
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while list_policies(server).revision != revision:
        assert time.monotonic() < deadline, f"version {version} not served within 60 s"
        time.sleep(0.05)
    return revision


def test_a_killed_reload_helper_is_replaced_and_the_reload_still_completes(big):
    """kill -9 of the helper while it prepares a reload: that reload completes (prepared
    in-process, logged), no call fails, a new helper starts and prepares the reloads after it."""
    server, directory = big
    first = helper_pid(server)
    with Load(server.target, max_seconds=90.0) as load:
        load.wait_for_calls(200)
        text = mid_size_policy(1, RULES)
        revision = final_revision(directory, text)
        write_version(directory, text)
        server.signal(signal.SIGHUP)
        time.sleep(0.1)  # the helper has the directory by now (it takes 0.2 s and more)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while list_policies(server).revision != revision:
            assert time.monotonic() < deadline, "the reload the kill interrupted never completed"
            time.sleep(0.05)
        reload_to(server, directory, 2)  # finds the helper dead, if the first one did not
        second = helper_pid(server, after=first)
        reload_to(server, directory, 3)
        load.wait_for_calls(200)
    print(f"{load.ok} calls, {len(load.failures)} failed; helper {first} -> {second}")
    assert not load.failures, load.failures[:5]
    events = log_events(server)
    failed = [e for e in events if e.get("event") == "reload helper failed; restarting it"]
    assert failed and failed[0]["helper"] == first, failed
    assert any(e.get("event") == "reload prepared in-process" and e.get("level") == "warning"
               for e in events)
    assert [e for e in events if e.get("event") == "reload prepared in the helper"][-1]["helper"] \
        == second
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)  # reaped, not a zombie left behind
