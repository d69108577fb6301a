"""The columnar backend: a checked policy set -> a lazy Polars plan over a history's columns.

The second backend over the same checked AST as :mod:`dsl.backend.codegen` (Ibis's shape: one
typed tree, several visitors held equal by shared tests). Where the code generator writes a
Python function evaluated once per event, this one builds Polars expressions evaluated once
per column: ``loyalty replay`` of a Parquet or CSV history runs both sets over a chunk's
columns in one optimised plan, and only the rows it cannot judge take the row path.

Why Polars rather than Arrow compute: the lazy engine optimises the plan as a whole
(projection pushdown, common subexpressions, streaming), its expressions compose as the
AST does (``when/then/otherwise`` is an ``if``), and it has exact 64-bit integer kernels
for the scaled money arithmetic below; Arrow compute is eager, kernel by kernel.

Exactness. Every number is a scaled integer: an ``Int64`` column ``v`` at scale ``s`` means
``v / 10**s``, with a static bound on ``|v|`` carried beside it. A construct whose bound
could pass 2**62 is refused at compile time (so no arithmetic can wrap), and the input
stage sends any row whose numbers pass :data:`INPUT_BOUND` to the row path. Rounding
(down, up, half even, half up) is integer division on those scaled values, as the code
generator's fast paths do; never a float.

What it refuses. Every node kind is either compiled or refused with :class:`Unsupported`
(naming the construct and its line): division and ``%``, aggregates over lists,
``between``, datetimes and durations as values, decision tables that collect, grants
with parameters, and anything stateful. A policy set with a refused policy for an event
kind replays that kind's rows on the row path; :func:`compile_pair` says which.

One module, as the code generator is one: the compiler, the input stage and the plan's
evaluation share one representation of values (scaled Int64 with static bounds, nullability
from the checker's types), and each only makes sense with the others.

Security: nothing from policy text becomes code or a column name. Literals enter the
plan only as ``pl.lit`` values; columns are named by the compiler (``l3``, ``r7``...) and
input columns by schema paths matched against the history's own column names.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from dsl.analysis.result import CheckResult
from dsl.backend.interpreter import awarded_currencies
from dsl.front import nodes as n
from dsl.schema.schema import Schema

if TYPE_CHECKING:
    from dsl.policyset import PolicySet

__all__ = ["INPUT_BOUND", "ColumnarPair", "Unsupported", "compile_pair", "polars_or_none"]

#: Largest magnitude of an input number the columnar path takes; larger ones take the row path.
INPUT_BOUND = 10**12
#: Largest magnitude a scaled intermediate may reach (well inside Int64).
_LIMIT = 2**62
#: Most decimal places a scaled number may carry.
_MAX_SCALE = 12
#: Most places of an input decimal the columnar path reads.
_INPUT_PLACES = 4

_ROUND_MODES = ("down", "up", "half even", "half up")


def polars_or_none() -> Any:
    """The polars module, or None when it is not installed (replay then takes the row path)."""
    try:
        import polars
    except ImportError:
        return None
    return polars


class Unsupported(Exception):
    """A construct the columnar backend does not compile: the row path takes its rows."""

    def __init__(self, what: str, node: n.Node | None = None) -> None:
        line = f" (line {node.span.line})" if node is not None and node.span.line > 0 else ""
        super().__init__(f"{what}{line}")


@dataclass
class Value:
    """A compiled expression: its Polars expression, kind, scale, bound and whether it may be null.

    ``kind`` is ``num`` (a scaled Int64), ``bool``, ``str`` or ``date``.
    """

    expr: Any
    kind: str
    scale: int = 0
    bound: int = 0
    nullable: bool = False


# -- scaled integer helpers ----------------------------------------------------------------------


def _rescale(v: Value, scale: int) -> Value:
    """``v`` at a larger scale (multiplying by a power of ten)."""
    if scale == v.scale:
        return v
    factor = 10 ** (scale - v.scale)
    bound = v.bound * factor
    if bound > _LIMIT or scale > _MAX_SCALE:
        raise Unsupported("a number too large for 64-bit columns")
    return Value(v.expr * factor, "num", scale, bound, v.nullable)


def _align(a: Value, b: Value) -> tuple[Value, Value]:
    s = max(a.scale, b.scale)
    return _rescale(a, s), _rescale(b, s)


def _round_to(pl: Any, v: Value, places: int, mode: str) -> Value:
    """``v`` rounded to ``places`` decimals by ``mode`` (exact integer division)."""
    if v.scale <= places:
        return _rescale(v, places)
    d = 10 ** (v.scale - places)
    x = v.expr
    if mode == "down":  # toward zero
        out = pl.when(x >= 0).then(x // d).otherwise(-((-x) // d))
    elif mode == "up":  # away from zero
        out = pl.when(x >= 0).then(-((-x) // d)).otherwise(-(x // d))
    elif mode == "half up":  # half away from zero
        out = pl.when(x >= 0).then((2 * x + d) // (2 * d)).otherwise(-((2 * (-x) + d) // (2 * d)))
    elif mode == "half even":
        q = x // d  # floor
        r = x - q * d
        up = (2 * r > d) | ((2 * r == d) & (q % 2 == 1))
        out = pl.when(up).then(q + 1).otherwise(q)
    else:
        raise Unsupported(f"rounding {mode}")
    return Value(out, "num", places, v.bound // d + 1, v.nullable)


# -- one policy -----------------------------------------------------------------------------------


@dataclass
class _Stage:
    """Columns one policy adds, in order (each may read the ones before)."""

    columns: list[tuple[str, Any]] = field(default_factory=list)


@dataclass
class CompiledColumns:
    """One policy as columns: its awards per currency (scaled to the currency's decimals), the
    rules that fired, and the benefits, tiers and tags their effects give."""

    name: str
    kinds: tuple[str, ...]
    effective_from: date | None
    effective_until: date | None
    stages: list[list[tuple[str, Any]]]
    awards: dict[str, str]  # currency -> column
    fired: list[tuple[str, str]]  # (rule name, column)
    grants: list[tuple[str, str]]  # (benefit, fired column), in effect order
    qualifies: list[tuple[str, str]]
    tags: list[tuple[str, str]]
    reads: set[tuple[str, ...]]
    lookups: list[tuple[str, Any, tuple[str, ...]]]  # (column, function, argument columns)


class PolicyCompiler:
    """Compiles one checked policy to :class:`CompiledColumns` (a visitor over its nodes)."""

    def __init__(self, pl: Any, policy: n.Policy, check: CheckResult, schema: Schema,
                 prefix: str) -> None:
        self.pl = pl
        self.policy = policy
        self.check = check
        self.schema = schema
        self.prefix = prefix
        self.env: dict[str, Value] = {}
        self.stages: list[list[tuple[str, Any]]] = []
        self.reads: set[tuple[str, ...]] = set()
        self.lookups: list[tuple[str, Any, tuple[str, ...]]] = []
        self._count = 0

    def column(self, expr: Any) -> str:
        """Materialise ``expr`` as a new column of its own stage; its generated name."""
        self._count += 1
        name = f"{self.prefix}_{self._count}"
        self.stages.append([(name, expr)])
        return name

    def bind(self, v: Value) -> Value:
        return Value(self.pl.col(self.column(v.expr)), v.kind, v.scale, v.bound, v.nullable)

    # -- members -------------------------------------------------------------------------------

    def compile(self) -> CompiledColumns:
        pl = self.pl
        p = self.policy
        currencies = awarded_currencies(p)
        for cur in currencies:
            if cur not in self.schema.currencies:
                raise Unsupported(f"currency {cur}")
        totals: dict[str, list[Value]] = {c: [] for c in currencies}
        fired: list[tuple[str, str]] = []
        grants: list[tuple[str, str]] = []
        qualifies: list[tuple[str, str]] = []
        tags: list[tuple[str, str]] = []

        def effects(rule: n.Rule, when: Any, amounts: dict[str, Value]) -> None:
            col = self.column(when)
            fired.append((rule.name, col))
            for cur, v in amounts.items():
                totals[cur].append(Value(pl.when(pl.col(col)).then(v.expr).otherwise(0), "num",
                                         v.scale, v.bound))
            for e in rule.effects:
                if isinstance(e, n.Grant):
                    if e.params:
                        raise Unsupported("a grant with parameters", e)
                    grants.append((e.benefit, col))
                elif isinstance(e, n.Qualify):
                    qualifies.append((e.tier, col))
                elif isinstance(e, n.Tag):
                    tags.append((e.tag, col))
                elif not isinstance(e, n.Award):
                    raise Unsupported(f"effect {type(e).__name__}", e)

        for m in p.members:
            if isinstance(m, n.Let):
                self.env[m.name] = self.bind(self.expr(m.value))
            elif isinstance(m, n.Table):
                self.env[m.name] = self.bind(self.table(m))
            elif isinstance(m, n.Decide):
                self.env[m.name] = self.bind(self.decide(m))
            elif isinstance(m, n.Rule):
                cond = self.condition(m.cond)
                effects(m, cond, self.rule_awards(m))
            elif isinstance(m, n.Group):
                self.group(m, effects)
            elif isinstance(m, n.Cap | n.Round):
                continue  # applied to the totals below
            else:
                raise Unsupported(f"member {type(m).__name__}", m)
        awards: dict[str, str] = {}
        for cur in currencies:
            places = self.schema.currencies[cur].decimals
            parts = totals[cur]
            scale = max([v.scale for v in parts] + [0])
            total = Value(pl.lit(0, dtype=pl.Int64), "num", scale, 0)
            for v in parts:
                v = _rescale(v, scale)
                total = Value(total.expr + v.expr, "num", scale, total.bound + v.bound)
            if total.bound > _LIMIT:
                raise Unsupported("a total too large for 64-bit columns")
            total = self.bind(total)
            rounding = next((r for r in p.roundings if r.currency == cur and not r.per_award), None)
            if rounding is not None and cur not in self.check.per_award:
                total = _round_to(pl, total, places, rounding.mode)
            elif total.scale > places:
                raise Unsupported(f"an unrounded {cur} award with more than {places} decimals")
            total = _rescale(total, places)
            for cap in p.caps:
                if cap.currency != cur:
                    continue
                limit = self.expr(cap.amount)
                self.numeric(limit, cap)
                limit = _round_to(pl, limit, places, "down")
                limit = Value(pl.when(limit.expr < 0).then(0).otherwise(limit.expr), "num",
                              places, limit.bound)
                total = Value(pl.min_horizontal(total.expr, limit.expr), "num", places, total.bound)
            awards[cur] = self.column(total.expr)
        return CompiledColumns(p.name, tuple(p.kinds), p.effective_from, p.effective_until,
                               self.stages, awards, fired, grants, qualifies, tags, self.reads,
                               self.lookups)

    def condition(self, cond: n.Expr | None) -> Any:
        """A rule's condition as a non-null Boolean (a missing value is false, as in Python)."""
        if cond is None:
            return self.pl.lit(True)
        v = self.expr(cond)
        if v.kind != "bool":
            raise Unsupported("a condition that is not a boolean", cond)
        return v.expr.fill_null(False) if v.nullable else v.expr

    def numeric(self, v: Value, node: n.Node) -> None:
        if v.kind != "num" or v.nullable:
            raise Unsupported("a number that may be missing", node)

    def rule_awards(self, r: n.Rule) -> dict[str, Value]:
        """Each currency's amount of a rule's awards (as award_value computes them)."""
        out: dict[str, Value] = {}
        for e in r.effects:
            if isinstance(e, n.Award):
                v = self.award(e)
                if e.currency in out:
                    a, b = _align(out[e.currency], v)
                    v = Value(a.expr + b.expr, "num", a.scale, a.bound + b.bound)
                out[e.currency] = v
        return {cur: self.bind(v) for cur, v in out.items()}

    def award(self, e: n.Award) -> Value:
        pl = self.pl
        places = self.schema.currencies[e.currency].decimals
        mode = self.check.rounding.get(e.currency)
        per_award = e.currency in self.check.per_award
        v = self.expr(e.amount)
        self.numeric(v, e)
        if mode and per_award:
            v = _round_to(pl, v, places, mode)
        elif not mode:
            if v.scale > places:
                raise Unsupported("an award with more decimals than its currency", e)
            v = _rescale(v, places)
        if e.limit is not None:
            lim = self.expr(e.limit)
            self.numeric(lim, e)
            lim = _rescale(_round_to(pl, lim, places, "down"), max(v.scale, places))
            v, lim = _align(v, lim)
            v = Value(pl.min_horizontal(v.expr, lim.expr), "num", v.scale, v.bound)
        return Value(pl.when(v.expr <= 0).then(0).otherwise(v.expr), "num", v.scale, v.bound)

    def group(self, g: n.Group, effects: Any) -> None:
        pl = self.pl
        if g.mode == "first":
            taken = pl.lit(False)
            for r in g.rules:
                cond = self.condition(r.cond)
                mine = pl.col(self.column(~taken & cond))
                effects(r, mine, self.rule_awards(r))
                taken = taken | mine
            return
        if g.mode != "best":
            raise Unsupported(f"group mode {g.mode}", g)
        candidates = []
        for r in g.rules:
            cond = pl.col(self.column(self.condition(r.cond)))
            amounts = self.rule_awards(r)
            mine = amounts.get(g.currency, Value(pl.lit(0, dtype=pl.Int64), "num", 0, 0))
            candidates.append((r, cond, amounts, mine))
        scale = max(m.scale for *_, m in candidates)
        chosen: Any = pl.lit(-1, dtype=pl.Int64)
        best: Any = pl.lit(0, dtype=pl.Int64)
        for i, (_, cond, _, mine) in enumerate(candidates):
            m = _rescale(mine, scale).expr
            take = cond & ((chosen < 0) | (m > best))
            chosen = pl.col(self.column(pl.when(take).then(i).otherwise(chosen)))
            best = pl.col(self.column(pl.when(take).then(m).otherwise(best)))
        for i, (r, _, amounts, _) in enumerate(candidates):
            effects(r, chosen == i, amounts)

    def table(self, t: n.Table) -> Value:
        key = self.expr(t.key)
        branches: list[tuple[Any, Value]] = []
        otherwise: Value | None = None
        for row in t.rows:
            value = self.expr(row.value)
            if not row.keys:
                otherwise = value
                continue
            test = None
            for k in row.keys:
                one = self.compare("==", key, self.expr(k), k)
                test = one if test is None else (test | one)
            branches.append((test, value))
        return self.chain(branches, otherwise, t)

    def decide(self, d: n.Decide) -> Value:
        if d.hit != "first":
            raise Unsupported("a decision table that collects", d)
        branches: list[tuple[Any, Value]] = []
        otherwise: Value | None = None
        for row in d.rows:
            if row.cond is None:
                otherwise = self.expr(row.value)
                break
            branches.append((self.condition(row.cond), self.expr(row.value)))
        return self.chain(branches, otherwise, d)

    def chain(self, branches: list[tuple[Any, Value]], otherwise: Value | None, node: n.Node) -> Value:
        """``when b1 then v1 when b2 then v2 ... otherwise`` over values of one kind."""
        pl = self.pl
        values = [v for _, v in branches] + ([otherwise] if otherwise is not None else [])
        kinds = {v.kind for v in values}
        if len(kinds) != 1:
            raise Unsupported("a table whose values differ in kind", node)
        kind = kinds.pop()
        scale = max(v.scale for v in values) if kind == "num" else 0
        values = [_rescale(v, scale) if kind == "num" else v for v in values]
        nullable = otherwise is None or any(v.nullable for v in values)
        if not branches:
            assert otherwise is not None
            return values[-1]
        expr: Any = pl.when(branches[0][0]).then(values[0].expr)
        for (test, _), v in zip(branches[1:], values[1:len(branches)], strict=True):
            expr = expr.when(test).then(v.expr)
        expr = expr.otherwise(values[-1].expr if otherwise is not None else None)
        return Value(expr, kind, scale, max(v.bound for v in values), nullable)

    # -- expressions -----------------------------------------------------------------------------

    def expr(self, e: n.Expr) -> Value:
        method = getattr(self, f"visit_{type(e).__name__}", None)
        if method is None:
            raise Unsupported(f"expression {type(e).__name__}", e)
        return method(e)  # type: ignore[no-any-return]

    def visit_Literal(self, e: n.Literal) -> Value:
        pl = self.pl
        v = e.value
        if isinstance(v, bool):
            return Value(pl.lit(v), "bool")
        if isinstance(v, int):
            if abs(v) > _LIMIT:
                raise Unsupported("an integer too large for 64-bit columns", e)
            return Value(pl.lit(v, dtype=pl.Int64), "num", 0, abs(v))
        if isinstance(v, Decimal):
            if not v.is_finite():
                raise Unsupported("a decimal that is not finite", e)
            exponent = v.as_tuple().exponent
            assert isinstance(exponent, int)
            scale = max(-exponent, 0)
            scaled = int(v.scaleb(scale))
            if scale > _MAX_SCALE or abs(scaled) > _LIMIT:
                raise Unsupported("a decimal too precise for 64-bit columns", e)
            return Value(pl.lit(scaled, dtype=pl.Int64), "num", scale, abs(scaled))
        if isinstance(v, str):
            return Value(pl.lit(v, dtype=pl.String), "str")
        if type(v) is date:
            return Value(pl.lit(v, dtype=pl.Date), "date")
        raise Unsupported(f"a {type(v).__name__} literal", e)

    def visit_Name(self, e: n.Name) -> Value:
        found = self.env.get(e.name)
        if found is None:
            raise Unsupported(f"the name {e.name} as a value", e)
        return found

    def visit_Attribute(self, e: n.Attribute) -> Value:
        path: list[str] = []
        x: n.Expr = e
        while isinstance(x, n.Attribute):
            path.append(x.name)
            x = x.value
        if not isinstance(x, n.Name) or x.name not in ("customer", "event"):
            raise Unsupported("a field of something other than the customer or the event", e)
        full = (x.name, *reversed(path))
        t = self.check.type_of(e)
        kind = _VALUE_KINDS.get(t.kind)
        if kind is None or (full == ("event", "kind")):
            raise Unsupported(f"a {t.kind} field", e)
        self.reads.add(full)
        bound = INPUT_BOUND * 10**_INPUT_PLACES if t.kind == "decimal" else INPUT_BOUND
        # A field that is neither optional nor defaulted is present in every row the input
        # stage passes (it requires it); the checker's type says which may be missing.
        return Value(self.pl.col(_input_column(full)), kind, _INPUT_PLACES if t.kind == "decimal" else 0,
                     bound if kind == "num" else 0, nullable=t.optional)

    def visit_Unary(self, e: n.Unary) -> Value:
        v = self.expr(e.operand)
        if e.op == "not":
            if v.kind != "bool" or v.nullable:
                raise Unsupported("not of a value that may be missing", e)
            return Value(~v.expr, "bool")
        self.numeric(v, e)
        return Value(-v.expr, "num", v.scale, v.bound)

    def visit_Presence(self, e: n.Presence) -> Value:
        v = self.expr(e.operand)
        return Value(v.expr.is_not_null() if e.present else v.expr.is_null(), "bool")

    def visit_IfExpr(self, e: n.IfExpr) -> Value:
        return self.chain([(self.condition(e.cond), self.expr(e.then))], self.expr(e.orelse), e)

    def visit_Call(self, e: n.Call) -> Value:
        pl = self.pl
        args = [self.expr(a) for a in e.args]
        if e.func in ("min", "max") and len(args) == 2:
            for a in args:
                self.numeric(a, e)
            a, b = _align(*args)
            f = pl.min_horizontal if e.func == "min" else pl.max_horizontal
            return Value(f(a.expr, b.expr), "num", a.scale, max(a.bound, b.bound))
        if e.func == "tenure_years" and len(args) == 2 and all(a.kind == "date" for a in args):
            if any(a.nullable for a in args):
                raise Unsupported("tenure_years of a date that may be missing", e)
            return Value(_tenure_years(pl, args[0].expr, args[1].expr), "num", 0, 10_000)
        if e.func == "distance_miles" and len(args) == 2 and all(a.kind == "str" for a in args):
            from dsl.library.runtime import distance_miles

            if any(a.nullable for a in args):
                raise Unsupported("distance_miles of an airport that may be missing", e)
            # Looked up once per distinct pair of input fields, joined before the plan runs.
            paths = tuple(_field_path(a) for a in e.args)
            if any(p is None for p in paths):
                raise Unsupported("distance_miles of something other than two fields", e)
            names = tuple(_input_column(p) for p in paths if p is not None)
            out = "lookup:distance_miles:" + ":".join(names)
            self.lookups.append((out, distance_miles, names))
            return Value(pl.col(out), "num", 0, 13_000)
        raise Unsupported(f"the function {e.func}", e)

    def visit_Binary(self, e: n.Binary) -> Value:
        pl = self.pl
        op = e.op
        if op == "otherwise":
            a, b = self.expr(e.left), self.expr(e.right)
            if a.kind != b.kind:
                raise Unsupported("otherwise between values of different kinds", e)
            if a.kind == "num":
                a, b = _align(a, b)
            return Value(pl.coalesce(a.expr, b.expr), a.kind, a.scale, max(a.bound, b.bound),
                         b.nullable)
        if op in ("and", "or"):
            a, b = self.expr(e.left), self.expr(e.right)
            if a.kind != "bool" or b.kind != "bool" or a.nullable or b.nullable:
                raise Unsupported(f"{op} of values that may be missing", e)
            return Value(a.expr & b.expr if op == "and" else a.expr | b.expr, "bool")
        if op in ("in", "not in"):
            if not isinstance(e.right, n.ListExpr) or \
                    not all(isinstance(x, n.Literal) for x in e.right.items):
                raise Unsupported(f"{op} of something other than a list of literals", e)
            a = self.expr(e.left)
            items = [self.expr(x) for x in e.right.items]
            test: Any = pl.lit(False)
            for item in items:
                test = test | self.compare("==", a, item, e)
            return Value(test if op == "in" else ~test, "bool")
        if op in ("==", "!=", "<", "<=", ">", ">="):
            return Value(self.compare(op, self.expr(e.left), self.expr(e.right), e), "bool")
        if op in ("+", "-", "*", "of"):
            a, b = self.expr(e.left), self.expr(e.right)
            self.numeric(a, e)
            self.numeric(b, e)
            if op in ("+", "-"):
                a, b = _align(a, b)
                bound = a.bound + b.bound
                expr = a.expr + b.expr if op == "+" else a.expr - b.expr
                scale = a.scale
            else:
                bound = a.bound * b.bound
                scale = a.scale + b.scale
                expr = a.expr * b.expr
            if bound > _LIMIT or scale > _MAX_SCALE:
                raise Unsupported("arithmetic that could pass 64-bit columns", e)
            return Value(expr, "num", scale, bound)
        raise Unsupported(f"the operator {op}", e)

    def compare(self, op: str, a: Value, b: Value, node: n.Node) -> Any:
        """A non-null Boolean comparison, with Python's meaning for a missing operand
        (equal only to missing; ordering a missing value is refused)."""
        if a.kind != b.kind:
            raise Unsupported("a comparison of values of different kinds", node)
        if a.kind == "num":
            a, b = _align(a, b)
        if op in ("==", "!="):
            if a.nullable or b.nullable:
                same = a.expr.eq_missing(b.expr)
                return same if op == "==" else ~same
            return a.expr == b.expr if op == "==" else a.expr != b.expr
        if a.nullable or b.nullable or a.kind == "bool":
            raise Unsupported("ordering values that may be missing", node)
        if a.kind == "str":  # only ordered enums (the tiers) are ordered text: by rank
            raise Unsupported("ordering tiers or ordered values by rank", node)
        return {"<": a.expr < b.expr, "<=": a.expr <= b.expr,
                ">": a.expr > b.expr, ">=": a.expr >= b.expr}[op]

    def visit_ListExpr(self, e: n.ListExpr) -> Value:
        raise Unsupported("a list value", e)

    def visit_Aggregate(self, e: n.Aggregate) -> Value:
        raise Unsupported(f"{e.func}(...) over a list", e)

    def visit_Between(self, e: n.Between) -> Value:
        raise Unsupported("between (a time of day)", e)


def _field_path(e: n.Expr) -> tuple[str, ...] | None:
    """``("event", "origin")`` for ``event.origin``; None for anything but a field read."""
    path: list[str] = []
    while isinstance(e, n.Attribute):
        path.append(e.name)
        e = e.value
    if not path or not isinstance(e, n.Name) or e.name not in ("customer", "event"):
        return None
    return (e.name, *reversed(path))


_VALUE_KINDS = {"int": "num", "decimal": "num", "bool": "bool", "string": "str", "enum": "str",
                "airport": "str", "tier": "str", "currency_code": "str", "date": "date"}


def _input_column(path: tuple[str, ...]) -> str:
    """The name the input stage gives a prepared field (a schema path, never policy text)."""
    return "in:" + ".".join(path)


def _tenure_years(pl: Any, since: Any, on: Any) -> Any:
    """:func:`dsl.library.runtime.tenure_years` over date columns (29 February joiners
    have their anniversary on 28 February in other years)."""
    years = on.dt.year().cast(pl.Int64) - since.dt.year().cast(pl.Int64)
    month, day = since.dt.month(), since.dt.day()
    leap_joiner = (month == 2) & (day == 29) & ~on.dt.is_leap_year()
    day = pl.when(leap_joiner).then(28).otherwise(day)
    before = (on.dt.month() < month) | ((on.dt.month() == month) & (on.dt.day() < day))
    years = years - before.cast(pl.Int64)
    return pl.when(on <= since).then(0).otherwise(years)


# -- a policy set -----------------------------------------------------------------------------------


@dataclass
class CompiledSet:
    """A policy set's policies as columns, per event kind, with the kinds it could not compile."""

    policies: list[CompiledColumns]
    refused: dict[str, list[str]]  # event kind -> "policy NAME: why" for each refused policy
    tier_rank: dict[str, int]
    caps: dict[str, int]  # currency -> per-event cap, scaled to the currency's decimals
    decimals: dict[str, int]


def compile_set(pl: Any, policy_set: PolicySet, prefix: str) -> CompiledSet:
    """Compile every policy of ``policy_set``; a refused one is noted against its kinds."""
    schema = policy_set.schema
    compiled: list[CompiledColumns] = []
    refused: dict[str, list[str]] = {}
    for i, p in enumerate(policy_set.compiled):
        try:
            compiled.append(PolicyCompiler(pl, p.ast, p.check, schema, f"{prefix}{i}").compile())
        except Unsupported as exc:
            for kind in p.info.kinds:
                refused.setdefault(kind, []).append(f"policy {p.name}: {exc}")
    caps = {}
    for c in schema.currencies.values():
        if c.cap_per_event is not None:
            caps[c.name] = int(Decimal(c.cap_per_event).scaleb(c.decimals))
    return CompiledSet(compiled, refused, {t: i for i, t in enumerate(schema.tiers)}, caps,
                       {c.name: c.decimals for c in schema.currencies.values()})


@dataclass
class ColumnarPair:
    """The old and the new set compiled for one replay: which kinds run columnar, and why not."""

    old: CompiledSet
    new: CompiledSet
    kinds: set[str]
    notes: dict[str, str]  # event kind -> why its rows take the row path
    reads: set[tuple[str, ...]]
    tag_names: dict[str, int] = field(default_factory=dict)  # tag -> its bit
    benefit_names: dict[str, int] = field(default_factory=dict)  # benefit -> its bit
    #: Expressions built once for the replay: the input stage's per set of history columns,
    #: the decisions' per set of event kinds in a chunk (replay_columnar).
    plans: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)


