"""A real PostgreSQL server for tests and benchmarks, started by initdb and pg_ctl.

The server is Debian's PostgreSQL 15 (``.ci/run`` installs it when missing), in a temporary
directory, listening only on a unix socket in that directory. initdb refuses to run as
root, so as root the server runs as the ``postgres`` user the package creates.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("LOYALTY_PG_BIN", "/usr/lib/postgresql/15/bin"))
#: The port names the socket file only (``.s.PGSQL.<port>`` in the server's own directory).
PG_PORT = 5432


class PostgresMissing(RuntimeError):
    """The server binaries are not installed, or the server did not start."""


@dataclass
class PostgresServer:
    """A PostgreSQL server the session started: its directories and how to reach it."""

    root: Path
    data: Path
    user: str | None  # the unprivileged user it runs as when the tests run as root

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a server program (initdb, pg_ctl) as the server's user."""
        command = [str(PG_BIN / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=timeout)

    def url(self, schema: str | None = None) -> str:
        """A ``postgresql://`` URL over the socket, with ``schema`` first on the search path."""
        query = {"host": str(self.root), "port": str(PG_PORT)}
        if schema:
            query["options"] = f"-c search_path={schema}"
        return "postgresql://loyalty@/postgres?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                 "-o", f"-k {self.root} -p {PG_PORT} -c listen_addresses=''", "start")

    def stop(self) -> None:
        """Stop the server (fast shutdown: open transactions are rolled back)."""
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop", check=False)

    def sql(self, statement: str) -> None:
        """Run one statement as the superuser (creating a schema, say)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]  # the tests' own statements


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh server for the block; stopped and its directory removed at the end."""
    if not (PG_BIN / "initdb").exists():
        raise PostgresMissing(f"{PG_BIN}/initdb is missing: apt-get install postgresql (.ci/run does)")
    root = Path(tempfile.mkdtemp(prefix="loyalty-pg-"))
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        shutil.chown(root, user)
    server = PostgresServer(root, root / "data", user)
    try:
        server.run("initdb", "-D", str(server.data), "-U", "loyalty", "-A", "trust", "--no-sync",
                   "-E", "UTF8", "--locale", "C")
        server.start()
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresMissing(f"PostgreSQL did not start: {exc.stderr}") from exc
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
