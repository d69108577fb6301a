"""Loading policies for the command line: diagnostics printed, never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

from dsl import PolicyError, PolicySet, Schema, SchemaError
from dsl.errors import Diagnostic, Span
from dsl.policyset import build, policy_files, read_sources
from dsl.tools.testing import programme_root


def digest_names(path: Path) -> list[str] | None:
    """The names the revision digest uses: relative to a directory, as ``load_directory`` does."""
    if path.is_file():
        return None
    return [p.relative_to(path).as_posix() for p in policy_files(path)]


def sources_for(path: Path) -> tuple[Schema, list[tuple[str, str]]]:
    """The schema of ``path``'s programme and the policy sources at ``path`` (file or directory).

    Raises PolicyError (unreadable files) or SchemaError.
    """
    root = programme_root(path)
    schema = Schema.for_directory(root)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError([Diagnostic(str(path), Span(1, 1, 1, 2), "bad_encoding",
                                          f"the file is not UTF-8 text (byte {exc.start})",
                                          "save the file as UTF-8")]) from None
        return schema, [(str(path), text)]
    return schema, read_sources(path)


def load(path: Path, verb: str) -> PolicySet | int:
    """A policy set for ``path``, or an exit status after printing why there is none."""
    if not path.exists():
        print(f"loyalty {verb}: {path}: no such file or directory", file=sys.stderr)
        return 2
    try:
        schema, sources = sources_for(path)
        policy_set = build(sources, schema, digest_names(path))
    except SchemaError as exc:
        print(f"{exc}\n    = hint: fix the schema file; see docs/language.md, The schema",
              file=sys.stderr)
        return 2
    except PolicyError as exc:
        print(exc.render(), file=sys.stderr)
        errors = sum(1 for d in exc.diagnostics if d.severity == "error")
        print(f"\n{errors} error{'s' if errors != 1 else ''}", file=sys.stderr)
        return 1
    for w in policy_set.warnings:
        print(w.render(), file=sys.stderr)
    return policy_set