def compile_pair(old: PolicySet, new: PolicySet) -> ColumnarPair | None:
    """Both sets compiled, or None when polars is missing or the schemas differ."""
    pl = polars_or_none()
    if pl is None or old.schema.digest != new.schema.digest:
        return None
    a, b = compile_set(pl, old, "o"), compile_set(pl, new, "n")
    kinds = set(old.schema.events)
    notes: dict[str, str] = {}
    for kind in sorted(kinds):
        why = a.refused.get(kind, []) + b.refused.get(kind, [])
        if why:
            notes[kind] = "; ".join(sorted(set(why)))
    reads = {r for s in (a, b) for p in s.policies for r in p.reads}
    tags = sorted({t for s in (a, b) for p in s.policies for t, _ in p.tags})
    benefits = sorted({g for s in (a, b) for p in s.policies for g, _ in p.grants})
    if len(tags) > 62 or len(benefits) > 12:  # the bit sets and the order code stay in Int64
        return None
    return ColumnarPair(a, b, kinds - notes.keys(), notes, reads,
                        {t: i for i, t in enumerate(tags)}, {g: i for i, g in enumerate(benefits)})


# -- the input stage: a chunk's raw columns -> prepared, typed columns -------------------------------

_INT = re.compile(r"^-?(0|[1-9][0-9]{0,11})$")
_DEC_SHAPE = r"^-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?$"
_INT_SHAPE = r"^-?(0|[1-9][0-9]{0,17})$"
#: The shapes above without a sign (one regex rather than the shape and a look at the sign).
_UDEC_SHAPE = _DEC_SHAPE.replace("^-?", "^", 1)
_UINT_SHAPE = _INT_SHAPE.replace("^-?", "^", 1)
_DATE_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIME_SHAPE = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
               r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


