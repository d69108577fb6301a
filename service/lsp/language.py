"""The language server's one door into the policy pipeline.

Every name the server uses from ``dsl`` is imported here and nowhere else in
``service.lsp``: the checker and the test runner are being reorganised, and a
rename there should touch this file alone. Nothing here speaks the protocol.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from dsl.analysis.bounds import AwardBound, award_bounds
from dsl.analysis.checker import CheckResult, check_policy
from dsl.analysis.shared import Library
from dsl.decision import default_text
from dsl.errors import Diagnostic, PolicyError, Span, sort_diagnostics
from dsl.front import nodes as n
from dsl.front.parser import GRAMMAR_PATH, parse, parse_file
from dsl.library.builtins import AGGREGATES, BUILTINS, BUILTINS_LIST, Builtin
from dsl.policyset import definitions_in
from dsl.programme import definition_sources, programme_root
from dsl.schema.schema import BASE_SCHEMA_PATH, Field, Schema, SchemaError
from dsl.schema.types import Type
from dsl.tools.coverage import CoverageReport, run_with_coverage
from dsl.tools.formatter import FormatError, format_source
from dsl.tools.testing import Report

__all__ = [
    "AGGREGATES",
    "BASE_SCHEMA_PATH",
    "BUILTINS",
    "BUILTINS_LIST",
    "AwardBound",
    "Builtin",
    "CheckResult",
    "CoverageReport",
    "Diagnostic",
    "Field",
    "FormatError",
    "Library",
    "PolicyError",
    "Report",
    "Schema",
    "SchemaError",
    "Span",
    "Type",
    "award_bounds",
    "check_policy",
    "default_text",
    "format_source",
    "keywords",
    "n",
    "parse",
    "parse_file",
    "programme_definitions",
    "programme_root",
    "run_tests",
    "schema_diagnostics",
    "schema_from_text",
    "sort_diagnostics",
]


@cache
def keywords() -> tuple[str, ...]:
    """Every keyword of the language, read from the grammar file (the one definition of it)."""
    text = GRAMMAR_PATH.read_text(encoding="utf-8")
    words = {w for w in re.findall(r'"([a-z]+)"', text)}
    return tuple(sorted(words))


def schema_from_text(root: Path, text: str | None) -> Schema:
    """The schema of the programme at ``root``, with ``text`` standing for its ``schema.toml``
    (an editor's unsaved buffer); the file on disk, or none, when ``text`` is None.

    Raises SchemaError.
    """
    extra = root / "schema.toml"
    if text is None:
        return Schema.for_directory(root)
    docs = [(str(BASE_SCHEMA_PATH), BASE_SCHEMA_PATH.read_text(encoding="utf-8")), (str(extra), text)]
    return Schema.from_texts(docs)


def schema_diagnostics(root: Path, text: str) -> list[Diagnostic]:
    """The diagnostics of a ``schema.toml`` text, as ``loyalty check`` reports them."""
    try:
        schema_from_text(root, text)
    except SchemaError as exc:
        if exc.diagnostic is not None:
            return [exc.diagnostic]
        return [Diagnostic(str(root / "schema.toml"), Span(1, 1, 1, 2), "schema_error", str(exc),
                           "fix the schema file; see docs/language.md, The schema")]
    return []


def programme_definitions(root: Path, exclude: Path) -> list[n.Definitions]:
    """The shared definitions blocks of the programme at ``root`` as saved, but those of the
    file ``exclude`` (an open file: its buffer speaks for it). A file that does not parse
    gives none here; its own diagnostics say why."""
    out: list[n.Definitions] = []
    for file, text in definition_sources(root, exclude=exclude):
        try:
            out.extend(b for b in definitions_in(file, text) if isinstance(b, n.Definitions))
        except PolicyError:
            continue
    return out


def run_tests(test_file: Path) -> tuple[Report, CoverageReport | None]:
    """Run one ``*.test.toml`` file against its programme's policies (on disk), with coverage."""
    return run_with_coverage(test_file)
