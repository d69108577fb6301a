"""The types of expressions: each expression's type against the schema, or a diagnostic.

:class:`ExprTypes` is the expression half of the type checker (a ``visit_<Node>`` per
expression kind); :class:`dsl.analysis.typecheck.Checker` adds the policy's members on top.
Both record each expression's type in the :class:`~dsl.analysis.result.CheckResult`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from dsl.analysis.conflicts import path_of
from dsl.analysis.result import Checking
from dsl.errors import Span, did_you_mean
from dsl.front import nodes as n
from dsl.front.visitor import ExprVisitor
from dsl.library.builtins import AGGREGATES, BUILTINS
from dsl.schema.schema import Field, Schema
from dsl.schema.types import (
    ANY,
    BOOL,
    DATE,
    DATETIME,
    DECIMAL,
    DURATION,
    INT,
    MONTHS,
    STRING,
    Months,
    Type,
    comparable,
    list_of,
    numeric_result,
    unify,
)

#: The records every policy reads: they are not bindings, and cannot be redefined.
#: ``history`` holds the policy's counters (see :class:`dsl.front.nodes.Counter`).
ROOTS = ("customer", "event", "history")


def literal_type(value: Any) -> Type:
    """The type of a literal value."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, Decimal):
        return DECIMAL
    if isinstance(value, str):
        return STRING
    if isinstance(value, datetime):
        return DATETIME
    if isinstance(value, date):
        return DATE
    if isinstance(value, timedelta):
        return DURATION
    if isinstance(value, Months):
        return MONTHS
    return ANY