@dataclass
class _Column:
    """A history column the columnar path understands: the prepared path it fills and its field."""

    path: tuple[str, ...]
    field: Any
    kind: str | None  # the event kind of a details column, or None


def _field_paths(schema: Schema, layout: Any) -> dict[str, _Column]:
    """History column name -> what it holds, for every scalar field of the request's mapping form
    (both the proto3 JSON name and the original name of each field)."""
    out: dict[str, _Column] = {}

    def message(prefix: str, path: tuple[str, ...], msg: Any, kind: str | None) -> None:
        for name, slot in msg.slots.items():
            if not slot.in_message:
                continue
            f = slot.field
            if f.derived:
                continue
            if f.type.kind == "record":
                for wire in {name, _camel(name)}:
                    message(f"{prefix}{wire}.", (*path, name), layout.record(f.type.name), kind)
                continue
            for wire in {name, _camel(name)}:
                out[prefix + wire] = _Column((*path, name), f, kind)

    message("customer.", ("customer",), layout.customer, None)
    for kind, (event, details) in layout.events.items():
        message("event.", ("event",), event, None)
        if details is not None:
            for wire in {kind, _camel(kind)}:
                message(f"event.{wire}.", ("event",), details, kind)
    return out


@dataclass
class Prepared:
    """A chunk's rows the columnar path takes (typed columns) and the positions it leaves."""

    frame: Any  # polars.DataFrame: position, kind, date, event_time, ids and the fields read
    rest: list[int]  # positions of rows for the row path
    notes: Counter[str]


