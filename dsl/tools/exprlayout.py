"""Expressions and effects in the house layout: their text, their parentheses, and where a
long line breaks (the rules are in :mod:`dsl.tools.formatter`'s docstring).

:mod:`dsl.tools.formatter` lays out whole files (members, blocks, blank lines, comments) and
asks this module for the text of each expression and effect in them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dsl.decision import format_duration
from dsl.front import nodes as n
from dsl.front.visitor import ExprVisitor
from dsl.schema.types import Months

#: Lines longer than this are not produced by joining a one-effect rule onto one line.
MAX_WIDTH = 100


class FormatError(Exception):
    """The formatter could not lay out a file without changing what it means.

    This is a bug in the formatter, never in the policy: the file is left as it was.
    """


@dataclass(frozen=True, slots=True)
class Slot:
    """An expression in a line of output: the place where a long line may break."""

    expr: n.Expr
    #: always in parentheses (``award (5) days``, where ``5 days`` would be a duration)
    parens: bool = False

    def flat(self) -> str:
        text = expr_text(self.expr)[0]
        return f"({text})" if self.parens else text


Parts = list[str | Slot]


def flat_text(parts: Parts) -> str:
    """``parts`` on one line."""
    return "".join(p if isinstance(p, str) else p.flat() for p in parts)


# -- effects and expressions -------------------------------------------------------------

# Precedence levels, loosest first (see the module docstring).
_IF, _OR, _AND, _NOT, _COMPARE, _OTHERWISE, _SUM, _PRODUCT, _UNARY, _POSTFIX = range(10)

_BINARY_LEVELS = {
    "otherwise": _OTHERWISE, "or": _OR, "and": _AND,
    "==": _COMPARE, "!=": _COMPARE, "<": _COMPARE, "<=": _COMPARE, ">": _COMPARE,
    ">=": _COMPARE, "in": _COMPARE, "not in": _COMPARE,
    "+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT, "%": _PRODUCT, "div": _PRODUCT,
    "of": _PRODUCT,
}

_DURATION_UNIT = re.compile(r"(second|minute|hour|day|week)s?\Z")


def effect_parts(e: n.Effect) -> Parts:
    """An effect as the parts of one line, its expressions the places it may break."""
    if isinstance(e, n.Award):
        # `award 5 days` would read as a duration: keep such an amount apart.
        apart = bool(_DURATION_UNIT.match(e.currency)) and _ends_with_int(e.amount)
        parts: Parts = ["award ", Slot(e.amount, parens=apart), f" {e.currency}"]
        if e.limit is not None:
            parts += [" up to ", Slot(e.limit)]
        return parts
    if isinstance(e, n.Grant):
        parts = [f"grant {string_text(e.benefit)}"]
        for i, (name, value, *_) in enumerate(e.params):
            parts += [" with " if i == 0 else ", ", f"{name} = ", Slot(value)]
        return parts
    if isinstance(e, n.Qualify):
        return [f"qualify for {string_text(e.tier)}"]
    if isinstance(e, n.Tag):
        return [f"tag {string_text(e.tag)}"]
    if isinstance(e, n.Count):
        parts = ["count "] if e.amount is None else ["count ", Slot(e.amount), " "]
        parts.append(f"toward {e.counter}")
        if e.limit is not None:
            parts += [" up to ", Slot(e.limit)]
        return parts
    raise FormatError(f"cannot format a {type(e).__name__}")  # pragma: no cover


def _ends_with_int(expr: n.Expr) -> bool:
    """Whether the last token of ``expr``'s text is a whole number."""
    if expr_text(expr)[0].endswith((")", "]")):
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
        text = literal_text(e)
        return text, _UNARY if text.startswith("-") else _POSTFIX

    def visit_Name(self, e: n.Name) -> tuple[str, int]:
        return e.name, _POSTFIX

    def visit_Attribute(self, e: n.Attribute) -> tuple[str, int]:
        return f"{_operand(e.value, _POSTFIX)}.{e.name}", _POSTFIX

    def visit_Call(self, e: n.Call) -> tuple[str, int]:
        return f"{e.func}({', '.join(expr_text(a)[0] for a in e.args)})", _POSTFIX

    def visit_Aggregate(self, e: n.Aggregate) -> tuple[str, int]:
        text = f"{e.func}({expr_text(e.body)[0]} for {e.var} in {expr_text(e.source)[0]}"
        if e.where is not None:
            text += f" where {expr_text(e.where)[0]}"
        return text + ")", _POSTFIX

    def visit_ListExpr(self, e: n.ListExpr) -> tuple[str, int]:
        return "[" + ", ".join(expr_text(x)[0] for x in e.items) + "]", _POSTFIX

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
        return f"if {cond} then {then} else {expr_text(e.orelse)[0]}", _IF

    def visit_Binary(self, e: n.Binary) -> tuple[str, int]:
        level = _BINARY_LEVELS.get(e.op)
        if level is None:  # pragma: no cover - the parser makes no other operators
            raise FormatError(f"unknown operator {e.op!r}")
        left, right = _binary_operands(e)
        left_text = _operand(e.left, left, parent=e.op)
        return f"{left_text} {e.op} {_operand(e.right, right, parent=e.op)}", level


_EXPR_TEXT = ExprText()


def expr_text(e: n.Expr) -> tuple[str, int]:
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
    text, level = expr_text(e)
    if _needs_parens(e, level, at_least, nested_if, parent):
        return f"({text})"
    return text


# -- breaking long lines ---------------------------------------------------------------------


def lay_out(parts: Parts, col: int) -> list[str]:
    """``parts`` as lines, the first starting at column ``col``.

    A line that does not fit in :data:`MAX_WIDTH` is broken inside one of its
    expressions: the one whose layout overflows least (then: is narrowest, then: has
    fewest lines). Continuation lines carry their own indentation.
    """
    flat = flat_text(parts)
    if col + len(flat) <= MAX_WIDTH:
        return [flat]
    best: list[str] = [flat]
    best_score = _score([flat], col)
    for k, slot in enumerate(parts):
        if not isinstance(slot, Slot):
            continue
        before, after = flat_text(parts[:k]), flat_text(parts[k + 1:])
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
    text, level = expr_text(e)
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
        packed = _pack([expr_text(x)[0] for x in e.items], inner, tail + len(closer))
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


def literal_text(e: n.Literal) -> str:
    """A literal as written: numbers in the author's spelling, strings and durations canonical."""
    value = e.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return string_text(value)
    if isinstance(value, timedelta):
        return _duration(e.text, value)
    if isinstance(value, Months):
        match = re.fullmatch(r"\s*(\d[\d_]*)\s*(month|quarter|year)s?\s*", e.text)
        if match is None:  # a span built by code rather than parsed
            return str(value)
        count, unit = match.groups()
        return f"{count} {unit}" if int(count.replace("_", "")) == 1 else f"{count} {unit}s"
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
        return format_duration(value)
    count, unit = match.groups()
    return f"{count} {unit}" if int(count.replace("_", "")) == 1 else f"{count} {unit}s"


def string_text(value: str) -> str:
    """A string literal, escaped the one canonical way."""
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\t", "\\t"))
    return f'"{escaped}"'
