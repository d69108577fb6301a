"""Policy-test coverage: which rules, rows, group members and branches the tests reach.

(About 700 lines, one job: recording, the items with their reasons, and the report are one
analysis that shares the interpreter's trace; split, each part would import the others.)

``loyalty test --coverage`` runs every case a second time through the reference
interpreter with a recorder (:class:`_Recorder`, the interpreter's
:meth:`~dsl.backend.interpreter.Interpreter.trace` hook) and then lists, for every policy
under test, each **item** and whether some case reached it:

========================  ===========================================================
item                      covered when
========================  ===========================================================
``rule R``                the rule fired (in a group: the group chose it)
``rule R: when false``    its condition was false in some case (rules with ``when``)
``table T: row KEYS``     some case's key matched the row; ``table T: else`` likewise
``decide D: row N``       row N (1-based) was taken; ``decide D: else`` likewise
``OWNER: if then|else``   the ``if`` took that arm (``if#2`` for an owner's second ``if``)
``OWNER: otherwise ...``  ``otherwise value`` (left side present) / ``fallback`` (missing)
``OWNER: and|or left ..`` ``left true`` / ``left false`` of an ``and`` or ``or``
``rule R: up to ...``     ``reached`` (the limit cut the award, or the amount counted
                          toward a counter) / ``not reached``
``cap C reached``         the cap cut the policy's total (``cap C not reached``: it did not)
========================  ===========================================================

``OWNER`` is the member holding the expression: ``let NAME``, ``rule NAME``,
``table NAME``, ``decide NAME`` or ``cap CURRENCY``. Every uncovered item carries a
reason as precise as the recording allows ("no test sends a flight event",
"shadowed by an earlier first-match row (line 12) in every case that reached it",
"condition never true in the 4 cases that reached it", ...).

A test file may explain a deliberate gap::

    [coverage.explained]
    "know_our_regulars: rule home_restaurant: when false" = "the presence test is the point"

An explained gap is left out of the percentage, as ``# pragma: no cover`` is in
coverage.py; explaining an item that is covered, or one that does not exist, is a
diagnostic. The normal evaluation path is untouched: coverage pays for itself only
when asked for.
"""

from __future__ import annotations

import contextlib
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsl import bounded_toml
from dsl.backend.interpreter import Interpreter
from dsl.decision import Decision
from dsl.errors import Diagnostic, EvaluationError, InputError, Span, did_you_mean
from dsl.front import nodes as n
from dsl.library.runtime import in_evaluation_context
from dsl.periods import histories
from dsl.policyset import CompiledPolicy, PolicySet
from dsl.tools.stateinput import state_for
from dsl.tools.testing.cases import Case, Report
from dsl.tools.testing.loader import TEST_FILE_LIMITS, Locator
from dsl.tools.testing.runner import run_directory
from dsl.tools.testing.show import show_value

#: The top-level table of a test file that holds coverage settings, and its keys.
COVERAGE_KEY = "coverage"
EXPLAINED_KEY = "explained"


# -- recording -----------------------------------------------------------------------------


class _Recorder(Interpreter):
    """The reference interpreter, noting every branch it takes into ``seen``."""

    def __init__(self, compiled: CompiledPolicy) -> None:
        super().__init__(compiled.ast, compiled.schema, compiled.check.rounding, compiled.check.ranked)
        self.seen: set[tuple[int, Any]] = set()

    def trace(self, node: n.Node, outcome: Any) -> None:
        if isinstance(node, n.Rule | n.Group):
            outcome = outcome if isinstance(outcome, str | None) else id(outcome)
        try:
            self.seen.add((id(node), outcome))
        except TypeError:  # an unhashable table key (a list): its text will do
            self.seen.add((id(node), repr(outcome)))


@dataclass
class _PolicyRecord:
    """What the cases did to one policy: per case, the (node, outcome) pairs seen."""

    compiled: CompiledPolicy
    runs: list[set[tuple[int, Any]]] = field(default_factory=list)


