"""The service's guarantees with real processes and real databases: ``loyalty serve --workers 2``
(through :mod:`stand_in_serve`, the language's periods stood in) on a SQLite file and on
PostgreSQL, 16 concurrent callers, ``kill -9`` of the worker inside an Apply's transaction, the
database stopped and restarted under load, a read-only file, a full disk, and a restart on the
same file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from serving import LiveServer
from stand_in_serve import build_with_periods
from test_state_faults import mounted

import service.store
from service.client import purchase, retrying_channel_options
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from service.state import open_store
from service.store import PolicyStore
from tests.service.conftest import POLICIES, ROOT, ServerProcess, gold_customer, start_server

HERE = Path(__file__).resolve().parent
#: The stand-in server module needs this directory on the path as well as the repository.
ENV = {"PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}"}
CALLERS = 16


def serve(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
    """``loyalty serve`` through the stand-in, JSON logs, port 0."""
    return start_server("--log-format", "json", *args, module="stand_in_serve", env={**ENV, **(env or {})})


def stub_for(server: ServerProcess) -> tuple[grpc.Channel, pb_grpc.LoyaltyRulesStub]:
    """A channel with the documented retry policy, and its stub."""
    channel = grpc.insecure_channel(server.target, options=retrying_channel_options())
    return channel, pb_grpc.LoyaltyRulesStub(channel)


def spend(i: int, amount: str = "100.00", day: int = 1) -> pb.Event:
    """Purchase ``e-i`` on 2026-03-``day``."""
    return purchase(f"e-{i}", time=f"2026-03-{day:02d}T10:{i % 60:02d}:00Z", amount=amount)


def apply_until_done(stub: pb_grpc.LoyaltyRulesStub, event: pb.Event, seconds: float = 60.0,
                     seen: list[str] | None = None) -> pb.ApplyResponse:
    """Apply ``event``, as a caller does: the channel's retries, then the caller's own on
    UNAVAILABLE (same event id), within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=event), timeout=30)  # type: ignore[no-any-return]
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:  # type: ignore[attr-defined]
                raise
            if seen is not None:
                seen.append(exc.details())  # type: ignore[attr-defined]
            time.sleep(0.2)


def test_exactly_once_under_concurrency_with_two_workers(store_url: str, backend: str) -> None:
    """16 callers, one customer, 40 purchases of 100.00 on one day, each sent twice by different
    callers at once: each applied once, one bonus in all, exactly 1500.00 counted and 75.00 of
    cashback, and every retry got the decision first made."""
    server = serve("--workers", "2", "--state", store_url, "--metrics-port", "0")
    try:
        events = [spend(i) for i in range(40)]
        work = [e for e in events for _ in range(2)]
        channels = [stub_for(server) for _ in range(CALLERS)]

        def call(n: int) -> tuple[str, pb.ApplyResponse]:
            event = work[n]
            return event.id, apply_until_done(channels[n % CALLERS][1], event, 60)

        with ThreadPoolExecutor(CALLERS) as pool:
            answers = list(pool.map(call, range(len(work))))
        by_id: dict[str, list[pb.ApplyResponse]] = {}
        for event_id, answer in answers:
            by_id.setdefault(event_id, []).append(answer)
        for event_id, pair in by_id.items():
            assert sorted(a.replayed for a in pair) == [False, True], event_id
            assert pair[0].decision == pair[1].decision and pair[0].counted == pair[1].counted
        firsts = [a for pair in by_id.values() for a in pair if not a.replayed]
        assert sum(1 for a in firsts if "bonus" in a.decision.awards) == 1
        assert sum(Decimal(a.decision.awards.get("cashback", "0")) for a in firsts) == Decimal("75.00")
        store = open_store(store_url)
        try:
            assert len(store.events("c-1")) == 40
            entries = store.counter_entries("c-1")
            assert sum(e.amount for e in entries if e.counter == "quarter_spend") == Decimal("1500.00")
            assert sum(e.amount for e in entries if e.counter == "daily_bonus") == 1
        finally:
            store.close()
        assert server.metrics_port is not None
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        assert f'loyalty_state_seconds_count{{backend="{backend}",operation="apply"}}' in text
        assert f'loyalty_state_conflicts_total{{backend="{backend}",kind="replayed"}}' in text
        for channel, _ in channels:
            channel.close()
    finally:
        assert server.stop() == 0


