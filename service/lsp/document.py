"""One open policy, parsed and checked with the compiler's own parts, and what it defines.

A small file goes through ``parse`` and ``check_policy`` whole, exactly as ``loyalty check``
runs them. A large one (a single policy of more than :data:`INCREMENTAL_LINES` lines) is
split at its member lines (``let``, ``table``, ``rule``, ``group`` ... at the members'
indentation): each member's text is parsed once, with the policy's header above it, and
kept; an edit reparses only the members whose text changed, and the checker runs over the
whole policy put back together. Parsing is most of the time of a full check (about 0.85 s
for 5,000 lines, against 0.1 s for checking), so this is what keeps diagnostics as you type
within 200 ms. A syntax error inside a member is reported from that member's parse; the
server then confirms it with a full parse once typing pauses (:attr:`Analysis.provisional`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from itertools import pairwise
from pathlib import Path

from service.lsp.language import (
    CheckResult,
    Diagnostic,
    Library,
    PolicyError,
    Schema,
    Span,
    check_policy,
    n,
    parse,
    parse_file,
    sort_diagnostics,
)

#: Above this many lines a single-policy file is parsed member by member.
INCREMENTAL_LINES = 400

_MEMBER_WORDS = ("let", "table", "decide", "rule", "group", "cap", "round", "use")
_DEFINES = re.compile(r"\s*(let|table|decide|rule|group)\s+([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class Definition:
    """A name a policy defines: a let, table, decision table, rule or group."""

    kind: str
    name: str
    #: Where the name itself is written (what go-to-definition lands on).
    name_span: Span
    node: n.Node
    policy: n.Policy


@dataclass
class Analysis:
    """The result of checking one version of a policy file."""

    text: str
    policies: list[n.Policy] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    parsed: bool = False
    #: A syntax error found by a member-only parse; a full parse should confirm it.
    provisional: bool = False
    #: Each of :attr:`policies` with its ``use`` lines resolved (what was checked); the
    #: policies themselves keep their ``use`` lines, so every node of theirs is in this file.
    resolved: list[n.Policy] = field(default_factory=list)
    #: The programme's shared definitions the file was checked with (its own blocks first).
    library: Library | None = None

    def check_of(self, policy: n.Policy) -> CheckResult:
        """The checker's result for one of :attr:`policies`."""
        return self.checks[self.policies.index(policy)]

    def resolved_of(self, policy: n.Policy) -> n.Policy:
        """One of :attr:`policies` as checked: with what its ``use`` lines bring in."""
        index = self.policies.index(policy)
        return self.resolved[index] if index < len(self.resolved) else policy

    def definitions(self) -> list[Definition]:
        """Every let, table, decision table, group and rule of every policy, in source order."""
        lines = self.text.split("\n")
        out: list[Definition] = []
        for policy in self.policies:
            members: list[n.Node] = []
            for m in policy.members:
                members.append(m)
                if isinstance(m, n.Group):
                    members.extend(m.rules)
            for m in members:
                span = m.span
                if not 0 < span.line <= len(lines):
                    continue
                match = _DEFINES.match(lines[span.line - 1], max(span.column - 1, 0))
                if match is None:
                    continue
                out.append(Definition(match[1], match[2], Span.point(span.line, match.start(2) + 1,
                                                                      len(match[2])), m, policy))
        return out


def name_nodes(policy: n.Policy) -> list[n.Name]:
    """Every bare name read in a policy's expressions."""
    return [x for x in n.walk(policy) if isinstance(x, n.Name)]


