"""What checking one policy produces, and the one place every checking stage reports through.

:class:`CheckResult` (diagnostics, a type per expression, roundings, the cost bound) is what
the code generator and the bounds pass read; :class:`Checking` holds the policy being
checked and files positioned diagnostics into its result, so the type checker
(:mod:`dsl.analysis.typecheck`), the conflict analysis (:mod:`dsl.analysis.conflicts`) and
the cost bound (:mod:`dsl.analysis.cost`) word and place their diagnostics the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dsl.errors import Diagnostic, Span
from dsl.front import nodes as n
from dsl.schema.schema import Schema
from dsl.schema.types import ANY, Type


@dataclass(frozen=True, slots=True)
class CostBound:
    """What the checker promises about every evaluation of an accepted policy.

    Each figure holds for any input within the schema's bounds; none exceeds the
    language's limits (MAX_NUMBER_DIGITS, MAX_TEXT, MAX_STEPS, MAX_BUILT_TEXT).
    """

    #: Every number computed is below 10**digits in magnitude.
    digits: int = 1
    #: Every exact number (computed without division) has at most this many significant digits.
    significant: int = 1
    #: Every text computed has at most this many characters.
    text: int = 0
    #: Aggregate steps: items visited by aggregates, ``in`` and list-taking calls, in total.
    steps: int = 0
    #: Characters of text built by ``+``, in total.
    built_text: int = 0


@dataclass
class CheckResult:
    """What the checker learnt about one policy: diagnostics, and a type per expression."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    types: dict[int, Type] = field(default_factory=dict)
    #: Currency -> rounding mode declared by the policy.
    rounding: dict[str, str] = field(default_factory=dict)
    #: The currencies whose rounding is ``each award`` (every award rounded on its own);
    #: the others in ``rounding`` are rounded once, on the policy's total.
    per_award: set[str] = field(default_factory=set)
    #: Comparisons (``<`` and its kin) of an ordered enum, by the node's id: the enum's values,
    #: lowest first. They compare by rank, not as text (the code generator and the interpreter
    #: both read this).
    ranked: dict[int, tuple[str, ...]] = field(default_factory=dict)
    #: The cost bound the size pass proved (None when the policy failed earlier checks).
    bound: CostBound | None = None
    #: The names of the checking stages that ran, in order (dsl.analysis.checker.STAGES).
    stages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    def type_of(self, expr: n.Expr) -> Type:
        return self.types.get(id(expr), ANY)


class Checking:
    """One policy being checked against a schema: its result, and how a stage reports."""

    def __init__(self, schema: Schema, policy: n.Policy) -> None:
        self.schema = schema
        self.policy = policy
        self.result = CheckResult()
        self.lines = policy.source.splitlines()
        #: Set by a stage after which the later stages must not run (a policy past the limits).
        self.halted = False
        #: Set while a stage walks a member taken from shared definitions: their problems are
        #: reported once, against their own file (dsl.analysis.shared), not in every policy.
        self.muted = False

    def imported(self, member: n.Node) -> n.Imported | None:
        """Where ``member`` comes from, when a ``use`` line brought it into the policy."""
        if not self.policy.imported or not isinstance(member, n.Let | n.Table | n.Decide):
            return None
        found = self.policy.imported.get(member.name)
        return found if found is not None and found.file else None

    def error(self, span: Span, code: str, message: str, hint: str = "",
              severity: str = "error") -> None:
        """File a diagnostic at ``span`` (a span over several lines is cut to its first)."""
        if self.muted:
            return
        line = self.lines[span.line - 1] if 0 < span.line <= len(self.lines) else ""
        if span.end_line != span.line:
            span = Span(span.line, span.column, span.line, len(line.rstrip()) + 1)
        self.result.diagnostics.append(
            Diagnostic(self.policy.file, span, code, message, hint, severity, line)
        )

    def warn(self, span: Span, code: str, message: str, hint: str = "") -> None:
        """File a warning: the policy is accepted, the author is told."""
        self.error(span, code, message, hint, severity="warning")

    def text(self, node: n.Node) -> str:
        """The policy's own text of ``node``, for messages."""
        return n.source_text(self.policy.source, node.span) or "this expression"