def prepare_chunk(pair: ColumnarPair, policy_set: PolicySet, batch: Any, text: bool) -> Prepared:
    """Check and convert a chunk's columns; rows it cannot vouch for go to the row path."""
    pl = polars_or_none()
    assert pl is not None
    df = pl.from_arrow(batch, rechunk=False)
    assert isinstance(df, pl.DataFrame)
    notes: Counter[str] = Counter()
    columns = tuple(df.schema.items())
    key = ("input", policy_set.schema.digest, columns, text)
    if key not in pair.plans:  # the same expressions serve every chunk with these columns
        pair.plans[key] = _input_plan(pl, pair, policy_set, dict(columns), text)
    plan = pair.plans[key]
    if plan is None:
        return Prepared(df.head(0), list(range(df.height)), notes)
    first, out, bigs = plan
    frame = df.lazy().with_columns(first).select(out)
    if bigs:
        frame = frame.with_columns(ok=pl.col("ok") & ~pl.any_horizontal(bigs)).drop(bigs)
    frame = frame.with_columns(ok=pl.col("ok") & pl.col("date").is_not_null()).collect()
    rest_frame = frame.filter(~pl.col("ok"))
    rest = rest_frame["position"].to_list()
    for kind, why in pair.notes.items():
        k = int((rest_frame["kind"] == kind).sum())
        if k:
            notes[f"{kind} events: {why}"] += k
    return Prepared(frame.filter(pl.col("ok")).drop("ok"), rest, notes)


