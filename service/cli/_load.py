"""Loading policies for the command line: diagnostics printed, never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

from dsl import PolicyError, PolicySet, SchemaError
from dsl.policyset import build
from dsl.programme import digest_names, sources_for


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
