"""Static checks: names, types against the schema, and conflicts, as positioned diagnostics.

The checker runs after parsing and before code generation. It collects every
problem in a file instead of stopping at the first, and records the type of
each expression, which the code generator uses (for example, an award whose
amount is a whole number needs no rounding).

Stages, in order (each relies on the ones before it):

1. header: event kinds exist, the effective window is not empty;
2. members in source order: ``let``/``table``/``decide`` bindings are typed and
   enter scope (a name is usable only after its definition);
3. rules and groups: conditions are booleans, effects name declared currencies,
   benefits and tiers; rules that can never fire are reported;
4. caps and rounding: declared currencies, and every award that may be
   fractional has an explicit rounding;
5. sizes, once the others pass: every number, text and aggregate has a bound
   within the language's limits (``check_sizes``; the proved bound is
   ``CheckResult.bound``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from dsl.errors import Diagnostic, Span, did_you_mean
from dsl.front import nodes as n
from dsl.front.visitor import ExprVisitor
from dsl.library.builtins import AGGREGATES, BUILTINS
from dsl.library.runtime import MAX_NUMBER_DIGITS
from dsl.schema.schema import MAX_INPUT_DIGITS, MAX_LIST, MAX_STRING, Field, Schema
from dsl.schema.types import (
    AIRPORT,
    ANY,
    BOOL,
    DATE,
    DATETIME,
    DECIMAL,
    DURATION,
    INT,
    NULL,
    STRING,
    Type,
    comparable,
    list_of,
    numeric_result,
    unify,
)

#: The most rules one policy may hold.
MAX_RULES = 2000
#: The most rows one table or decision table may hold.
MAX_ROWS = 5000
#: The most members (bindings, tables, rules, groups, caps, roundings) in one policy.
MAX_MEMBERS = 6000

ROOTS = ("customer", "event")
_RESERVED_NAME = re.compile(r"^_|__")


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
    #: The cost bound the size pass proved (None when the policy failed earlier checks).
    bound: CostBound | None = None

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    def type_of(self, expr: n.Expr) -> Type:
        return self.types.get(id(expr), ANY)


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
    return ANY


class Checker(ExprVisitor[Type]):
    """Checks one policy against a schema. Use :func:`check_policy`."""

    def __init__(self, schema: Schema, policy: n.Policy) -> None:
        self.schema = schema
        self.policy = policy
        self.result = CheckResult()
        self.lines = policy.source.splitlines()
        self.records: dict[str, dict[str, Field]] = dict(schema.records)
        self.records["customer"] = schema.customer
        # Unknown kinds are reported once in the header; they must not hide every field.
        self.records["event"] = schema.event_fields(
            tuple(k for k in policy.kinds if k in schema.events))
        self.scope: dict[str, Type] = {
            "customer": Type("record", name="customer"),
            "event": Type("record", name="event"),
        }
        self.defined_at: dict[str, Span] = {}
        self.used: set[str] = set()
        self.awarded: dict[str, list[n.Award]] = {}
        #: Paths known to be present here (`x is present and ...` narrows `x`).
        self.narrowed: frozenset[str] = frozenset()

    # -- reporting -------------------------------------------------------------------------

    def error(self, span: Span, code: str, message: str, hint: str = "",
              severity: str = "error") -> None:
        line = self.lines[span.line - 1] if 0 < span.line <= len(self.lines) else ""
        if span.end_line != span.line:
            span = Span(span.line, span.column, span.line, len(line.rstrip()) + 1)
        self.result.diagnostics.append(
            Diagnostic(self.policy.file, span, code, message, hint, severity, line)
        )

    def warn(self, span: Span, code: str, message: str, hint: str = "") -> None:
        self.error(span, code, message, hint, severity="warning")

    def text(self, node: n.Node) -> str:
        return n.source_text(self.policy.source, node.span) or "this expression"

    def type_of(self, e: n.Expr) -> Type:
        """The type found for an expression already checked (for the builtins' type rules)."""
        return self.result.type_of(e)

    # -- the policy --------------------------------------------------------------------------

    def run(self) -> CheckResult:
        p = self.policy
        self.check_name(p.name, p.header_spans.get("name", p.span), "policy")
        self.check_header()
        if len(p.members) > MAX_MEMBERS:
            self.error(p.span, "too_large",
                       f"the policy has {len(p.members)} members; the limit is {MAX_MEMBERS}",
                       "split it into several policies")
            return self.result
        rules = p.rules
        if len(rules) > MAX_RULES:
            self.error(rules[MAX_RULES].span, "too_many_rules",
                       f"the policy has {len(rules)} rules; the limit is {MAX_RULES}",
                       "split it into several policies")
            return self.result
        for m in p.roundings:
            self.check_rounding(m)
        rule_names: dict[str, Span] = {}
        for m in p.members:
            if isinstance(m, n.Let):
                self.define(m.name, self.expr(m.value), m.span)
            elif isinstance(m, n.Table):
                self.define(m.name, self.check_table(m), m.span)
            elif isinstance(m, n.Decide):
                self.define(m.name, self.check_decide(m), m.span)
            elif isinstance(m, n.Rule):
                self.check_rule(m, rule_names)
            elif isinstance(m, n.Group):
                self.check_group(m, rule_names)
            elif isinstance(m, n.Cap):
                self.check_cap(m)
        self.check_awards_rounded()
        if self.result.ok:
            self.check_sizes()
        for name, span in self.defined_at.items():
            if name not in self.used:
                self.warn(span, "unused_binding", f"`{name}` is defined but never used",
                          "use it or delete it")
        return self.result

    def check_name(self, name: str, span: Span, what: str) -> bool:
        if _RESERVED_NAME.search(name):
            self.error(span, "reserved_name",
                       f"`{name}` is not allowed as a {what} name: names may not start with _ "
                       "or contain __", "rename it with letters, digits and single underscores")
            return False
        return True

    def check_header(self) -> None:
        p = self.policy
        spans = p.header_spans
        if not p.kinds:
            self.error(spans.get("name", p.span), "missing_event_kind",
                       f"policy {p.name} does not say which events it applies to",
                       "add a line such as `on flight` under the policy name")
        for kind in p.kinds:
            if kind not in self.schema.events:
                hint = did_you_mean(kind, self.schema.events)
                known = ", ".join(sorted(self.schema.events))
                self.error(spans.get("on", p.span), "unknown_event_kind",
                           f'unknown event kind "{kind}"',
                           hint or f"the schema declares: {known}")
        if len(set(p.kinds)) != len(p.kinds):
            self.error(spans.get("on", p.span), "duplicate_name", "an event kind is listed twice",
                       "list each kind once")
        if p.effective_from and p.effective_until and p.effective_until < p.effective_from:
            self.error(spans.get("effective", p.span), "empty_window",
                       f"the effective window ends ({p.effective_until}) before it starts "
                       f"({p.effective_from}), so the policy would never apply",
                       "swap the dates, or correct the end date")
        if p.version < 1:
            self.error(spans.get("version", p.span), "bad_version",
                       "the version must be a whole number from 1 up", "write for example `version 1`")

    def define(self, name: str, t: Type, span: Span) -> None:
        if not self.check_name(name, span, "binding"):
            return
        if name in ROOTS or name in BUILTINS or name in AGGREGATES:
            self.error(span, "reserved_name", f"`{name}` is a built-in name and cannot be redefined",
                       "choose another name")
            return
        if name in self.scope:
            self.error(span, "duplicate_name", f"`{name}` is already defined on line "
                       f"{self.defined_at[name].line}", "rename one of them")
            return
        self.scope[name] = t
        self.defined_at[name] = span

    # -- members ---------------------------------------------------------------------------

    def check_table(self, t: n.Table) -> Type:
        key_t = self.expr(t.key)
        if len(t.rows) > MAX_ROWS:
            self.error(t.span, "too_large", f"the table has {len(t.rows)} rows; the limit is {MAX_ROWS}",
                       "split it")
        result: Type | None = None
        seen: dict[Any, int] = {}
        has_else = False
        for row in t.rows:
            if has_else:
                self.error(row.span, "unreachable_row", "this row comes after `else` and is never used",
                           "move `else` to the last row")
            if not row.keys:
                has_else = True
            for key in row.keys:
                kt = literal_type(key.value)
                if not comparable(key_t.required(), kt) or (key_t.kind != "any" and kt.kind != key_t.kind
                                                            and not (kt.is_stringy and key_t.is_stringy)
                                                            and not (kt.is_numeric and key_t.is_numeric)):
                    self.error(key.span, "type_error",
                               f"table {t.name} is keyed by {self.text(t.key)} ({key_t.required()}), "
                               f"but this key is {kt}", "write a key of the same type")
                elif key_t.kind == "enum" and isinstance(key.value, str) and key.value not in key_t.values:
                    self.unknown_value(key, key.value, key_t)
                marker = (type(key.value).__name__ if not isinstance(key.value, int | Decimal)
                          or isinstance(key.value, bool) else "number", key.value)
                if marker in seen:
                    self.error(key.span, "unreachable_row",
                               f"key {key.text} already appears on line {seen[marker]}, so this row is "
                               "never used", "delete one of the two rows")
                else:
                    seen[marker] = key.span.line
            vt = self.expr(row.value)
            merged = vt if result is None else unify(result, vt)
            if merged is None:
                self.error(row.value.span, "type_error",
                           f"table {t.name}'s rows give {result} but this row gives {vt}",
                           "make every row give the same type")
            else:
                result = merged
        result = result or ANY
        return result if has_else else result.maybe()

    def check_decide(self, d: n.Decide) -> Type:
        result: Type | None = None
        has_else = False
        catch_all: int | None = None
        seen_conditions: dict[str, int] = {}
        for row in d.rows:
            if has_else:
                self.error(row.span, "unreachable_row", "this row comes after `else` and is never used",
                           "move `else` to the last row")
            if row.cond is None:
                has_else = True
            else:
                self.condition(row.cond)
                text = _canonical(row.cond)
                if d.hit == "first" and catch_all is not None:
                    self.error(row.span, "unreachable_row",
                               f"the row on line {catch_all} always matches, so this row is never used",
                               "put this row before it, or delete it")
                elif d.hit == "first" and text in seen_conditions:
                    self.error(row.cond.span, "unreachable_row",
                               f"the row on line {seen_conditions[text]} has the same condition, so "
                               "this row is never used", "change the condition or delete the row")
                else:
                    seen_conditions.setdefault(text, row.span.line)
                    verdict = self.constant_truth(row.cond)
                    if verdict is True:
                        catch_all = row.span.line
                    elif verdict is False:
                        self.error(row.cond.span, "unreachable_row",
                                   f"this condition can never be true ({self.why_false(row.cond)}), "
                                   "so the row is never used", "correct the condition or delete the row")
            with self.narrowing(row.cond, holds=True):
                vt = self.expr(row.value)
            if d.hit == "collect" and vt.optional and vt.kind != "any":
                # A collected list holds values: a missing one would have no meaning in it.
                self.optional_error(row.value, vt)
                vt = vt.required()
            merged = vt if result is None else unify(result, vt)
            if merged is None:
                self.error(row.value.span, "type_error",
                           f"decision table {d.name}'s rows give {result} but this row gives {vt}",
                           "make every row give the same type")
            else:
                result = merged
        result = result or ANY
        if d.hit == "collect":
            return list_of(result.required())
        return result if has_else or catch_all is not None else result.maybe()

    def check_rule(self, r: n.Rule, names: dict[str, Span], group: n.Group | None = None) -> None:
        if self.check_name(r.name, r.name_span, "rule"):
            if r.name in names:
                self.error(r.name_span, "duplicate_name",
                           f"rule {r.name} is already defined on line {names[r.name].line}",
                           "give each rule its own name")
            else:
                names[r.name] = r.name_span
        if r.cond is not None:
            self.condition(r.cond)
            if self.constant_truth(r.cond) is False:
                self.error(r.cond.span, "never_fires",
                           f"rule {r.name} can never fire: {self.why_false(r.cond)}",
                           "correct the condition or delete the rule")
        with self.narrowing(r.cond, holds=True):
            for effect in r.effects:
                self.check_effect(effect, r)

    def check_group(self, g: n.Group, names: dict[str, Span]) -> None:
        self.check_name(g.name, g.span, "group")
        if g.name in names:
            self.error(g.span, "duplicate_name", f"`{g.name}` is already a rule or group name",
                       "rename the group")
        names[g.name] = g.span
        if g.mode == "best":
            if g.currency not in self.schema.currencies:
                self.unknown_currency(g.currency, g.span)
            elif not any(isinstance(e, n.Award) and e.currency == g.currency
                         for r in g.rules for e in r.effects):
                self.error(g.span, "type_error",
                           f"group {g.name} takes the best {g.currency}, but none of its rules "
                           f"award {g.currency}", f"award {g.currency} in its rules, or compare another "
                           "currency")
        catch_all: n.Rule | None = None
        for r in g.rules:
            if g.mode == "first" and catch_all is not None:
                self.error(r.name_span, "never_fires",
                           f"rule {r.name} can never fire: group {g.name} takes the first rule that "
                           f"applies, and rule {catch_all.name} (line {catch_all.span.line}) always does",
                           "move this rule above it, or delete it")
            self.check_rule(r, names, g)
            if catch_all is None and (r.cond is None or self.constant_truth(r.cond) is True):
                catch_all = r

    def check_effect(self, e: n.Effect, r: n.Rule) -> None:
        if isinstance(e, n.Award):
            t = self.expr(e.amount)
            if t.kind != "any" and not t.is_numeric:
                self.error(e.amount.span, "type_error",
                           f"an award needs a number, but {self.text(e.amount)} is {t}",
                           "award a number of a currency: award 500 miles")
            elif t.optional:
                self.optional_error(e.amount, t)
            if e.currency not in self.schema.currencies:
                self.unknown_currency(e.currency, e.currency_span)
            else:
                self.awarded.setdefault(e.currency, []).append(e)
            if e.limit is not None:
                lt = self.expr(e.limit)
                if lt.kind != "any" and not lt.is_numeric:
                    self.error(e.limit.span, "type_error",
                               f"`up to` needs a number, but {self.text(e.limit)} is {lt}",
                               "write for example: up to 1000")
                elif lt.optional:
                    self.optional_error(e.limit, lt)
        elif isinstance(e, n.Grant):
            params = self.schema.benefits.get(e.benefit)
            if params is None:
                hint = did_you_mean(e.benefit, self.schema.benefits)
                self.error(e.span, "unknown_benefit", f'unknown benefit "{e.benefit}"',
                           hint or "declare it under [benefits] in the schema")
                params = {}
                for _, value, _ in e.params:
                    self.expr(value)
                return
            given = set()
            for pname, value, pspan in e.params:
                vt = self.expr(value)
                if pname in given:
                    self.error(pspan, "duplicate_name", f"parameter {pname} is given twice",
                               "give it once")
                given.add(pname)
                want = params.get(pname)
                if want is None:
                    hint = did_you_mean(pname, params)
                    declared = ", ".join(sorted(params)) or "none"
                    self.error(pspan, "unknown_parameter",
                               f'benefit "{e.benefit}" has no parameter {pname}',
                               hint or f"its parameters are: {declared}")
                elif vt.optional and vt.kind != "null":
                    self.optional_error(value, vt)
                elif vt.kind != "any" and unify(want.required(), vt) != want.required() and not (
                        want.is_numeric and vt.kind == "int"):
                    self.error(value.span, "type_error",
                               f"parameter {pname} of \"{e.benefit}\" is {want}, but "
                               f"{self.text(value)} is {vt}",
                           "write a duration such as 15 minutes" if want.kind == "duration"
                           else f"give a {want}")
            missing = [p for p, t in params.items() if p not in given and not t.optional]
            if missing:
                self.error(e.span, "missing_parameter",
                           f'benefit "{e.benefit}" needs parameter {missing[0]}',
                           f"add: with {missing[0]} = ...")
        elif isinstance(e, n.Qualify):
            if e.tier not in self.schema.tiers:
                hint = did_you_mean(e.tier, self.schema.tiers)
                tiers = ", ".join(self.schema.tiers) or "none declared"
                self.error(e.span, "unknown_tier", f'unknown tier "{e.tier}"',
                           hint or f"the schema's tiers are: {tiers}")
        elif isinstance(e, n.Tag) and (not e.tag or len(e.tag) > 100):
            self.error(e.span, "bad_tag", "a tag is from 1 to 100 characters",
                       "shorten the tag")

    def check_cap(self, c: n.Cap) -> None:
        if c.currency not in self.schema.currencies:
            self.unknown_currency(c.currency, c.span)
        if isinstance(c.amount, n.Literal) and isinstance(c.amount.value, int | Decimal) \
                and not isinstance(c.amount.value, bool) and c.amount.value < 0:
            self.error(c.amount.span, "bad_cap", f"a cap of {c.amount.text} is below zero, and awards "
                       "are never negative", "write the most the policy may award, 0 or more")
        t = self.expr(c.amount)
        if t.kind != "any" and not t.is_numeric:
            self.error(c.amount.span, "type_error", f"a cap needs a number, but this is {t}",
                       "write for example: cap miles at 25000")
        elif t.optional:
            self.optional_error(c.amount, t)
        if sum(1 for m in self.policy.caps if m.currency == c.currency) > 1 and \
                next(m for m in self.policy.caps if m.currency == c.currency) is not c:
            self.error(c.span, "duplicate_name", f"{c.currency} is capped twice in this policy",
                       "keep one cap per currency")

    def check_rounding(self, r: n.Round) -> None:
        if r.currency not in self.schema.currencies:
            self.unknown_currency(r.currency, r.span)
            return
        if r.currency in self.result.rounding:
            self.error(r.span, "duplicate_name", f"rounding for {r.currency} is declared twice",
                       "keep one")
            return
        self.result.rounding[r.currency] = r.mode
        if r.per_award:
            self.result.per_award.add(r.currency)

    def check_awards_rounded(self) -> None:
        for currency, awards in self.awarded.items():
            if currency in self.result.rounding:
                continue
            decimals = self.schema.currencies[currency].decimals
            for a in awards:
                if self.may_be_fractional(a):
                    places = "whole" if decimals == 0 else f"{decimals}-decimal"
                    self.error(a.amount.span, "missing_rounding",
                               f"{self.text(a.amount)} may not be a {places} amount of {currency}, "
                               "and the policy does not say how to round it",
                               f"add a line such as `round {currency} down` to the policy")
                    break
        for r in self.policy.roundings:
            if r.currency in self.schema.currencies and r.currency not in self.awarded:
                self.warn(r.span, "unused_rounding", f"the policy never awards {r.currency}",
                          "delete this line")
            elif r.per_award and r.currency in self.awarded:
                self.check_per_award_rounding(r)

    def check_per_award_rounding(self, r: n.Round) -> None:
        """Warn where ``each award`` rounds several summed awards, one of them fractional.

        Rounding each part on its own can pay less than rounding their total once
        (``down``: 0.5 + 0.5 gives 0, not 1), which is how programme terms state totals.
        Only awards that can add up count: one rule of a group applies at most.
        """
        def slots(rule: n.Rule) -> tuple[int, bool]:
            awards = [e for e in rule.effects if isinstance(e, n.Award) and e.currency == r.currency]
            return len(awards), any(self.may_be_fractional(e) for e in awards)

        summed, fractional = 0, False
        for m in self.policy.members:
            if isinstance(m, n.Rule):
                count, frac = slots(m)
                summed, fractional = summed + count, fractional or frac
            elif isinstance(m, n.Group):
                counts = [slots(rule) for rule in m.rules]
                summed += max((c for c, _ in counts), default=0)
                fractional = fractional or any(f for _, f in counts)
        if summed > 1 and fractional:
            self.warn(r.span, "per_award_rounding",
                      f"each of up to {summed} awards of {r.currency} is rounded {r.mode} on its "
                      f"own before they are added up, which can pay a different total than "
                      f"rounding the policy's total of {r.currency} once",
                      f"to round the total once, as programme terms state it, write "
                      f"`round {r.currency} {r.mode}`")

    def may_be_fractional(self, a: n.Award) -> bool:
        """Whether an award's amount or ``up to`` limit may have a fractional part."""
        return self.result.type_of(a.amount).kind == "decimal" or (
            a.limit is not None and self.result.type_of(a.limit).kind == "decimal")

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
            self.error(e.span, "unknown_field", f"{owner} has no field `{e.name}`",
                       hint or f"its fields are: {', '.join(sorted(fields))}")
            return ANY
        return f.type.required() if _path(e) in self.narrowed else f.type

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
        op = e.op
        if op in ("and", "or"):
            t = self.expr(e.left)
            self.need(e.left, t, ("bool",), f"`{op}` needs true or false on both sides")
            # The right side runs only when the left is true (and) or false (or).
            with self.narrowing(e.left, holds=op == "and"):
                t = self.expr(e.right)
            self.need(e.right, t, ("bool",), f"`{op}` needs true or false on both sides")
            return BOOL
        if op == "otherwise":
            a = self.expr(e.left)
            b = self.expr(e.right)
            if not a.optional and a.kind != "any":
                self.warn(e.span, "needless_default",
                          f"{self.text(e.left)} is never missing, so the default is never used",
                          f"write just {self.text(e.left)}")
            u = unify(a.required(), b)
            if u is None:
                self.error(e.right.span, "type_error",
                           f"the default is {b}, but {self.text(e.left)} is {a.required()}",
                           "give a default of the same type")
                return ANY
            return u if b.optional else u.required()
        a = self.expr(e.left)
        b = self.expr(e.right)
        if op in ("==", "!="):
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
        if op in ("<", "<=", ">", ">="):
            if a.optional and a.kind != "any":
                self.optional_error(e.left, a)
            elif b.optional and b.kind != "any":
                self.optional_error(e.right, b)
            elif not comparable(a, b) or a.kind in ("bool", "list", "record") or \
                    (a.kind != "any" and b.kind != "any" and a.kind in ("date", "datetime")
                     and a.kind != b.kind):
                self.error(e.span, "type_error",
                           f"cannot compare {self.text(e.left)} ({a}) with {self.text(e.right)} ({b})",
                           _compare_hint(e, a, b))
            return BOOL
        if op in ("in", "not in"):
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
        # arithmetic
        for side, t in ((e.left, a), (e.right, b)):
            if t.optional and t.kind != "any":
                self.optional_error(side, t)
                return ANY
        if a.kind == "any" or b.kind == "any":
            return ANY
        k = (a.kind, b.kind)
        if op in ("+", "-", "*", "of") and a.is_numeric and b.is_numeric:
            return numeric_result(a, b)
        if op == "/" and a.is_numeric and b.is_numeric:
            return DECIMAL
        if op == "%" and a.is_numeric and b.is_numeric:
            return numeric_result(a, b)  # a remainder is exact: int % int stays an int
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
        if op == "%":
            message = (f"cannot take the remainder of {self.text(e.left)} ({a}) divided by "
                       f"{self.text(e.right)} ({b})")
        else:
            word = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "of": "take"}[op]
            message = f"cannot {word} {self.text(e.left)} ({a}) and {self.text(e.right)} ({b})"
        self.error(e.span, "type_error", message, _arith_hint(a, b))
        return ANY

    # -- bounded cost ---------------------------------------------------------------------------

    def check_sizes(self) -> None:
        """Bound every number and text the policy computes, and the work of one evaluation.

        Inputs are bounded by the schema (18 digits before and after the point, 10,000
        characters, 10,000 items); this pass carries those bounds through every
        expression (see :class:`Size`) and refuses a policy that could compute a number
        of 10**MAX_NUMBER_DIGITS or more, an exact number of more significant digits than
        the evaluation context holds, a text past MAX_TEXT, or more than MAX_STEPS
        aggregate steps or MAX_BUILT_TEXT characters of text in one evaluation. So no
        policy can make one evaluation slow: repeated squaring grows a number's digits
        exponentially, and an aggregate inside an aggregate multiplies their lists.
        """
        _SizePass(self).run()

    # -- conflicts ----------------------------------------------------------------------------

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

    def constant_truth(self, cond: n.Expr) -> bool | None:
        """True or False when a condition's value is known without input, else None."""
        value = _fold(cond)
        if isinstance(value, bool):
            return value
        if _contradiction(cond) is not None:
            return False
        return None

    def why_false(self, cond: n.Expr) -> str:
        clash = _contradiction(cond)
        if clash is not None:
            a, b = clash
            return f"`{self.text(a)}` and `{self.text(b)}` cannot both hold"
        return f"`{self.text(cond)}` is always false"


