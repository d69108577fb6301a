"""Faults injected one at a time into a real ``loyalty serve --workers 2`` under a steady load.

One server (two workers sharing the port, serving ``--policies cur`` with ``cur`` a symlink to a
version directory) is shared by every fault here. Each fault runs inside its own load window:
three callers through the bundled retrying client (``service.client.SERVICE_CONFIG``), each on its
own connection, calling Evaluate without pause. Every fault must lose no call (every call answers
OK), leave both workers on the revision it should (computed from the directory by
``dsl.load_directory``, as the server computes it), and let the load go on afterwards. The last
test bounds the workers' memory across all of them. docs/reliability.md has the table.

Each test starts from whatever state the one before left, so any one of them runs alone too.
Every load is bounded in calls and seconds (tests/faults/load.py) and talks only to 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

import dsl
from service.client import LoyaltyClient
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from tests.faults.load import Load
from tests.service.conftest import ServerProcess, start_server
from tests.service.test_process import AIRLINE, BROKEN
from tests.service.test_store_faults import copy_policies, edit

WORKERS = 2
#: Calls answered before a fault is injected, and again once every worker shows its outcome:
#: the load is flowing on both sides of the fault (about 0.1-0.3 s each on 2 shared cores).
CALLS_BEFORE = 200
CALLS_AFTER = 300
#: Each fault's load window lasts at least this long (more if the fault takes longer to settle).
WINDOW_S = 1.0
#: How much a worker's RSS may grow across all the faults here (measured: 0.9-1.5 MB, see
#: docs/reliability.md). The faults compile 4 new revisions, which the compile cache keeps (it is
#: bounded by entries, not size: issue 9); the issue measured 2.3 MB per version of a 32 KB
#: policy, and the bundled set is 9 KB, so 16 MiB is well above that plus glibc's per-thread
#: arenas, and still far below the 139 MB that 60 reloads once cost.
RSS_GROWTH_KB = 16 * 1024
#: How long a worker may take to show a fault's outcome: a reload is seen within about 0.5 s
#: (docs/reliability.md); the margin is for a shared 2-core machine, not a figure.
SETTLE_S = 20.0


@dataclass
class Served:
    """The shared server, its version directories, and the workers' memory before any fault."""

    server: ServerProcess
    root: Path
    versions: int = 1
    rss_before_kb: dict[int, int] = field(default_factory=dict)

    @property
    def current(self) -> Path:
        """The version directory ``cur`` points at."""
        return (self.root / "cur").resolve()

    def new_version(self, note: str) -> Path:
        """A fresh copy of the bundled policies with an edit (a revision not served before)."""
        self.versions += 1
        staged = copy_policies(self.root / f"v{self.versions}")
        edit(staged, f"{note} v{self.versions}")
        return staged


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path``'s content in one rename, as an editor or a deploy does: a load never reads
    the file half written (which could be a valid smaller set, a revision no test expects)."""
    staged = path.with_name(f".{path.name}.tmp")  # not a .policy file: never loaded
    staged.write_text(text)
    staged.replace(path)


def rss_kb(pid: int) -> int:
    """VmRSS of process ``pid`` in kB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def pid_of(instance: str) -> int:
    """The pid in a ListPolicies ``instance`` (``host/pid``)."""
    return int(instance.rsplit("/", 1)[1])


def worker_states(server: ServerProcess, tries: int = 200,
                  deadline: float = float("inf")) -> dict[str, pb.ListPoliciesResponse]:
    """ListPolicies from every worker: asked on fresh connections until each has answered.

    SO_REUSEPORT picks the worker per connection, so ``tries`` connections miss one worker with
    odds of 2**-tries; a killed worker, not yet reaped, simply does not answer. No new try starts
    after ``deadline`` (a ``time.monotonic()`` value).
    """
    states: dict[str, pb.ListPoliciesResponse] = {}
    for _ in range(tries):
        if time.monotonic() > deadline:
            break
        with LoyaltyClient(server.target, timeout=2, retries=False,
                           options=[("grpc.use_local_subchannel_pool", 1)]) as client:
            try:
                reply = client.list_policies()
            except grpc.RpcError:
                continue
        states[reply.status.instance] = reply
        if len(states) == WORKERS:
            break
    return states


def wait_for_workers(
    server: ServerProcess, settled: Callable[[pb.ListPoliciesResponse], bool], what: str,
    live: Callable[[str], bool] = lambda _: True,
) -> dict[str, pb.ListPoliciesResponse]:
    """Poll until ``WORKERS`` workers (each passing ``live``) all satisfy ``settled``."""
    deadline = time.monotonic() + SETTLE_S
    states: dict[str, pb.ListPoliciesResponse] = {}
    while time.monotonic() < deadline:
        states = {k: v for k, v in worker_states(server, deadline=deadline).items() if live(k)}
        if len(states) == WORKERS and all(settled(s) for s in states.values()):
            return states
        time.sleep(0.05)
    seen = {k: (v.revision, v.status.last_error) for k, v in states.items()}
    lifecycle = [line for line in server.log_text().splitlines()
                 if any(word in line for word in ("worker", "signal", "Timeout", "Error"))]
    raise AssertionError(f"timed out waiting for {what}: workers {seen}; the server's log:\n"
                         + "\n".join(lifecycle[-30:]))