@dataclass
class Collector:
    """Collects, case by case, what the interpreter reached in each policy under test.

    :func:`run_with_coverage` hands :meth:`observe` to :func:`dsl.tools.testing.runner.run_directory`,
    then :func:`build_report` turns the records into items.
    """

    policy_set: PolicySet
    #: Each case's decoded event kind and date, for the reasons ("no test sends ...").
    events: list[tuple[str, Any, tuple[str, ...]]] = field(default_factory=list)
    records: dict[str, _PolicyRecord] = field(default_factory=dict)

    def observe(self, case: Case) -> None:
        """Evaluate ``case`` by the recording interpreter (the policy set's own selection)."""
        try:
            customer, event = self.policy_set.decoder.request(
                {"customer": case.customer, "event": case.event})
        except InputError:
            return  # rejected input reaches no policy
        self.events.append((event["kind"], event["date"], case.policies))
        try:
            state = state_for(self.policy_set, case.customer, customer, event, case.state,
                              case.history)
        except (InputError, EvaluationError):
            return  # the case's history fails: the test itself reports it
        ps = self.policy_set
        for p in ps.applicable(event):
            if case.policies and p.name not in case.policies:
                continue
            recorder = _Recorder(p)
            decision = Decision(ps.revision, {}, [], None, [], [], [], None)
            history = histories(p.counters, event["time"], ps.zone, state) if p.counters else None
            # A fault (a case expecting an error) ends the run; what it reached still counts.
            with contextlib.suppress(Exception):
                in_evaluation_context(recorder.run, customer, event, decision, None, history)
            record = self.records.get(p.name)
            if record is None:
                record = self.records[p.name] = _PolicyRecord(p)
            record.runs.append(recorder.seen)


# -- items -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One thing a test can reach, and whether one did."""

    policy: str
    id: str
    kind: str
    file: str
    line: int
    column: int
    covered: bool
    reason: str = ""
    explanation: str = ""

    @property
    def key(self) -> str:
        """How a test file names it in ``[coverage.explained]``."""
        return f"{self.policy}: {self.id}"

    def render(self) -> str:
        """``file:line:col: POLICY: ITEM: why`` (or ``explained: ...``)."""
        where = f"{self.file}:{self.line}:{self.column}"
        if self.explanation:
            return f"{where}: {self.key}: explained: {self.explanation}"
        return f"{where}: {self.key}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """The machine form, one element of ``not_covered`` in the JSON report."""
        return {
            "policy": self.policy, "id": self.id, "kind": self.kind, "file": self.file,
            "line": self.line, "column": self.column, "covered": self.covered,
            "reason": self.reason, "explanation": self.explanation,
        }


@dataclass(frozen=True, slots=True)
class PolicyCoverage:
    """One policy's items."""

    name: str
    file: str
    items: tuple[Item, ...]

    @property
    def covered(self) -> int:
        """Items some case reached."""
        return sum(1 for i in self.items if i.covered)

    @property
    def explained(self) -> int:
        """Gaps a test file explains."""
        return sum(1 for i in self.items if not i.covered and i.explanation)

    @property
    def counted(self) -> int:
        """The items the percentage counts: all but the explained gaps."""
        return len(self.items) - self.explained

    @property
    def percent(self) -> float:
        """Covered of counted, as :func:`percent` gives it."""
        return percent(self.covered, self.counted)