class ExprTypes(Checking, ExprVisitor[Type]):
    """Types expressions in the scope of one policy: its bindings, customer and event."""

    def __init__(self, schema: Schema, policy: n.Policy) -> None:
        super().__init__(schema, policy)
        self.records: dict[str, dict[str, Field]] = dict(schema.records)
        self.records["customer"] = schema.customer
        # Unknown kinds are reported once in the header; they must not hide every field.
        self.records["event"] = schema.event_fields(
            tuple(k for k in policy.kinds if k in schema.events))
        self.records["history"] = {
            c.name: Field(c.name, INT if c.kind == "count" else DECIMAL)
            for c in policy.counters}
        self.scope: dict[str, Type] = {
            "customer": Type("record", name="customer"),
            "event": Type("record", name="event"),
            "history": Type("record", name="history"),
        }
        self.defined_at: dict[str, Span] = {}
        self.used: set[str] = set()
        #: Paths known to be present here (`x is present and ...` narrows `x`).
        self.narrowed: frozenset[str] = frozenset()

    def type_of(self, e: n.Expr) -> Type:
        """The type found for an expression already checked (for the builtins' type rules)."""
        return self.result.type_of(e)

    # -- expressions -------------------------------------------------------------------------

    def condition(self, e: n.Expr) -> None:
        t = self.expr(e)
        if t.kind not in ("bool", "any"):
            self.error(e.span, "type_error", f"a condition must be true or false, but "
                       f"{self.text(e)} is {t}", "compare it with something, for example: > 0")
        elif t.optional:
            self.optional_error(e, t)

    def expr(self, e: n.Expr) -> Type:
        t = self.visit(e)
        self.result.types[id(e)] = t
        return t

    # One visit_<Node> per expression kind (ExprVisitor): a kind without one raises.

    def visit_Literal(self, e: n.Literal) -> Type:
        return literal_type(e.value)

    def visit_ListExpr(self, e: n.ListExpr) -> Type:
        elem: Type | None = None
        for item in e.items:
            it = self.expr(item)
            if it.optional:
                self.optional_error(item, it)
            merged = it.required() if elem is None else unify(elem, it.required())
            if merged is None:
                self.error(item.span, "type_error", f"a list holds values of one type; this one is "
                           f"{it}, the others {elem}", "make the items the same type")
            else:
                elem = merged
        return list_of(elem or ANY)

    def visit_Unary(self, e: n.Unary) -> Type:
        t = self.expr(e.operand)
        if e.op == "not":
            self.need(e.operand, t, ("bool",), "`not` needs true or false")
            return BOOL
        self.need(e.operand, t, ("int", "decimal", "duration"), "`-` needs a number or a duration")
        return t.required() if t.kind != "any" else ANY

    def visit_Presence(self, e: n.Presence) -> Type:
        t = self.expr(e.operand)
        if not t.optional and t.kind != "any":
            word = "missing" if not e.present else "present"
            self.warn(e.span, "needless_check",
                      f"{self.text(e.operand)} is never missing, so `is {word}` is always "
                      f"{'false' if word == 'missing' else 'true'}", "delete the check")
        return BOOL

    def visit_Between(self, e: n.Between) -> Type:
        t = self.expr(e.operand)
        if t.kind == "date" and not t.optional:
            self.error(e.operand.span, "type_error",
                       f"`between` compares times of day, but {self.text(e.operand)} is a date",
                       "use a date and time such as event.time, or local(event.time, ZONE) "
                       "for the time in a time zone")
        else:
            self.need(e.operand, t, ("datetime",), "`between` compares a date and time's time of day")
        if e.start == e.end:
            self.error(e.span, "empty_window",
                       f"`between {e.start:%H:%M} and {e.end:%H:%M}` is never true: the range "
                       "includes its start and excludes its end",
                       "give two different times; a range across midnight such as "
                       "`between 22:00 and 02:00` is fine")
        return BOOL

    def visit_IfExpr(self, e: n.IfExpr) -> Type:
        self.condition(e.cond)
        with self.narrowing(e.cond, holds=True):
            a = self.expr(e.then)
        with self.narrowing(e.cond, holds=False):
            b = self.expr(e.orelse)
        u = unify(a, b)
        if u is None:
            self.error(e.span, "type_error", f"the two branches give different types ({a} and {b})",
                       "make both branches give the same type")
            return ANY
        return u

    @contextmanager
    def narrowing(self, cond: n.Expr | None, holds: bool) -> Iterator[None]:
        """Within the block, paths that ``cond`` (true if ``holds``, else false) proves present."""
        saved = self.narrowed
        if cond is not None:
            self.narrowed = saved | _present_paths(cond, holds)
        try:
            yield
        finally:
            self.narrowed = saved

    def need(self, e: n.Expr, t: Type, kinds: tuple[str, ...], message: str) -> bool:
        if t.kind == "any":
            return False
        if t.optional:
            self.optional_error(e, t)
            return False
        ok = t.kind in kinds or ("string" in kinds and t.is_stringy)
        if not ok:
            self.error(e.span, "type_error", f"{message}, but {self.text(e)} is {t}",
                       _conversion_hint(t, kinds))
        return ok

    def optional_error(self, e: n.Expr, t: Type) -> None:
        what = self.text(e)
        example = _default_example(t)
        self.error(e.span, "optional_value",
                   f"{what} may be missing, and this use needs a value",
                   f"give a default: `{what} otherwise {example}`, or check it first: "
                   f"`{what} is present and ...`"
                   if t.kind != "null" else "replace it with a value")

    def visit_Name(self, e: n.Name) -> Type:
        t = self.scope.get(e.name)
        if t is None:
            later = next((m for m in self.policy.members
                          if isinstance(m, n.Let | n.Table | n.Decide) and m.name == e.name), None)
            if later is not None:
                self.error(e.span, "unknown_name",
                           f"`{e.name}` is used before it is defined (line {later.span.line})",
                           "move its definition above this line")
            else:
                candidates = list(self.scope)
                hint = _FOREIGN_NAMES.get(e.name) or did_you_mean(e.name, candidates)
                self.error(e.span, "unknown_name", f"unknown name `{e.name}`",
                           hint or "define it with `let` first, or read a field such as event.date")
            return ANY
        if e.name in ROOTS:
            self.error(e.span, "type_error", f"`{e.name}` is a record; read one of its fields",
                       f"for example {e.name}.{'member_since' if e.name == 'customer' else 'date'}")
            return ANY
        self.used.add(e.name)
        return t.required() if e.name in self.narrowed else t

    def visit_Attribute(self, e: n.Attribute) -> Type:
        if isinstance(e.value, n.Name) and e.value.name in ROOTS and e.value.name not in self.defined_at:
            base = self.scope[e.value.name]
            self.result.types[id(e.value)] = base
        else:
            base = self.expr(e.value)
        if base.kind == "any":
            return ANY
        if base.kind != "record":
            self.error(e.span, "type_error", f"{self.text(e.value)} is {base}, which has no fields",
                       "read fields of customer, event or a list item")
            return ANY
        if base.optional:
            self.optional_error(e.value, base)
        fields = self.records.get(base.name, {})
        f = fields.get(e.name)
        if f is None:
            owner = self.text(e.value)
            if base.name == "event":
                owners = sorted(k for k, fs in self.schema.events.items() if e.name in fs)
                if owners:
                    on = ", ".join(self.policy.kinds) or "no kind"
                    self.error(e.span, "unknown_field",
                               f"event.{e.name} exists only for {', '.join(owners)} events, and this "
                               f"policy is on {on}", f"apply the policy to {owners[0]} events, or "
                               "read a field every listed kind has")
                    return ANY
            hint = did_you_mean(e.name, fields)
            if base.name == "history":
                declared = ", ".join(sorted(fields))
                self.error(e.span, "unknown_counter", f"this policy declares no counter `{e.name}`",
                           hint or (f"its counters are: {declared}" if declared else
                                    f"declare it: counter {e.name}: count per day"))
                return ANY
            self.error(e.span, "unknown_field", f"{owner} has no field `{e.name}`",
                       hint or f"its fields are: {', '.join(sorted(fields))}")
            return ANY
        return f.type.required() if path_of(e) in self.narrowed else f.type

    def visit_Call(self, e: n.Call) -> Type:
        """A builtin's call, typed by its entry in :data:`dsl.library.builtins.BUILTINS`."""
        if e.func in ("any", "all"):
            self.error(e.span, "type_error", f"{e.func}() takes a condition over a list",
                       f"write {e.func}(x > 0 for x in some_list)")
            return ANY
        b = BUILTINS.get(e.func)
        arg_types = [self.expr(a) for a in e.args]
        if b is None:
            hint = did_you_mean(e.func, BUILTINS)
            self.error(e.span, "unknown_function", f"unknown function `{e.func}`",
                       hint or f"the built-in functions are: {', '.join(sorted(BUILTINS))}")
            return ANY
        lo, hi = b.min_args, b.max_args
        if not lo <= len(e.args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            self.error(e.span, "wrong_arguments",
                       f"{e.func}() takes {want} argument{'s' if hi != 1 else ''}, not {len(e.args)}",
                       "see docs/language.md, built-in functions")
            return ANY
        for a, t in zip(e.args, arg_types, strict=True):
            if t.optional:
                self.optional_error(a, t)
                return ANY
        if b.rule is not None:
            return b.rule(self, e, arg_types)
        for a, t, p in zip(e.args, arg_types, b.params, strict=False):
            self.need(a, t, p.kinds, p.message)
        return b.result_type(arg_types)

    def visit_Aggregate(self, e: n.Aggregate) -> Type:
        src = self.expr(e.source)
        if e.func not in AGGREGATES:
            hint = did_you_mean(e.func, AGGREGATES)
            self.error(e.span, "unknown_function", f"`{e.func}` does not aggregate a list",
                       hint or f"aggregates are: {', '.join(AGGREGATES)}")
            return ANY
        elem = ANY
        if src.kind == "list":
            assert src.elem is not None
            elem = src.elem
        elif src.kind != "any":
            self.error(e.source.span, "type_error", f"{self.text(e.source)} is {src}, not a list",
                       "aggregate over a list, such as event.items")
        if src.optional:
            self.optional_error(e.source, src)
        self.check_name(e.var, e.span, "variable")
        if e.var in self.scope:
            self.error(e.span, "duplicate_name", f"`{e.var}` is already defined",
                       "choose another name for the list item")
            return ANY
        self.scope[e.var] = elem
        try:
            if e.where is not None:
                self.condition(e.where)
            body = self.expr(e.body)
        finally:
            del self.scope[e.var]
        if e.func in ("any", "all"):
            self.need(e.body, body, ("bool",), f"{e.func}() needs a condition")
            return BOOL
        if e.func == "count":
            self.need(e.body, body, ("bool", "int", "decimal", "string", "date", "datetime",
                                     "duration", "airport", "enum", "record", "list"), "count()")
            return INT
        if e.func == "sum":
            self.need(e.body, body, ("int", "decimal"), "sum() adds numbers")
            return INT if body.kind == "int" else DECIMAL if body.kind != "any" else ANY
        self.need(e.body, body, ("int", "decimal", "date", "datetime", "duration"),
                  f"{e.func}() compares numbers, dates or durations")
        return body.required()

    def visit_Binary(self, e: n.Binary) -> Type:
        """A binary operation, typed by the rule for its operator's family."""
        if e.op in ("and", "or"):
            return self.logical(e)
        if e.op == "otherwise":
            return self.otherwise(e)
        a = self.expr(e.left)
        b = self.expr(e.right)
        if e.op in ("==", "!="):
            return self.equality(e, a, b)
        if e.op in ("<", "<=", ">", ">="):
            return self.ordering(e, a, b)
        if e.op in ("in", "not in"):
            return self.membership(e, a, b)
        return self.arithmetic(e, a, b)

    def logical(self, e: n.Binary) -> Type:
        """``and``/``or``: true or false on both sides."""
        op = e.op
        t = self.expr(e.left)
        self.need(e.left, t, ("bool",), f"`{op}` needs true or false on both sides")
        # The right side runs only when the left is true (and) or false (or).
        with self.narrowing(e.left, holds=op == "and"):
            t = self.expr(e.right)
        self.need(e.right, t, ("bool",), f"`{op}` needs true or false on both sides")
        return BOOL

    def otherwise(self, e: n.Binary) -> Type:
        """``x otherwise default``: a default of x's type, for an x that may be missing."""
        a = self.expr(e.left)
        b = self.expr(e.right)
        if not a.optional and a.kind != "any":
            self.warn(e.span, "needless_default",
                      f"{self.text(e.left)} is never missing, so the default is never used",
                      f"write just {self.text(e.left)}")
        if a.ordered and isinstance(e.right, n.Literal) and e.right.value in a.values:
            return a.required()  # `customer.tier otherwise "GOLD"`: still a tier, with its order
        u = unify(a.required(), b)
        if u is None:
            self.error(e.right.span, "type_error",
                       f"the default is {b}, but {self.text(e.left)} is {a.required()}",
                       "give a default of the same type")
            return ANY
        return u if b.optional else u.required()

    def equality(self, e: n.Binary, a: Type, b: Type) -> Type:
        """``==``/``!=``: comparable sides, and a literal among an enum's values."""
        if not comparable(a, b):
            self.error(e.span, "type_error",
                       f"cannot compare {self.text(e.left)} ({a}) with {self.text(e.right)} ({b})",
                       _compare_hint(e, a, b))
        else:
            for x, y in ((e.left, b), (e.right, a)):
                if (isinstance(x, n.Literal) and isinstance(x.value, str) and y.kind == "enum"
                        and x.value not in y.values):
                    self.unknown_value(x, x.value, y)
        return BOOL

    def ordering(self, e: n.Binary, a: Type, b: Type) -> Type:
        """``<`` and its kin: two present values of one ordered type."""
        if a.optional and a.kind != "any":
            self.optional_error(e.left, a)
        elif b.optional and b.kind != "any":
            self.optional_error(e.right, b)
        elif not comparable(a, b) or a.kind in ("bool", "list", "record", "months") or \
                (a.kind != "any" and b.kind != "any" and a.kind in ("date", "datetime")
                 and a.kind != b.kind):
            self.error(e.span, "type_error",
                       f"cannot compare {self.text(e.left)} ({a}) with {self.text(e.right)} ({b})",
                       _compare_hint(e, a, b))
        elif a.is_stringy and b.is_stringy:
            self.rank_order(e, a, b)
        return BOOL

    def rank_order(self, e: n.Binary, a: Type, b: Type) -> None:
        """``<`` and its kin on text: an ordered enum (the tiers) compares by rank, with a
        value of its own or a literal among its values; anything else has no order to compare
        by (text order would rank "DIAMOND" below "GOLD")."""
        ordered, other_side, other = (a, e.right, b) if a.ordered else (b, e.left, a)
        if ordered.ordered:
            if other.ordered and other.values == ordered.values:
                self.result.ranked[id(e)] = ordered.values
                return
            if isinstance(other_side, n.Literal) and isinstance(other_side.value, str):
                if other_side.value in ordered.values:
                    self.result.ranked[id(e)] = ordered.values
                else:
                    self.unknown_value(other_side, other_side.value, ordered)
                return
            self.error(e.span, "type_error",
                       f"{self.text(e.left)} ({a}) and {self.text(e.right)} ({b}) cannot be "
                       f"compared by rank: only {ordered}'s own values have one",
                       f'compare with one of its values, lowest first: '
                       f'{", ".join(chr(34) + v + chr(34) for v in ordered.values)}')
            return
        self.error(e.span, "unordered_comparison",
                   f"{self.text(e.left)} ({a}) and {self.text(e.right)} ({b}) have no declared "
                   f"order: `{e.op}` would compare them as text, alphabetically",
                   _order_hint(self, e, a, b))

    def membership(self, e: n.Binary, a: Type, b: Type) -> Type:
        """``in``/``not in``: a list on the right whose items compare with the left."""
        op = e.op
        if b.kind == "any":
            return BOOL
        if b.kind != "list":
            self.error(e.right.span, "type_error", f"`{op}` needs a list on the right, but "
                       f"{self.text(e.right)} is {b}", 'write a list: ["a", "b"]')
            return BOOL
        if b.optional:
            self.optional_error(e.right, b)
        assert b.elem is not None
        if not comparable(a.required(), b.elem):
            self.error(e.span, "type_error",
                       f"{self.text(e.left)} ({a}) can never be in a list of {b.elem}",
                       "compare like with like")
        elif a.kind == "enum" and isinstance(e.right, n.ListExpr):
            for item in e.right.items:
                if isinstance(item, n.Literal) and isinstance(item.value, str) and \
                        item.value not in a.values:
                    self.unknown_value(item, item.value, a)
        return BOOL

    def arithmetic(self, e: n.Binary, a: Type, b: Type) -> Type:
        """``+ - * / % of``: present operands whose kinds the operator takes."""
        for side, t in ((e.left, a), (e.right, b)):
            if t.optional and t.kind != "any":
                self.optional_error(side, t)
                return ANY
        if a.kind == "any" or b.kind == "any":
            return ANY
        result = arithmetic_type(e.op, a, b)
        if result is not None:
            return result
        if e.op == "%":
            message = (f"cannot take the remainder of {self.text(e.left)} ({a}) divided by "
                       f"{self.text(e.right)} ({b})")
        elif e.op == "div":
            message = (f"`div` divides whole numbers, but {self.text(e.left)} is {a} and "
                       f"{self.text(e.right)} is {b}")
            if a.is_numeric and b.is_numeric:
                self.error(e.span, "type_error", message,
                           f"for decimals, round the quotient down: floor({self.text(e.left)} / "
                           f"{self.text(e.right)})")
                return ANY
        else:
            word = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "of": "take",
                    "div": "divide"}[e.op]
            message = f"cannot {word} {self.text(e.left)} ({a}) and {self.text(e.right)} ({b})"
        self.error(e.span, "type_error", message, _arith_hint(a, b))
        return ANY

    # -- unknown values -------------------------------------------------------------------------

    def unknown_value(self, lit: n.Literal, value: str, t: Type) -> None:
        hint = did_you_mean(value, t.values)
        what = "tier" if t.name == "tier" else "value"
        if not t.values:
            self.error(lit.span, "unknown_value", f'"{value}" is not a possible {what}: the schema '
                       f"declares no {what}s", "declare them in the schema (tiers = [...])")
            return
        self.error(lit.span, "unknown_value",
                   f'"{value}" is not a possible {what} here (one of: {", ".join(t.values)})',
                   hint or "use one of the listed values")

    def unknown_currency(self, name: str, span: Span) -> None:
        hint = did_you_mean(name, self.schema.currencies)
        self.error(span, "unknown_currency", f"unknown currency `{name}`",
                   hint or f"the schema's currencies are: {', '.join(sorted(self.schema.currencies))}")


