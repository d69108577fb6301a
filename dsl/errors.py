"""Diagnostics and exceptions shared by every stage of the policy pipeline.

A :class:`Diagnostic` is what a policy author sees: where, what, and what to do.
Stages collect diagnostics instead of stopping at the first problem; the
pipeline sorts them by position and raises one :class:`PolicyError` carrying
all of them when any is an error.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """A region of policy source: 1-based lines and columns, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int

    def __reduce__(self) -> tuple[type[Span], tuple[int, int, int, int]]:
        # Rebuilt by its constructor: the compiled-policy disk cache (dsl.artifacts) holds
        # tens of thousands of spans, and frozen slots' generic setstate is ten times slower.
        return (Span, (self.line, self.column, self.end_line, self.end_column))

    @classmethod
    def point(cls, line: int, column: int, width: int = 1) -> Span:
        """A span of ``width`` characters on one line."""
        return cls(line, column, line, column + max(width, 1))


NO_SPAN = Span(0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding about a policy file: an error or a warning, with its place and a hint.

    ``code`` is stable (tools and tests match on it); ``message`` says what is wrong;
    ``hint`` says what to do about it.
    """

    file: str
    span: Span
    code: str
    message: str
    hint: str = ""
    severity: str = "error"
    source_line: str = ""

    @property
    def line(self) -> int:
        return self.span.line

    @property
    def column(self) -> int:
        return self.span.column

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.span.line, self.span.column, self.code)

    def render(self) -> str:
        """The human form: ``file:line:col: code: message``, the source line, a caret, a hint."""
        where = f"{self.file}:{self.span.line}:{self.span.column}"
        kind = self.code if self.severity == "error" else f"{self.severity}: {self.code}"
        lines = [f"{where}: {kind}: {self.message}"]
        if self.source_line and self.span.line > 0:
            text = self.source_line.rstrip("\n")
            lines.append(f"    | {text}")
            start = max(self.span.column - 1, 0)
            if self.span.end_line == self.span.line and self.span.end_column > self.span.column:
                width = self.span.end_column - self.span.column
            else:
                width = max(len(text) - start, 1)
            lines.append("    | " + " " * start + "^" * max(width, 1))
        if self.hint:
            lines.append(f"    = hint: {self.hint}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The machine form used by ``loyalty check --format json``, logs and gRPC details."""
        return {
            "file": self.file,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
        }


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics in reading order (file, line, column), duplicates removed."""
    seen: set[tuple[Any, ...]] = set()
    out: list[Diagnostic] = []
    for d in sorted(diagnostics, key=Diagnostic.sort_key):
        key = (d.file, d.span, d.code, d.message)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


class PolicyError(Exception):
    """A policy (or a set of them) was rejected; ``diagnostics`` says why, in reading order."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = sort_diagnostics(diagnostics)
        errors = [d for d in self.diagnostics if d.severity == "error"]
        first = errors[0].render().splitlines()[0] if errors else "policy rejected"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)

    def render(self) -> str:
        """Every diagnostic in its human form, separated by blank lines."""
        return "\n\n".join(d.render() for d in self.diagnostics)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field of a caller's input: ``path`` like ``event.distance_miles``."""

    path: str
    reason: str


class InputError(ValueError):
    """A customer or event does not match the schema. Carries every field problem found."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        text = "; ".join(f"{e.path}: {e.reason}" for e in self.errors)
        super().__init__(text or "invalid input")


class EvaluationError(Exception):
    """A policy failed while evaluating (for example a division by zero).

    It names the policy, the source location and what happened, so that the
    service can report it without a Python traceback.
    """

    def __init__(self, policy: str, file: str, line: int, message: str) -> None:
        self.policy = policy
        self.file = file
        self.line = line
        self.message = message
        super().__init__(f"{file}:{line}: policy {policy}: {message}")


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A hint naming the closest candidate to a misspelt ``name``, or an empty string."""
    pool = sorted(set(candidates))
    folded = {c.casefold(): c for c in pool}
    if name.casefold() in folded and folded[name.casefold()] != name:
        return f"did you mean `{folded[name.casefold()]}`?"
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    return ""