def _children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_kill_9_of_the_worker_inside_apply_leaves_nothing_and_a_retry_applies_once(
        store_url: str, tmp_path: Path) -> None:
    """The worker holding the transaction dies by SIGKILL; the caller's retry (same id) lands on
    a live worker and applies once; nothing of the killed attempt remains."""
    pid_file = tmp_path / "deciding"
    server = serve("--workers", "2", "--state", store_url,
                   env={"LOYALTY_TEST_DECIDE_DELAY_S": "2", "LOYALTY_TEST_DECIDE_PID_FILE": str(pid_file)})
    try:
        workers = _children(server.proc.pid)
        channel, stub = stub_for(server)
        result: list[pb.ApplyResponse] = []
        caller = threading.Thread(target=lambda: result.append(apply_until_done(stub, spend(1), 90)))
        caller.start()
        deadline = time.monotonic() + 30
        # The file is made a moment before the worker's pid is written into it.
        while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = int(pid_file.read_text().split()[0])
        assert victim in workers
        os.kill(victim, signal.SIGKILL)
        caller.join(120)
        assert result, "the retry never answered"
        assert not result[0].replayed  # the killed attempt committed nothing
        store = open_store(store_url)
        try:
            assert [e.event_id for e in store.events("c-1")] == ["e-1"]
            assert sum(e.amount for e in store.counter_entries("c-1") if e.counter == "quarter_spend") == 100
        finally:
            store.close()
        again = stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=spend(1)), timeout=30)
        assert again.replayed and again.decision == result[0].decision
        channel.close()
    finally:
        server.stop()


def test_postgresql_stopped_and_restarted_under_load_loses_and_doubles_nothing(
        postgres: object, store_url: str, backend: str) -> None:
    """4 callers apply 25 purchases each while the database is stopped for 3 s: calls meet the
    outage (they fail UNAVAILABLE and are retried by the policy, then by the caller, or they
    wait past a second for a connection while the pool reconnects), and afterwards every event
    is stored once with its entry."""
    if backend != "postgresql":
        pytest.skip("the database server is PostgreSQL's")
    server = serve("--state", store_url)
    try:
        seen: list[str] = []
        channels = [stub_for(server) for _ in range(4)]

        def caller(n: int) -> list[pb.ApplyResponse]:
            out = []
            for i in range(25):
                out.append(apply_until_done(channels[n][1], spend(n * 100 + i, "10.00", day=1 + n), 90, seen))
                time.sleep(0.25)  # 25 calls span about 6 s: the 3 s outage falls among them
            return out

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(caller, n) for n in range(4)]
            time.sleep(0.5)
            stopped = postgres.run("pg_ctl", "-D", str(postgres.data), "-m", "fast", "-w",  # type: ignore[attr-defined]
                                   "-t", "60", "stop", check=False)
            assert stopped.returncode == 0, f"pg_ctl stop: {stopped.stdout}{stopped.stderr}"
            time.sleep(3)
            postgres.start()  # type: ignore[attr-defined]
            answers = [a for f in futures for a in f.result(timeout=180)]
        assert len(answers) == 100
        # A caller saw UNAVAILABLE (after the channel's own retries), or the server logged one
        # that a retry then got past: either way a call met the outage.
        calls = [json.loads(line) for line in server.log_text().splitlines() if '"rpc"' in line]
        unavailable = [c for c in calls if c.get("code") == "UNAVAILABLE"]
        waited = [c for c in calls if c.get("method") == "Apply" and float(c.get("ms", 0)) > 1000]
        assert unavailable or seen or waited, ("the outage was never seen by a call: slowest "
                                               f"{max(float(c.get('ms', 0)) for c in calls):.0f} ms")
        store = open_store(store_url)
        try:
            events = store.events("c-1")
            assert len(events) == len({e.event_id for e in events}) == 100
            entries = [e for e in store.counter_entries("c-1") if e.counter == "quarter_spend"]
            assert len(entries) == 100 and sum(e.amount for e in entries) == Decimal("1000.00")
        finally:
            store.close()
        for channel, _ in channels:
            channel.close()
    finally:
        server.stop()