# -- helpers -------------------------------------------------------------------------------


_NO_NULL = ("a missing value has no literal: test it with `x is missing`, or give a default "
            "with `x otherwise 0`")
#: Names other languages have that this one spells differently (dsl.front.mistakes has the syntax).
_FOREIGN_NAMES = {
    "True": "write `true`", "TRUE": "write `true`",
    "False": "write `false`", "FALSE": "write `false`",
    "None": _NO_NULL, "null": _NO_NULL, "NULL": _NO_NULL, "nil": _NO_NULL, "undefined": _NO_NULL,
}


def _present_paths(cond: n.Expr, holds: bool) -> frozenset[str]:
    """Paths proved present when ``cond`` is true (``holds``) or false (not ``holds``).

    ``a is present and b is present`` proves both when true; ``a is missing or
    b is missing`` proves both when false; ``not`` swaps the two.
    """
    if isinstance(cond, n.Unary) and cond.op == "not":
        return _present_paths(cond.operand, not holds)
    if isinstance(cond, n.Presence):
        path = path_of(cond.operand)
        return frozenset([path]) if path and cond.present == holds else frozenset()
    if isinstance(cond, n.Binary) and cond.op == ("and" if holds else "or"):
        return _present_paths(cond.left, holds) | _present_paths(cond.right, holds)
    return frozenset()


