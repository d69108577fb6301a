"""The embedded backend: one SQLite file in WAL mode, one writer at a time.

``BEGIN IMMEDIATE`` takes the database's write lock before the first read, so every apply
sees the counters no other writer can change until it commits (threads and processes alike;
a waiting writer waits up to the busy timeout, then gets ``StateUnavailable``). Each thread
keeps its own connection. Amounts are stored as their exact text and summed in Python
Decimals by the ``dsum`` aggregate; instants as integer microseconds since the epoch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import fcntl
import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from service.state.api import (
    Amount,
    StateUnavailable,
    StateWriteFailed,
    Window,
    amount_text,
    parse_amount,
)
from service.state.migrate import latest, migrations
from service.state.sql import SqlStore, Statements

#: How long a writer waits for another to commit before ``StateUnavailable``, in seconds.
BUSY_TIMEOUT_S = 10.0
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
# Wide enough that no sum of bounded amounts (18 + 9 digits) is ever rounded; Inexact traps.
_SUM_CONTEXT = decimal.Context(prec=80, traps=[decimal.Inexact, decimal.InvalidOperation])


class _DecimalSum:
    """``dsum(amount)``: the exact sum of decimal texts (SQLite's SUM would use binary floats)."""

    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, text: str) -> None:
        self.total = _SUM_CONTEXT.add(self.total, Decimal(text))

    def finalize(self) -> str:
        return str(self.total)


