"""The canonical layout of policy files: what ``loyalty fmt`` writes.

:func:`format_source` parses a file, prints its AST in the house layout, puts the
author's comments back (the parser drops them) and then proves its own work: the
output must parse to the same structure, with the same comments, or it raises
:class:`FormatError` instead of returning text that means something else.

House rules
-----------
Indentation
    Two spaces per level: headers, members and policy-level rules at two, table and
    decision rows, grouped rules and block effects at four (six inside a group).
Headers
    Always in the order ``version``, ``effective``, ``on``, description, whichever
    of them the author wrote, with no blank line among them.
Blank lines
    One blank line between policies, and one between the header and the first member.
    Elsewhere a blank line is kept wherever the author had at least one (a run of
    blank lines becomes one), except at the start of a block, where there is none.
Rules
    A rule with one effect and no text is written on one line
    (``rule elite when tier == "GOLD": award 100 miles``) when that line fits in
    :data:`MAX_WIDTH` columns and no comment has to sit between the rule's header and
    its effect; otherwise its effects form an indented block, its ``says`` lines last,
    in the order written.
Lines
    An expression the author spread over several lines (inside brackets or after a
    backslash) is joined onto one line. A line longer than :data:`MAX_WIDTH` columns
    is broken inside the one expression where that gives the narrowest result. An
    expression breaks, in this order of preference: inside the brackets of a call,
    list or aggregate that ends an operator (``tier in ["GOLD",`` with the rest of the
    list filled onto the lines below); before each operator of its loosest chain of
    operators, or at ``then`` and ``else``, in added parentheses with the continuation
    lines lined up one column inside them; between the arguments of a call (one per
    line) or the clauses of an aggregate. A line that cannot be broken this way (a
    long name, a long string) stays long.
Spacing
    One space around binary operators, ``->``, ``=`` and ``then``/``else``; one after
    a comma; none inside brackets; none after unary minus; ``name: `` only after the
    rule header.
Parentheses
    Only where precedence needs them. From loosest to tightest:
    ``if/then/else`` < ``or`` < ``and`` < ``not`` < comparisons, ``in``, ``is missing``
    < ``otherwise`` < ``+ -`` < ``* / % of`` < unary minus < ``.name`` and calls.
    Binary operators are left-associative except ``otherwise`` (right-associative) and
    comparisons (which do not chain). Two exceptions, for readers: an ``and`` inside an
    ``or`` is always parenthesised (``a or (b and c)``), and so is an ``if`` used as the
    condition or the ``then`` branch of another ``if``.
Literals
    Numbers keep the author's spelling (``25_000``, ``420.00`` and ``12.5%`` stay as
    written, so the exact decimal value, trailing zeros included, is preserved) except
    that a doubled minus sign cancels (``--5`` is ``5``). Strings are re-escaped the one
    canonical way (``\\"``, ``\\\\``, ``\\n``, ``\\t``). Durations are ``N unit`` with
    the unit singular for 1 and plural otherwise (``1 hour``, ``15 minutes``).
Comments
    A comment on a line of its own belongs to the line that follows it and takes that
    line's indentation, unless it is indented deeper than that line: then it closes
    the block above it and stays at the end of that block, at the block's
    indentation (or the author's, if shallower). A comment at column one after the
    last line of the file stays at the end, at column one. A trailing comment stays
    at the end of its line, two spaces after the code. When one line of output joins
    several source lines that carried more than one comment, or a comment on a line
    of its own, those comments move onto their own lines just above it, in their
    original order. Comment text is kept verbatim (trailing spaces removed).
Line ends
    Output lines end with ``\n`` (``\r\n`` becomes ``\n``) and the file ends with
    exactly one newline.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

from dsl.errors import PolicyError, Span
from dsl.front import nodes as n
from dsl.front.parser import parse_file
from dsl.tools.exprlayout import (
    MAX_WIDTH,
    FormatError,
    Parts,
    Slot,
    effect_parts,
    expr_text,
    flat_text,
    lay_out,
    literal_text,
    string_text,
)

#: Spaces per indentation level.
INDENT = "  "

__all__ = [
    "INDENT",
    "MAX_WIDTH",
    "Comment",
    "FormatError",
    "comments",
    "format_expr",
    "format_source",
    "structure",
]




# -- public API ---------------------------------------------------------------------


def format_source(source: str, file: str = "<policy>") -> str:
    """The canonical text of one ``.policy`` file.

    Raises :class:`~dsl.errors.PolicyError` (with positioned diagnostics) when the
    file does not parse, and :class:`FormatError` if the result would not parse back
    to the same policies with the same comments.
    """
    blocks = parse_file(source, file)
    layout = _SourceLayout.scan(source)
    printer = _Printer(layout)
    for index, block in enumerate(blocks):
        if isinstance(block, n.Definitions):
            printer.definitions(block, first=index == 0)
        else:
            printer.policy(block, first=index == 0)
    text = printer.render()
    _verify(text, blocks, layout, file)
    return text


def format_expr(expr: n.Expr) -> str:
    """The canonical text of one expression, with only the parentheses it needs."""
    return expr_text(expr)[0]


def structure(node: Any) -> Any:
    """A hashable, position-free form of an AST (or part of one) for comparisons.

    Two nodes have equal structures when they mean the same thing as written:
    spans, the policy's file and text, and the spelling of literals are ignored, but
    every value is kept exactly (``Decimal("1.50")`` differs from ``Decimal("1.5")``,
    and ``True`` from ``1``).
    """
    if isinstance(node, n.Literal):
        return ("Literal", type(node.value).__name__, _value_key(node.value))
    if isinstance(node, n.Node):
        items = []
        for name in node.__dataclass_fields__:
            if name in _IGNORED_FIELDS:
                continue
            items.append((name, structure(getattr(node, name))))
        return (type(node).__name__, tuple(items))
    if isinstance(node, list | tuple):
        return tuple(structure(x) for x in node if not isinstance(x, Span))
    if isinstance(node, dict):
        return tuple(sorted((k, structure(v)) for k, v in node.items()))
    return (type(node).__name__, _value_key(node))


_IGNORED_FIELDS = frozenset({"span", "name_span", "currency_span", "counter_span", "language_span",
                             "header_spans", "file", "source", "text", "name_spans",
                             "module_span", "description_span", "imported"})


def _value_key(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime | time | timedelta):
        return repr(value)
    return value


# -- what the source looked like -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comment:
    """A ``# ...`` comment found in the source: where it was and whether code preceded it."""

    line: int
    text: str
    standalone: bool


