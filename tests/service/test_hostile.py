"""Hostile requests against the real server: each is refused quickly with the field named, and the
health service keeps answering throughout.

A single 60-byte Evaluate with a purchase amount of "1E+999999" once held the GIL for about
70 s (``int()`` of a Decimal with a huge exponent is one C call): deadlines, health checks,
other callers and SIGTERM all waited for it. The input bounds refuse such values before any
arithmetic; this test holds the real process to that from outside, with health probes running
beside a burst of hostile calls. The times are liveness ceilings with wide margins against a
stall of seconds, not speed targets. Every loop is bounded in calls and in seconds, and the
server runs with ``--grace 1``, so its watchdog ends it 6 s into any stall.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.client import customer, field_violations, purchase
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from tests.service.conftest import ServerProcess, gold_customer, jfk_lhr

#: Longest a hostile call may take to be refused, and a health check to answer (seconds).
CALL_CEILING_S = 2.0
HEALTH_CEILING_S = 1.0
#: Health checks are sent this often during the burst, at most HEALTH_MAX_CHECKS of them.
HEALTH_PERIOD_S = 0.02
HEALTH_MAX_CHECKS = 3000
#: Threads sending the hostile calls.
CALLERS = 3


def _purchase_of(amount: str) -> pb.EvaluateRequest:
    """A GOLD member's purchase without items, so the retail policies compute on ``amount``."""
    event = purchase("e-hostile", time="2026-03-01T10:00:00Z", amount=amount)
    return pb.EvaluateRequest(customer=gold_customer(), event=event)


def _flight_with(**overrides: object) -> pb.EvaluateRequest:
    return pb.EvaluateRequest(customer=gold_customer(), event=jfk_lhr(**overrides))


def _long_customer_id() -> pb.EvaluateRequest:
    return pb.EvaluateRequest(customer=customer("c" * 200_000, member_since="2012-05-01", tier="GOLD"),
                              event=jfk_lhr())


def _long_event_id() -> pb.EvaluateRequest:
    return pb.EvaluateRequest(customer=gold_customer(), event=jfk_lhr("e" * 200_000))


def _too_many_items() -> pb.EvaluateRequest:
    items = [{"sku": f"s-{i}", "category": "fresh", "amount": "1.00", "quantity": 1} for i in range(20_000)]
    event = purchase("e-items", time="2026-03-01T10:00:00Z", amount="20000.00", items=items)
    return pb.EvaluateRequest(customer=gold_customer(), event=event)


def _nineteen_digit_counter() -> pb.EvaluateRequest:
    c = gold_customer()
    c.lifetime.miles = 1_000_000_000_000_000_000  # fits int64, but has 19 digits
    return pb.EvaluateRequest(customer=c, event=jfk_lhr())


AMOUNT = "event.purchase.amount"

#: (readable id, request builder, the field the refusal must name).
HOSTILE: list[tuple[str, Callable[[], pb.EvaluateRequest], str]] = [
    ('amount "1E+999999"', lambda: _purchase_of("1E+999999"), AMOUNT),
    ('amount "1E+300000"', lambda: _purchase_of("1E+300000"), AMOUNT),
    ('amount "1e400"', lambda: _purchase_of("1e400"), AMOUNT),
    ('amount "1e19"', lambda: _purchase_of("1e19"), AMOUNT),
    ('amount "1234567890123456789" (19 digits)', lambda: _purchase_of("1234567890123456789"), AMOUNT),
    ('amount "1e999999999"', lambda: _purchase_of("1e999999999"), AMOUNT),
    ('amount "١٢٣" (Arabic-Indic digits)', lambda: _purchase_of("١٢٣"), AMOUNT),
    ('amount "1_000"', lambda: _purchase_of("1_000"), AMOUNT),
    ('amount " 1"', lambda: _purchase_of(" 1"), AMOUNT),
    ('amount "NaN"', lambda: _purchase_of("NaN"), AMOUNT),
    ('amount "Infinity"', lambda: _purchase_of("Infinity"), AMOUNT),
    ("customer id of 200,000 characters", _long_customer_id, "customer.id"),
    ("event id of 200,000 characters", _long_event_id, "event.id"),
    ("purchase with 20,000 items", _too_many_items, "event.purchase.items"),
    ("lifetime miles of 19 digits", _nineteen_digit_counter, "customer.lifetime.miles"),
    ('fare "0.0000000000000000001" (19 decimals)', lambda: _flight_with(fare="0.0000000000000000001"),
     "event.flight.fare"),
]

#: Edge values that are valid and must be answered (in the same burst).
VALID: list[tuple[str, Callable[[], pb.EvaluateRequest]]] = [
    ('amount "-0"', lambda: _purchase_of("-0")),
    ("an ordinary purchase", lambda: _purchase_of("42.50")),
]


@dataclass
class Outcome:
    """What one call got, and how long it took."""

    name: str
    code: grpc.StatusCode
    seconds: float
    violations: list[tuple[str, str]]


