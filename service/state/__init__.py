"""Customer state: applied events by id, counter entries, reversals; one interface, two backends.

``open_store(url)`` opens (and migrates) the store a URL names:

- a path or ``sqlite:///path``: an embedded SQLite file, the default;
- ``postgresql://...`` (or ``postgres://``): PostgreSQL, for many replicas.

Without a URL the service keeps its state in ``state.sqlite3`` under the data directory:
``$LOYALTY_DATA_DIR`` when it is set, else ``./data`` (relative to the working directory).
"""

from __future__ import annotations

import os
from pathlib import Path

from service.state.api import (
    MAX_ID_CHARS,
    AlreadyApplied,
    Amount,
    ApplyItem,
    ApplyResult,
    Entry,
    EventNotFound,
    InvalidStateInput,
    ItemResult,
    NewEntry,
    Outcome,
    Reader,
    ReverseResult,
    StateError,
    StateStore,
    StateUnavailable,
    StateWriteFailed,
    StoredEvent,
    StoredReversal,
    Window,
)

__all__ = [
    "MAX_ID_CHARS", "AlreadyApplied", "Amount", "ApplyItem", "ApplyResult", "Entry", "EventNotFound",
    "InvalidStateInput", "ItemResult", "NewEntry", "Outcome", "Reader", "ReverseResult", "StateError",
    "StateStore", "StateUnavailable", "StateWriteFailed", "StoredEvent", "StoredReversal", "Window",
    "default_url", "open_store",
]

#: The environment variable naming the service's data directory.
DATA_DIR_ENV = "LOYALTY_DATA_DIR"
#: The state file's name inside the data directory.
STATE_FILE = "state.sqlite3"


def default_url() -> str:
    """The default store: ``$LOYALTY_DATA_DIR/state.sqlite3``, else ``./data/state.sqlite3``."""
    return str(Path(os.environ.get(DATA_DIR_ENV) or "data") / STATE_FILE)


def open_store(url: str | os.PathLike[str] | None = None, *, migrate_to: int | None = None) -> StateStore:
    """Open the store ``url`` names (the default file if None), migrating it to the latest schema.

    ``migrate_to`` stops at an older schema version; it exists for the migration tests.
    """
    text = default_url() if url is None else os.fspath(url)
    if text.startswith(("postgresql://", "postgres://")):
        from service.state.postgres import PostgresStore

        return PostgresStore(text, migrate_to=migrate_to)
    if "://" in text and not text.startswith("sqlite://"):
        raise InvalidStateInput("state", f"unknown store URL {text!r}: use a path, sqlite:///path or "
                                "postgresql://...")
    if text.startswith("sqlite://"):
        text = text.removeprefix("sqlite://")
        if not text:
            raise InvalidStateInput("state", "sqlite:// needs a path: sqlite:///path/to/state.sqlite3")
    from service.state.sqlite import SqliteStore

    return SqliteStore(text, migrate_to=migrate_to)