@dataclass
class _SourceLayout:
    """The physical facts of a source file the AST does not keep: comments, blank lines,
    and which physical lines form one logical line (brackets and backslashes join them)."""

    lines: list[str]
    comments: list[Comment]
    #: physical line -> (first, last) physical line of the logical line it belongs to
    logical: dict[int, tuple[int, int]]

    @classmethod
    def scan(cls, source: str) -> _SourceLayout:
        lines = [line.rstrip("\r") for line in source.split("\n")]
        comments: list[Comment] = []
        logical: dict[int, tuple[int, int]] = {}
        depth = 0
        start: int | None = None
        for number, text in enumerate(lines, 1):
            code_end, has_code, depth = _scan_line(text, depth)
            if code_end < len(text):
                comments.append(Comment(number, text[code_end:].rstrip(),
                                        not text[:code_end].strip()))
            if start is None and has_code:
                start = number
            if start is not None:
                continued = depth > 0 or text[:code_end].rstrip().endswith("\\")
                if not continued:
                    for line in range(start, number + 1):
                        logical[line] = (start, number)
                    start = None
        if start is not None:  # an unclosed bracket at the end: the parser has refused it
            for line in range(start, len(lines) + 1):
                logical[line] = (start, len(lines))
        return cls(lines, comments, logical)

    def blank_before(self, line: int) -> bool:
        """Whether the physical line just above ``line`` is blank."""
        return line >= 2 and not self.lines[line - 2].strip()

    def comments_between(self, first: int, last: int) -> list[Comment]:
        """The comments on physical lines ``first`` to ``last``, both included."""
        lines = self.comment_lines
        return self.comments[bisect_left(lines, first):bisect_right(lines, last)]

    @cached_property
    def comment_lines(self) -> list[int]:
        """The line of each comment, in order (for bisection)."""
        return [c.line for c in self.comments]

    def indent(self, line: int) -> int:
        """How many columns of indentation the physical line ``line`` has."""
        text = self.lines[line - 1]
        return len(text) - len(text.lstrip(" \t"))

    def logical_range(self, line: int) -> tuple[int, int]:
        return self.logical.get(line, (line, line))