def _input_plan(pl: Any, pair: ColumnarPair, policy_set: PolicySet, dtypes: dict[str, Any],
                text: bool) -> tuple[list[Any], list[Any], list[str]] | None:
    """The input stage's expressions for a chunk with these columns (name -> dtype): the
    columns computed first, the ``select`` (position, kind, ok, date, ids, the fields read,
    bound flags) and the names of the bound flags; None when no row can take this path."""
    schema = policy_set.schema
    known = _field_layout(policy_set)
    names = list(dtypes)
    # Each text time's UTC date, once: its check below and the "date" column read it.
    utc = {name: f"utc:{name}" for name in names if name in known
           and known[name].field.type.kind == "datetime" and dtypes[name] == pl.String}
    ok: Any = pl.lit(True)
    kind_flags: dict[str, Any] = {}
    by_path: dict[tuple[str, ...], tuple[str, Any]] = {}
    for name in names:
        col = known.get(name)
        c = pl.col(name)
        if col is None:
            # Not a scalar request field this path knows: the row path judges those rows.
            ok = ok & c.is_null()
            continue
        if col.path in by_path:  # given under both names: the row path says what it makes of it
            ok = ok & (c.is_null() | pl.col(by_path[col.path][0]).is_null())
        check = _valid(pl, c, col.field, dtypes[name], text, schema.tiers,
                       pl.col(utc[name]) if name in utc else None)
        if check is None:
            ok = ok & c.is_null()
            continue
        ok = ok & (c.is_null() | check)
        if col.kind is not None:
            flag = kind_flags.get(col.kind, pl.lit(False))
            kind_flags[col.kind] = flag | c.is_not_null()
        by_path.setdefault(col.path, (name, col.field))
    if not kind_flags:
        return None
    kinds = list(kind_flags)
    count = pl.sum_horizontal([f.cast(pl.Int32) for f in kind_flags.values()])
    kind_expr: Any = pl.lit(None, dtype=pl.String)
    for k in reversed(kinds):
        kind_expr = pl.when(kind_flags[k]).then(pl.lit(k)).otherwise(kind_expr)
    ok = ok & (count == 1) & kind_expr.is_in(sorted(pair.kinds))
    # Required fields (no default, not optional) of the customer and of every event.
    needed: list[tuple[str, ...]] = [("customer", "id"), ("customer", "member_since"),
                                     ("event", "id"), ("event", "time")]
    for path in needed:
        found = by_path.get(path)
        if found is None:
            return None
        ok = ok & pl.col(found[0]).is_not_null()
    out: list[Any] = [pl.int_range(0, pl.len(), dtype=pl.Int64).alias("position"),
                      kind_expr.alias("kind"), ok]
    time_name = by_path[("event", "time")][0]
    day = pl.col(utc[time_name]) if time_name in utc else _utc_date(pl, pl.col(time_name))
    out.append(day.alias("date"))
    out.append(pl.col(time_name).alias("event_time"))  # as given: replay's ledger reads it
    out.append(pl.col(by_path[("customer", "id")][0]).alias("customer_id"))
    out.append(pl.col(by_path[("event", "id")][0]).alias("event_id"))
    # Only the fields the policies of this chunk's kinds read are converted (the kinds with
    # columns in the chunk); the required-field checks below still cover every field read.
    pieces: list[Any] = []  # computed before the conversions that read them
    present = set(kind_flags) & pair.kinds
    used = {r for s in (pair.old, pair.new) for p in s.policies if present.intersection(p.kinds)
            for r in p.reads}
    for path in sorted(pair.reads):
        if path[0] == "event" and len(path) == 2 and path[1] == "date":
            if path in used:
                out.append(day.alias(_input_column(path)))
            continue
        field_ = _read_field(schema, path)
        found = by_path.get(path)
        default = field_.default if field_ is not None and field_.has_default else None
        if field_ is None:
            return None
        if path in used:
            if found is not None:
                parts = None
                if field_.type.kind == "decimal" and dtypes[found[0]] == pl.String:
                    parts = f"decimal:{found[0]}"
                    pieces.extend(_decimal_parts(pl, pl.col(found[0]), parts))
                expr = _convert(pl, pl.col(found[0]), field_, dtypes[found[0]], text, parts)
            else:
                expr = pl.lit(None, dtype=_DTYPES.get(field_.type.kind, lambda pl: pl.String)(pl))
            if field_.type.kind in ("int", "decimal"):
                big = (expr.abs() > INPUT_BOUND * (10**_INPUT_PLACES if field_.type.kind == "decimal" else 1))
                out.append(big.fill_null(False).alias(f"big:{_input_column(path)}"))
            if default is not None:
                expr = expr.fill_null(_default_literal(pl, field_, default))
            out.append(expr.alias(_input_column(path)))
        if default is None and not field_.type.optional:
            # Required: rows of the kinds that have the field must give it.
            if path[0] == "customer":
                need: Any = pl.lit(True)
            else:
                need = pl.col("kind").is_in([k for k, fs in schema.events.items()
                                             if path[1] in fs or path[1] in schema.event_common])
            given = pl.col(found[0]).is_not_null() if found is not None else pl.lit(False)
            out[2] = out[2] & (~need | given)
    out[2] = out[2].alias("ok")
    bigs = [c.meta.output_name() for c in out if c.meta.output_name().startswith("big:")]
    first = [kind_expr.alias("kind"), *[_utc_date(pl, pl.col(name)).alias(u) for name, u in utc.items()],
             *pieces]
    return first, out, bigs