class DocumentChecker:
    """Checks successive versions of one file, reusing what an edit left unchanged."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._members: dict[str, list[tuple[list[n.Node], int]]] = {}
        self._header: tuple[str, n.Policy] | None = None

    def check(self, text: str, schema: Schema, *, whole: bool = False,
              shared: list[n.Definitions] | None = None) -> Analysis:
        """Parse and check ``text`` against ``schema``; ``whole`` forces a full parse.
        ``shared`` are the programme's definitions blocks in its other files (what ``use``
        lines may name)."""
        if not whole and text.count("\n") >= INCREMENTAL_LINES:
            result = self._incremental(text, schema, shared or [])
            if result is not None:
                return result
        return self._whole(text, schema, shared or [])

    def _whole(self, text: str, schema: Schema, shared: list[n.Definitions]) -> Analysis:
        out = Analysis(text)
        try:
            blocks = parse_file(text, self.file)
        except PolicyError as exc:
            out.diagnostics = list(exc.diagnostics)
            return out
        out.parsed = True
        own = [b for b in blocks if isinstance(b, n.Definitions)]
        out.policies = [b for b in blocks if isinstance(b, n.Policy)]
        library = out.library = Library(schema, [*own, *shared])
        out.diagnostics.extend(d for d in library.diagnostics if d.file == self.file)
        for policy in out.policies:
            self._check_one(out, schema, policy)
        out.diagnostics = sort_diagnostics(out.diagnostics)  # reading order, as `loyalty check`
        return out

    @staticmethod
    def _check_one(out: Analysis, schema: Schema, policy: n.Policy) -> None:
        assert out.library is not None
        resolved, problems = out.library.resolve(policy)
        check = check_policy(schema, resolved)
        out.resolved.append(resolved)
        out.checks.append(check)
        out.diagnostics.extend(problems)
        out.diagnostics.extend(check.diagnostics)

    # -- member by member ---------------------------------------------------------------

    def _incremental(self, text: str, schema: Schema, shared: list[n.Definitions]
                     ) -> Analysis | None:
        lines = text.split("\n")
        split = _split_members(lines)
        if split is None:
            return None
        header_end, starts = split
        header = "\n".join(lines[:header_end]) + "\n"
        if self._header is None or self._header[0] != header:
            self._members.clear()
        out = Analysis(text)
        members: list[n.Node] = []
        used: dict[str, int] = {}
        bounds = [*starts, len(lines)]
        policy: n.Policy | None = None
        for start, end in pairwise(bounds):
            chunk = "\n".join(lines[start:end])
            seen = used.get(chunk, 0)
            used[chunk] = seen + 1
            cached = self._members.get(chunk, [])
            if seen < len(cached):
                nodes, at = cached[seen]
                if at != start:
                    for node in nodes:
                        _shift(node, start - at)
                    cached[seen] = (nodes, start)
                members.extend(nodes)
                continue
            try:
                parsed = parse(header + chunk + "\n", self.file)
            except PolicyError as exc:
                out.diagnostics = [_shifted_diagnostic(d, start - header_end, lines)
                                   for d in exc.diagnostics if d.span.line > header_end]
                out.provisional = True
                if not out.diagnostics:
                    return None  # a problem in the header: the full parse says it best
                return out
            if len(parsed) != 1:
                return None
            policy = parsed[0]
            nodes = list(policy.members)
            for node in nodes:
                _shift(node, start - header_end)
            self._members.setdefault(chunk, []).append((nodes, start))
            self._header = (header, policy)
            members.extend(nodes)
        if self._header is None:
            return None
        template = self._header[1]
        whole = n.Policy(template.name, template.version, template.effective_from,
                         template.effective_until, list(template.kinds), template.description,
                         members, self.file, text, dict(template.header_spans), span=template.span)
        whole.span = Span(template.span.line, template.span.column, len(lines), 1)
        # Members no longer in the text are dropped, so the cache follows the file.
        self._members = {k: v[:used[k]] for k, v in self._members.items() if k in used}
        out.policies = [whole]
        out.parsed = True
        out.library = Library(schema, shared)
        self._check_one(out, schema, whole)
        out.diagnostics = sort_diagnostics(out.diagnostics)
        return out


def _split_members(lines: list[str]) -> tuple[int, list[int]] | None:
    """(first member line, the 0-based line where each member starts), or None when the file
    is not one policy laid out with members at a single indentation."""
    policy_lines = [i for i, line in enumerate(lines) if line.startswith("policy ")]
    if len(policy_lines) != 1:
        return None
    indent = None
    starts: list[int] = []
    for i in range(policy_lines[0] + 1, len(lines)):
        line = lines[i]
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        width = len(line) - len(stripped)
        if width == 0:
            return None  # something after the policy at the top level
        word = stripped.split(None, 1)[0].rstrip(":")
        if indent is None and word in _MEMBER_WORDS:
            indent = width
        if width == indent and word in _MEMBER_WORDS:
            starts.append(i)
    if not starts:
        return None
    return starts[0], starts


def _shift_span(span: Span, by: int) -> Span:
    if span.line <= 0:
        return span
    return Span(span.line + by, span.column, span.end_line + by, span.end_column)


def _shift(root: n.Node, by: int) -> None:
    """Move every span of ``root`` and the nodes below it ``by`` lines."""
    if by == 0:
        return
    for node in n.walk(root):
        node.span = _shift_span(node.span, by)
        for f in fields(node):
            value = getattr(node, f.name)
            if f.name != "span" and isinstance(value, Span):
                setattr(node, f.name, _shift_span(value, by))
        if isinstance(node, n.Grant):
            node.params = [(name, expr, _shift_span(span, by)) for name, expr, span in node.params]


def _shifted_diagnostic(d: Diagnostic, by: int, lines: list[str]) -> Diagnostic:
    span = _shift_span(d.span, by)
    source = lines[span.line - 1] if 0 < span.line <= len(lines) else d.source_line
    return Diagnostic(d.file, span, d.code, d.message, d.hint, d.severity, source)


def display_name(path: Path) -> str:
    """The file name as ``loyalty check`` prints it when run from the current directory."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
