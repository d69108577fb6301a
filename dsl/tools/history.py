"""Recorded histories of requests, read in bounded batches: JSON-lines, CSV and Parquet.

A history is what backends sent the service, one ``EvaluateRequest`` body per event, in
the proto3 JSON mapping of the request (docs/language.md, "Requests"). The three forms
carry the same text:

- **JSON-lines** (``.jsonl``, ``.ndjson``, ``.json``): one request body a line, exactly
  as ``loyalty diff --cases`` reads it (``customer``, ``event``, and optionally
  ``onlyPolicies``, ``explain`` and ``name``).
- **CSV** (``.csv``) and **Parquet** (``.parquet``, ``.pq``): one request a row, one column
  per field, named by its request path with dots: ``customer.id``, ``customer.memberSince``,
  ``customer.lifetime.miles``, ``event.time``, ``event.flight.origin``,
  ``customer.attributes.home_store.stringValue``. A repeated field's elements are numbered
  from 0: ``event.purchase.items.0.sku``, ``event.purchase.items.1.sku``; a row with fewer
  elements leaves the later columns empty. An empty cell (CSV) or null (Parquet) is a field
  left out. Parquet may also hold nested columns (a struct column ``customer``, a list
  column ``event.purchase.items``); Parquet's own timestamp, date and decimal values are
  read as their JSON text.

Nothing here decodes a request: :mod:`dsl.tools.replay` sends every row through the policy
set's :class:`~dsl.input.request.MappingDecoder`, the one place input bounds are enforced.
This module only cuts a file into :class:`Chunk` values small enough to ship to a worker
process (raw lines, or an Arrow record batch), so a history of any size is read in
bounded memory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FORMATS", "MAX_LINE_BYTES", "Chunk", "HistoryError", "chunks", "columns_problems",
           "detect_format", "history_size"]

#: The forms a history may take, by the file name's suffix.
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
           ".parquet": "parquet", ".pq": "parquet"}

#: Rows per chunk by default: big enough that shipping a chunk to a worker costs little
#: beside evaluating it, small enough that a worker's memory for one chunk (its columns as
#: Python values, the chunk's customer cache and sums: about 20 MB at 10,000 airline rows)
#: and the few chunks in flight stay small.
CHUNK_ROWS = 10_000
#: The longest JSON line read: the most a request may be, the service's message limit
#: (service.server.DEFAULT_MAX_MESSAGE_BYTES). A longer line is refused while it is read,
#: a piece at a time, before any JSON parsing: one 300 MB line once took 1.6 GiB.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: The most bytes of lines one JSON-lines chunk holds: with lines up to MAX_LINE_BYTES,
#: CHUNK_ROWS lines alone could be gigabytes.
CHUNK_BYTES = 32 * 1024 * 1024
#: What a long line is read in.
_PIECE = 1024 * 1024


class HistoryError(ValueError):
    """A history that cannot be read at all (missing, unknown form, bad columns)."""


@dataclass(frozen=True)
class Chunk:
    """Consecutive requests of one history, as shipped to a worker.

    ``number`` orders chunks within the history; ``first`` is the first request's line
    (JSON-lines) or row (CSV, Parquet: data rows from 1). JSON-lines chunks carry their
    raw ``lines`` (blank lines included, so positions stay true); columnar chunks carry an
    Arrow ``batch`` whose column names are request paths.
    """

    file: str
    number: int
    first: int
    form: str
    lines: list[bytes] | None = None
    batch: Any = None  # pyarrow.RecordBatch
    #: JSON lines longer than MAX_LINE_BYTES: (offset in the chunk, bytes). Their ``lines``
    #: entry is empty; they were never held whole.
    oversized: tuple[tuple[int, int], ...] = ()

    @property
    def rows(self) -> int:
        """How many lines or rows the chunk spans."""
        return len(self.lines) if self.lines is not None else self.batch.num_rows

    @property
    def size(self) -> int:
        """What progress counts for this chunk: bytes (JSON-lines) or rows."""
        if self.lines is not None:
            return sum(len(line) for line in self.lines) + sum(size for _, size in self.oversized)
        return int(self.batch.num_rows)


def detect_format(path: Path, given: str | None = None) -> str:
    """``jsonl``, ``csv`` or ``parquet``: ``given``, or from the file name's suffix."""
    if given:
        return given
    form = FORMATS.get(path.suffix.lower())
    if form is None:
        known = ", ".join(sorted(FORMATS))
        raise HistoryError(f"{path}: cannot tell the history's form from its name (one of {known}); "
                           f"give --input-format jsonl, csv or parquet")
    return form


def history_size(path: Path, form: str) -> int:
    """The total :attr:`Chunk.size` of a history, for a progress bar: bytes, or rows."""
    if form == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    return path.stat().st_size


def chunks(path: Path, form: str, rows: int = CHUNK_ROWS, whole: bool = False) -> Iterator[Chunk]:
    """The history at ``path`` cut into chunks of about ``rows`` requests, in file order.

    ``whole``: the history as one chunk, whatever its size (a replay with counters needs each
    customer's events together, in time order; its memory is then the history's).

    Raises :class:`HistoryError` (before yielding anything) when the file cannot be
    opened or its columns are not request paths.
    """
    if not path.is_file():
        raise HistoryError(f"{path}: no such file")
    if whole:
        rows = 2**62
    if form == "jsonl":
        return _jsonl_chunks(path, rows, 2**62 if whole else None)
    if form == "csv":
        return _csv_chunks(path, rows)
    if form == "parquet":
        return _parquet_chunks(path, rows)
    raise HistoryError(f"{path}: unknown history form {form!r} (jsonl, csv or parquet)")