# -- helpers -------------------------------------------------------------------------------


_NOT_CONSTANT: Any = object()

_NO_NULL = ("a missing value has no literal: test it with `x is missing`, or give a default "
            "with `x otherwise 0`")
#: Names other languages have that this one spells differently (dsl.front.mistakes has the syntax).
_FOREIGN_NAMES = {
    "True": "write `true`", "TRUE": "write `true`",
    "False": "write `false`", "FALSE": "write `false`",
    "None": _NO_NULL, "null": _NO_NULL, "NULL": _NO_NULL, "nil": _NO_NULL, "undefined": _NO_NULL,
}


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


#: The longest text a policy may compute.
MAX_TEXT = 100_000
#: The most steps in aggregates one evaluation of a policy may take. A step is one operation
#: of an aggregate's body or condition for one item (nested aggregates multiply), one item an
#: ``in`` compares or a list-taking call reads, or one item of a list literal; a division
#: counts as _DIVISION_STEPS. That is fifty passes of ``i.amount`` over the longest list an
#: input may hold.
MAX_STEPS = 1_000_000
#: What one division or remainder counts for: a quotient of 100 significant digits takes
#: about as long as ten plain steps (measured: 0.5 us against 0.03 to 0.05 us).
_DIVISION_STEPS = 10
#: The most characters of text one evaluation of a policy may build with ``+``.
MAX_BUILT_TEXT = 10_000_000
#: Digits of values the built-in functions compute from dates and durations: minutes() of
#: the longest duration (999,999,999 days) has 13, the others fewer.
_SMALL = 13


