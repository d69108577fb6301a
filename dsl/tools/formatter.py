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
    A rule with one effect is written on one line
    (``rule elite when tier == "GOLD": award 100 miles``) when that line fits in
    :data:`MAX_WIDTH` columns and no comment has to sit between the rule's header and
    its effect; otherwise its effects form an indented block.
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

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

from dsl.errors import Span
from dsl.front import nodes as n
from dsl.front.parser import parse
from dsl.front.visitor import ExprVisitor

#: Lines longer than this are not produced by joining a one-effect rule onto one line.
MAX_WIDTH = 100
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


class FormatError(Exception):
    """The formatter could not lay out a file without changing what it means.

    This is a bug in the formatter, never in the policy: the file is left as it was.
    """


# -- public API ---------------------------------------------------------------------


def format_source(source: str, file: str = "<policy>") -> str:
    """The canonical text of one ``.policy`` file.

    Raises :class:`~dsl.errors.PolicyError` (with positioned diagnostics) when the
    file does not parse, and :class:`FormatError` if the result would not parse back
    to the same policies with the same comments.
    """
    policies = parse(source, file)
    layout = _SourceLayout.scan(source)
    printer = _Printer(layout)
    for index, policy in enumerate(policies):
        printer.policy(policy, first=index == 0)
    text = printer.render()
    _verify(text, policies, layout, file)
    return text


def format_expr(expr: n.Expr) -> str:
    """The canonical text of one expression, with only the parentheses it needs."""
    return _expr(expr)[0]


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


_IGNORED_FIELDS = frozenset({"span", "name_span", "currency_span", "header_spans", "file",
                             "source", "text"})


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


@dataclass(frozen=True, slots=True)
class _Slot:
    """An expression in a line of output: the place where a long line may break."""

    expr: n.Expr
    #: always in parentheses (``award (5) days``, where ``5 days`` would be a duration)
    parens: bool = False

    def flat(self) -> str:
        text = _expr(self.expr)[0]
        return f"({text})" if self.parens else text


_Parts = list[str | _Slot]


def _flat(parts: _Parts) -> str:
    return "".join(p if isinstance(p, str) else p.flat() for p in parts)