_LAYOUTS: dict[str, dict[str, _Column]] = {}


def _field_layout(policy_set: PolicySet) -> dict[str, _Column]:
    found = _LAYOUTS.get(policy_set.schema.digest)
    if found is None:
        found = _LAYOUTS[policy_set.schema.digest] = _field_paths(policy_set.schema,
                                                                  policy_set.decoder.layout)
    return found


def _read_field(schema: Schema, path: tuple[str, ...]) -> Any:
    """The schema field at a prepared path (customer.x, customer.record.x, event.x)."""
    if path[0] == "customer":
        fields: Any = schema.customer
    else:
        fields = {**schema.event_common}
        for kind_fields in schema.events.values():
            fields.update(kind_fields)
    f = None
    for step in path[1:]:
        if fields is None:
            return None
        f = fields.get(step)
        if f is None:
            return None
        fields = schema.records.get(f.type.name) if f.type.kind == "record" else None
    return f


_DTYPES: dict[str, Any] = {"int": lambda pl: pl.Int64, "decimal": lambda pl: pl.Int64,
                           "bool": lambda pl: pl.Boolean, "date": lambda pl: pl.Date}


def _default_literal(pl: Any, f: Any, default: Any) -> Any:
    kind = f.type.kind
    if kind == "int":
        return pl.lit(int(default), dtype=pl.Int64)
    if kind == "decimal":
        return pl.lit(int(Decimal(default).scaleb(_INPUT_PLACES)), dtype=pl.Int64)
    if kind == "bool":
        return pl.lit(bool(default))
    if kind == "date":
        return pl.lit(default, dtype=pl.Date)
    return pl.lit(str(default), dtype=pl.String)