def percent(covered: int, counted: int) -> float:
    """``covered`` of ``counted`` as a percentage, one decimal, rounded down (never a false 100)."""
    if counted == 0:
        return 100.0
    return (covered * 1000 // counted) / 10


@dataclass
class CoverageReport:
    """Every policy under test with its items; explanation problems as diagnostics."""

    policies: list[PolicyCoverage] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)

    @property
    def items(self) -> list[Item]:
        """Every item of every policy, in policy and source order."""
        return [i for p in self.policies for i in p.items]

    @property
    def covered(self) -> int:
        """Items some case reached."""
        return sum(p.covered for p in self.policies)

    @property
    def counted(self) -> int:
        """Items the percentage counts (all but explained gaps)."""
        return sum(p.counted for p in self.policies)

    @property
    def explained(self) -> int:
        """Gaps a test file explains."""
        return sum(p.explained for p in self.policies)

    @property
    def gaps(self) -> list[Item]:
        """Uncovered items nobody explained."""
        return [i for i in self.items if not i.covered and not i.explanation]

    @property
    def percent(self) -> float:
        """The whole run's figure, as :func:`percent` gives it."""
        return percent(self.covered, self.counted)

    def below(self, fail_under: float) -> bool:
        """Whether the coverage is under ``fail_under`` percent (exactly, not the rounded figure)."""
        return self.covered * 100 < fail_under * self.counted

    def summary(self) -> str:
        """The closing line: percentage, counts, explained and unexplained gaps."""
        total = len(self.items)
        text = (f"coverage {self.percent:.1f}% ({self.covered} of {self.counted} items"
                + (f"; {self.explained} explained gap{'s' if self.explained != 1 else ''} "
                   "left out" if self.explained else "") + ")")
        gaps = len(self.gaps)
        if total and gaps:
            text += f", {gaps} unexplained gap{'s' if gaps != 1 else ''}"
        if not self.policies:
            text = "coverage: no policy file below the tested directory"
        return text

    def render(self, *, verbose: bool = False) -> str:
        """Per-policy lines, then every gap (and with ``verbose`` every explained one)."""
        width = max((len(p.name) for p in self.policies), default=0)
        lines = [f"{p.name.ljust(width)}  {p.covered:>3}/{p.counted:<3} {p.percent:5.1f}%  {p.file}"
                 + (f"  ({p.explained} explained)" if p.explained else "")
                 for p in self.policies]
        gaps = [i.render() for i in self.gaps]
        if gaps:
            lines.append("")
            lines.append("not covered:")
            lines.extend(gaps)
        if verbose:
            explained = [i.render() for i in self.items if not i.covered and i.explanation]
            if explained:
                lines.append("")
                lines.append("explained gaps:")
                lines.extend(explained)
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self, fail_under: float | None = None) -> dict[str, Any]:
        """The ``coverage`` object of ``loyalty test --json`` (docs/language.md)."""
        return {
            "percent": self.percent,
            "covered": self.covered,
            "counted": self.counted,
            "explained": self.explained,
            "items": len(self.items),
            "gaps": len(self.gaps),
            "fail_under": fail_under,
            "below": self.below(fail_under) if fail_under is not None else False,
            "policies": [
                {"name": p.name, "file": p.file, "covered": p.covered, "counted": p.counted,
                 "explained": p.explained, "items": len(p.items), "percent": p.percent}
                for p in self.policies
            ],
            "not_covered": [i.to_dict() for i in self.items if not i.covered],
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "warnings": [d.to_dict() for d in self.warnings],
        }


# -- working out the items and their reasons -------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _cases(count: int) -> str:
    """``the one case`` or ``the 3 cases``: the cases that reached an item."""
    return "the one case" if count == 1 else f"the {count} cases"


def _each(count: int) -> str:
    """``the one case`` or ``each of the 3 cases``."""
    return "the one case" if count == 1 else f"each of the {count} cases"