@dataclass
class _Line:
    """One line of output code and the source lines it stands for."""

    depth: int
    parts: _Parts
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

    @staticmethod
    def header(p: n.Policy, key: str) -> str:
        if key == "version":
            return f"version {p.version}"
        if key == "on":
            return "on " + ", ".join(p.kinds)
        if key == "description":
            return _string(p.description)
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
            self.emit(depth, [f"let {m.name} = ", _Slot(m.value)], line, blank)
        elif isinstance(m, n.Table):
            self.emit(depth, [f"table {m.name} by ", _Slot(m.key), ":"], line, blank)
            for i, row in enumerate(m.rows):
                keys = ", ".join(_literal(k) for k in row.keys) if row.keys else "else"
                self.emit(depth + 1, [f"{keys} -> ", _Slot(row.value)], row.span.line,
                          _NEVER if i == 0 else _FROM_SOURCE)
        elif isinstance(m, n.Decide):
            self.emit(depth, [f"decide {m.name} {m.hit}:"], line, blank)
            for i, drow in enumerate(m.rows):
                cond: _Parts = ["when ", _Slot(drow.cond)] if drow.cond is not None else ["else"]
                self.emit(depth + 1, [*cond, " -> ", _Slot(drow.value)], drow.span.line,
                          _NEVER if i == 0 else _FROM_SOURCE)
        elif isinstance(m, n.Rule):
            self.rule(m, depth, blank)
        elif isinstance(m, n.Group):
            mode = "first" if m.mode == "first" else f"best {m.currency}"
            self.emit(depth, [f"group {m.name} takes {mode}:"], line, blank)
            for i, rule in enumerate(m.rules):
                self.rule(rule, depth + 1, _NEVER if i == 0 else _FROM_SOURCE)
        elif isinstance(m, n.Cap):
            self.emit(depth, [f"cap {m.currency} at ", _Slot(m.amount)], line, blank)
        elif isinstance(m, n.Round):
            each = " each award" if m.per_award else ""
            self.emit(depth, [f"round {m.currency} {m.mode}{each}"], line, blank)
        else:  # pragma: no cover - the parser makes no other members
            raise FormatError(f"cannot format a {type(m).__name__}")

    def rule(self, r: n.Rule, depth: int, blank: str) -> None:
        head: _Parts = [f"rule {r.name}"]
        if r.cond is not None:
            head += [" when ", _Slot(r.cond)]
        head.append(":")
        effects = [_effect(e) for e in r.effects]
        if len(effects) == 1 and self.fits_on_one_line(r, depth, [*head, " ", *effects[0]]):
            self.emit(depth, [*head, " ", *effects[0]], r.span.line, blank,
                      extra=(r.effects[0].span.line,))
            return
        self.emit(depth, head, r.span.line, blank)
        for i, (effect, parts) in enumerate(zip(r.effects, effects, strict=True)):
            self.emit(depth + 1, parts, effect.span.line, _NEVER if i == 0 else _FROM_SOURCE)

    def fits_on_one_line(self, r: n.Rule, depth: int, parts: _Parts) -> bool:
        """Whether a one-effect rule goes on one line: it fits, and no comment needs a place
        between its header and its effect (decided so that formatting again agrees)."""
        if len(INDENT * depth) + len(_flat(parts)) > MAX_WIDTH:
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

    def emit(self, depth: int, parts: _Parts, line: int, blank: str = _FROM_SOURCE, *,
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
            code = _lay_out(line.parts, len(pad))
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


# -- effects and expressions -------------------------------------------------------------

# Precedence levels, loosest first (see the module docstring).
_IF, _OR, _AND, _NOT, _COMPARE, _OTHERWISE, _SUM, _PRODUCT, _UNARY, _POSTFIX = range(10)

_BINARY_LEVELS = {
    "otherwise": _OTHERWISE, "or": _OR, "and": _AND,
    "==": _COMPARE, "!=": _COMPARE, "<": _COMPARE, "<=": _COMPARE, ">": _COMPARE,
    ">=": _COMPARE, "in": _COMPARE, "not in": _COMPARE,
    "+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT, "%": _PRODUCT, "of": _PRODUCT,
}

_DURATION_UNIT = re.compile(r"(second|minute|hour|day|week)s?\Z")


def _effect(e: n.Effect) -> _Parts:
    if isinstance(e, n.Award):
        # `award 5 days` would read as a duration: keep such an amount apart.
        apart = bool(_DURATION_UNIT.match(e.currency)) and _ends_with_int(e.amount)
        parts: _Parts = ["award ", _Slot(e.amount, parens=apart), f" {e.currency}"]
        if e.limit is not None:
            parts += [" up to ", _Slot(e.limit)]
        return parts
    if isinstance(e, n.Grant):
        parts = [f"grant {_string(e.benefit)}"]
        for i, (name, value, *_) in enumerate(e.params):
            parts += [" with " if i == 0 else ", ", f"{name} = ", _Slot(value)]
        return parts
    if isinstance(e, n.Qualify):
        return [f"qualify for {_string(e.tier)}"]
    if isinstance(e, n.Tag):
        return [f"tag {_string(e.tag)}"]
    raise FormatError(f"cannot format a {type(e).__name__}")  # pragma: no cover


def _ends_with_int(expr: n.Expr) -> bool:
    """Whether the last token of ``expr``'s text is a whole number."""
    if _expr(expr)[0].endswith((")", "]")):
        return False
    while True:
        if isinstance(expr, n.Binary):
            expr = expr.right
        elif isinstance(expr, n.Unary):
            expr = expr.operand
        elif isinstance(expr, n.IfExpr):
            expr = expr.orelse
        elif isinstance(expr, n.Literal):
            return isinstance(expr.value, int) and not isinstance(expr.value, bool)
        else:
            return False


class ExprText(ExprVisitor[tuple[str, int]]):
    """The formatter's expression walker: the text of an expression and the precedence
    level of its outermost operator, one visit_<Node> per kind (an unknown kind raises)."""

    def visit_Literal(self, e: n.Literal) -> tuple[str, int]:
        text = _literal(e)
        return text, _UNARY if text.startswith("-") else _POSTFIX

    def visit_Name(self, e: n.Name) -> tuple[str, int]:
        return e.name, _POSTFIX

    def visit_Attribute(self, e: n.Attribute) -> tuple[str, int]:
        return f"{_operand(e.value, _POSTFIX)}.{e.name}", _POSTFIX

    def visit_Call(self, e: n.Call) -> tuple[str, int]:
        return f"{e.func}({', '.join(_expr(a)[0] for a in e.args)})", _POSTFIX

    def visit_Aggregate(self, e: n.Aggregate) -> tuple[str, int]:
        text = f"{e.func}({_expr(e.body)[0]} for {e.var} in {_expr(e.source)[0]}"
        if e.where is not None:
            text += f" where {_expr(e.where)[0]}"
        return text + ")", _POSTFIX

    def visit_ListExpr(self, e: n.ListExpr) -> tuple[str, int]:
        return "[" + ", ".join(_expr(x)[0] for x in e.items) + "]", _POSTFIX

    def visit_Unary(self, e: n.Unary) -> tuple[str, int]:
        if e.op == "not":
            return f"not {_operand(e.operand, _NOT)}", _NOT
        return f"-{_operand(e.operand, _UNARY)}", _UNARY

    def visit_Presence(self, e: n.Presence) -> tuple[str, int]:
        word = "present" if e.present else "missing"
        return f"{_operand(e.operand, _OTHERWISE)} is {word}", _COMPARE

    def visit_Between(self, e: n.Between) -> tuple[str, int]:
        return (f"{_operand(e.operand, _OTHERWISE)} between {e.start:%H:%M} and {e.end:%H:%M}",
                _COMPARE)

    def visit_IfExpr(self, e: n.IfExpr) -> tuple[str, int]:
        cond = _operand(e.cond, _IF, nested_if=True)
        then = _operand(e.then, _IF, nested_if=True)
        return f"if {cond} then {then} else {_expr(e.orelse)[0]}", _IF

    def visit_Binary(self, e: n.Binary) -> tuple[str, int]:
        level = _BINARY_LEVELS.get(e.op)
        if level is None:  # pragma: no cover - the parser makes no other operators
            raise FormatError(f"unknown operator {e.op!r}")
        left, right = _binary_operands(e)
        left_text = _operand(e.left, left, parent=e.op)
        return f"{left_text} {e.op} {_operand(e.right, right, parent=e.op)}", level


_EXPR_TEXT = ExprText()


def _expr(e: n.Expr) -> tuple[str, int]:
    """The text of ``e`` and the precedence level of its outermost operator."""
    return _EXPR_TEXT.visit(e)


def _binary_operands(e: n.Binary) -> tuple[int, int]:
    """The least precedence level each operand of ``e`` may have without parentheses."""
    level = _BINARY_LEVELS[e.op]
    if level == _OTHERWISE:
        return level + 1, level
    if level == _COMPARE:
        return _OTHERWISE, _OTHERWISE
    return level, level + 1


def _needs_parens(e: n.Expr, level: int, at_least: int, nested_if: bool, parent: str) -> bool:
    if level < at_least:
        return True
    if nested_if and isinstance(e, n.IfExpr):
        return True
    # `a or (b and c)`: precedence alone would drop these, but readers misjudge them.
    return parent == "or" and isinstance(e, n.Binary) and e.op == "and"


def _operand(e: n.Expr, at_least: int, *, nested_if: bool = False, parent: str = "") -> str:
    text, level = _expr(e)
    if _needs_parens(e, level, at_least, nested_if, parent):
        return f"({text})"
    return text


# -- breaking long lines ---------------------------------------------------------------------


def _lay_out(parts: _Parts, col: int) -> list[str]:
    """``parts`` as lines, the first starting at column ``col``.

    A line that does not fit in :data:`MAX_WIDTH` is broken inside one of its
    expressions: the one whose layout overflows least (then: is narrowest, then: has
    fewest lines). Continuation lines carry their own indentation.
    """
    flat = _flat(parts)
    if col + len(flat) <= MAX_WIDTH:
        return [flat]
    best: list[str] = [flat]
    best_score = _score([flat], col)
    for k, slot in enumerate(parts):
        if not isinstance(slot, _Slot):
            continue
        before, after = _flat(parts[:k]), _flat(parts[k + 1:])
        lines = _layout(slot.expr, col + len(before), len(after), parens=slot.parens)
        lines[0] = before + lines[0]
        lines[-1] += after
        score = _score(lines, col)
        if score < best_score:
            best, best_score = lines, score
    return best


def _score(lines: list[str], col: int) -> tuple[int, int, int]:
    """How bad a layout is: overflowing lines, then the widest line, then the line count."""
    widths = [col + len(lines[0]), *(len(line) for line in lines[1:])]
    return (sum(w > MAX_WIDTH for w in widths), max(widths), len(lines))


def _layout(e: n.Expr, col: int, tail: int, at_least: int = _IF, *, nested_if: bool = False,
            parent: str = "", in_brackets: bool = False,
            parens: bool | None = None) -> list[str]:
    """Lines for the expression ``e`` starting at column ``col`` with ``tail`` characters
    still to come after it on its last line.

    Too long for one line, it breaks before each operator of its loosest operator chain
    (``if``/``then``/``else`` each start a line), and between the items of a call or a
    list, with continuation lines lined up under the first; brackets are added around it
    when it is not already inside some, because only brackets let a line continue.
    """
    text, level = _expr(e)
    if parens is None:
        parens = _needs_parens(e, level, at_least, nested_if, parent)
    flat = f"({text})" if parens else text
    if col + len(flat) + tail <= MAX_WIDTH:
        return [flat]
    if parens:
        return _enclose(_layout(e, col + 1, tail + 1, parens=False, in_brackets=True))
    if isinstance(e, n.Call | n.ListExpr | n.Aggregate):
        return _layout_bracketed(e, col, tail)
    if not isinstance(e, n.Binary | n.IfExpr):
        return [flat]
    if isinstance(e, n.Binary) and isinstance(e.right, n.Call | n.ListExpr | n.Aggregate):
        # `tier in ["GOLD", ...` : break inside the brackets that end the line first.
        head = f"{_operand(e.left, _binary_operands(e)[0], parent=e.op)} {e.op} "
        right = _layout_bracketed(e.right, col + len(head), tail)
        if col + len(head) + len(right[0]) <= MAX_WIDTH:
            return [head + right[0], *right[1:]]
    if in_brackets:
        return _layout_open(e, col, tail)
    return _enclose(_layout_open(e, col + 1, tail + 1))


def _layout_open(e: n.Binary | n.IfExpr, col: int, tail: int) -> list[str]:
    """``e`` broken over several lines, inside brackets that are already open."""
    pieces: list[tuple[str, n.Expr, int, bool]] = []  # (prefix, operand, at_least, nested_if)
    parent = ""
    if isinstance(e, n.IfExpr):
        pieces = [("if ", e.cond, _IF, True), ("then ", e.then, _IF, True),
                  ("else ", e.orelse, _IF, False)]
    else:
        parent = e.op
        level = _BINARY_LEVELS[e.op]
        left_min, right_min = _binary_operands(e)
        if level == _OTHERWISE:  # right-associative: a otherwise b otherwise c
            node: n.Expr = e
            while isinstance(node, n.Binary) and node.op == "otherwise":
                pieces.append(("otherwise " if pieces else "", node.left, left_min, False))
                node = node.right
            pieces.append(("otherwise ", node, right_min, False))
        elif level == _COMPARE:
            pieces = [("", e.left, left_min, False), (f"{e.op} ", e.right, right_min, False)]
        else:  # left-associative: collect a - b - c from the bottom up
            node = e
            rights: list[tuple[str, n.Expr, int, bool]] = []
            while (isinstance(node, n.Binary) and _BINARY_LEVELS.get(node.op) == level
                   and not _needs_parens(node, level, left_min, False, parent)):
                rights.append((f"{node.op} ", node.right, right_min, False))
                node = node.left
            pieces = [("", node, left_min, False), *reversed(rights)]
    lines: list[str] = []
    for i, (prefix, operand, at_least, nested_if) in enumerate(pieces):
        last = i == len(pieces) - 1
        sub = _layout(operand, col + len(prefix), tail if last else 0, at_least,
                      nested_if=nested_if, parent=parent, in_brackets=True)
        sub[0] = prefix + sub[0]
        if i:
            sub[0] = " " * col + sub[0]
        lines.extend(sub)
    return lines


def _layout_bracketed(e: n.Call | n.ListExpr | n.Aggregate, col: int, tail: int) -> list[str]:
    """A call, a list or an aggregate with one item (or clause) per line."""
    pieces: list[tuple[str, n.Expr]]
    if isinstance(e, n.Aggregate):
        opener, closer, separator = f"{e.func}(", ")", ""
        pieces = [("", e.body), (f"for {e.var} in ", e.source)]
        if e.where is not None:
            pieces.append(("where ", e.where))
    elif isinstance(e, n.Call):
        opener, closer, separator = f"{e.func}(", ")", ","
        pieces = [("", a) for a in e.args]
    else:
        opener, closer, separator = "[", "]", ","
        pieces = [("", x) for x in e.items]
    if not pieces:
        return [opener + closer]
    inner = col + len(opener)
    if isinstance(e, n.ListExpr):
        packed = _pack([_expr(x)[0] for x in e.items], inner, tail + len(closer))
        if packed is not None:
            packed[0] = opener + packed[0]
            packed[-1] += closer
            return packed
    lines: list[str] = []
    for i, (prefix, item) in enumerate(pieces):
        last = i == len(pieces) - 1
        end = closer if last else separator
        sub = _layout(item, inner + len(prefix), len(end) + (tail if last else 0),
                      in_brackets=True)
        sub[0] = (opener if i == 0 else " " * inner) + prefix + sub[0]
        sub[-1] += end
        lines.extend(sub)
    return lines


def _pack(items: list[str], col: int, tail: int) -> list[str] | None:
    """List items filled onto as few lines as fit, or None if one of them cannot fit."""
    lines: list[str] = []
    current = ""
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        room = MAX_WIDTH - col - (tail if i == len(items) - 1 else 0)
        if len(piece) > room:
            return None
        if current and len(current) + 1 + len(piece) <= room:
            current += " " + piece
        else:
            if current:
                lines.append(current)
            current = piece
    lines.append(current)
    return [lines[0], *(" " * col + line for line in lines[1:])]


def _enclose(lines: list[str]) -> list[str]:
    lines[0] = "(" + lines[0]
    lines[-1] += ")"
    return lines


def _literal(e: n.Literal) -> str:
    value = e.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, timedelta):
        return _duration(e.text, value)
    if isinstance(value, datetime):
        return e.text or value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    text = e.text or str(value)
    minus = len(text) - len(text.lstrip("-"))
    return ("-" if minus % 2 else "") + text[minus:]


def _duration(text: str, value: timedelta) -> str:
    match = re.fullmatch(r"\s*(\d[\d_]*)\s*(second|minute|hour|day|week)s?\s*", text)
    if match is None:  # a duration built by code rather than parsed
        from dsl.decision import format_duration

        return format_duration(value)
    count, unit = match.groups()
    return f"{count} {unit}" if int(count.replace("_", "")) == 1 else f"{count} {unit}s"


def _string(value: str) -> str:
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\t", "\\t"))
    return f'"{escaped}"'


# -- checking the result --------------------------------------------------------------------


def _verify(text: str, policies: list[n.Policy], layout: _SourceLayout,
            file: str) -> None:
    from dsl.errors import PolicyError

    try:
        again = parse(text, file)
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

