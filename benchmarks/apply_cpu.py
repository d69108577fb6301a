"""CPU per item of ``ApplyBatch`` in process: ``python -m benchmarks.apply_cpu [--profile]``.

Not a test (pytest does not collect it). One :class:`LoyaltyRulesServicer` with metrics, the
bundled programme through the tests' stand-in for periods (as ``benchmarks/test_apply.py``'s
server), a fresh SQLite file (``--url-suffix ?synchronous=normal`` for the other durability);
``apply_batch_bytes`` of 1,000 new events over 100 customers, ``--batches`` times after one to
warm. Prints each batch's CPU time per item (``time.process_time``, so other processes on the
machine add little) in microseconds, or with ``--profile`` a cProfile of the batches by own
time. ``--kind flight`` applies flights (a kind whose rules have texts, so Apply explains for
the lots) instead of purchases; ``--no-texts`` stops that explaining, to measure its share.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import pstats
import sys
import tempfile
import time
from pathlib import Path

from tests.service.conftest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "service" / "state"))

from stand_in_serve import build_with_periods

import service.apply
import service.store
from service import logs
from service.client import customer, purchase
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.server import default_metrics
from service.servicer import LoyaltyRulesServicer
from service.state import open_store
from tests.service.conftest import POLICIES, jfk_lhr


def requests(batches: int, kind: str) -> list[pb.ApplyBatchRequest]:
    """``batches`` requests of 1,000 new events over 100 customers, in March 2026."""
    people = [customer(f"c-{i}", member_since="2015-01-01", tier="GOLD") for i in range(100)]
    ids = itertools.count()
    out = []
    for _ in range(batches):
        items = []
        for i in range(1000):
            n, time_text = next(ids), f"2026-03-{1 + i % 28:02d}T12:00:00Z"
            event = (jfk_lhr(f"b-{n}", time=time_text) if kind == "flight"
                     else purchase(f"b-{n}", time=time_text, amount="25.00"))
            items.append(pb.BatchItem(customer=people[i % 100], event=event))
        out.append(pb.ApplyBatchRequest(items=items))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--kind", choices=("purchase", "flight"), default="purchase")
    parser.add_argument("--url-suffix", default="")
    parser.add_argument("--no-texts", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    logs.configure("warning", "json", stream=io.StringIO())
    service.store.build_snapshot = build_with_periods  # type: ignore[assignment]
    if args.no_texts:
        service.apply.text_kinds = lambda policy_set: frozenset()  # type: ignore[assignment]
    policies = service.store.PolicyStore(POLICIES)
    assert policies.load()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.sqlite3"
        state = open_store(f"sqlite://{path}{args.url_suffix}" if args.url_suffix else str(path))
        try:
            servicer = LoyaltyRulesServicer(policies, metrics=default_metrics(), state=state)
            warm, *batches = requests(args.batches + 1, args.kind)
            assert pb.ApplyBatchResponse.FromString(servicer.apply_batch_bytes(warm, None)).failed == 0  # type: ignore[arg-type]
            if args.profile:
                profile = cProfile.Profile()
                profile.enable()
                for request in batches:
                    servicer.apply_batch_bytes(request, None)  # type: ignore[arg-type]
                profile.disable()
                pstats.Stats(profile).sort_stats("tottime").print_stats(40)
                return
            per_item = []
            for request in batches:
                started = time.process_time()
                servicer.apply_batch_bytes(request, None)  # type: ignore[arg-type]
                per_item.append((time.process_time() - started) * 1e6 / 1000)
            ordered = sorted(per_item)
            print("CPU us per item, each batch:", " ".join(f"{us:.0f}" for us in per_item))
            print(f"median {ordered[len(ordered) // 2]:.0f}, least {ordered[0]:.0f}, last {per_item[-1]:.0f}")
        finally:
            state.close()


if __name__ == "__main__":
    main()
