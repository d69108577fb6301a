"""Customer state: applied events by id, counter entries, reversals; one interface, two backends.

``open_store(url)`` opens (and migrates) the store a URL names:

- a path or ``sqlite:///path``: an embedded SQLite file, the default; every commit is
  flushed to the disk (``synchronous=FULL``). ``sqlite:///path?synchronous=normal`` chooses
  SQLite's NORMAL in WAL mode instead: a crash of the process or a ``kill -9`` still loses
  nothing, but a power loss or an operating-system crash may lose the last commits (never
  half of one); the file stays consistent (docs/state.md, "Durability");
- ``postgresql://...`` (or ``postgres://``): PostgreSQL, for many replicas.

Without a URL the service keeps its state in ``state.sqlite3`` under the data directory:
``$LOYALTY_DATA_DIR`` when it is set, else ``./data`` (relative to the working directory).
"""

from __future__ import annotations

import os
import urllib.parse
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
#: What ``sqlite:///path?synchronous=`` may choose: SQLite's own FULL (the default) or NORMAL.
SYNCHRONOUS = ("full", "normal")


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
    synchronous = "full"
    if text.startswith("sqlite://"):
        text, _, query = text.removeprefix("sqlite://").partition("?")
        if not text:
            raise InvalidStateInput("state", "sqlite:// needs a path: sqlite:///path/to/state.sqlite3")
        for name, values in urllib.parse.parse_qs(query, keep_blank_values=True).items():
            if name != "synchronous" or len(values) != 1 or values[0].lower() not in SYNCHRONOUS:
                raise InvalidStateInput("state", f"unknown SQLite setting {name}={','.join(values)!r}: "
                                        "the one setting is synchronous=full (the default) or "
                                        "synchronous=normal")
            synchronous = values[0].lower()
    from service.state.sqlite import SqliteStore

    return SqliteStore(text, migrate_to=migrate_to, synchronous=synchronous)