@dataclass(frozen=True, slots=True)
class Size:
    """What the size pass knows about every value one expression can take.

    A number is below 10**``digits`` in magnitude and a multiple of 10**-``places``; one
    that is not zero is at least 10**-``tiny``. An ``exact`` number was computed without
    division, so it has at most ``digits + places`` significant digits; a quotient is
    rounded to the evaluation context's precision, and its ``places`` say how far
    below the point those digits may reach. A text has at most ``digits`` characters. A
    list has at most ``items`` items, each bounded by the rest of the fields.
    """

    digits: int = 1
    places: int = 0
    tiny: int = 0
    exact: bool = True
    items: int = 0

    def join(self, other: Size) -> Size:
        """A bound on values that are either of this bound's or of ``other``'s."""
        return Size(max(self.digits, other.digits), max(self.places, other.places),
                    max(self.tiny, other.tiny), self.exact and other.exact,
                    max(self.items, other.items))

    def element(self) -> Size:
        """The bound of one item of a list bounded by this."""
        return Size(self.digits, self.places, self.tiny, self.exact)


_ONE = Size()
_TEXT_INPUT = Size(MAX_STRING)


def _count_digits(n: int) -> int:
    """Digits of the largest count of ``n`` things (10,000 items: 5)."""
    return len(str(max(n, 1)))


