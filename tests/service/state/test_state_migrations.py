"""Forward-only migrations: each version is migrated from the one before with its data intact."""

from __future__ import annotations

import datetime as dt

from service.state import NewEntry, Outcome, Window, open_store
from service.state.migrate import latest, migrations

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
YEAR = Window("nights", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2027, 1, 1, tzinfo=dt.UTC))


def test_both_backends_have_the_same_numbered_migrations() -> None:
    """The same versions with the same names, numbered from 1 without gaps, at least two."""
    sqlite = [(m.version, m.name) for m in migrations("sqlite")]
    postgresql = [(m.version, m.name) for m in migrations("postgresql")]
    assert sqlite == postgresql
    assert len(sqlite) >= 2


def test_a_store_at_the_previous_version_migrates_forward_with_its_data(store_url: str, backend: str) -> None:
    """Open at N-1, write, reopen: the schema reaches N and every row reads back the same."""
    previous = latest(backend) - 1
    old = open_store(store_url, migrate_to=previous)
    try:
        assert old.schema_version() == previous  # type: ignore[attr-defined]
        old.apply("c-1", "e-1", "d", lambda r: Outcome(b"first", [NewEntry("nights", T0, 3)]))
        old.reverse("e-1", "r-1", lambda ev: Outcome(b"back", [NewEntry("nights", T0, -1)]))
        before = (old.events("c-1"), old.counter_entries("c-1"), old.sums("c-1", [YEAR]))
    finally:
        old.close()
    new = open_store(store_url)
    try:
        assert new.schema_version() == latest(backend)  # type: ignore[attr-defined]
        assert (new.events("c-1"), new.counter_entries("c-1"), new.sums("c-1", [YEAR])) == before
        assert before[2] == [2]
        assert new.apply("c-1", "e-1", "d", lambda r: Outcome(b"", [])).replayed
    finally:
        new.close()
    again = open_store(store_url)  # opening at the latest version changes nothing
    try:
        assert again.schema_version() == latest(backend)  # type: ignore[attr-defined]
    finally:
        again.close()
