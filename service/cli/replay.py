"""``loyalty replay OLD NEW HISTORY``: what changing the policies would have done to a recorded history.

The history (JSON-lines, CSV or Parquet; see :mod:`dsl.tools.history`) is read in chunks and
every event is evaluated with both policy sets, on every local core by default
(``--jobs N``), or on a Dask cluster (``--dask ADDRESS``, or ``--dask local`` for a
cluster of local processes). Workers load both sets once and return each chunk's
figures, which the parent merges (:class:`dsl.tools.replay.Replay`); at most two chunks per
worker are in flight, so memory stays bounded whatever the history's size. A history with
counters is replayed in partitions by customer instead (:func:`replay_partitioned`): each
worker reads the file and keeps one partition's customers, whose events it replays in time
order.

The report: events and distinct customers whose decision changed; per currency the
totals before and after, the distribution of per-customer deltas (percentiles, the top
gainers and losers by id); tier and benefit transitions; the rules whose hit counts
changed; when a side's currencies expire or its tiers are earned, the points that would have
expired and the customers whose tier differs at each window's end, judged at ``--as-of``
(default: the history's last event time, found by a first pass over the event times;
:mod:`dsl.tools.replay_ledger`). As text (default), ``--format json``, and ``--html FILE``
(one self-contained file with plots). Exit status: 0 nothing changed, 1 some decision (or
the expiry or a tier status) changed, 2 an error (policies that do not load, an unreadable
history, or rows that are not requests; those
rows are listed with their line or row and field, and the report covers the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from pathlib import Path
from typing import Any

from dsl import PolicySet
from dsl.policyset import build
from dsl.programme import digest_names, sources_for
from dsl.schema.schema import parse_datetime
from dsl.tools.history import CHUNK_ROWS, Chunk, HistoryError, chunks, detect_format, history_size
from dsl.tools.replay import Replay, in_order, replay_chunk, replay_partition
from dsl.tools.replay_ledger import last_event_time, needs_ledger

from ._load import load

SAME, DIFFERENT, TROUBLE = 0, 1, 2


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``replay`` verb."""
    p = subparsers.add_parser(
        "replay", help="replay a recorded history through the OLD and NEW policies",
        description="Evaluate every event of a recorded history (JSON-lines, CSV or Parquet) "
                    "with the OLD and the NEW policies and report who the change affects. "
                    "Exit status: 0 same, 1 different, 2 error.")
    p.add_argument("old", metavar="OLD", help="the policies as they are (directory or file)")
    p.add_argument("new", metavar="NEW", help="the policies as they would be")
    p.add_argument("history", metavar="HISTORY",
                   help="the recorded requests: .jsonl, .csv or .parquet (see docs/language.md, "
                        "Replaying a history)")
    p.add_argument("--input-format", choices=("jsonl", "csv", "parquet"),
                   help="the history's form (default: from its suffix)")
    p.add_argument("--jobs", type=int, default=0, metavar="N",
                   help="worker processes (default: every local core; 1 runs in this process)")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run on a Dask cluster: its scheduler address (tcp://host:8786), or "
                        "'local' for a local cluster of --jobs processes")
    p.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS, metavar="N",
                   help=f"requests per chunk sent to a worker (default {CHUNK_ROWS})")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text for people (default) or json for machines")
    p.add_argument("--html", metavar="FILE",
                   help="also write the report as one self-contained HTML file with plots")
    p.add_argument("--as-of", metavar="TIME",
                   help="when a side's currencies expire or its tiers are earned: the instant the "
                        "expiry and tier status figures are judged at, RFC 3339 "
                        "(default: the history's last event time)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none anyway when stderr is not a terminal)")
    p.set_defaults(run=run)


#: What ``loyalty replay`` imports beyond the service: the ``replay`` extra.
REPLAY_EXTRA = ("pyarrow", "tqdm", "matplotlib")