def arithmetic_type(op: str, a: Type, b: Type) -> Type | None:
    """The type of ``a op b`` for two present, known operand types; None when ``op`` does not
    take them."""
    k = (a.kind, b.kind)
    if op in ("+", "-", "*", "of", "%") and a.is_numeric and b.is_numeric:
        return numeric_result(a, b)  # a remainder is exact: int % int stays an int
    if op == "/" and a.is_numeric and b.is_numeric:
        return DECIMAL
    if op == "div" and k == ("int", "int"):
        return INT
    if op in ("+", "-") and k in (("date", "months"), ("datetime", "months")):
        return a.required()
    if op == "+" and k in (("months", "date"), ("months", "datetime")):
        return b.required()
    if op == "+" and a.is_stringy and b.is_stringy:
        return STRING
    if op in ("+", "-") and k in (("datetime", "duration"), ("date", "duration")):
        return a.required()
    if op == "+" and k in (("duration", "datetime"), ("duration", "date")):
        return b.required()
    if op in ("+", "-") and k == ("duration", "duration"):
        return DURATION
    if op == "-" and k in (("datetime", "datetime"), ("date", "date")):
        return DURATION
    if op in ("*", "of") and k in (("duration", "int"), ("int", "duration")):
        return DURATION
    return None


def _default_example(t: Type) -> str:
    return {
        "int": "0", "decimal": "0.00", "bool": "false", "date": "2000-01-01",
        "datetime": "2000-01-01T00:00Z", "duration": "0 minutes",
    }.get(t.kind, '""' if t.kind != "enum" or not t.values else f'"{t.values[0]}"')


