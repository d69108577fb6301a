"""``loyalty serve`` as a real process on 127.0.0.1, port 0: reloads, signals, workers, TLS, metrics.

Every load loop here is bounded in calls and in seconds, and only talks to loopback.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.client import LoyaltyClient
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from tests.service.certs import make_certs
from tests.service.conftest import ServerProcess, gold_customer, jfk_lhr, request, start_server

AIRLINE = Path("airline") / "earn_miles.policy"
BROKEN = "policy earn_miles_by_distance\n  version 4\n  on flight\n  rule oops: award miles miles\n"


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 50 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def list_policies(server: ServerProcess) -> pb.ListPoliciesResponse:
    """ListPolicies on a fresh channel."""
    with server.channel() as channel:
        return pb_grpc.LoyaltyRulesStub(channel).ListPolicies(pb.ListPoliciesRequest(), timeout=5)


def log_events(server: ServerProcess) -> list[dict[str, object]]:
    """The server's JSON log lines, parsed."""
    out = []
    for line in server.log_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_serve_announces_its_port_logs_each_rpc_and_exports_metrics(spawn):
    """Port 0 is announced on stdout; each RPC writes one canonical line; metrics count calls and rules."""
    server = spawn("--metrics-port", "0", env={"LOYALTY_DECISION_LOG": "1"})
    assert server.metrics_port
    with server.channel() as channel:
        stub = pb_grpc.LoyaltyRulesStub(channel)
        for _ in range(3):
            decision = stub.Evaluate(request(), timeout=5).decision
    wait_for(lambda: sum(e.get("event") == "rpc" for e in log_events(server)) >= 3, what="rpc lines")
    rpc = [e for e in log_events(server) if e.get("event") == "rpc"]
    assert rpc[0]["method"] == "Evaluate" and rpc[0]["code"] == "OK"
    assert rpc[0]["customer_id"] == "c-1" and rpc[0]["revision"] == decision.revision
    assert isinstance(rpc[0]["ms"], float)
    decisions = [e for e in log_events(server) if e.get("event") == "decision"]
    assert decisions and decisions[0]["awards"] == {"miles": "8949"}
    assert decisions[0]["fired"][0] == "earn_miles_by_distance.flown_miles"
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"

    def scrape() -> str:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return str(reply.read().decode())

    hits = 'loyalty_rule_hits_total{policy="earn_miles_by_distance",rule="flown_miles"} 3.0'
    wait_for(lambda: hits in scrape(), what="rule hits in the metrics (flushed every second)")
    text = scrape()
    assert 'loyalty_rpc_duration_seconds_count{code="OK",method="Evaluate"} 3.0' in text
    assert 'loyalty_evaluations_total{outcome="ok"} 3.0' in text
    assert 'loyalty_rule_hits_total{policy="earn_miles_by_distance",rule="first_cabin"} 0.0' in text
    assert f'loyalty_policy_revision{{revision="{decision.revision}"}} 1.0' in text
    assert 'loyalty_policy_reloads_total{result="ok"} 1.0' in text
    assert server.stop() == 0


def test_reload_during_a_burst_fails_no_call(spawn, policy_dir):
    """Policy changes picked up by the watcher while calls run: every call succeeds, both sets answer."""
    server = spawn(policies=policy_dir)
    first = list_policies(server).revision
    revisions: set[str] = set()
    failures: list[object] = []
    stop = threading.Event()
    calls = [0]

    def caller() -> None:
        with server.channel() as channel:
            stub = pb_grpc.LoyaltyRulesStub(channel)
            for _ in range(2000):  # bounded in count ...
                if stop.is_set():
                    return
                try:
                    revisions.add(stub.Evaluate(request(), timeout=10).decision.revision)
                    calls[0] += 1
                except grpc.RpcError as exc:
                    failures.append(exc.code())

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        seen = [first]
        for i in range(2):
            path = policy_dir / AIRLINE
            path.write_text(path.read_text() + f"\n# change {i}\n")
            wait_for(lambda: list_policies(server).revision not in seen, what="reload")
            seen.append(list_policies(server).revision)
    finally:
        stop.set()
        for t in threads:
            t.join(30)  # ... and in time
    assert not failures
    assert calls[0] > 0
    assert first in revisions and seen[-1] in revisions
    assert list_policies(server).status.reloads_succeeded >= 3
    assert server.stop() == 0


