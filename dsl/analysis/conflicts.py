"""Conflicts: conditions that can never hold, and rules that can never fire.

A condition is judged without input: folded when built from literals only, or found to
ask two things of one path that cannot both hold (``event.distance > 500 and
event.distance < 100``). The stage :func:`find_conflicts` reports rules that can never
fire (a false condition, or a rule of a first-match group after one that always
applies); the type checker asks :func:`constant_truth` and :func:`canonical` about
decision-table rows, whose reachability decides the table's type.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from dsl.analysis.result import Checking
from dsl.front import nodes as n

_NOT_CONSTANT: Any = object()


def find_conflicts(c: Checking) -> None:
    """Report every rule that can never fire, alone or within its group."""
    for m in c.policy.members:
        if isinstance(m, n.Rule):
            _rule(c, m)
        elif isinstance(m, n.Group):
            _group(c, m)


def _rule(c: Checking, r: n.Rule) -> None:
    if r.cond is not None and constant_truth(r.cond) is False:
        c.error(r.cond.span, "never_fires",
                f"rule {r.name} can never fire: {why_false(r.cond, c.text)}",
                "correct the condition or delete the rule")


def _group(c: Checking, g: n.Group) -> None:
    catch_all: n.Rule | None = None
    for r in g.rules:
        if g.mode == "first" and catch_all is not None:
            c.error(r.name_span, "never_fires",
                    f"rule {r.name} can never fire: group {g.name} takes the first rule that "
                    f"applies, and rule {catch_all.name} (line {catch_all.span.line}) always does",
                    "move this rule above it, or delete it")
        _rule(c, r)
        if catch_all is None and (r.cond is None or constant_truth(r.cond) is True):
            catch_all = r


def constant_truth(cond: n.Expr) -> bool | None:
    """True or False when a condition's value is known without input, else None."""
    value = _fold(cond)
    if isinstance(value, bool):
        return value
    if _contradiction(cond) is not None:
        return False
    return None


def why_false(cond: n.Expr, text: Callable[[n.Node], str]) -> str:
    """Why ``cond`` (for which :func:`constant_truth` is False) never holds, in the policy's words."""
    clash = _contradiction(cond)
    if clash is not None:
        a, b = clash
        return f"`{text(a)}` and `{text(b)}` cannot both hold"
    return f"`{text(cond)}` is always false"


def _fold(e: n.Expr) -> Any:
    """The value of an expression built from literals only, or _NOT_CONSTANT."""
    if isinstance(e, n.Literal):
        return e.value
    if isinstance(e, n.Unary) and e.op == "not":
        v = _fold(e.operand)
        return (not v) if isinstance(v, bool) else _NOT_CONSTANT
    if isinstance(e, n.Binary):
        if e.op in ("and", "or"):
            a, b = _fold(e.left), _fold(e.right)
            if e.op == "and" and (a is False or b is False):
                return False
            if e.op == "or" and (a is True or b is True):
                return True
            if isinstance(a, bool) and isinstance(b, bool):
                return (a and b) if e.op == "and" else (a or b)
            return _NOT_CONSTANT
        a, b = _fold(e.left), _fold(e.right)
        if a is _NOT_CONSTANT or b is _NOT_CONSTANT:
            return _NOT_CONSTANT
        try:
            if e.op == "==":
                return a == b
            if e.op == "!=":
                return a != b
            if e.op == "<":
                return a < b
            if e.op == "<=":
                return a <= b
            if e.op == ">":
                return a > b
            if e.op == ">=":
                return a >= b
        except TypeError:
            return _NOT_CONSTANT
    return _NOT_CONSTANT


def path_of(e: n.Expr) -> str | None:
    """The dotted path an expression reads (``event.flight.origin``), or None."""
    if isinstance(e, n.Name):
        return e.name
    if isinstance(e, n.Attribute):
        base = path_of(e.value)
        return f"{base}.{e.name}" if base else None
    return None

_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _bound(c: n.Expr) -> tuple[str, str, Any] | None:
    if not isinstance(c, n.Binary) or c.op not in _FLIP:
        return None
    lp, rp = path_of(c.left), path_of(c.right)
    if lp and isinstance(c.right, n.Literal):
        return lp, c.op, c.right.value
    if rp and isinstance(c.left, n.Literal):
        return rp, _FLIP[c.op], c.left.value
    return None


def _contradiction(cond: n.Expr) -> tuple[n.Expr, n.Expr] | None:
    """Two conjuncts of ``cond`` that cannot both hold (same path, clashing constants)."""
    seen: dict[str, list[tuple[str, Any, n.Expr]]] = {}
    for c in n.conjuncts(cond):
        b = _bound(c)
        if b is None:
            continue
        path, op, value = b
        for op2, value2, other in seen.get(path, []):
            try:
                if not _compatible(op, value, op2, value2):
                    return other, c
            except TypeError:
                continue
        seen.setdefault(path, []).append((op, value, c))
    return None


def _compatible(op1: str, v1: Any, op2: str, v2: Any) -> bool:
    """Whether some x satisfies both ``x op1 v1`` and ``x op2 v2`` (x ranges over values of v's type)."""
    if isinstance(v1, bool) != isinstance(v2, bool) or isinstance(v1, str) != isinstance(v2, str):
        return True
    if isinstance(v1, str) and not {op1, op2} <= {"==", "!="}:
        # Ordered text compares by rank (tiers), which needs the type: claim no contradiction.
        return True
    candidates = [v1, v2]
    if isinstance(v1, int | Decimal) and not isinstance(v1, bool):
        lo, hi = min(v1, v2), max(v1, v2)
        candidates += [lo - 1, hi + 1, (Decimal(lo) + Decimal(hi)) / 2]
        if isinstance(v1, int) and isinstance(v2, int):
            candidates = [c for c in candidates]
    elif isinstance(v1, date):
        lo, hi = min(v1, v2), max(v1, v2)
        step = timedelta(days=1) if not isinstance(v1, datetime) else timedelta(seconds=1)
        candidates += [lo - step, hi + step]
        if hi - lo > step:
            candidates.append(lo + step)
    else:
        candidates.append(object())
    return any(_holds(x, op1, v1) and _holds(x, op2, v2) for x in candidates)


def _holds(x: Any, op: str, v: Any) -> bool:
    if op == "==":
        return bool(x == v)
    if op == "!=":
        return bool(x != v)
    try:
        if op == "<":
            return bool(x < v)
        if op == "<=":
            return bool(x <= v)
        if op == ">":
            return bool(x > v)
        if op == ">=":
            return bool(x >= v)
    except TypeError:
        return False
    return True


def canonical(e: n.Expr) -> str:
    """A text for an expression that ignores layout, for spotting repeated conditions."""
    parts: list[str] = []
    for node in n.walk(e):
        if isinstance(node, n.Literal):
            parts.append(repr(node.value))
        elif isinstance(node, n.Name):
            parts.append(node.name)
        else:
            parts.append(type(node).__name__)
            for attr in ("op", "name", "func", "var", "present", "start", "end"):
                if hasattr(node, attr):
                    parts.append(str(getattr(node, attr)))
    return "|".join(parts)
