"""Load a policy directory once in a fresh process and print what it cost, as JSON.

``python -m benchmarks.probe DIR [--tracemalloc]``

A fresh process is the only honest way to measure a *cold* load (nothing cached:
the Lark parser is built, every module imported) and its resident memory: in the
benchmark process, earlier tests have already grown the heap. The output gives
the resident size after importing ``dsl`` (the baseline every process pays), after
loading, and the peak (``VmHWM``), in MiB, and the load's wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def memory() -> dict[str, float]:
    """This process's resident size now (``rss``) and at its peak (``hwm``), in MiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out["rss" if key == "VmRSS" else "hwm"] = int(value.split()[0]) / 1024
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load the directory, print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also report the peak of Python allocations during the load")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    import dsl

    imported = time.perf_counter()
    base = memory()
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
    t1, c1 = time.perf_counter(), time.process_time()
    policy_set = dsl.load_directory(args.directory)
    seconds, cpu = time.perf_counter() - t1, time.process_time() - c1
    result = {
        "directory": args.directory,
        "policies": len(policy_set.policies),
        "rules": sum(len(p.rules) for p in policy_set.policies),
        "import_s": imported - t0,
        "load_s": seconds,
        "load_cpu_s": cpu,
        "rss_after_import_mib": base["rss"],
        "rss_after_load_mib": memory()["rss"],
        "peak_rss_mib": memory()["hwm"],
    }
    if args.tracemalloc:
        import tracemalloc

        result["traced_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        result["load_s_traced"] = result.pop("load_s")
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