def serving(revision: str) -> Callable[[pb.ListPoliciesResponse], bool]:
    """A worker serves ``revision`` and its last load attempt succeeded."""
    return lambda s: s.revision == revision and not s.status.last_attempt_failed


def refused(revision: str, error: str) -> Callable[[pb.ListPoliciesResponse], bool]:
    """A worker refused a load for ``error`` and still serves ``revision``."""
    return lambda s: s.revision == revision and s.status.last_attempt_failed and error in s.status.last_error


def assert_no_lost_calls(load: Load, revisions: set[str]) -> None:
    """Every call answered OK, each on one of ``revisions``."""
    print(f"{load.ok} calls in {load.elapsed:.1f} s, {len(load.failures)} failed, "
          f"revisions {dict(load.revisions)}")
    assert not load.failures, f"{len(load.failures)} failed calls: {load.failures[:5]}"
    assert load.ok >= CALLS_BEFORE + CALLS_AFTER
    assert set(load.revisions) <= revisions, (dict(load.revisions), revisions)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``loyalty serve --workers 2 --policies cur`` (``cur -> v1``), warmed up, memory measured."""
    root = tmp_path_factory.mktemp("faults")
    copy_policies(root / "v1")
    (root / "cur").symlink_to("v1")
    server = start_server("--workers", str(WORKERS), policies=root / "cur")
    try:
        ctx = Served(server, root)
        # The baseline is taken after a load like the faults' own, so that memory first touched by
        # the thread pools and connections is not counted as growth.
        with Load(server.target) as load:
            load.wait_for_calls(3 * CALLS_AFTER)
        assert not load.failures, load.failures[:5]
        states = wait_for_workers(server, lambda _: True, "both workers")
        ctx.rss_before_kb = {pid_of(i): rss_kb(pid_of(i)) for i in states}
        yield ctx
    finally:
        assert server.stop() == 0


def test_a_valid_edit_reloads_on_every_worker_without_a_lost_call(served: Served):
    """An edit of a policy file: both workers serve the new revision; no call fails."""
    before = dsl.load_directory(served.current).revision
    with Load(served.server.target) as load:
        load.wait_for_calls(CALLS_BEFORE)
        path = served.current / AIRLINE
        write_atomically(path, path.read_text() + "\n# a valid edit under load\n")
        after = dsl.load_directory(served.current).revision
        assert after != before
        wait_for_workers(served.server, serving(after), "the edit to be served")
        load.wait_for_calls(CALLS_AFTER, window=WINDOW_S)
    assert_no_lost_calls(load, {before, after})


def test_a_broken_edit_is_refused_and_its_repair_loads_without_a_lost_call(served: Served):
    """A policy that does not compile is refused on both workers (the last good set answers);
    putting the file back clears the refusal; no call fails."""
    good = dsl.load_directory(served.current).revision
    path = served.current / AIRLINE
    original = path.read_text()
    with Load(served.server.target) as load:
        load.wait_for_calls(CALLS_BEFORE)
        write_atomically(path, BROKEN)
        states = wait_for_workers(served.server, lambda s: s.revision == good and s.status.last_attempt_failed
                                  and bool(s.status.diagnostics), "the broken edit to be refused")
        assert all(s.status.diagnostics[0].file.endswith("earn_miles.policy") for s in states.values())
        load.wait_for_calls(CALLS_AFTER)
        write_atomically(path, original)
        wait_for_workers(served.server, serving(good), "the repaired file to be loaded")
        load.wait_for_calls(CALLS_AFTER, window=WINDOW_S)
    assert_no_lost_calls(load, {good})


def test_a_sighup_storm_reloads_and_loses_no_call(served: Served):
    """Ten SIGHUPs to the supervisor at once: forwarded, each worker reloads (the same revision),
    and no call fails."""
    good = dsl.load_directory(served.current).revision
    reloads = {i: s.status.reloads_succeeded for i, s in wait_for_workers(
        served.server, serving(good), "both workers").items()}
    with Load(served.server.target) as load:
        load.wait_for_calls(CALLS_BEFORE)
        for _ in range(10):
            served.server.signal(signal.SIGHUP)
        after = wait_for_workers(served.server, lambda s: serving(good)(s) and s.status.reloads_succeeded
                                 > reloads.get(s.status.instance, 0), "a reload on every worker")
        load.wait_for_calls(CALLS_AFTER, window=WINDOW_S)
    assert_no_lost_calls(load, {good})
    assert set(after) == set(reloads), "a worker was replaced during the SIGHUPs"
    assert served.server.proc.poll() is None


def test_a_top_level_symlink_swap_is_served_without_a_lost_call(served: Served):
    """``cur`` swapped to a new version directory (ln -sfn, mv -T): both workers serve it; no call
    fails."""
    before = dsl.load_directory(served.current).revision
    target = served.new_version("symlink swap")
    after = dsl.load_directory(target).revision
    with Load(served.server.target) as load:
        load.wait_for_calls(CALLS_BEFORE)
        subprocess.run(["ln", "-sfn", target.name, "cur.next"], cwd=served.root, check=True)
        subprocess.run(["mv", "-T", "cur.next", "cur"], cwd=served.root, check=True)
        wait_for_workers(served.server, serving(after), "the swapped-in version to be served")
        load.wait_for_calls(CALLS_AFTER, window=WINDOW_S)
    assert_no_lost_calls(load, {before, after})


def test_the_directory_deleted_and_restored_loses_no_call(served: Served):
    """The served directory removed (moved away, then deleted) is refused and the last good set
    answers; restoring it (renamed into place) is served without a signal; no call fails."""
    current = served.current
    good = dsl.load_directory(current).revision
    staged = served.new_version("restored")
    restored = dsl.load_directory(staged).revision
    with Load(served.server.target) as load:
        load.wait_for_calls(CALLS_BEFORE)
        current.rename(served.root / "deleted")  # gone in one step (see docs/service.md on rm -rf)
        shutil.rmtree(served.root / "deleted")
        wait_for_workers(served.server, refused(good, "no such directory"), "the deletion to be refused")
        load.wait_for_calls(CALLS_AFTER)
        staged.rename(current)
        wait_for_workers(served.server, serving(restored), "the restored directory to be served")
        load.wait_for_calls(CALLS_AFTER, window=WINDOW_S)
    assert_no_lost_calls(load, {good, restored})


def test_a_killed_worker_is_replaced_and_the_retrying_client_loses_no_call(served: Served):
    """kill -9 of the worker a caller is connected to: the calls in flight on it are retried on the
    other worker (UNAVAILABLE, retried by the service config), the supervisor starts a new worker
    that serves the current revision, and no call fails."""
    good = dsl.load_directory(served.current).revision
    with Load(served.server.target) as load:
        load.wait_for_calls(CALLS_BEFORE)
        victim = load.instances[0]  # a worker with a caller on it, so calls are in flight there
        killed = time.monotonic()
        os.kill(pid_of(victim), signal.SIGKILL)
        states = wait_for_workers(served.server, serving(good), "a replacement worker",
                                  live=lambda instance: instance != victim)
        replaced_s = time.monotonic() - killed
        load.wait_for_calls(CALLS_AFTER, window=WINDOW_S)
    assert_no_lost_calls(load, {good})
    assert victim not in states and len(states) == WORKERS
    print(f"worker {victim} killed; a new worker answered after {replaced_s:.2f} s; "
          f"{load.ok} calls answered, none failed")


def test_sighups_while_a_replacement_worker_starts_do_not_kill_it(served: Served):
    """A SIGHUP the supervisor forwards to a worker that is still starting asks for a reload; it
    never ends the worker (SIGHUP's default action did, so a reload storm after a crash kept a
    server on one worker). Kill a worker, then SIGHUP the supervisor every 50 ms through the
    replacement's start: no worker exits on SIGHUP, and both serve, without a lost call."""
    good = dsl.load_directory(served.current).revision
    log_before = len(served.server.log_text().splitlines())
    with Load(served.server.target) as load:
        load.wait_for_calls(CALLS_BEFORE)
        victim = load.instances[0]
        os.kill(pid_of(victim), signal.SIGKILL)
        for _ in range(30):  # 1.5 s: a replacement is forked within it and starts under the storm
            served.server.proc.send_signal(signal.SIGHUP)
            time.sleep(0.05)
        wait_for_workers(served.server, serving(good), "both workers after the storm",
                         live=lambda instance: instance != victim)
        load.wait_for_calls(CALLS_AFTER, window=WINDOW_S)
    assert_no_lost_calls(load, {good})
    exits = [line for line in served.server.log_text().splitlines()[log_before:] if "worker exited" in line]
    assert len(exits) == 1, exits  # the victim alone: no replacement died of a SIGHUP


def test_worker_memory_stays_bounded_across_the_faults(served: Served):
    """Each worker that lived through the faults above grew by at most RSS_GROWTH_KB, and a
    replacement worker is no larger than the largest first worker plus the same margin."""
    states = wait_for_workers(served.server, lambda _: True, "both workers")
    now = {pid_of(i): rss_kb(pid_of(i)) for i in states}
    ceiling = max(served.rss_before_kb.values()) + RSS_GROWTH_KB
    report = {pid: (served.rss_before_kb.get(pid), kb) for pid, kb in now.items()}
    print(f"worker RSS kB (before the faults, after): {report}; ceiling {ceiling}")
    for pid, kb in now.items():
        assert kb <= served.rss_before_kb.get(pid, ceiling - RSS_GROWTH_KB) + RSS_GROWTH_KB, report