def _conversion_hint(t: Type, kinds: Iterable[str]) -> str:
    kinds = tuple(kinds)
    if t.is_stringy and ("int" in kinds or "decimal" in kinds):
        return "write the number without quotes"
    if t.kind == "datetime" and "date" in kinds:
        return "take its date with date(...)"
    if "timezone" in kinds:
        return 'write a zone name such as "Europe/London", or read a field of type timezone'
    if t.kind == "date" and kinds == ("datetime",):
        return "a date has no time of day: use a date and time such as event.time"
    if t.kind == "list":
        return "aggregate the list with sum(...), count(...), any(...) or all(...)"
    return f"expected {' or '.join(kinds)}"


def _compare_hint(e: n.Binary, a: Type, b: Type) -> str:
    for side, other in ((e.right, a), (e.left, b)):
        if isinstance(side, n.Literal) and isinstance(side.value, str) and other.is_numeric:
            try:
                Decimal(side.value)
                return f"write the number without quotes: {side.value}"
            except ArithmeticError:
                pass
    if {a.kind, b.kind} == {"date", "datetime"}:
        return "take the date of the instant with date(...)"
    for when, number, t, other in ((e.left, e.right, a, b), (e.right, e.left, b, a)):
        if t.kind in ("date", "datetime") and other.is_numeric:
            return _date_number_hint(e, when, number, t)
        if t.kind == "duration" and other.is_numeric:
            amount = number.text if isinstance(number, n.Literal) and number.text else "N"
            return (f"a duration compares with a duration: write a unit after the number, such as "
                    f"{amount} days or {amount} minutes (or count minutes with minutes(...))")
    if "months" in (a.kind, b.kind):
        return ("a calendar span (months, quarters, years) has no fixed length: move a date by it "
                "(customer.member_since + 2 years <= event.date), or count whole months or years "
                "with tenure_months(...) or tenure_years(...)")
    return "compare values of the same type"


