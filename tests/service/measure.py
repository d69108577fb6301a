"""Service figures on loopback, real servicer against the trivial one: ``python -m tests.service.measure``.

Not a test (pytest does not collect it): it drives the benchmark load generator
(``benchmarks/load.py``) against ``benchmarks.serve`` servers, both arms behind
the same ``service.server.create_server``, and prints JSON:

- unary ``Evaluate`` closed loop (16 in flight): calls/s for both, and the ratio;
- ``EvaluateBatch`` of 1,000 items: evaluations/s for both;
- ``EvaluateStream``: messages/s for both;
- unary latency at a fixed offered load (default 1,000 calls/s for 5 s): p50/p99.

Every run is bounded in calls and seconds. ``--rounds N`` repeats the closed-loop
runs, interleaving the arms, and reports each arm's best round and the median of the
per-round unary ratios (the machine is shared).

Rates on a shared machine say as much about the neighbours as about the server, so
beside them it prints the server process's own CPU time (user + system, from
``/proc``) per call or evaluation, and what that makes per CPU-second: the rate one
server process would reach with a core to itself (``*_per_cpu_s``; gRPC's own
threads included). ``--distinct`` sends batches that never repeat an event (no
converter cache sees an event twice).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from benchmarks.data import raw_airline_pairs
from benchmarks.load import ServerProcess, Throughput, closed_loop, open_loop, stream_run
from benchmarks.messages import batch_request, evaluate_requests, stream_requests


def main(argv: list[str] | None = None) -> int:
    """Measure and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--unary-calls", type=int, default=3000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--stream-messages", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--distinct", action="store_true",
                        help="batches of events never sent before (more pairs, built up front)")
    args = parser.parse_args(argv)

    # --distinct: four batches to warm up, then fresh ones for every round.
    count = 4 + (args.rounds * args.batches if args.distinct else 0)
    requests = evaluate_requests(raw_airline_pairs(max(2000, 1000 * count)))
    unary = [r.SerializeToString() for r in requests[:2000]]
    batches = [batch_request(requests, i * 1000, 1000).SerializeToString() for i in range(count)]
    streams = [m.SerializeToString() for m in stream_requests(requests, 2000)]
    best: dict[str, float] = {}

    cpu: dict[str, list[float]] = {}  # key -> [server CPU seconds, items]

    def keep(key: str, value: float) -> None:
        best[key] = max(best.get(key, 0.0), value)

    def timed(key: str, server: ServerProcess, run: Callable[[], Throughput]) -> Throughput:
        before = server.cpu_seconds()
        result = run()
        spent = cpu.setdefault(key, [0.0, 0])
        spent[0] += server.cpu_seconds() - before
        spent[1] += result.items
        return result

    def batch_payloads(round_: int) -> list[bytes]:
        if not args.distinct:
            return batches[:4]
        start = 4 + round_ * args.batches
        return batches[start:start + args.batches]  # each sent once to each arm

    latency = {}
    rates: dict[str, list[float]] = {"trivial": [], "real": []}
    with ServerProcess("trivial") as trivial, ServerProcess("real") as real:
        for s in (trivial, real):  # warm up: connections, caches, first-call costs
            closed_loop(s.address, "Evaluate", unary, 500, 8)
            closed_loop(s.address, "EvaluateBatch", batches[:4], 2, 1, 1000)
        for round_ in range(args.rounds):
            for name, s in (("trivial", trivial), ("real", real)):
                t = timed(f"{name}_unary", s, lambda s=s: closed_loop(
                    s.address, "Evaluate", unary, args.unary_calls, 16, deadline_s=60))
                keep(f"{name}_unary_calls_per_s", t.calls_per_s)
                rates[name].append(t.calls_per_s)
                payloads = batch_payloads(round_)
                t = timed(f"{name}_batch1000", s, lambda s=s, p=payloads: closed_loop(
                    s.address, "EvaluateBatch", p, args.batches, 2, 1000, deadline_s=60))
                keep(f"{name}_batch1000_evaluations_per_s", t.items_per_s)
                t = timed(f"{name}_stream", s, lambda s=s: stream_run(
                    s.address, streams, args.stream_messages, deadline_s=60))
                keep(f"{name}_stream_messages_per_s", t.items_per_s)
        result = open_loop(real.address, unary, args.rate, args.seconds)
        latency = {k: round(v, 3) for k, v in result.summary().items()}
    out: dict[str, object] = {k: round(v) for k, v in sorted(best.items())}
    out["unary_real_over_trivial"] = round(
        best["real_unary_calls_per_s"] / best["trivial_unary_calls_per_s"], 3
    )
    # Adjacent rounds saw similar machine load: their ratio is steadier than best-of.
    ratios = sorted(r / t for r, t in zip(rates["real"], rates["trivial"], strict=True))
    out["unary_real_over_trivial_median_of_rounds"] = round(ratios[len(ratios) // 2], 3)
    for key, (seconds, items) in sorted(cpu.items()):
        if items:
            out[f"{key}_server_cpu_us_per_item"] = round(seconds / items * 1e6, 2)
            out[f"{key}_per_cpu_s"] = round(items / seconds) if seconds else None
    out["unary_real_over_trivial_cpu"] = round(
        cpu["trivial_unary"][0] / cpu["trivial_unary"][1] / (cpu["real_unary"][0] / cpu["real_unary"][1]), 3)
    out["real_unary_latency_at_fixed_rate"] = latency
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