def _literal_size(v: Any) -> Size:
    if isinstance(v, bool):
        return _ONE
    if isinstance(v, int):
        return Size(len(str(abs(v))))
    if isinstance(v, Decimal):
        if not v:
            return Size(1, max(-v.as_tuple().exponent, 0))  # type: ignore[operator]
        # 0.000000000000000001 is below 1 (no digit before the point) and 18 places after.
        return Size(max(v.adjusted() + 1, 1), max(-v.as_tuple().exponent, 0),  # type: ignore[operator]
                    max(-v.adjusted(), 0))
    if isinstance(v, str):
        return Size(len(v))
    return _ONE


def _input_size(t: Type) -> Size:
    """The bound of an input value of type ``t`` (dsl.schema.schema's input bounds)."""
    if t.kind == "enum" and t.values:
        return Size(max(len(v) for v in t.values))
    if t.kind in ("airport", "currency_code"):
        return Size(3)
    if t.is_stringy:
        return _TEXT_INPUT
    if t.kind == "list":
        elem = _input_size(t.elem) if t.elem is not None else _ONE
        return Size(elem.digits, elem.places, elem.tiny, elem.exact, MAX_LIST)
    if t.kind == "decimal":
        return Size(MAX_INPUT_DIGITS, MAX_INPUT_DIGITS, MAX_INPUT_DIGITS)
    if t.kind == "int":
        return Size(MAX_INPUT_DIGITS)
    return _ONE