def _date_number_hint(e: n.Binary, when: n.Expr, number: n.Expr, t: Type) -> str:
    """How to compare a date (or a datetime) with a number: a year, a date literal, or days."""
    what = path_of(when) or f"the {t.kind}"
    value = number.value if isinstance(number, n.Literal) else None
    shown = number.text if isinstance(number, n.Literal) and number.text else "N"
    if isinstance(value, int) and not isinstance(value, bool) and 1000 <= value <= 9999:
        return (f"a number is not a {t.kind}: to compare the year, write year({what}) {e.op} "
                f"{value}; or compare with a date such as {value}-01-01")
    start = f"date({what})" if t.kind == "datetime" else what
    days = (f"days_between(..., {start})" if what.startswith("event.")
            else f"days_between({start}, event.date)")
    literal = "2026-03-01T09:30:00Z" if t.kind == "datetime" else "2026-03-01"
    return (f"a number is not a {t.kind}: compare with a {t.kind} such as {literal}, or count "
            f"the days: {days} {e.op} {shown}")


def _order_hint(ctx: ExprTypes, e: n.Binary, a: Type, b: Type) -> str:
    """What to write instead of comparing text with ``<``: the default that keeps a tier a
    tier, or the order to declare in the schema."""
    for side in (e.left, e.right):
        if isinstance(side, n.Binary) and side.op == "otherwise" and isinstance(side.right, n.Literal):
            inner = ctx.type_of(side.left)
            if inner.ordered and inner.values:
                close = did_you_mean(str(side.right.value), inner.values)
                what = "tier" if inner.name == "tier" else "value"
                instead = close or f'default to one of them, such as "{inner.values[0]}"'
                return (f"the default {side.right.text} is not a {what} ({', '.join(inner.values)}), "
                        f"so the comparison falls back to text; {instead}")
    for t in (a, b):
        if t.kind == "enum":
            return (f"declare the order in the schema, values lowest first: "
                    f'{{ type = "{t.name}", ordered = true }}, or compare with == or in')
    return ("compare with == or in; for values with a rank, declare them in the schema as an "
            'enum listed lowest first with `ordered = true` (tiers are ordered: tiers = [...])')


def _arith_hint(a: Type, b: Type) -> str:
    if a.is_stringy or b.is_stringy:
        return "write numbers without quotes"
    if "date" in (a.kind, b.kind) and "int" in (a.kind, b.kind):
        return "add a duration such as 30 days, or a calendar span such as 3 months, not a bare number"
    if "months" in (a.kind, b.kind):
        return ("a calendar span (3 months, 1 quarter, 1 year) is added to or subtracted from a "
                "date or a date and time")
    return "see docs/language.md, operators"