class _Analysis:
    """Items of one policy from its record (None: no case evaluated the policy)."""

    def __init__(self, policy: n.Policy, file: str, runs: list[set[tuple[int, Any]]],
                 unreached: str) -> None:
        self.policy = policy
        self.file = file
        self.runs = runs
        self.unreached = unreached
        # node id -> outcome -> number of cases that saw it; node id -> cases that reached it
        self.counts: dict[int, Counter[Any]] = {}
        self.reach: Counter[int] = Counter()
        for seen in self.runs:
            for node, outcome in seen:
                self.counts.setdefault(node, Counter())[outcome] += 1
            self.reach.update({node for node, _ in seen})
        self.items: list[Item] = []
        self.ordinals: Counter[tuple[str, str]] = Counter()

    def text(self, node: n.Node) -> str:
        return n.source_text(self.policy.source, node.span)

    def reached(self, node: n.Node) -> int:
        """The number of cases that reached ``node``."""
        return self.reach[id(node)]

    def seen(self, node: n.Node, outcome: Any) -> int:
        return self.counts.get(id(node), Counter())[outcome]

    def add(self, node: n.Node, id_: str, kind: str, covered: bool, reason: str,
            span: Span | None = None) -> None:
        s = span or node.span
        self.items.append(Item(self.policy.name, id_, kind, self.file, s.line, s.column,
                               covered, "" if covered else reason))

    def never(self, node: n.Node, fallback: str) -> str:
        """The reason for something no case evaluated."""
        if not self.runs:
            return self.unreached
        return fallback

    # -- members

    def analyse(self) -> list[Item]:
        """The policy's own items (those of shared definitions are their block's: _shared)."""
        for m in self.policy.members:
            if isinstance(m, n.Let | n.Table | n.Decide) and m.name in self.policy.imported:
                continue
            if isinstance(m, n.Let):
                self.expression(f"let {m.name}", m.value)
            elif isinstance(m, n.Table):
                self.table(m)
            elif isinstance(m, n.Decide):
                self.decide(m)
            elif isinstance(m, n.Rule):
                self.rule(m, None)
            elif isinstance(m, n.Group):
                for r in m.rules:
                    self.rule(r, m)
            elif isinstance(m, n.Cap):
                self.expression(f"cap {m.currency}", m.amount)
                self.limit(m, f"cap {m.currency}", "", "")
        return self.items

    def table(self, t: n.Table) -> None:
        owner = f"table {t.name}"
        self.expression(owner, t.key)
        keys = sorted({show_value(v) for v in self.counts.get(id(t), Counter())})
        seen = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "")
        key_text = self.text(t.key)
        for row in t.rows:
            covered = self.seen(row, "hit") > 0
            if not row.keys:
                label, why = "else", f"every case's {key_text} matched a row (seen: {seen})"
            else:
                texts = [k.text or show_value(k.value) for k in row.keys]
                label = "row " + ", ".join(texts)
                why = f"no case's {key_text} was {' or '.join(texts)} (seen: {seen})"
            if not self.reached(t):
                why = self.never(t, "the table was never evaluated (a fault came first)")
            self.add(row, f"{owner}: {label}", "table row", covered, why)
            self.expression(owner, row.value)

    def decide(self, d: n.Decide) -> None:
        owner = f"decide {d.name}"
        reached_decide = self.reached(d.rows[0]) if d.rows else 0
        for index, row in enumerate(d.rows, 1):
            label = "else" if row.cond is None else f"row {index}"
            if row.cond is not None:
                self.expression(owner, row.cond)
            covered = self.seen(row, True) > 0
            if not reached_decide:
                why = self.never(d, "the decide was never evaluated (a fault came first)")
            elif not self.reached(row):
                winner = self.first_winner(d.rows[: index - 1])
                why = ("shadowed by an earlier first-match row"
                       + (f" (line {winner.span.line})" if winner is not None else "")
                       + " in every case that reached it")
            elif row.cond is None:
                why = f"another row matched in {_each(self.reached(row))} that reached it"
            else:
                why = f"condition never true in {_cases(self.reached(row))} that reached it"
                others = reached_decide - self.reached(row)
                winner = self.first_winner(d.rows[: index - 1])
                if d.hit == "first" and others and winner is not None:
                    why += (f"; shadowed by an earlier first-match row (line {winner.span.line})"
                            f" in the {_plural(others, 'other case')}")
            self.add(row, f"{owner}: {label}", "decide row", covered, why)
            self.expression(owner, row.value)

    def first_winner(self, rows: list[n.DecideRow]) -> n.DecideRow | None:
        best = max(rows, key=lambda r: self.seen(r, True), default=None)
        return best if best is not None and self.seen(best, True) else None

    def rule(self, r: n.Rule, group: n.Group | None) -> None:
        owner = f"rule {r.name}"
        kind = "group member" if group is not None else "rule"
        applied = self.seen(r, "applied")
        qualified = self.seen(r, "qualified")
        not_qualified = self.seen(r, "not_qualified")
        reached = self.reached(r)
        span = r.name_span if r.name_span.line else r.span
        if not reached:
            why = self.never(r, "never reached")
            if self.runs and group is not None and group.mode == "first":
                chosen = self.chosen(group)
                why = (f"never reached: group {group.name} (takes first) chose an earlier rule"
                       + (f" ({chosen.name}, line {chosen.span.line})" if chosen else "")
                       + " in every case that reached it")
        elif not qualified:
            why = f"condition never true in {_cases(reached)} that reached it"
            blocker = self.blocker(r.cond) if r.cond is not None else None
            if blocker is not None and blocker is not r.cond:
                first = n.conjuncts(r.cond)[0] is blocker
                why += (f" (`{self.text(blocker)}` was never true)" if first else
                        f" (`{self.text(blocker)}` never held where the parts before it did)")
        elif not applied and group is not None:
            chosen = self.chosen(group, exclude=r)
            why = (f"qualified in {_plural(qualified, 'case')} but group {group.name} "
                   f"chose {chosen.name if chosen else 'another rule'}"
                   + (f" (line {chosen.span.line})" if chosen else "") + " each time")
        else:
            why = "qualified but never applied (a fault during its awards)"
        self.add(r, owner, kind, applied > 0, why, span)
        if r.cond is not None:
            # Unreached, the rule's own reason (the policy's, or its group's) holds for both.
            why_false = why if not reached else f"condition true in {_each(reached)} that reached it"
            self.add(r, f"{owner}: when false", "branch", not_qualified > 0, why_false,
                     r.cond.span)
            self.expression(owner, r.cond)
        limits = 0
        for e in r.effects:
            for expr in _effect_exprs(e):
                self.expression(owner, expr)
            if isinstance(e, n.Award | n.Count) and e.limit is not None:
                limits += 1
                self.limit(e, owner, "up to" + (f"#{limits}" if limits > 1 else ""),
                           f"rule {r.name} never fired")

    def limit(self, node: n.Award | n.Count | n.Cap, owner: str, word: str, unfired: str) -> None:
        """The two sides of an ``up to`` or a ``cap``: it limited the amount, or it did not."""
        reached = self.reached(node)
        label = f"{owner}: {word}" if word else owner
        for arm, outcome in (("reached", True), ("not reached", False)):
            if not reached:
                why = self.never(node, f"never evaluated: {unfired}" if unfired else
                                 "never evaluated: the policy awarded no " + owner[4:])
            elif outcome:
                why = f"the limit was never reached in {_cases(reached)} that came to it"
            else:
                why = f"the limit was reached in {_each(reached)} that came to it"
            self.add(node, f"{label} {arm}", "limit", self.seen(node, outcome) > 0, why)

    def chosen(self, g: n.Group, exclude: n.Rule | None = None) -> n.Rule | None:
        """The rule the group chose most often (other than ``exclude``)."""
        counts = self.counts.get(id(g), Counter())
        by_id = {id(r): r for r in g.rules}
        for rid, _ in counts.most_common():
            r = by_id.get(rid)
            if r is not None and r is not exclude:
                return r
        return None

    def blocker(self, cond: n.Expr) -> n.Expr:
        """In a never-true ``a and b and c``, the first part that never held after the others."""
        e = cond
        while isinstance(e, n.Binary) and e.op == "and":
            if self.seen(e, True):
                return e.right
            e = e.left
        return e

    # -- expression branches

    def expression(self, owner: str, expr: n.Expr) -> None:
        ordinals = self.ordinals
        for node in _branch_nodes(expr):
            if isinstance(node, n.IfExpr):
                word, arms = "if", (("then", True, "condition never true"),
                                    ("else", False, "condition never false"))
            elif node.op == "otherwise":
                word, arms = "otherwise", (("value", True, "left side missing"),
                                           ("fallback", False, "left side never missing"))
            else:
                word, arms = node.op, (("left true", True, "left side never true"),
                                       ("left false", False, "left side never false"))
            ordinals[(owner, word)] += 1
            k = ordinals[(owner, word)]
            label = f"{owner}: {word}" + (f"#{k}" if k > 1 else "")
            reached = self.reached(node)
            for arm, outcome, never in arms:
                covered = self.seen(node, outcome) > 0
                if not reached:
                    why = self.never(node, "never evaluated in the tests (the expression or "
                                           "rule holding it was never reached)")
                elif arm == "value":
                    why = f"{never} in {_each(reached)} that reached it"
                else:
                    why = f"{never} in {_cases(reached)} that reached it"
                self.add(node, f"{label} {arm}", "branch", covered, why)


