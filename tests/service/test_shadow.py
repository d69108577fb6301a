"""Shadow traffic (``loyalty serve --shadow DIR``): a candidate set compared on live decisions,
off the response path, never touching the serving set. Real server processes on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from service.cli.serve import sample_rate
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from service.metrics import ShadowMetrics
from service.shadow import Shadow
from service.store import PolicyStore
from tests.service.conftest import POLICIES, ServerProcess, gold_customer, jfk_lhr, start_server
from tests.service.test_process import BROKEN, list_policies, wait_for

AIRLINE = Path("airline") / "earn_miles.policy"
#: The live set's business-cabin bonus, and the candidate's: business flights change, others not.
LIVE_BONUS = '"business": award 50% of base miles'
CANDIDATE_BONUS = '"business": award 60% of base miles'


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A live copy of the bundled policies and a candidate that pays 60% for business, not 50%."""
    live, candidate = tmp_path / "live", tmp_path / "candidate"
    for target in (live, candidate):
        shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("*.test.toml"))
    policy = candidate / AIRLINE
    text = policy.read_text()
    assert LIVE_BONUS in text
    policy.write_text(text.replace(LIVE_BONUS, CANDIDATE_BONUS))
    return live, candidate


def flight(id: str, cabin: str) -> pb.EvaluateRequest:
    """The gold customer's JFK-LHR flight in ``cabin``, as event ``id``."""
    return pb.EvaluateRequest(customer=gold_customer(), event=jfk_lhr(id, cabin=cabin))


def serve(spawn: Any, live: Path, candidate: Path, *args: str) -> ServerProcess:
    """A server on ``live`` with ``candidate`` as its shadow and a metrics port (``spawn``
    stops it after the test)."""
    return spawn("--shadow", str(candidate), "--metrics-port", "0", *args, policies=live)  # type: ignore[no-any-return]


def metric(server: ServerProcess, name: str, **labels: str) -> float:
    """One sample as the metrics port serves it (0 when absent)."""
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(wanted + " "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def log_lines(server: ServerProcess, event: str) -> list[dict[str, Any]]:
    """The server's JSON log lines with ``event``."""
    lines = []
    for line in server.log_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                lines.append(record)
    return lines


def test_changed_decisions_are_counted_and_logged_and_unchanged_ones_are_not(
        spawn: Any, dirs: tuple[Path, Path]) -> None:
    """Every sampled decision is compared; only those whose outcome differs count as changed and
    are logged, with both outcomes; the award counters give the delta per currency."""
    live, candidate = dirs
    server = serve(spawn, live, candidate, "--shadow-sample", "1")
    with server.channel() as channel:
        stub = pb_grpc.LoyaltyRulesStub(channel)
        economy = [stub.Evaluate(flight(f"eco-{i}", "economy"), timeout=5) for i in range(4)]
        business = [stub.Evaluate(flight(f"biz-{i}", "business"), timeout=5) for i in range(3)]
        batch = stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[
            pb.BatchItem(customer=gold_customer(), event=jfk_lhr(f"batch-{i}", cabin="business"))
            for i in range(2)]), timeout=5)
    assert [r.WhichOneof("outcome") for r in batch.results] == ["decision", "decision"]
    wait_for(lambda: list_policies(server).shadow.decisions_compared == 9, what="9 comparisons")
    shadow = list_policies(server).shadow
    assert (shadow.decisions_compared, shadow.decisions_changed, shadow.decisions_dropped) == (9, 5, 0)

    wait_for(lambda: metric(server, "loyalty_shadow_decisions_compared_total") == 9, what="metrics")
    assert metric(server, "loyalty_shadow_decisions_changed_total") == 5
    economy_miles = int(economy[0].decision.awards["miles"])
    business_miles = int(business[0].decision.awards["miles"])
    assert metric(server, "loyalty_shadow_awarded_total", currency="miles", set="live") == \
        4 * economy_miles + 5 * business_miles

    wait_for(lambda: log_lines(server, "shadow decision changed"), what="a changed-decision line")
    lines = log_lines(server, "shadow decision changed")
    changed_ids = {f"biz-{i}" for i in range(3)} | {f"batch-{i}" for i in range(2)}
    assert {line["event_id"] for line in lines} <= changed_ids
    first = lines[0]
    assert first["customer_id"] == "c-1" and first["kind"] == "flight"
    # Awards are decimal strings in every log line (the decision log's too): one type per field.
    assert isinstance(first["live"]["awards"]["miles"], str)
    assert Decimal(first["live"]["awards"]["miles"]) < Decimal(first["shadow"]["awards"]["miles"])
    assert first["live"]["revision"] == list_policies(server).revision
    assert first["shadow"]["revision"] == shadow.revision != first["live"]["revision"]
    candidate_miles = int(first["shadow"]["awards"]["miles"])
    assert int(first["live"]["awards"]["miles"]) == business_miles < candidate_miles
    # Economy flights are the same in both sets: the delta is the business flights' alone.
    assert metric(server, "loyalty_shadow_awarded_total", currency="miles", set="shadow") == \
        4 * economy_miles + 5 * candidate_miles