def _jsonl_chunks(path: Path, rows: int, max_bytes: int | None) -> Iterator[Chunk]:
    max_bytes = CHUNK_BYTES if max_bytes is None else max_bytes  # read at call time (tests lower it)
    def read() -> Iterator[Chunk]:
        with path.open("rb") as f:
            number, first, lines, held = 0, 1, [], 0
            oversized: list[tuple[int, int]] = []
            while True:
                line, size = _bounded_line(f)
                if not size:
                    break
                if line is None:
                    oversized.append((len(lines), size))
                    line = b""
                lines.append(line)
                held += len(line)
                if len(lines) >= rows or held >= max_bytes:
                    yield Chunk(str(path), number, first, "jsonl", lines=lines,
                                oversized=tuple(oversized))
                    number, first, lines, held, oversized = number + 1, first + len(lines), [], 0, []
            if lines:
                yield Chunk(str(path), number, first, "jsonl", lines=lines, oversized=tuple(oversized))

    return read()


def _bounded_line(f: Any) -> tuple[bytes | None, int]:
    """The next line of ``f`` and its size; None for a line past MAX_LINE_BYTES, which is
    read through a piece at a time and dropped. (b"", 0) at the end of the file."""
    pieces: list[bytes] = []
    size = 0
    while True:
        piece = f.readline(_PIECE)
        if not piece:
            break
        size += len(piece)
        if size <= MAX_LINE_BYTES:
            pieces.append(piece)
        else:
            pieces.clear()
        if piece.endswith(b"\n"):
            break
    if size > MAX_LINE_BYTES:
        return None, size
    return b"".join(pieces), size


def columns_problems(names: list[str]) -> list[str]:
    """What is wrong with a columnar history's column names (empty when they are usable)."""
    problems = []
    for name in names:
        head = name.split(".", 1)[0]
        if head not in ("customer", "event"):
            problems.append(f"column {name!r}: a column is a request path starting with "
                            f"customer. or event. (for example customer.id, event.flight.origin)")
        elif any(not part for part in name.split(".")):
            problems.append(f"column {name!r}: an empty step in the path")
    given = set(names)
    for name in names:
        parts = name.split(".")
        for end in range(1, len(parts)):
            prefix = ".".join(parts[:end])
            if prefix in given and end > 1:
                problems.append(f"column {prefix!r} holds a value and column {name!r} a field "
                                f"inside it: keep one of them")
    if len(given) != len(names):
        problems.append("a column name is given twice")
    if not any(n.split(".", 1)[0] == "customer" for n in names):
        problems.append("no customer columns (customer.id, customer.memberSince, ...)")
    if not any(n.split(".", 1)[0] == "event" for n in names):
        problems.append("no event columns (event.id, event.time, event.flight.origin, ...)")
    return problems


def _check_columns(path: Path, names: list[str]) -> None:
    problems = columns_problems(names)
    if problems:
        raise HistoryError("\n".join(f"{path}: {p}" for p in problems))


def _csv_chunks(path: Path, rows: int) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        with path.open(newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
    except UnicodeDecodeError:
        raise HistoryError(f"{path}: not UTF-8 text") from None
    _check_columns(path, header)
    # Every cell is read as text, as the proto3 JSON mapping would carry it (64-bit numbers and
    # decimals are strings there too); dsl.tools.replay turns "true"/"false" into booleans where the
    # schema has a bool. An empty cell is a field left out.
    convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in header},
                                   strings_can_be_null=True, null_values=[""],
                                   quoted_strings_can_be_null=False)
    read = pacsv.ReadOptions(block_size=1 << 22)

    def batches() -> Iterator[Chunk]:
        try:
            reader = pacsv.open_csv(path, read_options=read, convert_options=convert)
        except pa.ArrowInvalid as exc:
            raise HistoryError(f"{path}: not a CSV history: {exc}") from None
        yield from _rebatch(path, "csv", _arrow_batches(path, reader), rows)

    return batches()


def _arrow_batches(path: Path, reader: Any) -> Iterator[Any]:
    import pyarrow as pa

    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:  # a ragged row, bad quoting
            raise HistoryError(f"{path}: cannot read the CSV: {exc}") from None
        yield batch


def _parquet_chunks(path: Path, rows: int) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # Read a column chunk through a 1 MB buffer rather than pre-buffering whole row
        # groups: Arrow's pool then holds about 2 MB instead of 30 to 50 (measured on a
        # million-row history of 3,000-row groups).
        file = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    except (pa.ArrowInvalid, OSError) as exc:
        raise HistoryError(f"{path}: not a Parquet file: {exc}") from None
    _check_columns(path, list(file.schema_arrow.names))
    # One thread: decoding a chunk's columns on Arrow's pool costs a third more CPU (96 against
    # 72 ms for 200,000 airline rows), and a replay already runs one process per core.
    return _rebatch(path, "parquet", file.iter_batches(batch_size=rows, use_threads=False), rows)


def _rebatch(path: Path, form: str, batches: Iterator[Any], rows: int) -> Iterator[Chunk]:
    """Arrow batches regrouped into chunks of ``rows`` rows (CSV blocks vary in size)."""
    number, first = 0, 1
    for batch in batches:
        for start in range(0, batch.num_rows, rows):
            piece = batch.slice(start, rows)
            yield Chunk(str(path), number, first, form, batch=piece)
            number, first = number + 1, first + piece.num_rows
