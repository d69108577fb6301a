"""Fixtures for the service tests: real servers on 127.0.0.1, port 0, in-process or as subprocesses."""

from __future__ import annotations

import contextlib
import io
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from service.client import customer, flight
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
#: Longest wait for a subprocess server to say it is listening.
START_TIMEOUT_S = 60.0


def required_tool(found: str | None, missing: str) -> str:
    """``found``, the path of an outside tool a test runs; without one the test skips saying
    ``missing``, or fails under LOYALTY_REQUIRE_TOOLS=1 (.ci/run, where the tools are installed)."""
    if found is None:
        if os.environ.get("LOYALTY_REQUIRE_TOOLS") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    return found


def gold_customer(id: str = "c-1") -> pb.Customer:
    """A GOLD member since 2012 (over ten years' tenure in 2026)."""
    return customer(id, member_since="2012-05-01", tier="GOLD", miles=120_000, flights=40)


def jfk_lhr(id: str = "e-1", **overrides: object) -> pb.Event:
    """A business-class JFK-LHR flight on 2026-03-01."""
    fields: dict[str, object] = dict(
        time="2026-03-01T09:30:00Z", origin="JFK", destination="LHR", fare="420.00", cabin="business"
    )
    fields.update(overrides)
    return flight(id, **fields)  # type: ignore[arg-type]


def request(**overrides: object) -> pb.EvaluateRequest:
    """An EvaluateRequest for :func:`gold_customer` and :func:`jfk_lhr`."""
    return pb.EvaluateRequest(customer=gold_customer(), event=jfk_lhr(), **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def inproc() -> Iterator[tuple[pb_grpc.LoyaltyRulesStub, grpc.Channel, int]]:
    """One in-process server on the bundled policies, shared by the tests that only read."""
    from service import logs
    from service.server import create_server

    logs.configure("info", "json", stream=io.StringIO())  # in-process logs stay out of the report

    server, port = create_server("127.0.0.1:0", policies=POLICIES, max_batch=2000,
                                 max_message_bytes=4 * 1024 * 1024)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.LoyaltyRulesStub(channel), channel, port
    finally:
        channel.close()
        server.stop(0).wait(5)


@pytest.fixture
def stub(inproc: tuple[pb_grpc.LoyaltyRulesStub, grpc.Channel, int]) -> pb_grpc.LoyaltyRulesStub:
    """A stub for the shared in-process server."""
    return inproc[0]


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A private copy of the bundled policies (tests change it)."""
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("*.test.toml"))
    return target


@dataclass
class ServerProcess:
    """``python -m service serve`` running in a subprocess; stdout and stderr are collected."""

    proc: subprocess.Popen[str]
    port: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    metrics_port: int | None = None

    @property
    def target(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    def channel(self, **options: object) -> grpc.Channel:
        """A fresh insecure channel to the server (its own connection)."""
        opts = [("grpc.use_local_subchannel_pool", 1), *options.items()]
        return grpc.insecure_channel(self.target, options=opts)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the server process."""
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def log_text(self) -> str:
        """Everything the server wrote to stderr so far."""
        return "".join(self.stderr)


def _pump(stream: object, sink: list[str], lines: queue.Queue[str] | None) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.append(line)
        if lines is not None:
            lines.put(line)


def start_server(*args: str, env: dict[str, str] | None = None, policies: Path | None = POLICIES,
                 expect_exit: bool = False, module: str | None = None) -> ServerProcess:
    """Start ``python -m service serve --port 0 ARGS`` and wait for ``listening on``.

    ``module`` runs ``python -m MODULE --port 0 ARGS`` instead (a test server script
    that announces its port the same way), without ``--policies``.
    """
    command = [sys.executable, "-m", "service", "serve", "--port", "0", "--log-format", "json"]
    if module is not None:
        command = [sys.executable, "-m", module, "--port", "0"]
        policies = None
    if policies is not None:
        command += ["--policies", str(policies)]
    command += list(args)
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    lines: queue.Queue[str] = queue.Queue()
    server = ServerProcess(proc, 0)
    threading.Thread(target=_pump, args=(proc.stdout, server.stdout, lines), daemon=True).start()
    threading.Thread(target=_pump, args=(proc.stderr, server.stderr, None), daemon=True).start()
    if expect_exit:
        proc.wait(START_TIMEOUT_S)
        time.sleep(0.2)  # let the pumps drain
        return server
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if line.startswith("metrics on "):
            server.metrics_port = int(line.rsplit(":", 1)[1])
        if line.startswith("listening on "):
            server.port = int(line.rsplit(":", 1)[1])
            return server
    with contextlib.suppress(Exception):
        proc.kill()
    time.sleep(0.2)
    raise AssertionError(f"server did not start (exit {proc.poll()}):\n{server.log_text()[-3000:]}")


@pytest.fixture
def spawn() -> Iterator[object]:
    """Start subprocess servers; every one still running is stopped after the test."""
    started: list[ServerProcess] = []

    def make(*args: str, **kwargs: object) -> ServerProcess:
        server = start_server(*args, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield make
    for server in started:
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGTERM)
            try:
                server.proc.wait(20)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait(5)
