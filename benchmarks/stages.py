"""Where the time goes, in-process: ``python -m benchmarks.stages [--mapping]``.

Two measurements: a batch item's server time (:func:`measure`, the default) and
the in-process mapping path's (:func:`measure_mapping`, ``--mapping``).

**Batch.**
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
import gc
import json
import time
from functools import partial
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


#: Items per slice in :func:`measure_mapping`: every stage is timed on one slice after another.
MAPPING_SLICE = 500


def measure_mapping(rounds: int = 7, items: int = 10_000) -> dict[str, Any]:
    """Per-item CPU microseconds of each stage of the in-process mapping path, and a profile.

    The path is :func:`benchmarks.mapping.decider`: decode the request mapping
    with ``policy_set.decoder``, the generated mapping decoder; the flat reference,
    ``flatten`` then the reference ``prepare_customer`` and ``prepare_event``
    (tests/dsl/input/reference.py), is timed beside
    it but is not on the path), then :meth:`PolicySet.evaluate`, whose parts are timed
    on their own too: creating the empty ``Decision``, the compiled policy's
    rules (which append the fired rules, benefits and tags to it), and
    ``finish`` (caps, zero awards, benefits, tags); what remains of ``evaluate``
    is its dispatch (index lookup, the loop, the error guard). The plain baseline
    and ``Decision.to_dict`` (not on the path) are timed for comparison.

    As in the gates (:func:`benchmarks.timing.time_arms`), the items are cut into
    slices of :data:`MAPPING_SLICE`, every stage is timed on each slice in turn
    (the order rotating), and a stage's cost is the sum over slices of its
    fastest time on the slice over ``rounds``, in the thread's CPU time: a burst
    from a neighbour spoils one short timing, not a stage's whole figure.
    """
    import cProfile
    import io
    import pstats

    import dsl
    from benchmarks import data, mapping, plain
    from dsl.decision import Decision
    from dsl.library.runtime import finish as finish_decision
    from tests.dsl.input import reference

    policy_set = dsl.load_directory(POLICIES_DIR)
    schema = policy_set.schema
    requests = data.airline_requests(items)
    flat = [mapping.flatten(r) for r in requests]
    prepared = [mapping.decode_request(policy_set, r) for r in requests]
    decide = mapping.decider(policy_set)
    evaluate = policy_set.evaluate
    revision = policy_set.revision
    modules = [[p.module.evaluate for p in policy_set.applicable(e)] for _, e in prepared]
    work = list(zip(prepared, modules, strict=True))
    decisions = [evaluate(c, e) for c, e in prepared]
    # finish() is the set's own step; it reads the set's tier ranks and per-event caps.
    tier_rank, caps = policy_set._tier_rank, policy_set._caps
    earn, flatten, decode = plain.earn_miles, mapping.flatten, mapping.decode_request
    prepare_customer = partial(reference.prepare_customer, schema)
    prepare_event = partial(reference.prepare_event, schema)

    def plain_baseline(lo: int, hi: int) -> None:
        for r in requests[lo:hi]:
            earn(r)

    def flatten_names(lo: int, hi: int) -> None:
        for r in requests[lo:hi]:
            flatten(r)

    def customers(lo: int, hi: int) -> None:
        for c, _ in flat[lo:hi]:
            prepare_customer(c)

    def events(lo: int, hi: int) -> None:
        for _, e in flat[lo:hi]:
            prepare_event(e)

    def decoding(lo: int, hi: int) -> None:
        for r in requests[lo:hi]:
            decode(policy_set, r)

    def new_decision(lo: int, hi: int) -> None:
        for _ in range(lo, hi):
            Decision(revision, {}, [], None, [], [], [], None)

    def rules(lo: int, hi: int) -> None:  # includes new_decision: each run fills a fresh one
        for (c, e), fns in work[lo:hi]:
            d = Decision(revision, {}, [], None, [], [], [], None)
            for fn in fns:
                fn(c, e, d)

    def finishing(lo: int, hi: int) -> None:
        for d in decisions[lo:hi]:
            finish_decision(d, tier_rank, caps, None)

    def evaluating(lo: int, hi: int) -> None:
        for c, e in prepared[lo:hi]:
            evaluate(c, e)

    def whole(lo: int, hi: int) -> None:
        for r in requests[lo:hi]:
            decide(r)

    def to_dict(lo: int, hi: int) -> None:
        for d in decisions[lo:hi]:
            d.to_dict()

    stages = {"plain": plain_baseline, "flatten": flatten_names, "prepare_customer": customers,
              "prepare_event": events, "decode": decoding, "new_decision": new_decision,
              "rules_with_new_decision": rules, "finish": finishing, "evaluate": evaluating,
              "mapping_path": whole, "to_dict": to_dict}
    slices = [(lo, min(lo + MAPPING_SLICE, items)) for lo in range(0, items, MAPPING_SLICE)]
    best = {name: [float("inf")] * len(slices) for name in stages}
    for fn in stages.values():
        fn(0, items)
    order = list(stages)
    for _ in range(rounds):
        gc.collect()
        for k, (lo, hi) in enumerate(slices):
            order = order[1:] + order[:1]
            for name in order:
                fn = stages[name]
                t0 = time.thread_time()
                fn(lo, hi)
                dt = time.thread_time() - t0
                if dt < best[name][k]:
                    best[name][k] = dt
    us = {name: round(sum(times) / items * 1e6, 3) for name, times in best.items()}
    us["rules"] = round(us["rules_with_new_decision"] - us["new_decision"], 3)
    us["dispatch"] = round(us["evaluate"] - us["rules_with_new_decision"] - us["finish"], 3)
    profiler = cProfile.Profile(time.thread_time_ns, 1e-9)
    profiler.enable()
    whole(0, items)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).strip_dirs().sort_stats("tottime").print_stats(15)
    return {"items": items, "rounds": rounds, "slice": MAPPING_SLICE, "us_per_item": us,
            "cprofile": text.getvalue()}


def main(argv: list[str] | None = None) -> int:
    """Measure and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--mapping", action="store_true",
                        help="the in-process mapping path instead of the batch method")
    parser.add_argument("--items", type=int, default=10_000, help="requests (with --mapping)")
    args = parser.parse_args(argv)
    if args.mapping:
        figures = measure_mapping(args.rounds, args.items)
        print(figures.pop("cprofile"))
    else:
        figures = measure(args.rounds, args.batches)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