def test_broken_change_is_refused_and_the_old_set_keeps_serving(spawn, policy_dir):
    """A change that does not compile is refused with its diagnostics; the last good set answers."""
    server = spawn(policies=policy_dir)
    good = list_policies(server).revision
    path = policy_dir / AIRLINE
    original = path.read_text()
    path.write_text(BROKEN)
    wait_for(lambda: list_policies(server).status.last_attempt_failed, what="refusal")
    status = list_policies(server)
    assert status.revision == good
    assert status.status.reloads_failed >= 1
    assert status.status.diagnostics and status.status.diagnostics[0].file.endswith("earn_miles.policy")
    assert status.status.diagnostics[0].line > 0 and status.status.diagnostics[0].code
    assert status.status.last_error
    with server.channel() as channel:
        decision = pb_grpc.LoyaltyRulesStub(channel).Evaluate(request(), timeout=5).decision
    assert decision.revision == good and decision.awards["miles"] == "8949"
    # The writer thread writes the log within FLUSH_INTERVAL_S: wait for the line, do not race it.
    wait_for(lambda: any(e.get("event") == "policies refused" for e in log_events(server)),
             what="the refusal's log line")
    path.write_text(original)
    wait_for(lambda: not list_policies(server).status.last_attempt_failed, what="recovery")
    assert list_policies(server).revision == good
    assert server.stop() == 0


def test_sighup_reloads_without_the_watcher(spawn, policy_dir):
    """With --no-watch, a change waits for SIGHUP."""
    server = spawn("--no-watch", policies=policy_dir)
    before = list_policies(server).revision
    path = policy_dir / AIRLINE
    path.write_text(path.read_text() + "\n# sighup\n")
    time.sleep(0.5)
    assert list_policies(server).revision == before
    server.signal(signal.SIGHUP)
    wait_for(lambda: list_policies(server).revision != before, what="reload after SIGHUP")
    assert server.stop() == 0


def test_sigterm_finishes_calls_in_flight_and_exits_0(spawn):
    """SIGTERM during calls: the open stream and the batches already sent all complete; exit 0."""
    server = spawn("--grace", "20")
    channel = server.channel()
    stub = pb_grpc.LoyaltyRulesStub(channel)
    outgoing: list[pb.EvaluateStreamRequest] = []
    gate = threading.Event()

    def messages():
        for i in range(5):
            if i == 1:
                gate.wait(20)  # the rest are sent after SIGTERM
            yield pb.EvaluateStreamRequest(correlation_id=str(i), customer=gold_customer(), event=jfk_lhr())
            outgoing.append(i)  # type: ignore[arg-type]

    responses = stub.EvaluateStream(messages(), timeout=30)
    first = next(responses)
    item = pb.BatchItem(customer=gold_customer(), event=jfk_lhr())
    batches = [stub.EvaluateBatch.future(pb.EvaluateBatchRequest(items=[item] * 1000, explain=True),
                                         timeout=30) for _ in range(4)]
    time.sleep(0.3)
    server.signal(signal.SIGTERM)
    time.sleep(0.3)
    gate.set()
    rest = list(responses)
    assert [first.correlation_id, *[r.correlation_id for r in rest]] == ["0", "1", "2", "3", "4"]
    assert all(r.WhichOneof("outcome") == "decision" for r in rest)
    for future in batches:
        assert len(future.result().results) == 1000
    assert server.proc.wait(30) == 0
    channel.close()
    assert any(e.get("event") == "stopped" for e in log_events(server))


def test_workers_share_the_port_and_a_dead_worker_is_replaced(spawn):
    """--workers 2: both processes answer on one port; a killed worker is replaced; exit 0 on SIGTERM."""
    server = spawn("--workers", "2", "--metrics-port", "0")

    def worker_pids() -> set[object]:
        return {e["pid"] for e in log_events(server) if e.get("event") == "serving" and "threads" in e}

    wait_for(lambda: len(worker_pids()) == 2, what="each worker's own log lines")
    instances: set[str] = set()
    for _ in range(60):  # new connections spread over the workers by SO_REUSEPORT
        instances.add(list_policies(server).status.instance)
        if len(instances) == 2:
            break
    assert len(instances) == 2
    victim = int(sorted(instances)[0].rsplit("/", 1)[1])
    os.kill(victim, signal.SIGKILL)
    replacement: set[str] = set()

    def replaced() -> bool:
        try:
            instance = list_policies(server).status.instance
        except grpc.RpcError:
            return False
        if instance not in instances:
            replacement.add(instance)
        return bool(replacement)

    wait_for(replaced, timeout=30, what="a replacement worker")
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:  # the supervisor sums the workers
        text = reply.read().decode()
    assert 'loyalty_rpc_duration_seconds_count{code="OK",method="ListPolicies"}' in text
    assert text.count("loyalty_policies_loaded{") >= 2
    assert any(e.get("event") == "worker exited" and e.get("pid") != victim for e in log_events(server))
    assert server.stop() == 0