def test_changed_decision_lines_are_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood of changed decisions writes a few lines; the rest are counted and the next line
    says how many were suppressed."""
    import service.shadow as module

    written: list[int] = []

    class Log:
        def info(self, event: str, **fields: Any) -> None:
            written.append(fields["suppressed"])

    monkeypatch.setattr(module, "log", Log())
    store = PolicyStore(POLICIES)
    shadow = Shadow(store, sample=1.0, log_per_second=20.0)
    for _ in range(50):
        shadow._log_change({"id": "c"}, {"id": "e", "kind": "flight"}, _Decision(), _Decision())
    assert written == [0]  # one line now; the other 49 wait to be reported
    time.sleep(0.06)
    shadow._log_change({"id": "c"}, {"id": "e", "kind": "flight"}, _Decision(), _Decision())
    assert written == [0, 49]


class _Decision:
    """The least a changed-decision line reads of a decision."""

    awards: dict[str, Any] = {}

    def to_dict(self) -> dict[str, Any]:
        return {"awards": {}}


def test_a_broken_shadow_is_refused_while_live_serves_every_call(spawn: Any, dirs: tuple[Path, Path]) -> None:
    """Breaking the shadow's policy under load: the shadow keeps its last good set and reports the
    refusal with diagnostics; the live set answers every call."""
    live, candidate = dirs
    server = serve(spawn, live, candidate, "--shadow-sample", "1")
    before = list_policies(server)
    assert before.shadow.revision and not before.shadow.status.last_attempt_failed
    failures: list[BaseException] = []
    answered = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal answered
        with server.channel() as channel:
            stub = pb_grpc.LoyaltyRulesStub(channel)
            for i in range(5000):  # bounded; stopped early once the refusal is seen
                if stop.is_set():
                    return
                try:
                    response = stub.Evaluate(flight(f"e-{i}", "business"), timeout=5)
                    assert response.decision.revision == before.revision
                    answered += 1
                except BaseException as exc:  # every failure is the finding
                    failures.append(exc)

    caller = threading.Thread(target=load)
    caller.start()
    try:
        time.sleep(0.5)
        (candidate / AIRLINE).write_text(BROKEN)
        wait_for(lambda: list_policies(server).shadow.status.last_attempt_failed, what="the refusal")
    finally:
        stop.set()
        caller.join(30)
    after = list_policies(server)
    assert failures == [] and answered > 0
    assert after.revision == before.revision and not after.status.last_attempt_failed
    assert after.shadow.revision == before.shadow.revision  # its own last good set
    diagnostics = after.shadow.status.diagnostics
    assert diagnostics and diagnostics[0].file.endswith("earn_miles.policy")
    assert metric(server, "loyalty_shadow_reloads_total", result="refused") >= 1
    assert metric(server, "loyalty_policy_reloads_total", result="refused") == 0


def test_a_shadow_that_never_loads_leaves_the_server_serving(
        spawn: Any, tmp_path: Path, dirs: tuple[Path, Path]) -> None:
    """A shadow directory that is missing at start is reported; the server starts and answers."""
    live, _candidate = dirs
    server = serve(spawn, live, tmp_path / "missing", "--shadow-sample", "1")
    with server.channel() as channel:
        response = pb_grpc.LoyaltyRulesStub(channel).Evaluate(flight("e-1", "business"), timeout=5)
    assert response.decision.awards["miles"]
    shadow = list_policies(server).shadow
    assert shadow.revision == "" and shadow.status.last_attempt_failed
    assert "no such directory" in shadow.status.last_error
    wait_for(lambda: metric(server, "loyalty_shadow_failed_total", reason="not_loaded") == 1,
             what="the sample counted as not_loaded")


def test_the_shadow_reloads_on_edit_and_on_sighup(spawn: Any, dirs: tuple[Path, Path]) -> None:
    """An edit to the shadow directory reloads the shadow (the watcher), and so does SIGHUP
    without the watcher; the serving set stays as it was."""
    live, candidate = dirs
    server = serve(spawn, live, candidate)
    first = list_policies(server)
    policy = candidate / AIRLINE
    policy.write_text(policy.read_text().replace(CANDIDATE_BONUS, '"business": award 70% of base miles'))
    wait_for(lambda: list_policies(server).shadow.revision != first.shadow.revision, what="the shadow reload")
    second = list_policies(server)
    assert second.revision == first.revision
    assert second.shadow.status.reloads_succeeded == 2 and second.status.reloads_succeeded == 1

    unwatched = serve(spawn, live, candidate, "--no-watch")
    before = list_policies(unwatched).shadow.revision
    policy.write_text(policy.read_text().replace("70% of base", "80% of base"))
    time.sleep(1.0)  # not watched: nothing may change by itself
    assert list_policies(unwatched).shadow.revision == before
    unwatched.signal(signal.SIGHUP)
    wait_for(lambda: list_policies(unwatched).shadow.revision != before, what="the SIGHUP reload")


def test_list_policies_shows_the_shadow(spawn: Any, dirs: tuple[Path, Path]) -> None:
    """ListPolicies reports the shadow's directory, revision, policies, status and sample rate;
    without --shadow it has no shadow at all."""
    live, candidate = dirs
    server = serve(spawn, live, candidate, "--shadow-sample", "0.25")
    response = list_policies(server)
    assert response.HasField("shadow")
    shadow = response.shadow
    assert shadow.directory == str(candidate)
    assert shadow.sample_rate == 0.25
    assert shadow.revision.startswith("r") and shadow.revision != response.revision
    assert [p.name for p in shadow.policies] == [p.name for p in response.policies]
    assert shadow.status.reloads_succeeded == 1 and not shadow.status.last_attempt_failed
    assert shadow.status.HasField("loaded_at")

    assert not list_policies(spawn(policies=live)).HasField("shadow")


def test_sample_rate_zero_evaluates_none(spawn: Any, dirs: tuple[Path, Path]) -> None:
    """With --shadow-sample 0 no live decision reaches the shadow (while rate 1 compares all)."""
    live, candidate = dirs
    none = serve(spawn, live, candidate, "--shadow-sample", "0")
    every = serve(spawn, live, candidate, "--shadow-sample", "1")
    for server in (none, every):
        with server.channel() as channel:
            stub = pb_grpc.LoyaltyRulesStub(channel)
            for i in range(20):
                stub.Evaluate(flight(f"e-{i}", "business"), timeout=5)
    wait_for(lambda: list_policies(every).shadow.decisions_compared == 20, what="rate 1 comparing")
    time.sleep(1.5)  # the metrics flush and any late comparison
    assert list_policies(none).shadow.decisions_compared == 0
    assert metric(none, "loyalty_shadow_decisions_compared_total") == 0
    assert metric(none, "loyalty_shadow_dropped_total") == 0


def test_a_full_backlog_drops_and_counts_without_waiting() -> None:
    """Offers beyond the backlog are dropped and counted, and the offer returns at once."""
    store = PolicyStore(POLICIES)
    assert store.load()
    live = store.current
    assert live is not None
    registry = CollectorRegistry()
    shadow = Shadow(store, sample=1.0, metrics=ShadowMetrics(registry), backlog=3)  # not started
    sample = ({}, {}, None, None, None)
    shadow.offer(live, [sample, sample])
    shadow.offer(live, [sample, sample])  # one fits, one is dropped
    started = time.perf_counter()
    shadow.offer(live, [sample] * 100)
    assert time.perf_counter() - started < 0.5
    assert shadow.dropped == 101
    assert registry.get_sample_value("loyalty_shadow_dropped_total") == 101


@pytest.mark.parametrize(("text", "message"), [
    ("2", "2 is not between 0 and 1"),
    ("-0.1", "-0.1 is not between 0 and 1"),
    ("nan", "nan is not between 0 and 1"),
    ("often", "'often' is not a number"),
])
def test_a_bad_sample_rate_is_refused_clearly(text: str, message: str) -> None:
    """--shadow-sample outside 0..1, or not a number, is refused with what to give instead."""
    with pytest.raises(argparse.ArgumentTypeError, match="^" + message.replace("(", r"\(")):
        sample_rate(text)
    server = start_server("--shadow", str(POLICIES), "--shadow-sample", text, expect_exit=True)
    assert server.proc.returncode == 2
    assert message in server.log_text() and "Traceback" not in server.log_text()


def test_rpc_errors_never_come_from_the_shadow(spawn: Any, dirs: tuple[Path, Path]) -> None:
    """A request the live set refuses is refused as before, and never offered to the shadow."""
    live, candidate = dirs
    server = serve(spawn, live, candidate, "--shadow-sample", "1")
    with server.channel() as channel, pytest.raises(grpc.RpcError) as caught:
        pb_grpc.LoyaltyRulesStub(channel).Evaluate(pb.EvaluateRequest(customer=gold_customer()), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    time.sleep(0.5)
    assert list_policies(server).shadow.decisions_compared == 0


def test_each_worker_has_its_own_shadow_and_sighup_reloads_them(spawn: Any, dirs: tuple[Path, Path]) -> None:
    """With --workers 2 each worker compares on its own shadow, the metrics port serves the sum,
    and a SIGHUP to the supervisor reloads every worker's shadow."""
    live, candidate = dirs
    server = serve(spawn, live, candidate, "--workers", "2", "--shadow-sample", "1", "--no-watch")
    for i in range(20):  # a fresh connection per call: both workers get some
        with server.channel() as channel:
            pb_grpc.LoyaltyRulesStub(channel).Evaluate(flight(f"e-{i}", "business"), timeout=5)
    wait_for(lambda: metric(server, "loyalty_shadow_decisions_compared_total") == 20,
             what="the workers' comparisons summed")
    assert metric(server, "loyalty_shadow_decisions_changed_total") == 20

    first = list_policies(server).shadow.revision
    policy = candidate / AIRLINE
    policy.write_text(policy.read_text().replace(CANDIDATE_BONUS, '"business": award 70% of base miles'))
    server.signal(signal.SIGHUP)
    reloaded: set[str] = set()

    def every_worker_reloaded() -> bool:
        answer = list_policies(server)
        if answer.shadow.revision != first:
            reloaded.add(answer.status.instance)
        return len(reloaded) == 2

    wait_for(every_worker_reloaded, timeout=30, what="both workers' shadows reloaded")


