"""Fixtures for the state store tests: a real SQLite file and a real PostgreSQL server.

The server (:mod:`pg_server`) is started once per session and stopped by the fixture's
finaliser. Each test gets its own schema, so tests never see each other's rows.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import PostgresMissing, PostgresServer, running_postgres

from service.state import StateStore, open_store

BACKENDS = ["sqlite", "postgresql"]
_schemas = itertools.count(1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session, stopped and removed at its end."""
    try:
        with running_postgres() as server:
            yield server
    except PostgresMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend a test runs on: every test that uses a store runs on both."""
    return str(request.param)


@pytest.fixture
def store_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """A fresh store's URL on the test's backend (a new file, or a new PostgreSQL schema)."""
    if backend == "sqlite":
        return str(tmp_path / "state.sqlite3")
    server: PostgresServer = request.getfixturevalue("postgres")
    schema = f"t{next(_schemas)}_{os.getpid()}"
    server.sql(f"CREATE SCHEMA {schema}")
    return server.url(schema)


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    """A fresh, migrated store on the test's backend, closed after the test."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()