def _call(stub: pb_grpc.LoyaltyRulesStub, name: str, request: pb.EvaluateRequest) -> Outcome:
    start = time.monotonic()
    try:
        stub.Evaluate(request, timeout=CALL_CEILING_S)
    except grpc.RpcError as exc:
        return Outcome(name, exc.code(), time.monotonic() - start, field_violations(exc))
    return Outcome(name, grpc.StatusCode.OK, time.monotonic() - start, [])


def _probe_health(server: ServerProcess, done: threading.Event,
                  results: list[tuple[float, grpc.StatusCode]]) -> None:
    """Check health every HEALTH_PERIOD_S until ``done``; record (seconds, code) per check."""
    with server.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest(service="loyalty.v1.LoyaltyRules")
        for _ in range(HEALTH_MAX_CHECKS):  # bounded in count; ``done`` bounds it in time
            if done.is_set():
                return
            start = time.monotonic()
            try:
                reply = health.Check(check, timeout=HEALTH_CEILING_S)
                code = (grpc.StatusCode.OK if reply.status == health_pb2.HealthCheckResponse.SERVING
                        else grpc.StatusCode.UNAVAILABLE)
            except grpc.RpcError as exc:
                code = exc.code()
            results.append((time.monotonic() - start, code))
            time.sleep(HEALTH_PERIOD_S)


def test_hostile_burst_is_refused_with_the_field_and_health_keeps_answering(spawn):
    """Each hostile Evaluate is INVALID_ARGUMENT with a BadRequest naming its field within 2 s, each
    valid edge value is answered, and every health check during the burst answers SERVING within 1 s."""
    server = spawn("--grace", "1")
    with server.channel() as channel:  # warm: connection and first-call costs are not the test's
        pb_grpc.LoyaltyRulesStub(channel).Evaluate(_purchase_of("1.00"), timeout=10)
    work: queue.Queue[tuple[str, Callable[[], pb.EvaluateRequest]]] = queue.Queue()
    for name, make, _field in HOSTILE:
        work.put((name, make))
    for name, make in VALID:
        work.put((name, make))
    outcomes: list[Outcome] = []

    def caller() -> None:
        with server.channel() as channel:
            stub = pb_grpc.LoyaltyRulesStub(channel)
            while True:
                try:
                    name, make = work.get_nowait()
                except queue.Empty:
                    return
                outcomes.append(_call(stub, name, make()))

    health: list[tuple[float, grpc.StatusCode]] = []
    done = threading.Event()
    prober = threading.Thread(target=_probe_health, args=(server, done, health))
    prober.start()
    time.sleep(0.1)  # a few checks before the burst: the baseline
    callers = [threading.Thread(target=caller) for _ in range(CALLERS)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(60)  # each call has a 2 s deadline, so this is far more than needed
    time.sleep(0.1)  # and a few after it
    done.set()
    prober.join(30)

    problems: list[str] = []
    if server.proc.poll() is not None:  # the calls after its end are UNAVAILABLE: say why first
        stall = "the watchdog ended a stall; " if "Timeout (" in server.log_text() else ""
        problems.append(f"the server exited with status {server.proc.returncode} during the burst "
                        f"({stall}see its stderr)")
    by_name = {o.name: o for o in outcomes}
    for name, _make, field in HOSTILE:
        got = by_name.get(name)
        if got is None:
            problems.append(f"{name}: no outcome")
            continue
        named = field in [f for f, _ in got.violations]
        if got.code != grpc.StatusCode.INVALID_ARGUMENT or not named or got.seconds > CALL_CEILING_S:
            problems.append(f"{name}: {got.code.name} in {got.seconds:.2f} s, violations {got.violations}"
                            f" (want INVALID_ARGUMENT naming {field})")
    for name, _make in VALID:
        got = by_name.get(name)
        if got is None:
            problems.append(f"{name}: no outcome")
        elif got.code != grpc.StatusCode.OK:
            problems.append(f"{name}: {got.code.name}, violations {got.violations} (want OK)")
    slow = [(s, c) for s, c in health if c != grpc.StatusCode.OK or s > HEALTH_CEILING_S]
    worst = max((s for s, _ in health), default=0.0)
    print(f"\nhealth checks: {len(health)}, worst {worst * 1000:.1f} ms, failed or slow {len(slow)}")
    for o in sorted(outcomes, key=lambda o: o.name):
        print(f"  {o.name}: {o.code.name} {o.seconds * 1000:.1f} ms {o.violations[:1]}")
    if slow:
        codes = sorted({c.name for _, c in slow})
        problems.append(f"health: {len(slow)} of {len(health)} checks failed or took over "
                        f"{HEALTH_CEILING_S} s (worst {worst:.2f} s; codes {codes})")
    assert len(health) > 10  # the probe really ran through the burst
    assert not problems, "\n".join(problems)