def missing_extra(html: bool) -> list[str]:
    """The replay extra's packages this installation lacks (matplotlib only matters for --html)."""
    import importlib.util

    def absent(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except (ImportError, ValueError):  # a broken installation is as good as none
            return True

    return [name for name in REPLAY_EXTRA if (html or name != "matplotlib") and absent(name)]


def run(args: argparse.Namespace) -> int:
    """Replay, print the report, and return the exit status."""
    missing = missing_extra(bool(args.html))
    if missing:  # the slim runtime image, or a plain `pip install loyalty-rules`
        print(f"loyalty replay: needs {', '.join(missing)}, from the replay extra, which this "
              "installation leaves out: pip install 'loyalty-rules[replay]'", file=sys.stderr)
        return TROUBLE
    old, new = load(Path(args.old), "replay"), load(Path(args.new), "replay")
    if not isinstance(old, PolicySet) or not isinstance(new, PolicySet):
        return TROUBLE
    if args.jobs < 0 or args.chunk_rows < 1:
        print("loyalty replay: --jobs must be 0 (every core) or more, --chunk-rows 1 or more",
              file=sys.stderr)
        return TROUBLE
    as_of: datetime | None = None
    if args.as_of is not None:
        try:
            as_of = parse_datetime(args.as_of)
        except ValueError as exc:
            print(f"loyalty replay: --as-of: {exc}", file=sys.stderr)
            return TROUBLE
    path = Path(args.history)
    try:
        form = detect_format(path, args.input_format)
        if as_of is None and (needs_ledger(old) or needs_ledger(new)):
            # Expiry and tier status are judged at one instant for every chunk: the history's
            # last event time, found by a pass over its event times before the replay.
            as_of = last_event_time(chunks(path, form, args.chunk_rows))
        # With counters (or anniversary years), each customer's events must meet their own
        # earlier ones in time order (dsl.tools.replay.replay_chunk): the whole history is one chunk.
        stateful = in_order(old) or in_order(new)
        # On local processes they are partitioned by customer instead, each partition
        # replaying its customers whole (replay_partitioned); Dask still takes one chunk.
        stream = chunks(path, form, args.chunk_rows, whole=stateful and bool(args.dask))
        shown = not args.no_progress and sys.stderr.isatty()  # a bar to size (a pass over a CSV)
        total = (csv_rows(path) if form == "csv" else history_size(path, form)) if shown else 0
    except HistoryError as exc:
        print(f"loyalty replay: {exc}", file=sys.stderr)
        return TROUBLE
    jobs = args.jobs or os.cpu_count() or 1
    _lean_arrow()
    started = time.perf_counter()
    try:
        with _progress(total, form, disabled=args.no_progress) as bar:
            if args.dask:
                result = replay_on_dask(args.old, args.new, stream, args.dask, jobs, bar.update,
                                        as_of=as_of)
            elif stateful:
                result = replay_partitioned(args.old, args.new, path, form, args.chunk_rows, jobs,
                                            partitions_for(path, form, jobs), bar.update, (old, new),
                                            size=total, as_of=as_of)
            else:
                result = replay_locally(args.old, args.new, stream, jobs, bar.update, (old, new),
                                        as_of=as_of)
    except HistoryError as exc:
        print(f"loyalty replay: {exc}", file=sys.stderr)
        return TROUBLE
    except _EngineMissing as exc:
        print(f"loyalty replay: {exc}", file=sys.stderr)
        return TROUBLE
    except BrokenProcessPool:
        print("loyalty replay: a worker process died (out of memory?); try fewer --jobs or "
              "smaller --chunk-rows", file=sys.stderr)
        return TROUBLE
    except OSError as exc:  # a Dask scheduler that cannot be reached, a file that went away
        print(f"loyalty replay: {exc}", file=sys.stderr)
        return TROUBLE
    seconds = time.perf_counter() - started
    from .replay_report import render_html, render_text

    if args.format == "json":
        print(json.dumps({
            "differs": result.differs,
            "old": {"path": args.old, "revision": old.revision},
            "new": {"path": args.new, "revision": new.revision},
            "history": {"path": args.history, "format": form},
            **result.to_dict(),
        }, indent=2))
    else:
        print("\n".join(render_text(result, args.old, old.revision, args.new, new.revision,
                                    args.history, seconds)))
    if args.html:
        try:
            Path(args.html).write_text(render_html(result, args.old, old.revision, args.new,
                                                   new.revision, args.history), encoding="utf-8")
        except OSError as exc:
            print(f"loyalty replay: {args.html}: cannot write the report: "
                  f"{(exc.strerror or str(exc)).lower()}", file=sys.stderr)
            return TROUBLE
    if result.bad_rows:
        for problem in result.to_dict()["problems"]:
            print(problem, file=sys.stderr)
        more = result.bad_rows - len(result.problems)
        if more > 0:
            print(f"... and {more} more", file=sys.stderr)
        print(f"loyalty replay: {result.bad_rows} row{'s' if result.bad_rows != 1 else ''} of "
              f"{args.history} are not valid requests; the report leaves them out",
              file=sys.stderr)
        return TROUBLE
    return DIFFERENT if result.differs else SAME


# -- workers ------------------------------------------------------------------------------------

#: (old path, new path) -> the two sets, loaded once per worker process.
_SETS: dict[tuple[str, str], tuple[PolicySet, PolicySet]] = {}


def _sets(old: str, new: str) -> tuple[PolicySet, PolicySet]:
    key = (old, new)
    sets = _SETS.get(key)
    if sets is None:
        loaded = []
        for path in (Path(old), Path(new)):
            schema, sources = sources_for(path)
            loaded.append(build(sources, schema, digest_names(path)))
        sets = _SETS[key] = (loaded[0], loaded[1])
    return sets


def _lean_arrow() -> None:
    """Arrow's buffers from the C library's allocator, in this process and the workers it forks.

    Arrow's default pool (mimalloc) keeps what it freed: reading a Parquet history grew the
    reading process by about 44 MB against 17 MB with the system allocator, for the same
    5 MB of live Arrow buffers. Replay's Arrow work is small beside evaluation, so the
    allocator's speed does not show.
    """
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


def run_chunk(old: str, new: str, chunk: Chunk, as_of: datetime | None = None) -> Replay:
    """One chunk's figures, in a worker: the sets at ``old`` and ``new`` are loaded once."""
    return replay_chunk(*_sets(old, new), chunk, as_of=as_of)


#: How much of a history with counters one partition holds, about (its rows stay decoded until
#: its customers are replayed): bytes of a JSON-lines or CSV file, rows of a Parquet one.
PARTITION_BYTES = 64 * 1024 * 1024
PARTITION_ROWS = 200_000


def partitions_for(path: Path, form: str, jobs: int) -> int:
    """How many partitions a history with counters is replayed in: one per job at least, and
    enough that none holds much more than PARTITION_BYTES (or PARTITION_ROWS)."""
    per = PARTITION_ROWS if form == "parquet" else PARTITION_BYTES
    return max(jobs, -(-history_size(path, form) // per))


def run_partition(old: str, new: str, path: str, form: str, chunk_rows: int, part: int,
                  parts: int, as_of: datetime | None = None) -> Replay:
    """One partition's figures, in a worker: it reads the history in its bounded chunks and
    keeps only its own customers' rows."""
    return replay_partition(*_sets(old, new), chunks(Path(path), form, chunk_rows), part, parts,
                            as_of)


def replay_partitioned(old: str, new: str, path: Path, form: str, chunk_rows: int, jobs: int,
                       parts: int, progress: Callable[[int], Any] = lambda n: None,
                       loaded: tuple[PolicySet, PolicySet] | None = None, size: int = 0,
                       as_of: datetime | None = None) -> Replay:
    """Replay a history with counters in ``parts`` partitions by customer on ``jobs`` local
    processes (1: in this process). Each partition reads the whole file and keeps its own
    customers' events (:func:`dsl.tools.replay.replay_partition`), so a worker's memory is
    about its partition's share of the history; the figures are those of one whole chunk.
    ``progress`` gets each partition's share of ``size`` (what the bar counts) when it is done."""
    old, new = str(Path(old).resolve()), str(Path(new).resolve())
    if loaded is not None:
        _SETS[(old, new)] = loaded
    shares = [size // parts + (1 if k < size % parts else 0) for k in range(parts)]
    total = Replay()
    if jobs == 1:
        for part in range(parts):
            total.merge(run_partition(old, new, str(path), form, chunk_rows, part, parts, as_of))
            progress(shares[part])
        return total
    with ProcessPoolExecutor(max_workers=min(jobs, parts)) as pool:
        pending = {pool.submit(run_partition, old, new, str(path), form, chunk_rows, part, parts,
                               as_of):
                   shares[part] for part in range(parts)}
        _drain(pending, 0, total, progress)
    return total


def replay_locally(old: str, new: str, stream: Iterable[Chunk], jobs: int,
                   progress: Callable[[int], Any] = lambda n: None,
                   loaded: tuple[PolicySet, PolicySet] | None = None,
                   as_of: datetime | None = None) -> Replay:
    """Replay on ``jobs`` local processes (1: in this process, with ``loaded`` if given);
    ``as_of``: the instant of the ledger's figures, the same for every chunk."""
    old, new = str(Path(old).resolve()), str(Path(new).resolve())
    if loaded is not None:
        _SETS[(old, new)] = loaded
    total = Replay()
    if jobs == 1:
        for chunk in stream:
            total.merge(run_chunk(old, new, chunk, as_of))
            progress(chunk.size)
        return total
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        pending: dict[Future[Replay], int] = {}
        for chunk in _bounded(stream, pending, 2 * jobs, total, progress):
            pending[pool.submit(run_chunk, old, new, chunk, as_of)] = chunk.size
        _drain(pending, 0, total, progress)
    return total


def _bounded(stream: Iterable[Chunk], pending: dict[Future[Replay], int], limit: int,
             total: Replay, progress: Callable[[int], Any]) -> Iterator[Chunk]:
    """The chunks of ``stream``, each only once fewer than ``limit`` are in flight."""
    for chunk in stream:
        _drain(pending, limit - 1, total, progress)
        yield chunk


def _drain(pending: dict[Future[Replay], int], keep: int, total: Replay,
           progress: Callable[[int], Any]) -> None:
    while len(pending) > keep:
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for future in done:
            size = pending.pop(future)
            total.merge(future.result())
            progress(size)


class _EngineMissing(RuntimeError):
    """Dask was asked for and is not installed."""


def replay_on_dask(old: str, new: str, stream: Iterable[Chunk], address: str, jobs: int,
                   progress: Callable[[int], Any] = lambda n: None,
                   as_of: datetime | None = None) -> Replay:
    """Replay on a Dask cluster (``address``, or ``local``: a local cluster of ``jobs``
    processes). The policy directories must be readable at the same paths on every worker."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise _EngineMissing("--dask needs Dask: pip install 'loyalty-rules[dask]'") from None
    old, new = str(Path(old).resolve()), str(Path(new).resolve())
    cluster = None
    if address == "local":
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(address)
    total = Replay()
    try:
        workers = max(len(client.scheduler_info().get("workers", {})), 1)
        limit = 2 * workers
        running = as_completed()
        sizes: dict[str, int] = {}

        def collect(future: Any) -> None:
            total.merge(future.result())
            progress(sizes.pop(future.key))
            future.release()

        for chunk in stream:
            while running.count() >= limit:
                collect(next(running))
            future = client.submit(run_chunk, old, new, chunk, as_of, pure=False)
            sizes[future.key] = chunk.size
            running.add(future)
        for future in running:
            collect(future)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return total


class _Progress:
    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def csv_rows(path: Path) -> int:
    """The data rows of a CSV history, for its progress bar: its lines less the header (a quoted
    cell with a line break counts twice; the bar then ends a little short, never past 100%).

    The CSV reader's chunks count rows (:attr:`Chunk.size`), so the bar's total must be rows
    too: a total in bytes ended the bar at 1% with a 30-minute ETA (issue 15).
    """
    lines = 0
    last = b"\n"
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"  # a last line without its newline
    return max(lines - 1, 0)


def _progress(total: int, form: str, disabled: bool) -> _Progress:
    """A tqdm bar on stderr when it is a terminal, in the unit the chunks count: bytes for
    JSON lines, rows for CSV (``total`` is then :func:`csv_rows`) and Parquet."""
    if disabled or not sys.stderr.isatty():
        return _Progress(None)
    from tqdm import tqdm

    unit = "B" if form == "jsonl" else "row"
    return _Progress(tqdm(total=total, unit=unit, unit_scale=True, file=sys.stderr,
                          desc="replaying", dynamic_ncols=True))
