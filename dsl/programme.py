"""A programme on disk: its root, its schema, its policy files and the names they go by.

A programme is a business's directory of policies with its ``schema.toml``. Everything
that finds and reads one (``dsl.load_directory``, every ``loyalty`` verb, the policy tests)
comes here, so a file is named, and an unreadable one reported, the same way everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

from dsl.errors import Diagnostic, PolicyError, Span
from dsl.schema.schema import Schema


def programme_root(directory: Path | str) -> Path:
    """The directory whose policies and schema a file or directory below it belongs to.

    That is the nearest directory at or above ``directory`` holding a
    ``schema.toml`` (a business's programme: its schema and every policy below
    it), or ``directory`` itself when there is none. So ``loyalty test
    policies/retail`` runs the retail tests against the whole ``policies/`` set.
    """
    start = Path(directory)
    start = start.parent if start.is_file() else start
    if (start / "schema.toml").is_file():
        return start
    for candidate in start.resolve().parents:
        if (candidate / "schema.toml").is_file():
            return Path(display_path(candidate))
    return start


def display_path(path: Path) -> str:
    """How a file is named to people (diagnostics, reports, test results): relative to the
    working directory when it is below it, else as given.

    Never through what a link resolves to: a policy file may be a link (a Kubernetes
    ConfigMap's), and is named by the link.
    """
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def policy_files(directory: Path | str) -> list[Path]:
    """Every ``.policy`` file below ``directory``, sorted."""
    root = Path(directory)
    # Hidden directories are not policies: a Kubernetes ConfigMap volume keeps
    # timestamped copies of every file in `..2026_...` folders beside the links.
    return sorted(p for p in root.rglob("*.policy") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts[:-1]))


def digest_names(path: Path | str) -> list[str] | None:
    """The names the revision digest uses for the policies below a directory (relative,
    with forward slashes, so a set has one revision wherever it is); None for one file."""
    root = Path(path)
    if root.is_file():
        return None
    return [p.relative_to(root).as_posix() for p in policy_files(root)]


def read_policy(path: Path, shown: str) -> str:
    """The text of one policy file; PolicyError (``bad_encoding``) when it is not UTF-8."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError([Diagnostic(shown, Span(1, 1, 1, 2), "bad_encoding",
                                      f"the file is not UTF-8 text (byte {exc.start})",
                                      "save the file as UTF-8")]) from None


def read_sources(directory: Path | str) -> list[tuple[str, str]]:
    """(display path, text) for every policy file below ``directory``."""
    out: list[tuple[str, str]] = []
    for path in policy_files(directory):
        shown = display_path(path)
        out.append((shown, read_policy(path, shown)))
    return out


def sources_for(path: Path) -> tuple[Schema, list[tuple[str, str]]]:
    """The schema of ``path``'s programme and the policy sources at ``path`` (file or directory),
    with the programme's files of shared definitions that are not already among them (what
    the policies' ``use`` lines may name; they hold no policies).

    Raises PolicyError (unreadable files) or SchemaError.
    """
    root = programme_root(path)
    schema = Schema.for_directory(root)
    sources = [(str(path), read_policy(path, str(path)))] if path.is_file() else read_sources(path)
    return schema, sources + definition_sources(root, exclude=path)


#: How a file of shared definitions starts a block (a top-level line).
_DEFINITIONS_LINE = re.compile(r"^definitions\b", re.MULTILINE)


def definition_sources(root: Path | str, exclude: Path | str | None = None
                       ) -> list[tuple[str, str]]:
    """(display path, text) of every policy file below ``root`` that holds ``definitions``
    blocks, except those at or below ``exclude`` (already read)."""
    skip = Path(exclude).resolve() if exclude is not None else None
    out: list[tuple[str, str]] = []
    for path in policy_files(root):
        resolved = path.resolve()
        if skip is not None and (resolved == skip or skip in resolved.parents):
            continue
        shown = display_path(path)
        text = read_policy(path, shown)
        if _DEFINITIONS_LINE.search(text):
            out.append((shown, text))
    return out

