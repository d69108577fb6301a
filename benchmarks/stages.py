"""Where a batch item's server time goes, in-process: ``python -m benchmarks.stages``.

Not a test (pytest does not collect it). It takes the benchmark's 1,000-item
``EvaluateBatchRequest`` messages (parsed once, as the server receives them)
and times, per item, each stage of :meth:`LoyaltyRulesServicer.evaluate_batch_bytes`
on its own, beside the servicer as a whole:

- ``parse``: ``EvaluateBatchRequest.FromString`` (what gRPC does before the servicer);
- ``read``: every field the converter reads, read once into locals and nothing else
  (hand-written for the benchmark's flight items): what the protobuf runtime's
  attribute access alone costs, the floor of any Python conversion;
- ``convert``: the converter's fast path: every field of the customer and the event
  read once from the protobuf runtime and checked, into the prepared dicts;
- ``evaluate``: :meth:`PolicySet.evaluate` on the prepared inputs;
- ``handwritten``: the hand-written airline function (:mod:`benchmarks.handwritten`),
  the floor of evaluation;
- ``encode``: the decision's serialised payload;
- ``servicer``: the whole batch method (all of the above, counters, framing).

Every figure is the minimum over rounds of the thread's CPU time (noise only adds
time), in microseconds per item. ``--rounds`` and ``--batches`` bound the run.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from benchmarks import handwritten
from benchmarks.data import POLICIES_DIR, raw_airline_pairs
from benchmarks.messages import batch_request, evaluate_requests
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.servicer import LoyaltyRulesServicer
from service.store import PolicyStore


class _Context:
    """The two ``ServicerContext`` methods the batch method asks (no deadline, never cancelled)."""

    def time_remaining(self) -> float:
        return 3600.0

    def is_active(self) -> bool:
        return True


def measure(rounds: int = 7, batches: int = 10) -> dict[str, Any]:
    """Per-item CPU microseconds of each stage (see the module's docstring)."""
    store = PolicyStore(POLICIES_DIR)
    store.load()
    snapshot = store.current
    assert snapshot is not None
    servicer = LoyaltyRulesServicer(store)
    requests = evaluate_requests(raw_airline_pairs(1000 * batches))
    raw = [batch_request(requests, i * 1000, 1000).SerializeToString() for i in range(batches)]
    parsed = [pb.EvaluateBatchRequest.FromString(r) for r in raw]
    pairs = [(item.customer, item.event) for p in parsed for item in p.items]
    items = len(pairs)
    converter = snapshot.converter
    prepared = [converter.inputs(c, e) for c, e in pairs]
    evaluate = snapshot.policy_set.evaluate
    reference = handwritten.evaluator(snapshot.revision)
    decisions = [evaluate(c, e) for c, e in prepared]
    payload = snapshot.encoder.payload
    inputs = converter.inputs
    context = _Context()
    batch = servicer.evaluate_batch_bytes

    def parse() -> None:
        for r in raw:
            pb.EvaluateBatchRequest.FromString(r)

    def read() -> None:
        for c, e in pairs:  # each field into a tuple, as a conversion reads it into locals
            life, t, f = c.lifetime, e.time, e.flight
            _ = (c.id, c.member_since, c.tier, c.birthday, c.attributes,
                 life.miles, life.flights, life.spend, life.visits, life.appointments,
                 life.donations, life.donation_years, e.id, e.kind, e.attributes, t.seconds,
                 t.nanos, f.origin, f.destination, f.distance_miles, f.fare, f.currency,
                 f.cabin, f.partner, f.carrier)

    def convert() -> None:
        for c, e in pairs:
            inputs(c, e)

    def rules() -> None:
        for c, e in prepared:
            evaluate(c, e)

    def by_hand() -> None:
        for c, e in prepared:
            reference(c, e)

    def encode() -> None:
        for d in decisions:
            payload(d)

    def whole() -> None:
        for p in parsed:
            batch(p, context)

    stages = {"parse": parse, "read": read, "convert": convert, "evaluate": rules,
              "handwritten": by_hand, "encode": encode, "servicer": whole}
    best = {name: float("inf") for name in stages}
    for fn in stages.values():  # warm the caches every stage relies on
        fn()
    # What is timed must be the path that answers: every item a decision, none an error.
    response = pb.EvaluateBatchResponse.FromString(batch(parsed[0], context))
    if response.failed or not all(r.HasField("decision") for r in response.results):
        raise RuntimeError(f"the batch method failed {response.failed} of "
                           f"{len(response.results)} items: the stages would time errors")
    for _ in range(rounds):
        for name, fn in stages.items():
            t0 = time.thread_time()
            fn()
            best[name] = min(best[name], time.thread_time() - t0)
    per_item = {name: round(seconds / items * 1e6, 3) for name, seconds in best.items()}
    return {"items": items, "rounds": rounds, "us_per_item": per_item,
            "servicer_items_per_cpu_s": round(1e6 / per_item["servicer"])}


def main(argv: list[str] | None = None) -> int:
    """Measure and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.rounds, args.batches), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