def _branch_nodes(expr: n.Expr) -> Iterator[n.IfExpr | n.Binary]:
    """The branching expressions in ``expr``, in source order."""
    found = [x for x in n.walk(expr)
             if isinstance(x, n.IfExpr)
             or (isinstance(x, n.Binary) and x.op in ("and", "or", "otherwise"))]
    yield from sorted(found, key=lambda x: (x.span.line, x.span.column))


def _effect_exprs(e: n.Effect) -> list[n.Expr]:
    if isinstance(e, n.Award):
        return [e.amount] + ([e.limit] if e.limit is not None else [])
    if isinstance(e, n.Grant):
        return [value for _, value, _ in e.params]
    if isinstance(e, n.Count):
        return [x for x in (e.amount, e.limit) if x is not None]
    return []


def _policy_unreached(compiled: CompiledPolicy, events: list[tuple[str, Any, tuple[str, ...]]]
                      ) -> str:
    """Why no case evaluated a policy."""
    kinds = compiled.info.kinds
    kind_text = " or ".join(kinds)
    article = "an" if kind_text[:1] in "aeiou" else "a"
    of_kind = [e for e in events if e[0] in kinds]
    if not of_kind:
        return f"no test sends {article} {kind_text} event"
    dated = [e for e in of_kind if compiled.applies_on(e[1])]
    if not dated:
        lo = compiled.info.effective_from or "the start"
        hi = compiled.info.effective_until or "the end"
        return f"no test's {kind_text} event falls in the policy's effective dates ({lo} to {hi})"
    return (f"no case evaluates the policy (the cases with {article} {kind_text} event in its "
            "dates name other policies)")


