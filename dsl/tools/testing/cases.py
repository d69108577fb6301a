"""What a policy test file holds and what running it found: cases, expectations, results.

The plain data of :mod:`dsl.tools.testing`: the loader builds :class:`Case` values, the
runner turns each into a :class:`CaseResult`, and a :class:`Report` gathers a run. Each
renders itself for people (``render``/``summary``) and for machines (``to_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dsl.errors import Diagnostic

#: How test files are named: ``<anything>.test.toml``, anywhere below the directory.
TEST_FILE_SUFFIX = ".test.toml"


@dataclass(frozen=True, slots=True)
class ExpectedBenefit:
    """A benefit a case expects. ``params`` is None when only the name is checked."""

    name: str
    params: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a case expects to come out.

    Every part is checked exactly: a part the file leaves out means "none" (no
    awards, no benefits, no tier, no tags). ``error``, when set, instead expects
    the input to be rejected or the evaluation to fail with a message containing it.
    """

    awards: dict[str, int | Decimal] = field(default_factory=dict)
    benefits: tuple[ExpectedBenefit, ...] = ()
    tier: str | None = None
    tags: tuple[str, ...] = ()
    error: str | None = None
    #: What the decision counts toward each counter (``Decision.counted``).
    counted: dict[str, int | Decimal] = field(default_factory=dict)
    #: rule name -> the text it says (``Reason.says``) in ``language``: checked for the rules
    #: named only, each of which must have fired.
    says: dict[str, str] = field(default_factory=dict)
    language: str = ""


@dataclass(frozen=True, slots=True)
class Case:
    """One ``[[case]]`` of a test file, checked against the schema and ready to run.

    ``customer`` and ``event`` are the ``Customer`` and ``Event`` messages as written
    (the request form; ids filled in); :func:`run_case` decodes them, so that a case
    may expect the decoding itself to fail. ``state`` and ``history`` are the customer's
    state before the event (:mod:`dsl.tools.stateinput`).
    """

    file: str
    line: int
    name: str
    policies: tuple[str, ...]
    customer: dict[str, Any]
    event: dict[str, Any]
    expect: Expectation
    state: dict[str, int | Decimal] = field(default_factory=dict)
    history: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One part of a decision that differs from the expectation, both sides rendered."""

    part: str
    expected: str
    actual: str


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The outcome of one case.

    ``mismatches`` is empty when the case passed. ``reasons`` are the explain
    lines of the evaluation (only collected for a failing case). ``error`` is the
    message of an input or evaluation error the case did not expect.
    """

    case: Case
    mismatches: tuple[Mismatch, ...] = ()
    reasons: tuple[str, ...] = ()
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.mismatches and not self.error

    def render(self) -> str:
        """The human form: where the case is, and for a failure expected against actual."""
        where = f"{self.case.file}:{self.case.line}"
        if self.passed:
            return f"{where}: PASS {self.case.name}"
        lines = [f"{where}: FAIL {self.case.name}"]
        if self.error:
            lines.append(f"    error:    {self.error}")
        width = max((len(m.part) for m in self.mismatches), default=0) + 1
        for m in self.mismatches:
            label = f"{m.part}:".ljust(width)
            lines.append(f"    {label} expected {m.expected}")
            lines.append(f"    {' ' * width} actual   {m.actual}")
        if self.reasons:
            lines.append("    reasons:")
            lines.extend(f"      {r}" for r in self.reasons)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The machine form used by ``loyalty test --format json``."""
        return {
            "file": self.case.file,
            "line": self.case.line,
            "name": self.case.name,
            "passed": self.passed,
            "error": self.error,
            "mismatches": [
                {"part": m.part, "expected": m.expected, "actual": m.actual}
                for m in self.mismatches
            ],
            "reasons": list(self.reasons),
        }


@dataclass(slots=True)
class Report:
    """Everything one run of the tests found: policy or test-file diagnostics and case results."""

    files: list[str] = field(default_factory=list)
    results: list[CaseResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    #: Policy warnings (never a reason to fail): shown, so that authors see them.
    warnings: list[Diagnostic] = field(default_factory=list)
    revision: str = ""
    keyword: str | None = None

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.passed)

    @property
    def exit_status(self) -> int:
        """0 when every case passed, 1 when a case failed, 2 when a file could not be used."""
        if self.diagnostics or not self.results:
            return 2
        return 1 if self.failed else 0

    def summary(self) -> str:
        """One closing line: counts, and the revision of the policy set tested."""
        if self.diagnostics and not self.results:
            n = len(self.diagnostics)
            return f"{n} problem{'s' if n != 1 else ''} found; no case was run"
        if not self.results:
            if self.keyword is not None:
                return f'no case name contains "{self.keyword}"'
            return f"no test cases found (test files end in {TEST_FILE_SUFFIX})"
        parts = [f"{self.passed} passed"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.diagnostics:
            n = len(self.diagnostics)
            parts.append(f"{n} problem{'s' if n != 1 else ''} in test files")
        files = len(self.files)
        parts_text = ", ".join(parts)
        return f"{parts_text} ({files} file{'s' if files != 1 else ''}, revision {self.revision})"

    def to_dict(self) -> dict[str, Any]:
        """The machine form used by ``loyalty test --format json``."""
        status = {0: "passed", 1: "failed", 2: "error"}[self.exit_status]
        return {
            "status": status,
            "revision": self.revision,
            "files": list(self.files),
            "passed": self.passed,
            "failed": self.failed,
            "cases": [r.to_dict() for r in self.results],
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "warnings": [d.to_dict() for d in self.warnings],
        }