def test_a_restart_on_the_same_data_directory_replays_the_stored_decision(tmp_path: Path) -> None:
    """``./dev.sh serve`` as a user runs it: no --state, the data directory from the
    environment; after a restart the same Apply returns the stored decision."""
    env = {"LOYALTY_DATA_DIR": str(tmp_path / "data")}
    first_server = serve(env=env)
    channel, stub = stub_for(first_server)
    first = stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=spend(1)), timeout=30)
    channel.close()
    assert first_server.stop() == 0
    assert (tmp_path / "data" / "state.sqlite3").exists()
    second_server = serve(env=env)
    try:
        channel, stub = stub_for(second_server)
        again = stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=spend(1)), timeout=30)
        assert again.replayed
        again.replayed = False
        assert again == first
        later = stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=spend(2)), timeout=30)
        assert "bonus" not in later.decision.awards  # the day's bonus was remembered
        channel.close()
    finally:
        second_server.stop()


def test_a_read_only_state_file_fails_apply_clearly_and_evaluate_keeps_answering(tmp_path: Path) -> None:
    """On a read-only mount: Apply is FAILED_PRECONDITION saying so, nothing written; Evaluate
    (which reads the stored counters) answers."""
    writable, read_only = tmp_path / "rw", tmp_path / "ro"
    writable.mkdir()
    read_only.mkdir()
    seeded = open_store(writable / "state.sqlite3")
    seeded.close()
    with mounted("--bind", str(writable), str(read_only)):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(read_only)], check=True)
        policies = PolicyStore(POLICIES)
        original: Callable[..., object] = service.store.build_snapshot
        service.store.build_snapshot = build_with_periods  # type: ignore[assignment]
        try:
            assert policies.load()
        finally:
            service.store.build_snapshot = original  # type: ignore[assignment]
        with LiveServer.started(str(read_only / "state.sqlite3"), policies) as served:
            stub, state = served.stub, served.state
            with pytest.raises(grpc.RpcError) as caught:
                stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=spend(1)), timeout=10)
            assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
            assert caught.value.details().startswith(  # type: ignore[attr-defined]
                "the customer state store refuses writes (nothing was written; Evaluate still answers): "
                f"state file {read_only / 'state.sqlite3'} is read-only")
            quote = stub.Evaluate(pb.EvaluateRequest(customer=gold_customer(), event=spend(1)), timeout=10)
            assert quote.decision.awards["bonus"] == "100"
            assert state.events("c-1") == []


def test_a_full_disk_fails_apply_clearly_loses_nothing_and_evaluate_keeps_answering(tmp_path: Path) -> None:
    """``loyalty serve --workers 2`` with its state file on a real 2 MB tmpfs that a filler file
    then fills: Apply is FAILED_PRECONDITION saying the disk is full, every Apply answered OK is
    stored and none that failed, Evaluate keeps answering, and once space is freed the same
    event applies once."""
    disk = tmp_path / "disk"
    disk.mkdir()
    with mounted("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)):
        state = disk / "state.sqlite3"
        server = serve("--workers", "2", "--state", str(state))
        filler = disk / "filler"
        try:
            channel, stub = stub_for(server)
            assert apply_until_done(stub, spend(0)).decision.awards["bonus"] == "100"
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
            try:  # the rest of the disk, to the last block
                with contextlib.suppress(OSError):
                    while os.write(fd, b"\0" * 4096):
                        pass
            finally:
                os.close(fd)
            applied, refused = ["e-0"], None
            for i in range(1, 400):  # the write-ahead log's free pages are used up first
                try:
                    stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=spend(i)), timeout=30)
                    applied.append(f"e-{i}")
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.details()  # type: ignore[attr-defined]
                    assert "refuses writes (nothing was written; Evaluate still answers)" in exc.details()  # type: ignore[attr-defined]
                    assert "the disk is full" in exc.details()  # type: ignore[attr-defined]
                    refused = i
                    break
            assert refused is not None, "400 applies fitted on a full disk"
            quote = stub.Evaluate(pb.EvaluateRequest(customer=gold_customer(), event=spend(refused)),
                                  timeout=10)
            assert quote.decision.awards  # answered from the stored counters
            filler.unlink()
            again = stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=spend(refused)), timeout=30)
            assert not again.replayed
            channel.close()
        finally:
            server.stop()
        store = open_store(state)
        try:
            assert [e.event_id for e in store.events("c-1")] == [*applied, f"e-{refused}"]
        finally:
            store.close()