def _scan_line(text: str, depth: int) -> tuple[int, bool, int]:
    """Where the comment starts (or the length), whether there is code, the bracket depth."""
    in_string = False
    has_code = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            has_code = True
        elif ch == "#":
            return i, has_code, depth
        elif ch in "([":
            depth += 1
            has_code = True
        elif ch in ")]":
            depth = max(depth - 1, 0)
            has_code = True
        elif not ch.isspace() and ch != "\\":
            has_code = True
        i += 1
    return len(text), has_code, depth


# -- laying out lines -----------------------------------------------------------------

#: How the blank line before the first line of an item is decided.
_FROM_SOURCE, _NEVER, _ALWAYS = "source", "never", "always"


@dataclass
class _Line:
    """One line of output code and the source lines it stands for."""

    depth: int
    parts: Parts
    starts: tuple[int, ...]
    blank: str = _FROM_SOURCE
    #: blank lines among this item's own comments are dropped (header lines)
    tight: bool = False
    leading: list[Comment] = field(default_factory=list)
    interior: list[Comment] = field(default_factory=list)
    #: comments that close the block this line ends, with their depth
    after: list[tuple[Comment, int]] = field(default_factory=list)


class _Printer:
    """Turns policies into :class:`_Line` values, then comments and blank lines into text."""

    def __init__(self, layout: _SourceLayout) -> None:
        self.layout = layout
        self.out: list[_Line] = []

    # -- policies and members

    def policy(self, p: n.Policy, *, first: bool) -> None:
        spans = p.header_spans
        self.emit(0, [f"policy {p.name}"], spans["name"].line,
                  blank=_FROM_SOURCE if first else _ALWAYS)
        for key in ("version", "effective", "on", "description"):
            if key in spans:
                self.emit(1, [self.header(p, key)], spans[key].line, blank=_NEVER, tight=True)
        for index, member in enumerate(p.members):
            self.member(member, 1, _ALWAYS if index == 0 else _FROM_SOURCE)

    def definitions(self, d: n.Definitions, *, first: bool) -> None:
        self.emit(0, [f"definitions {d.name}"], d.name_span.line,
                  blank=_FROM_SOURCE if first else _ALWAYS)
        if d.description_span.line > 0:
            self.emit(1, [string_text(d.description)], d.description_span.line, blank=_NEVER,
                      tight=True)
        for index, member in enumerate(d.members):
            self.member(member, 1, _ALWAYS if index == 0 else _FROM_SOURCE)

    @staticmethod
    def header(p: n.Policy, key: str) -> str:
        if key == "version":
            return f"version {p.version}"
        if key == "on":
            return "on " + ", ".join(p.kinds)
        if key == "description":
            return string_text(p.description)
        start, until = p.effective_from, p.effective_until
        if start is not None and until is not None:
            return f"effective {start.isoformat()} to {until.isoformat()}"
        if start is not None:
            return f"effective from {start.isoformat()}"
        assert until is not None
        return f"effective until {until.isoformat()}"

    def member(self, m: n.Member, depth: int, blank: str) -> None:
        line = m.span.line
        if isinstance(m, n.Let):
            self.emit(depth, [f"let {m.name} = ", Slot(m.value)], line, blank)
        elif isinstance(m, n.Table):
            self.emit(depth, [f"table {m.name} by ", Slot(m.key), ":"], line, blank)
            for i, row in enumerate(m.rows):
                keys = ", ".join(literal_text(k) for k in row.keys) if row.keys else "else"
                self.emit(depth + 1, [f"{keys} -> ", Slot(row.value)], row.span.line,
                          _NEVER if i == 0 else _FROM_SOURCE)
        elif isinstance(m, n.Decide):
            self.emit(depth, [f"decide {m.name} {m.hit}:"], line, blank)
            for i, drow in enumerate(m.rows):
                cond: Parts = ["when ", Slot(drow.cond)] if drow.cond is not None else ["else"]
                self.emit(depth + 1, [*cond, " -> ", Slot(drow.value)], drow.span.line,
                          _NEVER if i == 0 else _FROM_SOURCE)
        elif isinstance(m, n.Rule):
            self.rule(m, depth, blank)
        elif isinstance(m, n.Group):
            mode = "first" if m.mode == "first" else f"best {m.currency}"
            self.emit(depth, [f"group {m.name} takes {mode}:"], line, blank)
            for i, rule in enumerate(m.rules):
                self.rule(rule, depth + 1, _NEVER if i == 0 else _FROM_SOURCE)
        elif isinstance(m, n.Cap):
            self.emit(depth, [f"cap {m.currency} at ", Slot(m.amount)], line, blank)
        elif isinstance(m, n.Round):
            each = " each award" if m.per_award else ""
            self.emit(depth, [f"round {m.currency} {m.mode}{each}"], line, blank)
        elif isinstance(m, n.Counter):
            self.emit(depth, [f"counter {m.name}: {m.kind} {m.period.text}"], line, blank)
        elif isinstance(m, n.Use):
            self.emit(depth, [f"use {', '.join(m.names)} from {m.module}"], line, blank)
        else:  # pragma: no cover - the parser makes no other members
            raise FormatError(f"cannot format a {type(m).__name__}")

    def rule(self, r: n.Rule, depth: int, blank: str) -> None:
        head: Parts = [f"rule {r.name}"]
        if r.cond is not None:
            head += [" when ", Slot(r.cond)]
        head.append(":")
        effects = [effect_parts(e) for e in r.effects]
        if len(effects) == 1 and not r.texts and self.fits_on_one_line(r, depth,
                                                                        [*head, " ", *effects[0]]):
            self.emit(depth, [*head, " ", *effects[0]], r.span.line, blank,
                      extra=(r.effects[0].span.line,))
            return
        self.emit(depth, head, r.span.line, blank)
        for i, (effect, parts) in enumerate(zip(r.effects, effects, strict=True)):
            self.emit(depth + 1, parts, effect.span.line, _NEVER if i == 0 else _FROM_SOURCE)
        for t in r.texts:
            language = f"{t.language} " if t.language else ""
            self.emit(depth + 1, [f"says {language}{string_text(t.text)}"], t.span.line)

    def fits_on_one_line(self, r: n.Rule, depth: int, parts: Parts) -> bool:
        """Whether a one-effect rule goes on one line: it fits, and no comment needs a place
        between its header and its effect (decided so that formatting again agrees)."""
        if len(INDENT * depth) + len(flat_text(parts)) > MAX_WIDTH:
            return False
        head = self.layout.logical_range(r.span.line)
        body = self.layout.logical_range(r.effects[0].span.line)
        if head == body:  # already on one line: its comments stay with it
            return True
        in_head = self.layout.comments_between(head[0], head[1])
        between = self.layout.comments_between(head[1] + 1, body[0] - 1)
        in_body = self.layout.comments_between(body[0], body[1])
        if between:
            return False
        if len(in_body) > 1 or any(c.standalone for c in in_body):
            return False  # in a block they sit above the effect, so the block must stay
        # A comment trailing each line would become two comments on one line.
        return not (in_body and len(in_head) == 1 and not in_head[0].standalone)

    def emit(self, depth: int, parts: Parts, line: int, blank: str = _FROM_SOURCE, *,
             tight: bool = False, extra: tuple[int, ...] = ()) -> None:
        self.out.append(_Line(depth, parts, (line, *extra), blank, tight))

    # -- comments and blank lines

    def render(self) -> str:
        footer = self.attach_comments()
        rendered: list[str] = []

        def put(text: str, blank: bool) -> None:
            if blank and rendered:
                rendered.append("")
            rendered.append(text)

        for line in self.out:
            pad = INDENT * line.depth
            elements: list[tuple[str, int | None]] = [(pad + c.text, c.line) for c in line.leading]
            trailing = ""
            if len(line.interior) == 1 and not line.interior[0].standalone:
                trailing = "  " + line.interior[0].text
            elif line.interior:
                moved = [(pad + c.text, None) for c in line.interior]
                moved[0] = (moved[0][0], line.starts[0])
                elements.extend(moved)
            code_line: int | None = None if len(elements) > len(line.leading) else line.starts[0]
            code = lay_out(line.parts, len(pad))
            code[-1] += trailing
            elements.append((pad + "\n".join(code), code_line))
            for i, (text, source_line) in enumerate(elements):
                if i == 0 and line.blank != _FROM_SOURCE:
                    blank = line.blank == _ALWAYS
                elif line.tight and i > 0:
                    blank = False
                else:
                    blank = source_line is not None and self.layout.blank_before(source_line)
                put(text, blank)
            for comment, depth in line.after:
                put(INDENT * depth + comment.text, self.layout.blank_before(comment.line))
        for comment in footer:
            put(comment.text, self.layout.blank_before(comment.line))
        return "\n".join(rendered) + "\n"

    def attach_comments(self) -> list[Comment]:
        """Give every comment to a line of output; returns those left for the end."""
        owner: dict[int, _Line] = {}
        for line in self.out:  # later lines win: an inline rule split into a block
            for start in line.starts:
                first, last = self.layout.logical_range(start)
                for physical in range(first, last + 1):
                    owner[physical] = line
        by_start = sorted(self.out, key=lambda line: line.starts[0])
        starts = [line.starts[0] for line in by_start]
        footer: list[Comment] = []
        opened: set[int] = set()
        for comment in self.layout.comments:
            if comment.line in owner:
                owner[comment.line].interior.append(comment)
                continue
            after = bisect_right(starts, comment.line)  # no line starts on a comment's line
            following = by_start[after] if after < len(by_start) else None
            previous = by_start[after - 1] if after > 0 else None
            indent = self.layout.indent(comment.line)
            floor = 0 if following is None else following.depth
            below = 0 if following is None else self.layout.indent(following.starts[0])
            gap = id(previous)
            if (previous is not None and gap not in opened and indent > below
                    and previous.depth > floor):
                # Indented deeper than what follows: it closes the block above.
                depth = min(max(indent // len(INDENT), floor + 1), previous.depth)
                previous.after.append((comment, depth))
                continue
            opened.add(gap)  # what comes after this in the gap belongs to the next line too
            if following is None:
                footer.append(comment)
            else:
                following.leading.append(comment)
        return footer


# -- checking the result --------------------------------------------------------------------


def _verify(text: str, policies: list[n.Policy | n.Definitions], layout: _SourceLayout,
            file: str) -> None:
    try:
        again = parse_file(text, file)
    except PolicyError as exc:
        raise FormatError(f"{file}: the formatted text does not parse: {exc}") from None
    if structure(again) != structure(policies):
        raise FormatError(f"{file}: formatting would change the meaning of the policies")
    after = _SourceLayout.scan(text)
    if sorted(c.text for c in after.comments) != sorted(c.text for c in layout.comments):
        raise FormatError(f"{file}: formatting would lose or change a comment")


def comments(source: str) -> list[Comment]:
    """Every comment in ``source``, in order (strings are not mistaken for comments)."""
    return _SourceLayout.scan(source).comments

