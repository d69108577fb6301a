"""Faults with real parts: kill -9 mid-apply, PostgreSQL stopped under load, read-only and full disks."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from state_worker import DAY, QUARTER, limited_decide

from service.state import (
    NewEntry,
    Outcome,
    StateStore,
    StateUnavailable,
    StateWriteFailed,
    Window,
    open_store,
)

WORKER = Path(__file__).with_name("state_worker.py")
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
WEEK = Window("n", T0, T0 + dt.timedelta(days=7))


def one(reader) -> Outcome:
    """A decide() that counts one."""
    return Outcome(b"one", [NewEntry("n", T0, 1)])


def test_kill_9_in_the_middle_of_apply_leaves_nothing_and_a_retry_applies_once(
    store: StateStore, store_url: str
) -> None:
    """The child holds the customer's lock inside decide() when it dies; nothing of it remains."""
    child = subprocess.Popen([sys.executable, str(WORKER), store_url, "hang", "c-1", "e-1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 60)
        assert ready, "the child never reached decide()"
        assert child.stdout is not None and child.stdout.readline() == "deciding\n"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.communicate()
    assert store.events("c-1") == []
    assert store.sums("c-1", [DAY, QUARTER]) == [0, 0]
    first = store.apply("c-1", "e-1", "digest", limited_decide())
    again = store.apply("c-1", "e-1", "digest", limited_decide())
    assert (first.replayed, again.replayed) == (False, True)
    assert len(store.events("c-1")) == 1
    assert store.sums("c-1", [DAY, QUARTER]) == [1, 100]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgresql_restarted_under_load_loses_and_doubles_nothing(postgres, store_url: str) -> None:
    """Calls while the server is down get StateUnavailable; retried, each event is stored once."""
    from service.state.postgres import PostgresStore

    threads, most = 4, 400  # at most 400 events a thread, 10 ms apart: a bounded load
    store = PostgresStore(store_url, pool_timeout_s=1.0)
    unavailable = [0] * threads
    done = [0] * threads
    errors: list[BaseException] = []
    back = threading.Event()  # set once the server has been up again for a moment
    deadline = time.monotonic() + 90

    def load(t: int) -> None:
        # New events until the server is back, so the load spans the whole outage.
        try:
            for k in range(most):
                if back.is_set():
                    break
                while True:  # bounded by the deadline
                    assert time.monotonic() < deadline, "the store never came back"
                    try:
                        store.apply(f"c-{t}", f"e-{t}-{k}", "digest", one)
                        break
                    except StateUnavailable:
                        unavailable[t] += 1
                        time.sleep(0.05)
                done[t] += 1
                time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=load, args=(t,)) for t in range(threads)]
    try:
        for w in workers:
            w.start()
        while sum(done) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        # Stopped for longer than the pool waits for a connection (1 s), so that calls in
        # between cannot just wait it out; a quicker ``pg_ctl restart`` is often hidden by the pool.
        postgres.stop()
        time.sleep(2.5)
        postgres.start()
        after = sum(done)
        while sum(done) < after + 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        back.set()
        for w in workers:
            w.join(timeout=120)
        assert not errors
        assert sum(unavailable) > 0, "no call fell between the stop and the start"
        for t in range(threads):
            assert len(store.events(f"c-{t}")) == done[t]
            assert store.sums(f"c-{t}", [WEEK]) == [done[t]]
    finally:
        back.set()
        store.close()


@contextlib.contextmanager
def mounted(*args: str) -> Iterator[None]:
    """Run ``mount ARGS`` for the block (root only), unmounting at its end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root")
    target = args[-1]
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here: {result.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", target], check=False)


def test_a_read_only_file_refuses_writes_and_keeps_answering_reads(tmp_path: Path) -> None:
    """The state file on a read-only mount: StateWriteFailed for apply and reverse, sums answer."""
    writable, read_only = tmp_path / "rw", tmp_path / "ro"
    writable.mkdir()
    read_only.mkdir()
    store = open_store(writable / "state.sqlite3")
    store.apply("c-1", "e-1", "d", one)
    store.close()
    with mounted("--bind", str(writable), str(read_only)):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(read_only)], check=True)
        ro = open_store(read_only / "state.sqlite3")
        try:
            with pytest.raises(StateWriteFailed) as caught:
                ro.apply("c-1", "e-2", "d", one)
            assert str(caught.value) == (f"state file {read_only / 'state.sqlite3'} is read-only: "
                                         "attempt to write a readonly database")
            with pytest.raises(StateWriteFailed):
                ro.reverse("e-1", "r-1", lambda event: Outcome(b"", []))
            assert ro.sums("c-1", [WEEK]) == [1]
            assert [e.event_id for e in ro.events("c-1")] == ["e-1"]
        finally:
            ro.close()


def test_a_full_disk_refuses_writes_and_keeps_answering_reads(tmp_path: Path) -> None:
    """A real 1 MB tmpfs: the apply that does not fit is StateWriteFailed and writes nothing."""
    disk = tmp_path / "disk"
    disk.mkdir()
    with mounted("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)):
        store = open_store(disk / "state.sqlite3")
        try:
            big = b"x" * 60_000
            applied = 0
            with pytest.raises(StateWriteFailed) as caught:
                for i in range(100):  # 6 MB offered to a 1 MB disk
                    store.apply("c-1", f"e-{i}", "d",
                                lambda r: Outcome(big, [NewEntry("n", T0, 1)]))
                    applied += 1
            assert "the disk is full" in str(caught.value)
            assert 0 < applied < 100
            assert store.sums("c-1", [WEEK]) == [applied]
            assert len(store.events("c-1")) == applied
        finally:
            store.close()
