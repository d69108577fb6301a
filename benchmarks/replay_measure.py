"""How fast ``loyalty replay`` goes over a Parquet airline history, beside a plain baseline.

    python -m benchmarks.replay_measure [EVENTS] [--jobs N]

Writes a Parquet history of EVENTS airline requests (default 300,000: 20,000 generated
events, copied with new customer and event ids), replays it through the bundled policies
and a changed copy (:func:`benchmarks.history.changed_policies`) on N processes (default:
every core), and prints events/s (wall clock), CPU per event, and peak RSS of the largest
process. The baseline, in the same run and the same process, is the plain-Python airline
function (``benchmarks.plain``) over the same request mappings, twice per event (old and
new), on one core: the cost of the two decisions with nothing else, by hand.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks import plain
from benchmarks.history import airline_requests_stream, changed_policies, write_history
from dsl.tools.history import chunks
from service.cli.replay import replay_locally

POLICIES = Path(__file__).resolve().parents[1] / "policies"
BASE_EVENTS = 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("events", nargs="?", type=int, default=300_000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        new = changed_policies(root / "new")
        requests = next(airline_requests_stream(BASE_EVENTS))
        base_file = write_history(root / "base.parquet", [requests])
        base = pq.read_table(base_file)
        history = root / "history.parquet"
        with pq.ParquetWriter(history, base.schema) as writer:
            written, copy = 0, 0
            while written < args.events:
                table = base.slice(0, args.events - written)
                for column in ("customer.id", "event.id"):
                    ids = pc.binary_join_element_wise(table[column], pa.scalar(f"-{copy}"), "")
                    table = table.set_column(table.schema.get_field_index(column), column, ids)
                writer.write_table(table)
                written, copy = written + table.num_rows, copy + 1

        # The baseline: the plain function over the same mappings, old and new, one core.
        plain.earn_miles(requests[0])
        start = time.thread_time()
        for request in requests:
            plain.earn_miles(request)
            plain.earn_miles(request)
        baseline_us = (time.thread_time() - start) / len(requests) * 1e6

        cpu_before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = replay_locally(str(POLICIES), str(new), chunks(history, "parquet"), args.jobs)
        seconds = time.perf_counter() - start
        self_after, children_after = (resource.getrusage(resource.RUSAGE_SELF),
                                      resource.getrusage(resource.RUSAGE_CHILDREN))
        parts = [after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                 for before, after in zip(cpu_before, (self_after, children_after), strict=True)]
        cpu = sum(parts)
        peak_mb = max(self_after.ru_maxrss, children_after.ru_maxrss) / 1024
    print(f"events {result.events:,}, changed {result.changed:,}, customers {result.customers_changed:,}")
    print(f"replay on {args.jobs} processes: {seconds:.1f} s, {result.events / seconds:,.0f} events/s; "
          f"CPU {cpu / result.events * 1e6:.1f} us/event (reading and merging process "
          f"{parts[0] / result.events * 1e6:.1f}, workers {parts[1] / result.events * 1e6:.1f}); "
          f"peak RSS {peak_mb:.0f} MB")
    print(f"baseline (plain function, old and new, 1 core): {baseline_us:.1f} us/event; "
          f"replay CPU / baseline = {cpu / result.events * 1e6 / baseline_us:.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