class _WriterLock:
    """Writers take turns here before ``BEGIN IMMEDIATE``: threads on a lock, processes (the
    workers of ``loyalty serve --workers N``) on an ``flock`` of ``<file>.lock``.

    SQLite's own busy handler makes a waiting writer sleep in growing steps (up to 100 ms), so
    with two workers a write that could start at once waited tens of milliseconds; here the
    next writer goes when the lock is released (threads at once, processes within about a
    millisecond). Past ``timeout_s`` the store raises ``StateUnavailable``, as SQLite's busy
    timeout does. Where the lock file cannot be made (a read-only directory), processes fall
    back to SQLite's busy handler; a process that dies holding the lock releases it.
    """

    def __init__(self, path: Path, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._threads = threading.Lock()
        self._path = Path(f"{path}.lock")
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int | None:
        if self._pid != os.getpid():  # opened in this process: a descriptor must not cross a fork
            self._pid = os.getpid()
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError:
                self._fd = None
        return self._fd

    def __enter__(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        if not self._threads.acquire(timeout=self.timeout_s):
            raise StateUnavailable(f"another writer held the state file for {self.timeout_s:g} s")
        try:
            fd = self._file()
            if fd is None:
                return
            pause = 0.0002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StateUnavailable(
                            f"another process held the state file for {self.timeout_s:g} s") from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.001)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if self._fd is not None and self._pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


class _SqliteStatements(Statements):
    window_sums = (
        "SELECT customer_id, dsum(amount) FROM entries WHERE customer_id IN (SELECT value FROM json_each(?)) "
        "AND counter = ? AND at >= ? AND at < ? GROUP BY customer_id"
    )
    windows_sum = (
        "SELECT (SELECT dsum(amount) FROM entries WHERE customer_id = ? "
        "AND counter = json_extract(w.value, '$[0]') AND at >= json_extract(w.value, '$[1]') "
        "AND at < json_extract(w.value, '$[2]')) FROM json_each(?) AS w ORDER BY w.key"
    )
    events_by_ids = (
        "SELECT event_id, customer_id, body_digest, decision FROM events "
        "WHERE event_id IN (SELECT value FROM json_each(?))"
    )
    customer_events = (
        "SELECT event_id, customer_id, body_digest, decision FROM events WHERE customer_id = ? ORDER BY rowid"
    )
    event_reversals = (
        "SELECT reversal_id, event_id, decision FROM reversals WHERE event_id = ? ORDER BY rowid"
    )
    lock_customer = "INSERT INTO customers (customer_id) VALUES (?) ON CONFLICT DO NOTHING"


class SqliteStore(SqlStore):
    """The state store in one SQLite file (created with its directory if absent)."""

    backend = "sqlite"
    sql = _SqliteStatements

    def __init__(self, path: str | Path, *, migrate_to: int | None = None,
                 busy_timeout_s: float = BUSY_TIMEOUT_S, synchronous: str = "full") -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous is 'full' or 'normal', not {synchronous!r}")
        #: SQLite's ``synchronous``: "full" flushes every commit to the disk; "normal" (WAL)
        #: flushes at checkpoints, so a power loss may lose the last commits (a crash of the
        #: process loses nothing).
        self.synchronous = synchronous
        self._local = threading.local()
        self._writer = _WriterLock(self.path, busy_timeout_s)
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateUnavailable(f"cannot create the state directory {self.path.parent}: {exc}") from exc
        # The first connection turns a new file to WAL, which needs the file to itself: SQLite
        # answers "database is locked" at once, without its busy handler, to a second process
        # doing the same (the workers of ``serve --workers N`` open one new file together).
        with self._writer:
            self._connection()
        self._migrate(latest(self.backend) if migrate_to is None else migrate_to)

    # -- connections ----------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                try:
                    conn = self._connect(self.path)
                except sqlite3.OperationalError:
                    if not self._on_read_only_filesystem():
                        raise
                    # A WAL file on a read-only filesystem cannot get its shared-memory file;
                    # opened immutable it still answers reads, and every write is refused
                    # (SQLITE_READONLY, StateWriteFailed).
                    conn = self._connect(f"file:{urllib.parse.quote(str(self.path))}?mode=ro&immutable=1")
            except sqlite3.Error as exc:
                raise self._translate(exc) or exc from exc
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def _connect(self, target: str | Path) -> sqlite3.Connection:
        conn = sqlite3.connect(target, timeout=self.busy_timeout_s, isolation_level=None,
                               check_same_thread=False, uri=isinstance(target, str))
        try:
            conn.create_aggregate("dsum", 1, _DecimalSum)
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode not in ("wal", "off"):  # "off": immutable, read-only
                conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a commit survives a power loss, not only a crash of the process. NORMAL
            # (chosen in the URL) keeps it through a crash of the process only.
            conn.execute("PRAGMA synchronous = FULL" if self.synchronous == "full"
                         else "PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _on_read_only_filesystem(self) -> bool:
        try:
            return self.path.exists() and bool(os.statvfs(self.path.parent).f_flag & os.ST_RDONLY)
        except OSError:
            return False

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        conn = self._connection()
        cur = conn.cursor()
        with self._writer:
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise
            try:
                cur.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise

    @contextlib.contextmanager
    def _read(self, snapshot: bool = True) -> Iterator[sqlite3.Cursor]:
        conn = self._connection()
        cur = conn.cursor()
        if not snapshot:  # one statement: its own snapshot
            yield cur
            return
        cur.execute("BEGIN")  # one snapshot for every read of the operation
        try:
            yield cur
        finally:
            if conn.in_transaction:
                conn.rollback()

    def close(self) -> None:
        """Close every thread's connection."""
        with self._all_lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()

    # -- schema ---------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The version the file's schema is at (0 for a new file)."""
        cur = self._connection().cursor()
        cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
        if cur.fetchone() is None:
            return 0
        cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return int(cur.fetchone()[0])

    def _migrate(self, target: int) -> None:
        try:
            if self.schema_version() >= target:
                return  # nothing to write: a read-only file at the latest version opens
            with self._transaction() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS schema_version "
                            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL)")
                cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
                current = int(cur.fetchone()[0])
                for migration in migrations(self.backend)[current:target]:
                    for statement in migration.statements():
                        cur.execute(statement)
                    cur.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)",
                                (migration.version, migration.name))
        except sqlite3.Error as exc:
            raise self._translate(exc) or exc from exc

    # -- dialect --------------------------------------------------------------------------

    def _lock_customers(self, db: Any, customer_ids: Sequence[str]) -> None:
        # BEGIN IMMEDIATE already holds the one write lock; the rows are for the schema.
        db.executemany(self.sql.lock_customer, [(c,) for c in customer_ids])

    def _translate(self, exc: Exception) -> Exception | None:
        if not isinstance(exc, sqlite3.Error):
            return None
        name = getattr(exc, "sqlite_errorname", "") or ""
        where = f"state file {self.path}"
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StateUnavailable(f"{where} is locked by another writer (a write waits up to "
                                    f"{self.busy_timeout_s:g} s): {exc}")
        if name.startswith("SQLITE_READONLY"):
            return StateWriteFailed(f"{where} is read-only: {exc}")
        if name == "SQLITE_FULL":
            return StateWriteFailed(f"{where}: the disk is full: {exc}")
        if name.startswith("SQLITE_IOERR"):
            return StateWriteFailed(f"{where}: input/output error: {exc}")
        if name.startswith(("SQLITE_CANTOPEN", "SQLITE_NOTADB", "SQLITE_CORRUPT", "SQLITE_PERM")):
            return StateUnavailable(f"{where} cannot be used: {exc}")
        return None

    def _at_param(self, at: dt.datetime) -> int:
        return (at - _EPOCH) // _MICROSECOND

    def _at_value(self, value: Any) -> dt.datetime:
        return _EPOCH + dt.timedelta(microseconds=int(value))

    def _amount_param(self, amount: Amount) -> str:
        return amount_text(amount)

    def _amount_value(self, value: Any) -> Amount:
        return parse_amount(value)

    def _sum_value(self, value: Any) -> Decimal:
        return Decimal(value) if value is not None else Decimal(0)

    def _ids_param(self, ids: Sequence[str]) -> str:
        return json.dumps(list(ids))

    def _windows_params(self, customer_id: str, windows: Sequence[Window]) -> tuple[Any, ...]:
        at = self._at_param
        return customer_id, json.dumps([[w.counter, at(w.start), at(w.end)] for w in windows])
