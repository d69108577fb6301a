"""The backend for many replicas: PostgreSQL through psycopg 3 and a connection pool.

An apply serialises on its customer: ``INSERT INTO customers ... ON CONFLICT DO NOTHING``
then ``SELECT ... FOR UPDATE`` of that row, held until commit, so two replicas applying for
the same customer take turns while other customers proceed in parallel. A transaction that
loses a race anyway (a deadlock, the same new event id under two customers) runs again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

from service.state.api import Amount, StateUnavailable, StateWriteFailed, Window, exact
from service.state.migrate import latest, migrations
from service.state.sql import Retry, SqlStore, Statements

#: How long a call waits for a pooled connection before ``StateUnavailable``, in seconds.
POOL_TIMEOUT_S = 5.0
#: Connections per store (per process); the RPC threads share them.
POOL_MAX = 8
#: Key of the advisory lock that serialises migrations between replicas starting together.
_MIGRATION_LOCK = 0x10_7A17


def _pg(statement: str) -> str:
    """A statement with psycopg's placeholders (the statements hold no other ``?``)."""
    return statement.replace("?", "%s")


class _PgStatements(Statements):
    window_sums = ("SELECT customer_id, SUM(amount) FROM entries WHERE customer_id = ANY(?) "
                   "AND counter = ? AND at >= ? AND at < ? GROUP BY customer_id")
    windows_sum = (
        "SELECT (SELECT COALESCE(SUM(amount), 0) FROM entries WHERE customer_id = ? "
        "AND counter = w.counter AND at >= w.start_at AND at < w.end_at) "
        "FROM unnest(?::text[], ?::timestamptz[], ?::timestamptz[]) WITH ORDINALITY "
        "AS w(counter, start_at, end_at, i) ORDER BY w.i"
    )
    events_by_ids = "SELECT event_id, customer_id, body_digest, decision FROM events WHERE event_id = ANY(?)"
    customer_events = (
        "SELECT event_id, customer_id, body_digest, decision FROM events WHERE customer_id = ? ORDER BY seq"
    )
    event_reversals = "SELECT reversal_id, event_id, decision FROM reversals WHERE event_id = ? ORDER BY seq"
    create_customers = (
        "INSERT INTO customers (customer_id) SELECT unnest(?::text[]) ORDER BY 1 ON CONFLICT DO NOTHING"
    )
    lock_customers = (
        "SELECT customer_id FROM customers WHERE customer_id = ANY(?) ORDER BY customer_id FOR UPDATE"
    )


for _name in [n for n in vars(Statements) if not n.startswith("_")] + [
    n for n in vars(_PgStatements) if not n.startswith("_")
]:
    setattr(_PgStatements, _name, _pg(getattr(_PgStatements, _name)))


class PostgresStore(SqlStore):
    """The state store in a PostgreSQL database named by a ``postgresql://`` URL."""

    backend = "postgresql"
    sql = _PgStatements

    def __init__(self, url: str, *, migrate_to: int | None = None, pool_max: int = POOL_MAX,
                 pool_timeout_s: float = POOL_TIMEOUT_S) -> None:
        self.url = url
        self.pool_timeout_s = pool_timeout_s
        self.pool = ConnectionPool(
            url, min_size=1, max_size=pool_max, timeout=pool_timeout_s, open=True,
            # A connection checked out after the server restarted is replaced, not handed out.
            check=ConnectionPool.check_connection,
            # Instants are read back as UTC whatever the session's TimeZone; the URL's own
            # ``options`` (a search_path, say) stay untouched.
            kwargs={"connect_timeout": max(1, int(pool_timeout_s))},
            name="loyalty-state",
        )
        try:
            self._migrate(latest(self.backend) if migrate_to is None else migrate_to)
        except BaseException:
            self.pool.close()
            raise

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    @contextlib.contextmanager
    def _read(self, snapshot: bool = True) -> Iterator[psycopg.Cursor[Any]]:
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            yield cur

    def close(self) -> None:
        """Close the pool and its connections."""
        self.pool.close()

    def schema_version(self) -> int:
        """The version the database's schema is at (0 for a new database)."""
        with self.pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass('schema_version') IS NOT NULL")
            if not cur.fetchone()[0]:  # type: ignore[index]
                return 0
            cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            return int(cur.fetchone()[0])  # type: ignore[index]

    def _migrate(self, target: int) -> None:
        try:
            with self._transaction() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                cur.execute("CREATE TABLE IF NOT EXISTS schema_version "
                            "(version integer PRIMARY KEY, name text NOT NULL)")
                cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
                current = int(cur.fetchone()[0])  # type: ignore[index]
                for migration in migrations(self.backend)[current:target]:
                    for statement in migration.statements():
                        cur.execute(statement)  # type: ignore[arg-type]  # our own files
                    cur.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s)",
                                (migration.version, migration.name))
        except (psycopg.Error, PoolTimeout) as exc:
            translated = self._translate(exc)
            if translated is None or isinstance(translated, Retry):
                raise
            raise translated from exc

    def _lock_customers(self, db: Any, customer_ids: Sequence[str]) -> None:
        ids = list(customer_ids)
        db.execute(self.sql.create_customers, (ids,))
        db.execute(self.sql.lock_customers, (ids,))

    def _translate(self, exc: Exception) -> Exception | None:
        where = "state database"
        if isinstance(exc, PoolTimeout):
            return StateUnavailable(f"{where}: no connection within {self.pool_timeout_s:g} s: {exc}")
        if not isinstance(exc, psycopg.Error):
            return None
        state = exc.sqlstate or ""
        if state in ("40001", "40P01", "23505"):
            return Retry(str(exc))
        if state == "53100":
            return StateWriteFailed(f"{where}: the disk is full: {exc}")
        if state in ("25006", "42501"):
            return StateWriteFailed(f"{where} refuses writes: {exc}")
        lost = isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        if state.startswith(("08", "57", "53")) or lost:
            return StateUnavailable(f"{where} is unavailable: {exc}")
        return None

    def _at_param(self, at: dt.datetime) -> dt.datetime:
        return at

    def _at_value(self, value: Any) -> dt.datetime:
        return value.astimezone(dt.UTC)

    def _amount_param(self, amount: Amount) -> Decimal:
        return Decimal(amount)

    def _amount_value(self, value: Any) -> Amount:
        return exact(value)

    def _sum_value(self, value: Any) -> Decimal:
        return Decimal(value)

    def _ids_param(self, ids: Sequence[str]) -> list[str]:
        return list(ids)

    def _windows_params(self, customer_id: str, windows: Sequence[Window]) -> tuple[Any, ...]:
        return (customer_id, [w.counter for w in windows], [w.start for w in windows],
                [w.end for w in windows])
