"""Recorded histories for ``loyalty replay``: the benchmark airline requests written as
JSON-lines, CSV and Parquet (the forms of :mod:`dsl.tools.history`), and a changed airline policy.

``python -m benchmarks.history OUT.parquet N`` writes a history of N events (any suffix).
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from .data import POLICIES_DIR, raw_airline_pairs, request_mapping

#: The airline policy with a smaller GOLD bonus, a wider decade bonus and a new rule: a
#: change that moves awards both ways, grants a benefit to more customers, and qualifies some.
AIRLINE_CHANGES = (
    ('"GOLD" -> 100%', '"GOLD" -> 75%'),
    ("rule loyal_for_a_decade when tenure >= 10:", "rule loyal_for_a_decade when tenure >= 8:"),
    ("  cap miles at 25000",
     '  rule first_class_platinum when event.cabin == "first" and tenure >= 5:\n'
     '    qualify for "PLATINUM"\n\n  cap miles at 25000'),
)


def without_counters(directory: Path) -> Path:
    """``directory`` less the policies that declare counters (and their tests): a programme
    whose replay streams in bounded chunks and may take the columnar engine. A programme with
    counters replays each customer's events in time order from one chunk on the row path."""
    for policy in directory.rglob("*.policy"):
        if re.search(r"^\s*counter ", policy.read_text(encoding="utf-8"), re.M):
            policy.unlink()
            policy.with_name(policy.stem + ".test.toml").unlink(missing_ok=True)
    return directory


def changed_policies(into: Path) -> Path:
    """A copy of the bundled policies at ``into`` with :data:`AIRLINE_CHANGES` applied."""
    for source in POLICIES_DIR.rglob("*"):
        target = into / source.relative_to(POLICIES_DIR)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    policy = into / "airline" / "earn_miles.policy"
    text = policy.read_text(encoding="utf-8")
    for old, new in AIRLINE_CHANGES:
        assert old in text, old
        text = text.replace(old, new)
    policy.write_text(text, encoding="utf-8")
    (into / "airline" / "earn_miles.test.toml").unlink()  # its expectations are the old ones
    return into


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A request mapping as dotted columns; list elements numbered from 0."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            out.update(flatten(item, name + "."))
        elif isinstance(item, list):
            for i, element in enumerate(item):
                if isinstance(element, Mapping):
                    out.update(flatten(element, f"{name}.{i}."))
                else:
                    out[f"{name}.{i}"] = element
        else:
            out[name] = item
    return out


def airline_requests_stream(n: int, seed: int = 20260301, batch: int = 50_000
                            ) -> Iterator[list[dict[str, Any]]]:
    """``n`` airline requests in batches (each batch its own customers: about 3,000 per 10,000)."""
    done = 0
    while done < n:
        size = min(batch, n - done)
        pairs = raw_airline_pairs(size, seed + done)
        requests = [request_mapping(c, e) for c, e in pairs]
        if done:  # ids unique across batches
            for r in requests:
                r["customer"]["id"] = f"{r['customer']['id']}-{done}"
                r["event"]["id"] = f"{r['event']['id']}-{done}"
        yield requests
        done += size


def write_history(path: Path, batches: Iterable[list[dict[str, Any]]]) -> Path:
    """Write request batches to ``path`` in the form its suffix names."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        with path.open("wb") as f:
            for requests in batches:
                f.write(b"".join(orjson.dumps(r) + b"\n" for r in requests))
        return path
    batches = iter(batches)
    first = [flatten(r) for r in next(batches)]
    # Every column any row of the first batch has; later rows must fit them (the generator's do).
    columns = sorted({k for row in first for k in row})
    if suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for rows in _chain(first, batches):
                writer.writerows([_csv_cell(row.get(c)) for c in columns] for row in rows)
        return path
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {c: pa.bool_() if c.endswith(".partner") else pa.string() for c in columns}
    schema = pa.schema([(c, types[c]) for c in columns])
    with pq.ParquetWriter(path, schema) as writer:
        for rows in _chain(first, batches):
            writer.write_table(pa.Table.from_pylist(
                [{c: row.get(c) for c in columns} for row in rows], schema=schema))
    return path


def _chain(first: list[dict[str, Any]], rest: Iterator[list[dict[str, Any]]]
           ) -> Iterator[list[dict[str, Any]]]:
    yield first
    for requests in rest:
        yield [flatten(r) for r in requests]


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


if __name__ == "__main__":
    out, count = Path(sys.argv[1]), int(sys.argv[2])
    write_history(out, airline_requests_stream(count))
    print(f"{out}: {count} events")