def test_tls_and_mutual_tls(spawn, tmp_path):
    """TLS serves only TLS clients; with a client CA, only clients with a certificate it signed."""
    certs = make_certs(tmp_path)
    tls = spawn("--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key))
    with LoyaltyClient(tls.target, root_certificates=certs.ca) as client:
        assert client.evaluate(gold_customer(), jfk_lhr()).awards["miles"] == "8949"
    # The client retries UNAVAILABLE for 1.5 s at most: its deadline leaves room for all five
    # attempts, so the status is the handshake's UNAVAILABLE, not DEADLINE_EXCEEDED.
    with LoyaltyClient(tls.target, timeout=5) as plain, pytest.raises(grpc.RpcError) as info:
        plain.list_policies()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    with (LoyaltyClient(tls.target, root_certificates=certs.other_ca, timeout=2) as wrong,
          pytest.raises(grpc.RpcError)):
        wrong.list_policies()

    mtls = spawn("--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key),
                 "--tls-client-ca", str(certs.ca))
    with LoyaltyClient(mtls.target, root_certificates=certs.ca, client_cert=certs.client_cert,
                       client_key=certs.client_key) as client:
        assert client.list_policies().revision
    with (LoyaltyClient(mtls.target, root_certificates=certs.ca, timeout=2) as anonymous,
          pytest.raises(grpc.RpcError)):
        anonymous.list_policies()


def test_round_robin_spreads_calls_over_two_servers(spawn, policy_dir):
    """Two servers behind one round-robin channel both answer (their revisions tell them apart)."""
    path = policy_dir / AIRLINE
    path.write_text(path.read_text() + "\n# the second server's copy\n")
    a = spawn()
    b = spawn(policies=policy_dir)
    target = f"ipv4:127.0.0.1:{a.port},127.0.0.1:{b.port}"
    with LoyaltyClient(target, round_robin=True) as client:
        client.wait_until_ready(10)
        seen = {client.evaluate(gold_customer(), jfk_lhr()).revision for _ in range(20)}
    assert seen == {list_policies(a).revision, list_policies(b).revision}


def test_directory_that_does_not_load_stops_startup_with_diagnostics(tmp_path):
    """Without --wait-for-policies, a broken directory exits 2 and prints the diagnostics."""
    (tmp_path / "bad.policy").write_text(BROKEN)
    server = start_server(policies=tmp_path, expect_exit=True)
    assert server.proc.returncode == 2
    assert "bad.policy:" in server.log_text()


def test_wait_for_policies_is_not_serving_until_a_good_set_appears(spawn, tmp_path):
    """With --wait-for-policies: NOT_SERVING and UNAVAILABLE until the directory loads, then SERVING."""
    bundled = Path(__file__).parents[2] / "policies"
    (tmp_path / "schema.toml").write_text((bundled / "schema.toml").read_text())
    (tmp_path / "earn.policy").write_text(BROKEN)
    server = spawn("--wait-for-policies", policies=tmp_path)
    with server.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest(service="loyalty.v1.LoyaltyRules")
        assert health.Check(check, timeout=5).status == health_pb2.HealthCheckResponse.NOT_SERVING
        stub = pb_grpc.LoyaltyRulesStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Evaluate(request(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        (tmp_path / "earn.policy").write_text((bundled / AIRLINE).read_text())
        wait_for(lambda: health.Check(check, timeout=5).status == health_pb2.HealthCheckResponse.SERVING,
                 what="SERVING")
        assert stub.Evaluate(request(), timeout=5).decision.fired


def _configmap_version(root: Path, name: str, policy: str) -> None:
    """Lay out (or update) ``root`` the way kubelet lays out a ConfigMap volume."""
    version = root / f"..{name}"
    version.mkdir()
    bundled = Path(__file__).parents[2] / "policies"
    (version / "schema.toml").write_text((bundled / "schema.toml").read_text())
    (version / "earn_miles.policy").write_text(policy)
    staging = root / "..data_tmp"
    staging.symlink_to(version.name)
    staging.replace(root / "..data")  # kubelet's atomic swap
    for file in ("schema.toml", "earn_miles.policy"):
        if not (root / file).is_symlink():
            (root / file).symlink_to(Path("..data") / file)


def test_configmap_volume_loads_once_and_reloads_on_update(spawn, tmp_path):
    """A ConfigMap-style directory (..data and timestamped copies) loads each policy once and hot-reloads."""
    bundled = Path(__file__).parents[2] / "policies"
    text = (bundled / AIRLINE).read_text()
    root = tmp_path / "configmap"
    root.mkdir()
    _configmap_version(root, "2026_01_01_00_00_00.1", text)
    server = spawn(policies=root)
    first = list_policies(server)
    assert [p.name for p in first.policies] == ["earn_miles_by_distance"]
    _configmap_version(root, "2026_01_02_00_00_00.2", text + "\n# updated\n")
    wait_for(lambda: list_policies(server).revision != first.revision, what="ConfigMap reload")
    assert not list_policies(server).status.last_attempt_failed