class _SizePass(ExprVisitor[Size]):
    """The walk behind :meth:`Checker.check_sizes`: one :class:`Size` per expression.

    ``times`` is how often an expression is evaluated in one evaluation of the policy
    (the product of the lengths of the aggregates around it); the steps and the text
    built are counted over the whole policy. A problem is reported where it starts:
    an expression whose parts already earned a diagnostic earns no second one.
    """

    def __init__(self, checker: Checker) -> None:
        self.checker = checker
        self.bounds: dict[str, Size] = {}
        self.steps = 0
        self.built = 0
        #: The largest digits, exact significant digits and text seen (for the CostBound).
        self.digits = 1
        self.significant = 1
        self.longest = 0
        self.awards: dict[str, int] = {}
        #: Divisors' ``tiny``, by id, for the hint of a division that grows too large.
        self.divisor_tiny: dict[int, int] = {}

    def errors(self) -> int:
        return len(self.checker.result.diagnostics)

    def report(self, e: n.Node, code: str, message: str, hint: str) -> None:
        self.checker.error(e.span, code, message, hint)

    def text(self, e: n.Node) -> str:
        return self.checker.text(e)

    def run(self) -> None:
        policy = self.checker.policy
        for r in policy.rules:
            for eff in r.effects:
                if isinstance(eff, n.Award):
                    self.awards[eff.currency] = self.awards.get(eff.currency, 0) + 1
        before = self.errors()
        for m in policy.members:
            if isinstance(m, n.Let | n.Table | n.Decide):
                reported = self.errors()
                found = self.binding(m)
                # A binding whose value earned a diagnostic is reported there, not at each use.
                self.bounds[m.name] = found if self.errors() == reported else _ONE
            elif isinstance(m, n.Cap):
                self.amount(m.amount, m.currency, 1)
            elif isinstance(m, n.Rule | n.Group):
                for r in (m.rules if isinstance(m, n.Group) else [m]):
                    if r.cond is not None:
                        self.size(r.cond, {}, 1)
                    for eff in r.effects:
                        if isinstance(eff, n.Award):
                            self.amount(eff.amount, eff.currency, self.awards[eff.currency],
                                        summed_exact=self.summed_exact(eff.currency))
                            if eff.limit is not None:
                                self.amount(eff.limit, eff.currency, 1)
                        elif isinstance(eff, n.Grant):
                            for _, value, _ in eff.params:
                                self.size(value, {}, 1)
        if self.errors() > before:
            return
        self.checker.result.bound = CostBound(self.digits, self.significant, self.longest,
                                              self.steps, self.built)
        name_span = policy.header_spans.get("name", policy.span)
        if self.steps > MAX_STEPS:
            self.checker.error(name_span, "too_costly",
                               f"policy {policy.name} could take {self.steps} steps in aggregates "
                               f"in one evaluation; the limit is {MAX_STEPS}",
                               "aggregate each list once, in a `let`, and reuse the result; or "
                               "split the policy")
        elif self.built > MAX_BUILT_TEXT:
            self.checker.error(name_span, "too_costly",
                               f"policy {policy.name} could build {self.built} characters of text "
                               f"in one evaluation; the limit is {MAX_BUILT_TEXT}",
                               "build each text once, in a `let`, and reuse it")

    def binding(self, m: n.Let | n.Table | n.Decide) -> Size:
        """The bound of a ``let``, ``table`` or ``decide`` value."""
        if isinstance(m, n.Let):
            return self.size(m.value, {}, 1)
        if isinstance(m, n.Table):
            self.size(m.key, {}, 1)
            return _join_all([self.size(r.value, {}, 1) for r in m.rows])
        values = []
        for r in m.rows:
            if r.cond is not None:
                self.size(r.cond, {}, 1)
            values.append(self.size(r.value, {}, 1))
        found = _join_all(values)
        if m.hit == "collect":
            return Size(found.digits, found.places, found.tiny, found.exact, len(m.rows))
        return found

    def summed_exact(self, currency: str) -> bool:
        """Whether the policy adds up this currency's awards unrounded (its total is rounded once)."""
        result = self.checker.result
        return currency in result.rounding and currency not in result.per_award

    def amount(self, e: n.Expr, currency: str, awards: int, summed_exact: bool = False) -> None:
        """An award, ``up to`` limit or cap: rounded to the currency, then added up.

        With ``summed_exact`` the awards are added up unrounded (the total is rounded
        once), so their sum must also stay exact within the context's precision.
        """
        before = self.errors()
        s = self.size(e, {}, 1)
        currencies = self.checker.schema.currencies
        decimals = currencies[currency].decimals if currency in currencies else 0
        # Rounding to the currency's places is a quantize within the context's precision
        # (and may carry into one more digit), and the policy's total adds up to ``awards``
        # such amounts.
        rounding = 0 if self.checker.result.type_of(e).kind == "int" else 1
        digits = s.digits + rounding + (_count_digits(awards) if awards > 1 else 0)
        self.digits = max(self.digits, digits)
        total = digits + decimals
        if total > MAX_NUMBER_DIGITS and self.errors() == before:
            self.report(e, "number_too_large",
                        f"{self.text(e)} could grow past {MAX_NUMBER_DIGITS} digits as an "
                        f"amount of {currency} ({s.digits} digits, {decimals} decimal places, "
                        f"{awards} awards added up): evaluating it would have no bounded cost",
                        "this arithmetic multiplies large values together; simplify it")
        elif summed_exact and s.exact and digits + s.places > MAX_NUMBER_DIGITS \
                and self.errors() == before:
            self.report(e, "number_too_large",
                        f"{self.text(e)} could need more than {MAX_NUMBER_DIGITS} significant digits "
                        f"when {awards} unrounded awards of {currency} are added up "
                        f"({s.digits} before the point, {s.places} after, and {digits - s.digits} "
                        "for carries), so their total could not be computed exactly",
                        "round a part to fewer decimal places first, for example round(x, 2)")

    def size(self, e: n.Expr, items: dict[str, Size], times: int) -> Size:
        """The bound of ``e``'s values, evaluated ``times`` times per evaluation."""
        before = self.errors()
        found = self.measure(e, items, times)
        if self.errors() > before:
            return found
        t = self.checker.result.type_of(e)
        if t.is_stringy:
            self.longest = max(self.longest, found.digits)
            if found.digits > MAX_TEXT:
                self.report(e, "text_too_long",
                            f"{self.text(e)} could grow past {MAX_TEXT} characters: evaluating it "
                            "would have no bounded cost",
                            "this text is built from long texts; build it from shorter parts")
        elif t.is_numeric and not found.items:
            self.digits = max(self.digits, found.digits)
            if found.exact:
                self.significant = max(self.significant, found.digits + found.places)
            if found.digits > MAX_NUMBER_DIGITS:
                self.report(e, "number_too_large",
                            f"{self.text(e)} could grow past {MAX_NUMBER_DIGITS} digits: "
                            "evaluating it would have no bounded cost", self.hint(e))
            elif found.exact and found.digits + found.places > MAX_NUMBER_DIGITS:
                self.report(e, "number_too_large",
                            f"{self.text(e)} could need more than {MAX_NUMBER_DIGITS} significant "
                            f"digits ({found.digits} before the point, {found.places} after), so "
                            "it could not be computed exactly",
                            "round a part to fewer decimal places first, for example "
                            "round(x, 2)")
        return found

    def hint(self, e: n.Expr) -> str:
        if isinstance(e, n.Binary) and e.op in ("/", "%"):
            return (f"dividing by {self.text(e.right)} multiplies by up to 10^"
                    f"{self.divisor_tiny.get(id(e.right), 0)}; divide by a value with fewer decimal places, "
                    "for example round(x, 2)")
        return "this arithmetic multiplies large values together; simplify it"

    def measure(self, e: n.Expr, items: dict[str, Size], times: int) -> Size:
        """The bound of ``e``'s values: its ``visit_<Node>`` (an unknown kind raises)."""
        return self.visit(e, items, times)

    def visit_Literal(self, e: n.Literal, items: dict[str, Size], times: int) -> Size:
        return _literal_size(e.value)

    def visit_Name(self, e: n.Name, items: dict[str, Size], times: int) -> Size:
        if e.name in items:
            return items[e.name]
        return self.bounds.get(e.name, _ONE)

    def visit_Attribute(self, e: n.Attribute, items: dict[str, Size], times: int) -> Size:
        self.size(e.value, items, times)
        return _input_size(self.checker.result.type_of(e))

    def visit_ListExpr(self, e: n.ListExpr, items: dict[str, Size], times: int) -> Size:
        found = _join_all([self.size(x, items, times) for x in e.items])
        self.steps += times * len(e.items)
        return Size(found.digits, found.places, found.tiny, found.exact, len(e.items))

    def visit_Unary(self, e: n.Unary, items: dict[str, Size], times: int) -> Size:
        inner = self.size(e.operand, items, times)
        return _ONE if e.op == "not" else inner

    def visit_Presence(self, e: n.Presence, items: dict[str, Size], times: int) -> Size:
        self.size(e.operand, items, times)
        return _ONE

    def visit_Between(self, e: n.Between, items: dict[str, Size], times: int) -> Size:
        self.size(e.operand, items, times)
        return _ONE

    def visit_IfExpr(self, e: n.IfExpr, items: dict[str, Size], times: int) -> Size:
        self.size(e.cond, items, times)
        return self.size(e.then, items, times).join(self.size(e.orelse, items, times))

    def iterate(self, e: n.Expr, length: int, times: int, what: str, weight: int = 1) -> int:
        """Count ``length`` items of ``weight`` steps, ``times`` over; report a single
        expression past the limit."""
        steps = times * length * weight
        self.steps += steps
        if steps > MAX_STEPS and times <= MAX_STEPS:
            self.report(e, "too_costly",
                        f"{self.text(e)} could take {steps} steps in one evaluation ({what}); "
                        f"the limit is {MAX_STEPS}",
                        "aggregate over one list at a time: compute what does not depend on "
                        "the outer item in a `let` first")
        return steps

    def visit_Aggregate(self, e: n.Aggregate, items: dict[str, Size], times: int) -> Size:
        source = self.size(e.source, items, times)
        length = source.items
        weight = _item_weight(e)
        what = f"{length} items" + (f", {times} times" if times > 1 else "") + (
            f", {weight} operations each" if weight > 1 else "")
        self.iterate(e, length, times, what, weight)
        inner = dict(items)
        inner[e.var] = source.element()
        every = times * max(length, 1)
        if e.where is not None:
            self.size(e.where, inner, every)
        body = self.size(e.body, inner, every)
        if e.func == "sum":
            return _grown(body, _count_digits(length))
        if e.func == "count":
            return Size(_count_digits(length))
        if e.func in ("any", "all"):
            return _ONE
        return body

    def visit_Call(self, e: n.Call, items: dict[str, Size], times: int) -> Size:
        """A builtin's bound and steps, from its entry's ``cost`` and ``size``."""
        args = [self.size(a, items, times) for a in e.args]
        b = BUILTINS[e.func]
        if b.cost == "per_item" and len(args) == 1 and args[0].items:
            self.iterate(e, args[0].items, times, f"a list of {args[0].items} items")
            if b.size == "sum":
                return _grown(args[0].element(), _count_digits(args[0].items))
            if b.size == "count":
                return Size(_count_digits(args[0].items))
            if b.size == "extreme":
                return args[0].element()
            raise TypeError(f"the size pass cannot bound {b.name}() of a list (size {b.size!r})")
        if b.size in ("args", "extreme"):
            return _join_all(args)
        if b.size == "rounded":
            x = args[0]
            places = 0
            if len(e.args) == 2:
                p = e.args[1]
                # round() faults on places outside 0..12, so 12 bounds every value it gives.
                literal = isinstance(p, n.Literal) and type(p.value) is int and 0 <= p.value <= 12
                places = p.value if literal else 12  # type: ignore[union-attr, assignment]
            # Rounding can carry into one more digit (9.5 -> 10) and leaves an exact value.
            return Size(x.digits + 1, places, min(x.tiny, places))
        if b.size in ("small", "sum", "count"):  # sum and count of an empty list: 0
            return Size(_SMALL)
        raise TypeError(f"the size pass does not know the size rule {b.size!r} of {b.name}()")

    def visit_Binary(self, e: n.Binary, items: dict[str, Size], times: int) -> Size:
        op = e.op
        before = self.errors()
        a = self.size(e.left, items, times)
        b = self.size(e.right, items, times)
        t = self.checker.result.type_of(e)
        if op in ("in", "not in"):
            if b.items:
                self.iterate(e, b.items, times, f"a list of {b.items} items")
            return _ONE
        if op == "otherwise":
            return a.join(b)
        if op not in ("+", "-", "*", "of", "/", "%"):
            return _ONE
        if t.is_stringy:
            length = a.digits + b.digits
            built = times * length
            self.built += built
            if built > MAX_BUILT_TEXT and length <= MAX_TEXT and self.errors() == before:
                self.report(e, "too_costly",
                            f"{self.text(e)} could build {built} characters of text in one "
                            f"evaluation ({times} texts of up to {length}); the limit is "
                            f"{MAX_BUILT_TEXT}",
                            "build the text once, in a `let` outside the aggregate")
            return Size(length)
        if not t.is_numeric:
            return _ONE  # dates and durations: Python's own types bound them
        if op in ("+", "-"):
            # A sum keeps the finer scale, and can cancel down to it.
            places = max(a.places, b.places)
            return Size(max(a.digits, b.digits) + 1, places, places, a.exact and b.exact)
        if op in ("*", "of"):
            return Size(a.digits + b.digits, a.places + b.places, a.tiny + b.tiny,
                        a.exact and b.exact)
        if op == "%":
            # a % b: Decimal's remainder is exact, but it needs the whole quotient (below
            # 10**(a.digits + b.tiny), as for a / b) within the context's precision. The
            # remainder itself is smaller than |b| in magnitude, a multiple of the finer
            # of the two scales, and exact when both operands are.
            self.divisor_tiny[id(e.right)] = b.tiny
            if a.digits + b.tiny > MAX_NUMBER_DIGITS and self.errors() == before:
                self.report(e, "number_too_large",
                            f"{self.text(e)} could need a quotient of more than "
                            f"{MAX_NUMBER_DIGITS} digits: evaluating it would have no bounded cost",
                            self.hint(e))
            places = max(a.places, b.places)
            return Size(b.digits, places, places, a.exact and b.exact)
        # a / b: |b| >= 10**-b.tiny, so the quotient is below 10**(a.digits + b.tiny); it is at
        # least 10**-(a.tiny + b.digits), and rounded to the context's precision below that.
        self.divisor_tiny[id(e.right)] = b.tiny
        tiny = a.tiny + b.digits
        return Size(a.digits + b.tiny, tiny + MAX_NUMBER_DIGITS, tiny, False)