# -- explanations ---------------------------------------------------------------------------


def read_explanations(text: str, file: str) -> tuple[dict[str, tuple[str, Span]], list[Diagnostic]]:
    """The ``[coverage.explained]`` entries of one test file (key -> why, where)."""
    try:
        data = bounded_toml.loads(text, TEST_FILE_LIMITS)
    except (tomllib.TOMLDecodeError, bounded_toml.TomlBoundError):
        return {}, []  # the test run reports it
    section = data.get(COVERAGE_KEY)
    if section is None:
        return {}, []
    locator = Locator(text)
    out: dict[str, tuple[str, Span]] = {}
    problems: list[Diagnostic] = []

    def problem(span: Span, code: str, message: str, hint: str = "") -> None:
        problems.append(Diagnostic(file, span, code, message, hint,
                                   source_line=locator.line(span.line)))

    where = locator.top_level(COVERAGE_KEY)
    if not isinstance(section, dict) or set(section) - {EXPLAINED_KEY}:
        problem(where, "test_bad_value",
                "[coverage] holds one table, explained = { \"POLICY: ITEM\" = \"why\" }",
                "write [coverage.explained] and one line per deliberate gap")
        return {}, problems
    explained = section.get(EXPLAINED_KEY, {})
    if not isinstance(explained, dict):
        problem(where, "test_bad_value", "coverage.explained must be a table of \"item\" = \"why\"")
        return {}, problems
    for key, why in explained.items():
        span = _key_span(text, key) or where
        if not isinstance(why, str) or not why.strip():
            problem(span, "test_bad_value",
                    f'coverage.explained: "{key}" needs the reason, as text',
                    "say why no test reaches it, for the next reader")
            continue
        out[key] = (why.strip(), span)
    return out, problems


def _key_span(text: str, key: str) -> Span | None:
    for number, line in enumerate(text.splitlines(), 1):
        escaped = key.replace("\\", "\\\\").replace('"', '\\"')
        for quoted in (f'"{escaped}"', f"'{key}'"):
            col = line.find(quoted)
            if col >= 0:
                return Span.point(number, col + 1, len(quoted))
    return None


# -- putting it together ---------------------------------------------------------------------


def under_test(policy_set: PolicySet, target: Path) -> list[CompiledPolicy]:
    """The policies a coverage run reports: those whose file is below ``target``.

    For a single test file, the policy file beside it with the same stem
    (``earn_miles.test.toml`` -> ``earn_miles.policy``).
    """
    target = target.resolve()
    out = []
    for p in policy_set.compiled:
        path = Path(p.info.file).resolve()
        if target.is_file():
            stem = target.name.removesuffix(".test.toml")
            if path.parent == target.parent and path.stem == stem:
                out.append(p)
        elif target == path.parent or target in path.parents:
            out.append(p)
    return out