def _valid(pl: Any, c: Any, f: Any, dtype: Any, text: bool, tiers: Any, utc: Any = None) -> Any:
    """A Boolean expression: the non-null value is one the row decoder surely accepts as is
    (a strict subset of what it accepts), or None for a column this path never judges.
    ``utc``: the column's UTC date (:func:`_utc_date`) when already computed."""
    kind = f.type.kind
    if kind == "bool":
        if dtype == pl.Boolean:
            return pl.lit(True)
        if dtype == pl.String and text:
            return c.is_in(["true", "false"])
        return None
    if dtype != pl.String:
        return None
    short = c.str.len_chars() <= f.max_length
    if kind == "string":
        return short & ~c.str.contains(r"[\x00-\x1f\x7f]")
    if kind in ("enum", "tier"):
        return short & c.is_in(_texts(tuple(f.type.values) if kind == "enum" else tuple(tiers)))
    if kind == "airport":
        from dsl.schema import airports

        return c.is_in(_codes("airport", airports.airport_codes))
    if kind == "currency_code":
        from dsl.schema.schema import currency_codes

        return c.is_in(_codes("currency", currency_codes))
    if kind in ("int", "decimal") and (f.maximum is not None or (f.minimum or 0) != 0):
        return None  # a number with a most value, or a least other than 0: the row path checks it
    if kind in ("int", "decimal"):
        signed = f.minimum is None
        if kind == "int":
            return c.str.contains(_INT_SHAPE if signed else _UINT_SHAPE)
        return c.str.contains(_DEC_SHAPE if signed else _UDEC_SHAPE)
    if kind == "date":
        return (c.str.contains(_DATE_SHAPE)
                & c.str.to_date("%Y-%m-%d", strict=False, cache=False).is_not_null())
    if kind == "datetime":
        return c.str.contains(_TIME_SHAPE) & (_utc_date(pl, c) if utc is None else utc).is_not_null()
    return None


@cache
def _texts(values: tuple[str, ...] | frozenset[str]) -> Any:
    """``values`` as the one-list argument of ``is_in``, built once per set (the codes of every airport
    and currency would otherwise be converted for each chunk)."""
    pl = polars_or_none()
    assert pl is not None
    return pl.Series(sorted(values), dtype=pl.String).implode()


@cache
def _codes(kind: str, codes: Any) -> Any:
    """:func:`_texts` of ``codes()``, once per kind (building the set of every airport code
    only to look it up costs more than the check)."""
    return _texts(codes())


def _decimal_parts(pl: Any, c: Any, name: str) -> list[Any]:
    """A text decimal's pieces, computed once before :func:`_convert` reads them (each is
    read several times there): the whole part with its sign, the fraction's digits without
    trailing zeros, and whether it is negative."""
    split = c.str.split_exact(".", 1)
    return [split.struct.field("field_0").str.to_integer(strict=False).alias(f"{name}:whole"),
            split.struct.field("field_1").str.strip_chars_end("0").alias(f"{name}:fraction"),
            c.str.starts_with("-").alias(f"{name}:negative")]


def _convert(pl: Any, c: Any, f: Any, dtype: Any, text: bool, parts: str | None = None) -> Any:
    """A valid column as the prepared value: Int64 (scaled for decimals), Boolean, String, Date.
    ``parts``: the name :func:`_decimal_parts` gave a text decimal's pieces."""
    kind = f.type.kind
    if kind == "bool":
        return c if dtype == pl.Boolean else c == "true"
    if kind == "int":
        if dtype != pl.String:
            return c.cast(pl.Int64)
        # Past 13 digits: a value past INPUT_BOUND, which the caller's bound flags.
        value = c.str.to_integer(strict=False)
        return pl.when(c.is_null()).then(None).when(value.abs() < 10**13).then(value) \
            .otherwise(INPUT_BOUND + 1)
    if kind == "decimal":
        if dtype != pl.String or parts is None:
            return pl.lit(None, dtype=pl.Int64)  # the input stage sends such values to the row path
        whole = pl.col(f"{parts}:whole").abs()
        fraction = pl.col(f"{parts}:fraction")
        digits = fraction.str.len_bytes()
        small = pl.when(fraction.is_null() | (digits == 0)).then(pl.lit(0, dtype=pl.Int64)) \
            .otherwise(fraction.str.pad_end(_INPUT_PLACES, "0").str.to_integer(strict=False))
        value = whole * 10**_INPUT_PLACES + small
        value = pl.when(pl.col(f"{parts}:negative")).then(-value).otherwise(value)
        # At most 13 whole digits and _INPUT_PLACES places (trailing zeros aside): otherwise
        # a value past the bound, which the caller's bound flags.
        fits = (whole < 10**13) & (fraction.is_null() | (digits <= _INPUT_PLACES))
        return pl.when(c.is_null()).then(None).when(fits).then(value) \
            .otherwise(INPUT_BOUND * 10**_INPUT_PLACES + 1)
    if kind == "date":
        return c.str.to_date("%Y-%m-%d", strict=False, cache=False)
    return c


def _utc_date(pl: Any, c: Any) -> Any:
    """The UTC calendar date of an RFC 3339 time of :data:`_TIME_SHAPE` (``...Z`` or
    ``...+hh:mm``): the local date and minute (one parse) less the offset. Null when the
    local date is not a calendar date."""
    local = c.str.slice(0, 16).str.to_datetime("%Y-%m-%dT%H:%M", strict=False, time_unit="ms",
                                               cache=False)
    sign = c.str.slice(-6, 1)
    offset = (c.str.slice(-5, 2).str.to_integer(strict=False) * 60
              + c.str.slice(-2, 2).str.to_integer(strict=False))
    offset = pl.when(sign == "+").then(offset).when(sign == "-").then(-offset).otherwise(0)
    return (local - pl.duration(minutes=offset)).dt.date()


