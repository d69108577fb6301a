"""Versioned, forward-only schema migrations, one directory of numbered SQL files per backend.

``migrations/<backend>/NNNN_name.sql`` runs once, in order, each in its own transaction with
its row in ``schema_version``. A file never changes once released: a change is a new file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file's statements (they hold no ``;`` inside literals), comments left out."""
        text = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return [s.strip() for s in text.split(";") if s.strip()]


def migrations(backend: str) -> list[Migration]:
    """The backend's migrations in version order; numbers must run 1, 2, 3... without gaps."""
    found = []
    for path in sorted((MIGRATIONS / backend).glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path}: a migration is named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    for expected, migration in enumerate(found, 1):
        if migration.version != expected:
            raise ValueError(f"{backend} migrations: expected version {expected}, found {migration.version}")
    return found


def latest(backend: str) -> int:
    """The version the backend's schema reaches after every migration."""
    return len(migrations(backend))