@pytest.mark.parametrize(("segment", "compared", "refused"), [
    ("string?", 1, 0),  # optional: the request is converted again, accepted and compared
    ("string", 0, 1),  # required: the candidate refuses a request that does not carry it
], ids=["optional_field_added", "required_field_added"])
def test_a_shadow_with_another_schema_judges_the_request_by_its_own(
        tmp_path: Path, segment: str, compared: int, refused: int) -> None:
    """When the candidate's schema.toml differs, the shadow converts the request again by its
    schema: a request it refuses counts as failed (invalid_argument), one it accepts is compared."""
    candidate = tmp_path / "candidate"
    shutil.copytree(POLICIES, candidate, ignore=shutil.ignore_patterns("*.test.toml"))
    schema = candidate / "schema.toml"
    text = schema.read_text()
    assert 'home_store = "string?"\n' in text
    added = f'home_store = "string?"\nsegment = "{segment}"\n'
    schema.write_text(text.replace('home_store = "string?"\n', added))
    live_store, shadow_store = PolicyStore(POLICIES), PolicyStore(candidate)
    assert live_store.load() and shadow_store.load()
    live, candidate_set = live_store.current, shadow_store.current
    assert live is not None and candidate_set is not None
    assert live.policy_set.schema.digest != candidate_set.policy_set.schema.digest
    registry = CollectorRegistry()
    shadow = Shadow(shadow_store, sample=1.0, metrics=ShadowMetrics(registry))

    request = flight("e-1", "business")
    customer, event = live.converter.inputs(request.customer, request.event)
    decision = live.policy_set.evaluate(customer, event)
    shadow.compare(live, [(customer, event, request.customer, request.event, decision)])
    failed = registry.get_sample_value("loyalty_shadow_failed_total", {"reason": "invalid_argument"})
    assert (failed or 0) == refused
    assert (shadow.compared, shadow.changed) == (compared, 0)  # the same policies: the same outcome
