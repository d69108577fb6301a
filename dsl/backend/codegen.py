"""Code generation: a checked policy's AST -> readable Python source.

(About 900 lines, one job: one visitor with a ``visit_<Node>`` per node kind and the helpers
they share, as Jinja2's compiler.py is; split by node kind, every part would need the others.)

The generator is a visitor in the manner of Jinja2's: ``visit_<Node>`` methods
for statements, ``expr`` for expressions, and ``writeline``/``indent``/``outdent``
helpers. It emits two modules per policy, each with one function:

- ``evaluate(c, e, d)``: the hot path, with no trace of explanation;
- ``explain(c, e, d, r)``: the same decisions, appending :class:`Reason` s to ``r``
  (generated and compiled the first time a policy is asked to explain).

It records which policy line each generated line came from (``line_map``), so a
failure inside generated code is reported at the policy's own line.

Security: policy text reaches the generated source only as identifiers that the
grammar limits to ``[A-Za-z_][A-Za-z0-9_]*`` (and the checker refuses ``_``-leading
and ``__`` names) behind a fixed prefix (``v_``, ``x_``), as ``repr()`` of ``str``
and ``int`` values, or as hoisted constants built from ``repr()`` of their text.
:mod:`dsl.backend.compiler` then verifies the generated AST before compiling it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from dsl.analysis.result import CheckResult
from dsl.backend.interpreter import awarded_currencies
from dsl.front import nodes as n
from dsl.front.visitor import ExprVisitor
from dsl.library.runtime import MAX_NUMBER_DIGITS
from dsl.schema.schema import Schema
from dsl.schema.types import Months

#: Digits up to which an award's integer fast path is used. Any figure up to the evaluation
#: context's precision (MAX_NUMBER_DIGITS) is exact; awards past 28 digits are rare enough
#: that the shorter bound keeps the generated code readable.
_FAST_DIGITS = min(28, MAX_NUMBER_DIGITS)

#: Prefix of every name that comes from policy text.
NAME_PREFIX = "v_"
ITEM_PREFIX = "x_"

_BINOPS = {"+": "+", "-": "-", "*": "*", "of": "*", "<": "<", "<=": "<=", ">": ">",
           ">=": ">=", "==": "==", "!=": "!=", "and": "and", "or": "or", "in": "in",
           "not in": "not in"}


@dataclass
class Generated:
    """The generated module: its source, constants, and generated-line -> policy-line map."""

    source: str
    constants: dict[str, Any] = field(default_factory=dict)
    line_map: dict[int, int] = field(default_factory=dict)


def _is_simple(e: n.Expr) -> bool:
    """Cheap and side-effect free to evaluate twice: a literal, a name or a field path."""
    while isinstance(e, n.Attribute):
        e = e.value
    return isinstance(e, n.Literal | n.Name)


def _constant_ratio_table(t: n.Table) -> tuple[dict[Any, Any], Any] | None:
    """(mapping, default) of a table of constant numbers with an ``else`` row and a simple key."""
    otherwise = next((r for r in t.rows if not r.keys), None)
    if otherwise is None or not _is_simple(t.key) or \
            not all(isinstance(r.value, n.Literal) for r in t.rows):
        return None
    mapping = {k.value: r.value.value for r in t.rows if r.keys for k in r.keys}  # type: ignore[union-attr]
    default = otherwise.value.value  # type: ignore[union-attr]
    if not all(isinstance(v, int | Decimal) and not isinstance(v, bool) and Decimal(v).is_finite()
               for v in [*mapping.values(), default]):
        return None
    return mapping, default


def _denominator(value: int | Decimal) -> int:
    return Decimal(value).as_integer_ratio()[1]


def _in_units(value: int | Decimal, scale: int) -> int:
    """``value * scale`` exactly, for a scale that ``value``'s denominator divides."""
    num, den = Decimal(value).as_integer_ratio()
    return num * (scale // den)


class CodeGenerator(ExprVisitor[Any]):
    """Generates the Python module for one checked policy."""

    def __init__(self, policy: n.Policy, check: CheckResult, schema: Schema) -> None:
        self.policy = policy
        self.check = check
        self.schema = schema
        self.lines: list[str] = []
        self.line_map: dict[int, int] = {}
        self.constants: dict[str, Any] = {}
        self._const_ids: dict[tuple[str, str], str] = {}
        self._indent = 0
        self._temps = 0
        self.src_line = policy.span.line
        self.explain = False
        self.in_iterable = 0
        self.currencies = awarded_currencies(policy)
        self.tier_rank = {t: i for i, t in enumerate(schema.tiers)}
        self._items: set[str] = set()
        #: Tables of constant numbers as (numerator expression, denominator).
        self.ratio_tables: dict[str, tuple[str, int, str, int]] = {}
        #: (line index, variable, table name) of lookups that may be dropped when unused.
        self.droppable: list[tuple[int, str, str]] = []
        #: Currency -> scale D of total-rounded currencies whose total the evaluate variant
        #: keeps as a whole number of 1/D units (see scaled_currencies).
        self.scaled: dict[str, int] = {}

    # -- writing -------------------------------------------------------------------------------

    def writeline(self, text: str) -> None:
        self.lines.append("    " * self._indent + text)
        self.line_map[len(self.lines)] = self.src_line

    def indent(self) -> None:
        self._indent += 1

    def outdent(self) -> None:
        self._indent -= 1

    def temporary(self) -> str:
        self._temps += 1
        return f"_t{self._temps}"

    def constant(self, value: Any) -> str:
        """A module-level constant for a literal that has no plain Python literal form."""
        key = (type(value).__name__, repr(value))
        name = self._const_ids.get(key)
        if name is None:
            name = f"K{len(self._const_ids) + 1}"
            self._const_ids[key] = name
            self.constants[name] = value
        return name

    def lit(self, value: Any) -> str:
        if isinstance(value, bool) or value is None:
            return repr(value)
        if isinstance(value, int):
            return repr(int(value))
        if isinstance(value, str):
            return repr(str(value))
        return self.constant(value)

    # -- the module ------------------------------------------------------------------------------

    def generate(self, variant: str = "evaluate") -> Generated:
        """The module for one variant: ``evaluate`` (the hot path) or ``explain``."""
        p = self.policy
        explain = variant == "explain"
        self.explain = explain
        self.src_line = p.span.line
        # A policy with counters also takes its history (dsl.periods.histories); one without
        # keeps the three-argument entry point of the hot path.
        h = ", h" if p.counters else ""
        if explain:
            self.writeline(f"def explain(c, e, d, r{h}):")
        else:
            self.writeline(f"def evaluate(c, e, d{h}):")
        self.indent()
        self.writeline(f'"""{"Explain" if explain else "Evaluate"} policy {p.name} '
                       f'(version {p.version})."""')
        self.scaled = {} if explain else self.scaled_currencies()
        for cur in self.currencies:
            self.writeline(f"{self.total(cur)} = 0")
        self.droppable = []
        for m in p.members:
            self.member(m)
        self.finish_policy()
        self.outdent()
        self.drop_unused(0)
        body = self.lines
        used = set(re.findall(r"\bK\d+\b", "\n".join(body)))
        constants = {k: v for k, v in self.constants.items() if k in used}
        header = [
            f"# Generated from {_comment_safe(p.file)} by the loyalty compiler. Do not edit.",
            f"# policy {p.name} version {p.version}: {variant}",
        ]
        for name, value in constants.items():
            header.append(f"{name} = {_constant_source(value)}")
        header += ["", ""]
        shift = len(header)
        line_map = {k + shift: v for k, v in self.line_map.items()}
        source = "\n".join(header + body) + "\n"
        return Generated(source, constants, line_map)

    def drop_unused(self, start: int) -> None:
        """Turn lookups whose result this function never reads into comments."""
        body = self.lines[start:]
        for index, var, name in self.droppable:
            pattern = re.compile(rf"\b{re.escape(var)}\b")
            uses = sum(1 for line in body if pattern.search(line))
            if uses == 1:
                indent = self.lines[index][: len(self.lines[index]) - len(self.lines[index].lstrip())]
                self.lines[index] = f"{indent}# table {name}: not read on this path"

    def total(self, currency: str) -> str:
        return f"total_{currency}"

    def member(self, m: n.Node) -> None:
        """Generate one member (a binding, rule, group, cap or rounding) of the policy."""
        imported = self.policy.imported.get(getattr(m, "name", "")) \
            if isinstance(m, n.Let | n.Table | n.Decide) else None
        if imported is not None:
            # A shared definition: its lines point back at the policy's `use` line.
            self.src_line = imported.use.line
            kind = type(m).__name__.lower()
            self.writeline(f"# {kind} {m.name}: from definitions {imported.module} "
                           f"({_comment_safe(imported.file)}:{m.span.line})")
        else:
            self.src_line = m.span.line
        self.visit(m)

    # -- members ------------------------------------------------------------------------------

    def visit_Let(self, m: n.Let) -> None:
        target = NAME_PREFIX + m.name
        if isinstance(m.value, n.Binary) and m.value.op == "otherwise" and not self.in_iterable:
            # `let x = a otherwise b` reads best as two statements.
            self.writeline(f"{target} = {self.expr(m.value.left)}")
            self.writeline(f"if {target} is None:")
            self.indent()
            self.writeline(f"{target} = {self.expr(m.value.right)}")
            self.outdent()
            return
        self.writeline(f"{target} = {self.expr(m.value)}")

    def visit_Table(self, t: n.Table) -> None:
        target = NAME_PREFIX + t.name
        key = self.expr(t.key)
        rows = [r for r in t.rows if r.keys]
        otherwise = next((r for r in t.rows if not r.keys), None)
        if all(isinstance(r.value, n.Literal) for r in t.rows):
            mapping = {k.value: r.value.value for r in rows for k in r.keys}  # type: ignore[union-attr]
            table = self.constant(_Table(mapping))
            default = self.lit(otherwise.value.value) if otherwise else "None"  # type: ignore[union-attr]
            self.writeline(f"{target} = {table}.get({key}, {default})")
            if _is_simple(t.key):  # a lookup that cannot fail: dropped below if unused
                self.droppable.append((len(self.lines) - 1, target, t.name))
            self.register_ratio_table(t, mapping, otherwise, key)
            return
        tmp = self.temporary()
        self.writeline(f"{tmp} = {key}")
        first = True
        for r in rows:
            keys = " or ".join(f"{tmp} == {self.lit(k.value)}" for k in r.keys)
            self.writeline(f"{'if' if first else 'elif'} {tmp} is not None and ({keys}):")
            first = False
            self.indent()
            self.writeline(f"{target} = {self.expr(r.value)}")
            self.outdent()
        fallback = self.expr(otherwise.value) if otherwise else "None"
        if first:
            self.writeline(f"{target} = {fallback}")
        else:
            self.writeline("else:")
            self.indent()
            self.writeline(f"{target} = {fallback}")
            self.outdent()

    def register_ratio_table(self, t: n.Table, mapping: dict[Any, Any], otherwise: n.TableRow | None,
                             key: str) -> None:
        """Remember a table of constant numbers as whole-number ratios, for exact fast awards."""
        if otherwise is None or not _is_simple(t.key) or self.in_iterable:
            return
        values = [*mapping.values(), otherwise.value.value]  # type: ignore[union-attr]
        if not all(isinstance(v, int | Decimal) and not isinstance(v, bool) for v in values):
            return
        den = 1
        for v in values:
            den = math.lcm(den, Decimal(v).as_integer_ratio()[1])
        scaled = {k: int(Decimal(v) * den) for k, v in mapping.items()}
        table = self.constant(_Table(scaled))
        default = int(Decimal(otherwise.value.value) * den)  # type: ignore[union-attr]
        decimals = self.constant(_Table(mapping))
        digits = max(len(Decimal(v).as_tuple().digits) for v in values)
        self.ratio_tables[t.name] = (f"{table}.get({key}, {default})", den,
                                     f"{decimals}.get({key}, {self.lit(otherwise.value.value)})",  # type: ignore[union-attr]
                                     digits)

    def visit_Decide(self, d: n.Decide) -> None:
        target = NAME_PREFIX + d.name
        if d.hit == "first":
            first = True
            for row in d.rows:
                if row.cond is None:
                    if first:
                        self.writeline(f"{target} = {self.expr(row.value)}")
                        return
                    self.writeline("else:")
                else:
                    self.writeline(f"{'if' if first else 'elif'} {self.expr(row.cond)}:")
                first = False
                self.indent()
                self.writeline(f"{target} = {self.expr(row.value)}")
                self.outdent()
                if row.cond is None:
                    return
            if not first:
                self.writeline("else:")
                self.indent()
                self.writeline(f"{target} = None")
                self.outdent()
            return
        self.writeline(f"{target} = []")
        fallback = None
        for row in d.rows:
            if row.cond is None:
                fallback = row
                continue
            self.writeline(f"if {self.expr(row.cond)}:")
            self.indent()
            self.writeline(f"{target}.append({self.expr(row.value)})")
            self.outdent()
        if fallback is not None:
            self.writeline(f"if not {target}:")
            self.indent()
            self.writeline(f"{target}.append({self.expr(fallback.value)})")
            self.outdent()

    def visit_Cap(self, c: n.Cap) -> None:
        pass  # caps apply after every rule: see finish_policy

    def visit_Counter(self, c: n.Counter) -> None:
        pass  # its window is summed before the call: the value arrives in `h`

    def visit_Round(self, r: n.Round) -> None:
        pass  # applied at each award (`each award`) or to the total: see finish_policy

    def visit_Rule(self, r: n.Rule) -> None:
        self.writeline(f"# rule {r.name} (line {r.span.line})")
        if not self.explain:
            if r.cond is None:
                self.rule_body(r)
                return
            self.writeline(f"if {self.expr(r.cond)}:")
            self.indent()
            self.rule_body(r)
            self.outdent()
            return
        why = self.explain_condition(r)
        if why is None:
            self.rule_body(r)
            return
        self.writeline(f"if {why} is not None:")
        self.indent()
        self.writeline(f"r.append(Reason({self.lit(self.policy.name)}, {self.lit(r.name)}, "
                       f"'not_fired', {why}, {{}}, {r.span.line}))")
        self.outdent()
        self.writeline("else:")
        self.indent()
        self.rule_body(r)
        self.outdent()

    def explain_condition(self, r: n.Rule) -> str | None:
        """Emit code leaving the first false conjunct's text in a temporary (None if all hold)."""
        if r.cond is None:
            return None
        why = self.temporary()
        parts = n.conjuncts(r.cond)
        self.writeline(f"{why} = None")
        for i, part in enumerate(parts):
            text = n.source_text(self.policy.source, part.span)
            self.writeline(f"{'if' if i == 0 else 'elif'} not ({self.expr(part)}):")
            self.indent()
            self.writeline(f"{why} = {self.lit(text)}")
            self.outdent()
        return why

    def scaled_currencies(self) -> dict[str, int]:
        """Total-rounded whole-unit currencies whose every award is exact in 1/D units.

        An award that is a whole number, or a constant ratio (a decimal literal, or a table
        of constant numbers) times a whole number, without ``up to``, is a whole number of
        1/D units, D the least common denominator of the ratios. The evaluate variant then
        adds them up as ints and rounds the total by integer division: exact, as the
        interpreter's Decimal sum is (the checker bounds its digits), and several times
        cheaper. Returns currency -> D.
        """
        tables = {m.name: r for m in self.policy.members
                  if isinstance(m, n.Table) and (r := _constant_ratio_table(m)) is not None}
        out: dict[str, int] = {}
        for cur in self.currencies:
            if cur not in self.check.rounding or cur in self.check.per_award or \
                    self.schema.currencies[cur].decimals != 0:
                continue
            scale: int | None = 1
            for r in self.policy.rules:
                for e in r.effects:
                    if isinstance(e, n.Award) and e.currency == cur and scale is not None:
                        ratio = self.scaled_ratio(e, tables)
                        scale = None if ratio is None else math.lcm(scale, ratio[2])
            if scale is not None:
                out[cur] = scale
        return out

    def scaled_ratio(self, e: n.Award, tables: dict[str, tuple[dict[Any, Any], Any]]
                     ) -> tuple[n.Expr, n.Expr | None, int] | None:
        """(whole-number operand, constant ratio or None, its denominator) of a scalable award."""
        if e.limit is not None:
            return None
        if self.check.type_of(e.amount).kind == "int":
            return e.amount, None, 1
        amount = e.amount
        if not (isinstance(amount, n.Binary) and amount.op in ("*", "of")):
            return None
        for k, x in ((amount.left, amount.right), (amount.right, amount.left)):
            if self.check.type_of(x).kind != "int":
                continue
            if isinstance(k, n.Literal) and isinstance(k.value, Decimal) and k.value.is_finite():
                return x, k, _denominator(k.value)
            if isinstance(k, n.Name) and k.name in tables:
                mapping, default = tables[k.name]
                return x, k, math.lcm(*(_denominator(v) for v in [*mapping.values(), default]))
        return None

    def scaled_award(self, e: n.Award, scale: int) -> str:
        """Emit code for an award of a scaled currency: a whole number of 1/scale units."""
        tables = {m.name: r for m in self.policy.members
                  if isinstance(m, n.Table) and (r := _constant_ratio_table(m)) is not None}
        found = self.scaled_ratio(e, tables)
        assert found is not None  # scaled_currencies made sure
        x, k, _ = found
        tmp = self.temporary()
        if k is None:
            factor = "" if scale == 1 else f" * {scale}"
            self.writeline(f"{tmp} = {self.expr(x)}{factor}")
        elif isinstance(k, n.Literal):
            self.writeline(f"{tmp} = {self.expr(x)} * {_in_units(k.value, scale)}")
        else:
            assert isinstance(k, n.Name)
            table = next(m for m in self.policy.members if isinstance(m, n.Table) and m.name == k.name)
            mapping, default = tables[k.name]
            units = self.constant(_Table({key: _in_units(v, scale) for key, v in mapping.items()}))
            self.writeline(f"{tmp} = {self.expr(x)} * {units}.get({self.expr(table.key)}, "
                           f"{_in_units(default, scale)})")
        self.writeline(f"if {tmp} <= 0:")  # never negative
        self.indent()
        self.writeline(f"{tmp} = 0")
        self.outdent()
        return tmp

    def award_value(self, e: n.Award, reasons: str | None, rule: n.Rule) -> str:
        """Emit code computing one award; returns the temporary holding it."""
        if e.currency in self.scaled:
            return self.scaled_award(e, self.scaled[e.currency])
        cur = self.schema.currencies[e.currency]
        mode = self.check.rounding.get(e.currency)
        per_award = e.currency in self.check.per_award
        a_type = self.check.type_of(e.amount)
        tmp = self.temporary()
        raw = self.expr(e.amount)
        p, rn = self.lit(self.policy.name), self.lit(rule.name)
        exact = (self.ratio_award(e.amount, mode)
                 if reasons is None and mode and per_award and cur.decimals == 0 else None)
        if a_type.kind == "int" and cur.decimals == 0:
            self.writeline(f"{tmp} = {raw}")
        elif mode and not per_award:
            # The policy's total rounding leaves the award exact. The reasons show it
            # written plainly; the same number, so evaluate need not spend the call.
            self.writeline(f"{tmp} = {f'exact_award({raw}, {cur.decimals})' if self.explain else raw}")
        elif exact is not None:
            # Whole-number arithmetic: exact, and several times cheaper than Decimal.
            operand, code, _ = exact
            self.writeline(f"{tmp} = {operand}")
            self.writeline(f"{tmp} = {code.format(x=tmp)}")
        elif reasons is None and mode == "down" and cur.decimals == 0:
            # Unary plus applies the evaluation context, so a value past the bounds is an
            # Overflow here rather than int() building all of its digits.
            self.writeline(f"{tmp} = int(+{raw})")
        else:
            how = (f"round_award({{}}, {cur.decimals}, {self.lit(mode)})" if mode
                   else f"to_currency({{}}, {cur.decimals})")
            if reasons is None:
                self.writeline(f"{tmp} = {how.format(raw)}")
            else:
                rawt = self.temporary()
                self.writeline(f"{rawt} = {raw}")
                self.writeline(f"{tmp} = {how.format(rawt)}")
                self.writeline(f"if {tmp} != {rawt}:")
                self.indent()
                detail = f"f'{{{rawt}}} {e.currency} -> {{{tmp}}} ({mode})'"
                self.writeline(f"{reasons}.append(Reason({p}, {rn}, 'rounded', {detail}, {{}}, "
                               f"{e.span.line}))")
                self.outdent()
        if e.limit is not None:
            lim = self.temporary()
            self.writeline(f"{lim} = round_award({self.expr(e.limit)}, {cur.decimals}, 'down')")
            self.writeline(f"if {tmp} > {lim}:")
            self.indent()
            if reasons is not None:
                detail = f"f'up to {{{lim}}}: {{{tmp}}} -> {{{lim}}} {e.currency}'"
                self.writeline(f"{reasons}.append(Reason({p}, {rn}, 'capped', {detail}, {{}}, "
                               f"{e.span.line}))")
            self.writeline(f"{tmp} = {lim}")
            self.outdent()
        # Never negative, and a zero is the currency's own zero (never Decimal("-0.00")).
        zero = self.lit(0) if cur.decimals == 0 else self.constant(_zero(cur.decimals))
        self.writeline(f"if {tmp} <= 0:")
        self.indent()
        if reasons is not None:
            detail = f"f'{{{tmp}}} {e.currency} -> 0 (awards are never negative)'"
            self.writeline(f"if {tmp} < 0:")
            self.indent()
            self.writeline(f"{reasons}.append(Reason({p}, {rn}, 'clamped', {detail}, {{}}, "
                           f"{e.span.line}))")
            self.outdent()
        self.writeline(f"{tmp} = {zero}")
        self.outdent()
        return tmp

    def ratio_award(self, amount: n.Expr, mode: str) -> tuple[str, str, str] | None:
        """Integer code for ``constant ratio * whole number``, rounded by ``mode``, or None.

        Returns (operand expression, code over ``{x}``, the same in Decimal for a fallback).
        Only for the evaluate variant, where a negative product is clamped to zero
        anyway, so floor division and rounding toward zero agree. The integer code
        is used while the Decimal product is surely exact (the product within
        ``_FAST_DIGITS`` significant digits); beyond that the Decimal arithmetic the
        interpreter uses decides, so both always agree.
        """
        if not (isinstance(amount, n.Binary) and amount.op in ("*", "of")):
            return None
        for k, x in ((amount.left, amount.right), (amount.right, amount.left)):
            if self.check.type_of(x).kind != "int":
                continue
            ratio = self.ratio_source(k)
            if ratio is None:
                continue
            num, den, decimal_expr, digits = ratio
            product = f"{{x}} * {num}" if num != "1" else "{x}"
            exact = {
                "down": f"({product}) // {den}",
                "up": f"-(-({product}) // {den})",
                "half up": f"(2 * ({product}) + {den}) // {2 * den}",
                "half even": f"round_ratio_half_even({product}, {den})",
            }[mode] if den != 1 else product
            bound = 10 ** max(_FAST_DIGITS - digits, 0)
            code = (f"{exact} if -{bound} < {{x}} < {bound} else "
                    f"round_award({decimal_expr} * {{x}}, 0, {self.lit(mode)})")
            return self.expr(x), code, decimal_expr
        return None

    def ratio_source(self, k: n.Expr) -> tuple[str, int, str, int] | None:
        """(numerator code, denominator, Decimal code, coefficient digits) for a constant multiplier."""
        if isinstance(k, n.Literal) and isinstance(k.value, Decimal) and k.value.is_finite():
            num, den = k.value.as_integer_ratio()
            return repr(num), den, self.lit(k.value), len(k.value.as_tuple().digits)
        if isinstance(k, n.Name) and k.name in self.ratio_tables:
            return self.ratio_tables[k.name]
        return None

    def rule_awards(self, r: n.Rule, reasons: str | None) -> dict[str, str]:
        """Emit the rule's awards; currency -> expression of the rule's amount."""
        amounts: dict[str, list[str]] = {}
        for e in r.effects:
            if isinstance(e, n.Award):
                amounts.setdefault(e.currency, []).append(self.award_value(e, reasons, r))
        return {cur: " + ".join(parts) for cur, parts in amounts.items()}

    def apply_effects(self, r: n.Rule, amounts: dict[str, str], reasons_src: str | None) -> None:
        """Emit the effects of a rule that applies (awards already computed into ``amounts``)."""
        self.src_line = r.span.line
        p = self.lit(self.policy.name)
        for cur, amount in amounts.items():
            self.writeline(f"{self.total(cur)} += {amount}")
        for e in r.effects:
            if isinstance(e, n.Grant):
                params = ", ".join(f"{self.lit(name)}: {self.expr(v)}" for name, v, _ in e.params)
                self.writeline(f"d.benefits.append(Benefit({self.lit(e.benefit)}, {{{params}}}, {p}, "
                               f"{self.lit(r.name)}))")
            elif isinstance(e, n.Qualify):
                rank = self.tier_rank[e.tier]
                tier_rank = self.constant(_Table(dict(self.tier_rank)))
                self.writeline(f"if d.tier is None or {tier_rank}[d.tier] < {rank}:")
                self.indent()
                self.writeline(f"d.tier = {self.lit(e.tier)}")
                self.outdent()
            elif isinstance(e, n.Tag):
                self.writeline(f"d.tags.append({self.lit(e.tag)})")
            elif isinstance(e, n.Count):
                self.src_line = e.span.line
                amount = "1" if e.amount is None else self.expr(e.amount)
                limit = "None" if e.limit is None else self.expr(e.limit)
                name = self.lit(e.counter)
                self.writeline(f"count_toward(d, h[{name}], {name}, {amount}, {limit})")
                self.src_line = r.span.line
        self.writeline(f"d.fired.append(({p}, {self.lit(r.name)}))")
        if self.explain:
            if reasons_src is not None:
                self.writeline(f"r.extend({reasons_src})")
            awards = ", ".join(f"{self.lit(c)}: {a}" for c, a in amounts.items())
            self.writeline(f"r.append(Reason({p}, {self.lit(r.name)}, 'fired', '', {{{awards}}}, "
                           f"{r.span.line}{self.rule_texts(r, amounts)}))")

    def rule_texts(self, r: n.Rule, amounts: dict[str, str]) -> str:
        """The extra argument of a fired rule's Reason that fills in its ``says`` texts:
        ``, render_texts(K, {placeholder: value, ...})``, or nothing for a rule without texts.
        An award placeholder shows the rule's amount rounded as the policy rounds its currency."""
        if not r.texts:
            return ""
        values: dict[str, str] = {}
        for t in r.texts:
            for ph, name in zip(t.placeholders, t.parts[1::2], strict=True):
                if name in values:
                    continue
                if isinstance(ph, n.Name) and ph.name in amounts:
                    amount = amounts[ph.name]
                    mode = next((x.mode for x in self.policy.roundings if x.currency == ph.name), None)
                    if mode is not None:
                        decimals = self.schema.currencies[ph.name].decimals
                        amount = f"round_award({amount}, {decimals}, {self.lit(mode)})"
                    values[name] = amount
                else:
                    values[name] = self.expr(ph)
        templates = self.constant(tuple((t.language, t.parts) for t in r.texts))
        pairs = ", ".join(f"{self.lit(k)}: {v}" for k, v in values.items())
        return f", render_texts({templates}, {{{pairs}}})"

    def rule_body(self, r: n.Rule) -> None:
        if self.explain:
            buf = self.temporary()
            self.writeline(f"{buf} = []")
            amounts = self.rule_awards(r, buf)
            self.apply_effects(r, amounts, buf)
        else:
            amounts = self.rule_awards(r, None)
            self.apply_effects(r, amounts, None)

    def visit_Group(self, g: n.Group) -> None:
        self.writeline(f"# group {g.name} takes {g.mode} {g.currency} (line {g.span.line})".rstrip())
        if g.mode == "first":
            self.group_first(g)
        else:
            self.group_best(g)

    def group_first(self, g: n.Group) -> None:
        chosen = self.temporary()
        p = self.lit(self.policy.name)
        self.writeline(f"{chosen} = None")
        for r in g.rules:
            self.src_line = r.span.line
            self.writeline(f"# rule {r.name} (line {r.span.line})")
            if self.explain:
                self.writeline(f"if {chosen} is not None:")
                self.indent()
                self.writeline(f"r.append(Reason({p}, {self.lit(r.name)}, 'not_chosen', "
                               f"{self.lit(f'group {g.name} already chose ')} + {chosen}, {{}}, "
                               f"{r.span.line}))")
                self.outdent()
                self.writeline("else:")
                self.indent()
                why = self.explain_condition(r)
                if why is not None:
                    self.writeline(f"if {why} is not None:")
                    self.indent()
                    self.writeline(f"r.append(Reason({p}, {self.lit(r.name)}, 'not_fired', {why}, "
                                   f"{{}}, {r.span.line}))")
                    self.outdent()
                    self.writeline("else:")
                    self.indent()
                self.rule_body(r)
                self.writeline(f"{chosen} = {self.lit(r.name)}")
                if why is not None:
                    self.outdent()
                self.outdent()
                continue
            cond = f" and {self.expr(r.cond)}" if r.cond is not None else ""
            self.writeline(f"if {chosen} is None{cond}:")
            self.indent()
            self.rule_body(r)
            self.writeline(f"{chosen} = {self.lit(r.name)}")
            self.outdent()

    def group_best(self, g: n.Group) -> None:
        p = self.lit(self.policy.name)
        chosen, best = self.temporary(), self.temporary()
        self.writeline(f"{chosen} = -1")
        self.writeline(f"{best} = 0")
        per_rule: list[tuple[dict[str, str], str | None, str]] = []
        for i, r in enumerate(g.rules):
            self.src_line = r.span.line
            self.writeline(f"# rule {r.name} (line {r.span.line})")
            fired = self.temporary()
            buf = self.temporary() if self.explain else None
            self.writeline(f"{fired} = False")
            why = None
            if buf is not None:
                # Reasons wait in a buffer: they are told in rule order after the choice.
                self.writeline(f"{buf} = []")
                why = self.explain_condition(r)
                if why is not None:
                    self.writeline(f"if {why} is not None:")
                    self.indent()
                    self.writeline(f"{buf}.append(Reason({p}, {self.lit(r.name)}, 'not_fired', "
                                   f"{why}, {{}}, {r.span.line}))")
                    self.outdent()
                    self.writeline("else:")
                    self.indent()
            elif r.cond is not None:
                self.writeline(f"if {self.expr(r.cond)}:")
                self.indent()
            amounts = self.rule_awards(r, buf)
            # Keep each rule's amounts in their own temporaries for the choice below.
            kept: dict[str, str] = {}
            for cur, expr in amounts.items():
                t = self.temporary()
                self.writeline(f"{t} = {expr}")
                kept[cur] = t
            self.writeline(f"{fired} = True")
            mine = kept.get(g.currency, "0")
            self.writeline(f"if {chosen} < 0 or {mine} > {best}:")
            self.indent()
            self.writeline(f"{chosen} = {i}")
            self.writeline(f"{best} = {mine}")
            self.outdent()
            if why is not None or (not self.explain and r.cond is not None):
                self.outdent()
            per_rule.append((kept, buf, fired))
        for i, r in enumerate(g.rules):
            kept, buf, fired = per_rule[i]
            self.src_line = r.span.line
            self.writeline(f"if {chosen} == {i}:")
            self.indent()
            self.apply_effects(r, kept, buf)
            self.outdent()
            if self.explain:
                self.writeline(f"elif {fired}:")
                self.indent()
                self.writeline(f"r.extend({buf})")
                awards = ", ".join(f"{self.lit(c)}: {a}" for c, a in kept.items())
                names = self.constant(tuple(x.name for x in g.rules))
                detail = (f"{self.lit(f'group {g.name} chose ')} + {names}[{chosen}] + ' (' + "
                          f"str({best}) + {self.lit(f' {g.currency})')}")
                self.writeline(f"r.append(Reason({p}, {self.lit(r.name)}, 'not_chosen', {detail}, "
                               f"{{{awards}}}, {r.span.line}))")
                self.outdent()
                self.writeline("else:")
                self.indent()
                self.writeline(f"r.extend({buf})")
                self.outdent()

    def finish_policy(self) -> None:
        p = self.lit(self.policy.name)
        for r in self.policy.roundings:  # total rounding, once per currency, before the caps
            if r.currency not in self.currencies or r.per_award:
                continue
            self.src_line = r.span.line
            decimals = self.schema.currencies[r.currency].decimals
            total = self.total(r.currency)
            if self.explain:
                exact = self.temporary()
                self.writeline(f"{exact} = {total}")
                self.writeline(f"{total} = round_award({exact}, {decimals}, {self.lit(r.mode)})")
                self.writeline(f"if {total} != {exact}:")
                self.indent()
                detail = f"f'total {{{exact}}} {r.currency} -> {{{total}}} ({r.mode})'"
                self.writeline(f"r.append(Reason({p}, '', 'rounded', {detail}, {{}}, {r.span.line}))")
                self.outdent()
            elif r.currency in self.scaled:
                scale = self.scaled[r.currency]
                if scale != 1:  # the total is >= 0: floor division rounds it exactly
                    self.writeline(f"{total} = " + {
                        "down": f"{total} // {scale}",
                        "up": f"-(-{total} // {scale})",
                        "half up": f"(2 * {total} + {scale}) // {2 * scale}",
                        "half even": f"round_ratio_half_even({total}, {scale})",
                    }[r.mode])
            elif r.mode == "down" and decimals == 0:
                # Unary plus applies the evaluation context (a value past the bounds is an
                # Overflow, not int() building its digits); int() then rounds toward zero.
                self.writeline(f"{total} = int(+{total})")
            else:
                self.writeline(f"{total} = round_award({total}, {decimals}, {self.lit(r.mode)})")
        for cap in self.policy.caps:
            if cap.currency not in self.currencies:
                continue
            self.src_line = cap.span.line
            decimals = self.schema.currencies[cap.currency].decimals
            lim = self.temporary()
            total = self.total(cap.currency)
            if isinstance(cap.amount, n.Literal) and type(cap.amount.value) is int and decimals == 0:
                lim = self.lit(cap.amount.value)
            else:
                self.writeline(f"{lim} = round_award({self.expr(cap.amount)}, {decimals}, 'down')")
                self.writeline(f"if {lim} < 0:")  # a cap below zero caps at zero
                self.indent()
                self.writeline(f"{lim} = {self.lit(0) if decimals == 0 else self.constant(_zero(decimals))}")
                self.outdent()
            self.writeline(f"if {total} > {lim}:")
            self.indent()
            if self.explain:
                detail = f"f'cap {cap.currency} at {{{lim}}}: {{{total}}} -> {{{lim}}}'"
                self.writeline(f"r.append(Reason({p}, '', 'capped', {detail}, "
                               f"{{{self.lit(cap.currency)}: {lim}}}, {cap.span.line}))")
            self.writeline(f"{total} = {lim}")
            self.outdent()
        if self.currencies:
            self.writeline("aw = d.awards")
            for cur in self.currencies:
                self.writeline(f"aw[{self.lit(cur)}] = aw.get({self.lit(cur)}, 0) + {self.total(cur)}")

    # -- expressions --------------------------------------------------------------------------

    def expr(self, e: n.Expr) -> str:
        """The Python source of an expression."""
        return self.visit(e)

    def visit_Literal(self, e: n.Literal) -> str:
        return self.lit(e.value)

    def visit_Name(self, e: n.Name) -> str:
        if e.name == "customer":
            return "c"
        if e.name == "event":
            return "e"
        if e.name == "history":
            return "h"
        if e.name in self._items:
            return ITEM_PREFIX + e.name
        return NAME_PREFIX + e.name

    def visit_Attribute(self, e: n.Attribute) -> str:
        return f"{self.expr(e.value)}[{self.lit(e.name)}]"

    def visit_ListExpr(self, e: n.ListExpr) -> str:
        items = [self.expr(x) for x in e.items]
        return "[" + ", ".join(items) + "]"

    def visit_Unary(self, e: n.Unary) -> str:
        inner = self.expr(e.operand)
        return f"(not {inner})" if e.op == "not" else f"(-{inner})"

    def visit_Presence(self, e: n.Presence) -> str:
        if isinstance(e.operand, n.Literal):  # a literal is always present
            return repr(e.present)
        return f"({self.expr(e.operand)} is {'not ' if e.present else ''}None)"

    def visit_Between(self, e: n.Between) -> str:
        start, end = (t.hour * 60 + t.minute for t in (e.start, e.end))
        return f"time_between({self.expr(e.operand)}, {start!r}, {end!r})"

    def visit_IfExpr(self, e: n.IfExpr) -> str:
        return f"({self.expr(e.then)} if {self.expr(e.cond)} else {self.expr(e.orelse)})"

    def visit_Call(self, e: n.Call) -> str:
        args = [self.expr(a) for a in e.args]
        if e.func in ("min", "max") and len(args) == 2 and all(_is_simple(a) for a in e.args):
            a, b = args
            op = "<" if e.func == "min" else ">"
            return f"({b} if {b} {op} {a} else {a})"
        return f"fn_{e.func}({', '.join(args)})"

    def visit_Aggregate(self, e: n.Aggregate) -> str:
        var = ITEM_PREFIX + e.var
        self.in_iterable += 1
        try:
            source = self.expr(e.source)
        finally:
            self.in_iterable -= 1
        saved = self._items
        self._items = saved | {e.var}
        try:
            body = self.expr(e.body)
            where = f" if {self.expr(e.where)}" if e.where is not None else ""
        finally:
            self._items = saved
        values = f"[{body} for {var} in {source}{where}]"
        if e.func == "count":
            return f"len({values})"
        if e.func == "any":
            return f"(True in {values})"
        if e.func == "all":
            return f"(False not in {values})"
        return {"sum": "fn_sum", "min": "fn_min", "max": "fn_max"}[e.func] + f"({values})"

    def visit_Binary(self, e: n.Binary) -> str:
        if e.op == "otherwise":
            if isinstance(e.left, n.Literal):  # a literal is never missing
                return self.expr(e.left)
            left = self.expr(e.left)
            right = self.expr(e.right)
            if _is_simple(e.left) or self.in_iterable:
                return f"({left} if {left} is not None else {right})"
            tmp = self.temporary()
            return f"({tmp} if ({tmp} := {left}) is not None else {right})"
        left = self.expr(e.left)
        right = self.expr(e.right)
        if e.op == "/":
            return f"div({left}, {right})"
        if e.op == "%":  # a helper, not Python's %: one meaning for ints and decimals alike
            return f"mod({left}, {right})"
        if e.op == "div":
            return f"idiv({left}, {right})"
        ranks = self.check.ranked.get(id(e))
        if ranks is not None:  # an ordered enum (the tiers): by rank, never as text
            table = self.constant(_Table({v: i for i, v in enumerate(ranks)}))
            left, right = (str(ranks.index(side.value)) if isinstance(side, n.Literal)
                           else f"{table}[{code}]" for side, code in ((e.left, left), (e.right, right)))
        return f"({left} {_BINOPS[e.op]} {right})"


class _Table(dict):  # type: ignore[type-arg]
    """A lookup table constant (a dict whose source form is built from literals)."""


def _zero(decimals: int) -> Decimal:
    return Decimal(0).quantize(Decimal(1).scaleb(-decimals))


def _comment_safe(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _constant_source(value: Any) -> str:
    """Python source that rebuilds a constant from literals only (shown by ``loyalty compile``)."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return repr(value)
    if isinstance(value, Decimal):
        return f"Decimal({str(value)!r})"
    if isinstance(value, datetime):
        return f"datetime_from_iso({value.isoformat()!r})"
    if isinstance(value, date):
        return f"date_from_iso({value.isoformat()!r})"
    if isinstance(value, timedelta):
        return f"timedelta(seconds={int(value.total_seconds())!r})"
    if isinstance(value, Months):
        return f"Months({value.count!r})"
    if isinstance(value, tuple):
        return "(" + "".join(_constant_source(v) + ", " for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_constant_source(k)}: {_constant_source(v)}"
                               for k, v in value.items()) + "}"
    raise TypeError(f"no source form for {type(value).__name__}")


def generate(policy: n.Policy, check: CheckResult, schema: Schema,
             variant: str = "evaluate") -> Generated:
    """Generate the Python module of one variant (``evaluate`` or ``explain``) of a checked policy."""
    return CodeGenerator(policy, check, schema).generate(variant)