# -- evaluating both sets ------------------------------------------------------------------------------


def evaluate_set(pl: Any, compiled: CompiledSet, tag: str, kinds: set[str],
                 tag_names: dict[str, int], benefit_names: dict[str, int]
                 ) -> tuple[list[tuple[str, Any]], list[tuple[str, tuple[str, str]]], list[str]]:
    """One set's decision columns, in an order where each reads only the frame's columns and
    those before it (:func:`levels` groups them in steps): ``{tag}:award:CUR`` (scaled Int64, 0 when
    none), ``{tag}:tier``, ``{tag}:tags``, ``{tag}:benefits`` and one Boolean per (policy,
    rule) fired. Returns the columns, the fired columns with their (policy, rule), and the
    lookup columns (a null there: the lookup failed, the row path decides the row).
    Only the policies of ``kinds`` (the event kinds the frame holds) take part."""
    columns: list[tuple[str, Any]] = []
    fired_cols: list[tuple[str, tuple[str, str]]] = []
    lookups: list[str] = []
    award_parts: dict[str, list[Any]] = {}
    grants: list[Any] = []
    tiers: list[tuple[int, str, Any]] = []
    tags: list[Any] = []
    for index, p in enumerate(compiled.policies):
        if not kinds.intersection(p.kinds):
            continue
        lookups.extend(out for out, _, _ in p.lookups)
        applies = pl.col("kind").is_in(list(p.kinds))
        if p.effective_from is not None:
            applies = applies & (pl.col("date") >= p.effective_from)
        if p.effective_until is not None:
            applies = applies & (pl.col("date") <= p.effective_until)
        gate = f"{tag}:applies:{index}"
        columns.append((gate, applies))
        for stage in p.stages:
            columns.extend(stage)
        on = pl.col(gate)
        for rule, col in p.fired:
            name = f"{tag}:fired:{len(fired_cols)}"
            columns.append((name, on & pl.col(col)))
            fired_cols.append((name, (p.name, rule)))
        for cur, col in p.awards.items():
            award_parts.setdefault(cur, []).append(pl.when(on).then(pl.col(col)).otherwise(0))
        for benefit, col in p.grants:
            grants.append((benefit, on & pl.col(col)))
        for tier, col in p.qualifies:
            tiers.append((compiled.tier_rank[tier], tier, on & pl.col(col)))
        for label, col in p.tags:
            tags.append((label, on & pl.col(col)))
    for cur in compiled.decimals:
        parts = award_parts.get(cur)
        total: Any = pl.sum_horizontal(parts) if parts else pl.lit(0, dtype=pl.Int64)
        if cur in compiled.caps:
            total = pl.min_horizontal(total, pl.lit(compiled.caps[cur], dtype=pl.Int64))
        columns.append((f"{tag}:award:{cur}", total))
    tier_expr: Any = pl.lit(None, dtype=pl.String)
    for _, tier, test in sorted(tiers, key=lambda t: t[0]):
        tier_expr = pl.when(test).then(pl.lit(tier)).otherwise(tier_expr)
    columns.append((f"{tag}:tier", tier_expr))
    # Tags as a bit set over the pair's tag names (the decision's tags are sorted and unique,
    # so equal sets are equal tags); benefits as a bit set plus a number that encodes the
    # order of their first grants (a decision's benefits are a list: order counts).
    mask: Any = pl.lit(0, dtype=pl.Int64)
    for label, test in tags:
        mask = mask | pl.when(test).then(1 << tag_names[label]).otherwise(0)
    columns.append((f"{tag}:tags", mask))
    base = len(benefit_names) + 1
    mask, order = pl.lit(0, dtype=pl.Int64), pl.lit(0, dtype=pl.Int64)
    for k, (benefit, test) in enumerate(grants):
        bit = 1 << benefit_names[benefit]
        first = test & ((mask & bit) == 0)
        columns.append((f"{tag}:order:{k}",
                        pl.when(first).then(order * base + benefit_names[benefit] + 1).otherwise(order)))
        columns.append((f"{tag}:mask:{k}", mask | pl.when(test).then(bit).otherwise(0)))
        mask, order = pl.col(f"{tag}:mask:{k}"), pl.col(f"{tag}:order:{k}")
    columns.append((f"{tag}:benefits", mask))
    columns.append((f"{tag}:benefit_order", order))
    return columns, fired_cols, lookups


def levels(columns: list[tuple[str, Any]]) -> list[list[Any]]:
    """``columns``, each of which may read a frame's columns and those listed before it, as
    the expressions of one ``with_columns`` per level of that dependency (every column whose
    inputs are all there joins the same one), not one per column: the plan stays a few nodes
    deep however many rules the sets have."""
    level: dict[str, int] = {}
    by_level: list[list[Any]] = []
    for name, expr in columns:
        d = max((level[r] + 1 for r in expr.meta.root_names() if r in level), default=0)
        level[name] = d
        while len(by_level) <= d:
            by_level.append([])
        by_level[d].append(expr.alias(name))
    return by_level


#: Each lookup function's values by argument tuple, across chunks (the library's lookups are
#: pure: a route's distance does not change), at most _LOOKED_MAX per function.
_LOOKED: dict[Any, dict[tuple[Any, ...], Any]] = {}
_LOOKED_MAX = 100_000
_UNSEEN = object()


def join_lookups(pl: Any, frame: Any, pair: ColumnarPair) -> Any:
    """``frame`` (a prepared DataFrame) with every lookup column both sets read: the Python
    function over each distinct tuple of its argument columns, once. A null is a lookup that
    failed (the row path raises the policy's own error for those rows)."""
    done: set[str] = set()
    for compiled in (pair.old, pair.new):
        for p in compiled.policies:
            for out, func, args in p.lookups:
                if out in done:
                    continue
                done.add(out)
                keys = frame.select(list(args)).unique()
                values: list[Any] = []
                known = _LOOKED.setdefault(func, {})
                if len(known) > _LOOKED_MAX:
                    known.clear()
                for row in keys.iter_rows():
                    value = known.get(row, _UNSEEN)
                    if value is _UNSEEN:
                        try:
                            value = None if None in row else func(*row)
                        except Exception:
                            value = None
                        known[row] = value
                    values.append(value)
                table = keys.with_columns(pl.Series(out, values, dtype=pl.Int64))
                frame = frame.join(table, on=list(args), how="left", nulls_equal=True)
    return frame