def build_report(collector: Collector, target: Path, test_files: list[tuple[str, str]]
                 ) -> CoverageReport:
    """The coverage of the policies under ``target`` from what ``collector`` recorded.

    ``test_files`` are (display path, text) of the test files run, for their explanations.
    """
    report = CoverageReport()
    explanations: dict[str, tuple[str, str, Span]] = {}
    lines: dict[str, list[str]] = {}
    for file, text in test_files:
        found, problems = read_explanations(text, file)
        report.diagnostics.extend(problems)
        lines[file] = text.splitlines()
        for key, (why, span) in found.items():
            explanations.setdefault(key, (why, file, span))

    def source_line(file: str, span: Span) -> str:
        text = lines.get(file, [])
        return text[span.line - 1] if 0 < span.line <= len(text) else ""

    owners: list[PolicyCoverage] = []
    tested = under_test(collector.policy_set, target)
    for compiled in tested:
        record = collector.records.get(compiled.name)
        unreached = _policy_unreached(compiled, collector.events)
        analysis = _Analysis(compiled.ast, compiled.info.file,
                             record.runs if record is not None else [], unreached)
        owners.append(PolicyCoverage(compiled.name, compiled.info.file, tuple(analysis.analyse())))
    owners.extend(_shared(tested, collector.records))
    for owner in owners:
        items = list(owner.items)
        final = []
        for item in items:
            entry = explanations.pop(item.key, None)
            if entry is not None:
                why, file, span = entry
                if item.covered:
                    report.warnings.append(Diagnostic(
                        file, span, "coverage_stale_explanation",
                        f'"{item.key}" is covered by the tests now',
                        "delete this explanation", severity="warning",
                        source_line=source_line(file, span)))
                else:
                    item = Item(item.policy, item.id, item.kind, item.file, item.line,
                                item.column, item.covered, item.reason, why)
            final.append(item)
        report.policies.append(PolicyCoverage(owner.name, owner.file, tuple(final)))
    known = [i.key for i in report.items]
    for key, (_, file, span) in explanations.items():
        report.diagnostics.append(Diagnostic(
            file, span, "coverage_unknown_item",
            f"coverage.explained: no coverage item is called `{key}`",
            did_you_mean(key, known) or "copy the item's name from `loyalty test --coverage`",
            source_line=source_line(file, span)))
    return report


def _shared(tested: list[CompiledPolicy], records: dict[str, _PolicyRecord]
            ) -> list[PolicyCoverage]:
    """The items of the shared definitions the policies under test use, each reported once,
    against its block's file, from the cases of every policy that uses it.

    Each policy holds its own copy of a shared member when compiled policies come from the
    disk cache, so the nodes of each copy are mapped onto the first copy's before the cases'
    records are merged (the copies are equal: their block has one text).
    """
    first: dict[tuple[str, str], tuple[n.Node, n.Imported]] = {}
    runs: dict[str, list[set[tuple[int, Any]]]] = {}
    for compiled in tested:
        policy = compiled.ast
        same: dict[int, int] = {}
        modules: set[str] = set()
        for m in policy.members:
            imported = policy.imported.get(m.name) \
                if isinstance(m, n.Let | n.Table | n.Decide) else None
            if imported is None or not imported.file:
                continue
            kept = first.setdefault((imported.module, m.name), (m, imported))[0]
            same.update(zip(map(id, n.walk(m)), map(id, n.walk(kept)), strict=True))
            modules.add(imported.module)
        record = records.get(compiled.name)
        for module in modules:
            into = runs.setdefault(module, [])
            if record is not None:
                into.extend({(same.get(node, node), outcome) for node, outcome in seen}
                            for seen in record.runs)
    out: list[PolicyCoverage] = []
    for module in sorted(runs):
        members = [(m, imported) for (owner, _), (m, imported) in first.items() if owner == module]
        members.sort(key=lambda pair: pair[0].span.line)
        file, source = members[0][1].file, members[0][1].source
        block = n.Policy(module, members=[m for m, _ in members], file=file,
                         source=source)
        unreached = "no case evaluates a policy that uses it"
        items = _Analysis(block, file, runs[module], unreached).analyse()
        out.append(PolicyCoverage(module, file, tuple(items)))
    return out


def run_with_coverage(directory: Path | str, *, keyword: str | None = None
                      ) -> tuple[Report, CoverageReport | None]:
    """:func:`dsl.tools.testing.runner.run_directory`, recording coverage; None when no policy set loaded."""
    collectors: list[Collector] = []

    def observe(policy_set: PolicySet) -> Callable[[Case], None]:
        collectors.append(Collector(policy_set))
        return collectors[0].observe

    report = run_directory(directory, keyword=keyword, observe=observe)
    if not collectors:
        return report, None
    texts = []
    for file in report.files:
        try:
            texts.append((file, Path(file).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue  # already a diagnostic of the test run
    return report, build_report(collectors[0], Path(directory), texts)