def _item_weight(e: n.Aggregate) -> int:
    """The operations an aggregate evaluates per item: the nodes of its body and condition,
    not counting the bodies of aggregates inside them (their own steps count those)."""
    count = 0
    stack: list[n.Expr] = [e.body] if e.where is None else [e.body, e.where]
    while stack:
        x = stack.pop()
        count += _DIVISION_STEPS if isinstance(x, n.Binary) and x.op in ("/", "%") else 1
        if isinstance(x, n.Aggregate):
            stack.append(x.source)
            continue
        for name in x.__dataclass_fields__:
            child = getattr(x, name)
            if isinstance(child, n.Expr):
                stack.append(child)
            elif isinstance(child, list):
                stack.extend(c for c in child if isinstance(c, n.Expr))
    return count


def _grown(s: Size, digits: int) -> Size:
    """The bound of a sum of up to 10**digits values bounded by ``s``."""
    return Size(s.digits + digits, s.places, s.places, s.exact)


def _join_all(sizes: list[Size]) -> Size:
    found = _ONE
    for s in sizes:
        found = found.join(s)
    return found


def _present_paths(cond: n.Expr, holds: bool) -> frozenset[str]:
    """Paths proved present when ``cond`` is true (``holds``) or false (not ``holds``).

    ``a is present and b is present`` proves both when true; ``a is missing or
    b is missing`` proves both when false; ``not`` swaps the two.
    """
    if isinstance(cond, n.Unary) and cond.op == "not":
        return _present_paths(cond.operand, not holds)
    if isinstance(cond, n.Presence):
        path = _path(cond.operand)
        return frozenset([path]) if path and cond.present == holds else frozenset()
    if isinstance(cond, n.Binary) and cond.op == ("and" if holds else "or"):
        return _present_paths(cond.left, holds) | _present_paths(cond.right, holds)
    return frozenset()


def _path(e: n.Expr) -> str | None:
    if isinstance(e, n.Name):
        return e.name
    if isinstance(e, n.Attribute):
        base = _path(e.value)
        return f"{base}.{e.name}" if base else None
    return None


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _bound(c: n.Expr) -> tuple[str, str, Any] | None:
    if not isinstance(c, n.Binary) or c.op not in _FLIP:
        return None
    lp, rp = _path(c.left), _path(c.right)
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


def _canonical(e: n.Expr) -> str:
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
    return "compare values of the same type"


def _arith_hint(a: Type, b: Type) -> str:
    if a.is_stringy or b.is_stringy:
        return "write numbers without quotes"
    if "date" in (a.kind, b.kind) and "int" in (a.kind, b.kind):
        return "add a duration such as 30 days, not a bare number"
    return "see docs/language.md, operators"


_ = (AIRPORT, NULL)  # imported for the types table's completeness


def check_policy(schema: Schema, policy: n.Policy) -> CheckResult:
    """Check one policy against ``schema``: every diagnostic, and the type of every expression."""
    return Checker(schema, policy).run()
