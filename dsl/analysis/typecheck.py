"""The type checker: a policy's header, limits and members against the schema.

Names, event kinds, bindings, tables, decision tables, rules, effects, caps and roundings,
each as positioned diagnostics; expressions are typed by :class:`ExprTypes`, which this
builds on. Its stages are run in order by :mod:`dsl.analysis.checker`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from dsl.analysis.conflicts import canonical, constant_truth, why_false
from dsl.analysis.expressions import ROOTS, ExprTypes, literal_type
from dsl.errors import Span, did_you_mean
from dsl.front import nodes as n
from dsl.library.builtins import AGGREGATES, BUILTINS
from dsl.schema.schema import Schema
from dsl.schema.types import ANY, Type, comparable, list_of, unify

MAX_RULES = 2000
#: The most rows one table or decision table may hold.
MAX_ROWS = 5000
#: The most members (bindings, tables, rules, groups, caps, roundings) in one policy.
MAX_MEMBERS = 6000

_RESERVED_NAME = re.compile(r"^_|__")


class Checker(ExprTypes):
    """Names and types of one policy against a schema; its stages are run by
    :func:`dsl.analysis.checker.check_policy`."""

    def __init__(self, schema: Schema, policy: n.Policy) -> None:
        super().__init__(schema, policy)
        self.awarded: dict[str, list[n.Award]] = {}

    # -- the policy --------------------------------------------------------------------------

    def check_limits(self) -> None:
        """Refuse, and halt the later stages, a policy past MAX_MEMBERS or MAX_RULES."""
        p = self.policy
        if len(p.members) > MAX_MEMBERS:
            self.error(p.span, "too_large",
                       f"the policy has {len(p.members)} members; the limit is {MAX_MEMBERS}",
                       "split it into several policies")
            self.halted = True
            return
        rules = p.rules
        if len(rules) > MAX_RULES:
            self.error(rules[MAX_RULES].span, "too_many_rules",
                       f"the policy has {len(rules)} rules; the limit is {MAX_RULES}",
                       "split it into several policies")
            self.halted = True

    def check_members(self) -> None:
        """Roundings, then every member in source order (a name is usable after its definition),
        then whether every award that may be fractional is rounded."""
        p = self.policy
        for m in p.roundings:
            self.check_rounding(m)
        rule_names: dict[str, Span] = {}
        counters: dict[str, n.Counter] = {}
        for c in p.counters:
            self.check_counter(c, counters)
        for name, imported in p.imported.items():
            if not imported.file:  # a failed `use` line: reported there, not at every read
                self.scope[name] = ANY
                self.used.add(name)
        for m in p.members:
            imported = self.imported(m)
            span = m.span if imported is None else imported.at
            self.muted = imported is not None
            if isinstance(m, n.Let):
                self.define(m.name, self.expr(m.value), span)
            elif isinstance(m, n.Table):
                self.define(m.name, self.check_table(m), span)
            elif isinstance(m, n.Decide):
                self.define(m.name, self.check_decide(m), span)
            elif isinstance(m, n.Use):
                self.error(m.module_span, "unknown_definitions",
                           f"no definitions are called `{m.module}` here",
                           "check the policy with its programme: loyalty check DIRECTORY")
            elif isinstance(m, n.Rule):
                self.check_rule(m, rule_names)
            elif isinstance(m, n.Group):
                self.check_group(m, rule_names)
            elif isinstance(m, n.Cap):
                self.check_cap(m)
            self.muted = False
            if imported is not None and not imported.named:
                self.used.add(m.name)  # read by an imported definition, not by the policy
        self.check_awards_rounded()

    def check_unused(self) -> None:
        """Warn of every binding nothing reads, and of every counter the policy neither reads
        nor counts toward."""
        for name, span in self.defined_at.items():
            if name not in self.used:
                self.warn(span, "unused_binding", f"`{name}` is defined but never used",
                          "use it or delete it")
        if not self.policy.counters:
            return
        touched: set[str] = set()
        for node in n.walk(self.policy):
            if isinstance(node, n.Count):
                touched.add(node.counter)
            elif isinstance(node, n.Attribute) and isinstance(node.value, n.Name) \
                    and node.value.name == "history":
                touched.add(node.name)
        for c in self.policy.counters:
            if c.name not in touched:
                self.warn(c.name_span, "unused_counter",
                          f"counter `{c.name}` is declared but never read or counted",
                          f"read it as history.{c.name}, count toward it, or delete it")

    def check_name(self, name: str, span: Span, what: str) -> bool:
        if _RESERVED_NAME.search(name):
            self.error(span, "reserved_name",
                       f"`{name}` is not allowed as a {what} name: names may not start with _ "
                       "or contain __", "rename it with letters, digits and single underscores")
            return False
        return True

    def check_header(self) -> None:
        """The policy's name, event kinds, effective window and version."""
        p = self.policy
        self.check_name(p.name, p.header_spans.get("name", p.span), "policy")
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
                text = canonical(row.cond)
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
                    verdict = constant_truth(row.cond)
                    if verdict is True:
                        catch_all = row.span.line
                    elif verdict is False:
                        self.error(row.cond.span, "unreachable_row",
                                   f"this condition can never be true ({why_false(row.cond, self.text)}), "
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
        with self.narrowing(r.cond, holds=True):
            for effect in r.effects:
                self.check_effect(effect, r)
            self.check_texts(r)

    def check_texts(self, r: n.Rule) -> None:
        """Every placeholder of the rule's texts names what the rule awards (``{miles}``), a
        binding (``{tenure}``) or a field (``{customer.tier}``), and shows a value, not a record."""
        awarded = {e.currency for e in r.effects if isinstance(e, n.Award)}
        later = {m.name for m in self.policy.members if isinstance(m, n.Let | n.Table | n.Decide)}
        for text in r.texts:
            for ph in text.placeholders:
                if isinstance(ph, n.Name):
                    if ph.name in awarded:
                        continue  # the rule's own award, in that currency
                    if ph.name not in self.scope and ph.name not in later:
                        known = sorted(awarded) + sorted(k for k in self.scope if k not in ROOTS)
                        hint = did_you_mean(ph.name, known)
                        self.error(ph.span, "unknown_placeholder",
                                   f"rule {r.name} says `{{{ph.name}}}`, which it neither awards "
                                   "nor defines", hint or (
                                       "a placeholder names a currency the rule awards, a let, a "
                                       f"table or a field such as {{customer.tier}}; here: "
                                       f"{', '.join(known) or 'none'}"))
                        continue
                t = self.expr(ph)
                if t.kind == "record":
                    self.error(ph.span, "type_error",
                               f"`{{{self.text(ph)}}}` is a record, which a text cannot show",
                               "name one of its fields")

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
        # Which of its rules can never fire is the conflicts stage's (dsl.analysis.conflicts).
        for r in g.rules:
            self.check_rule(r, names, g)

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
        elif isinstance(e, n.Count):
            self.check_count(e)
        elif isinstance(e, n.Tag) and (not e.tag or len(e.tag) > 100):
            self.error(e.span, "bad_tag", "a tag is from 1 to 100 characters",
                       "shorten the tag")

    def check_counter(self, c: n.Counter, seen: dict[str, n.Counter]) -> None:
        """A counter's name: allowed, and declared once in the policy."""
        if not self.check_name(c.name, c.name_span, "counter"):
            return
        first = seen.get(c.name)
        if first is not None:
            self.error(c.name_span, "duplicate_name", f"counter `{c.name}` is already declared "
                       f"on line {first.span.line}", "rename one of them")
            return
        seen[c.name] = c

    def check_count(self, e: n.Count) -> None:
        """``count [amount] toward counter [up to limit]``: a declared counter, and numbers."""
        counter = next((c for c in self.policy.counters if c.name == e.counter), None)
        if counter is None:
            names = [c.name for c in self.policy.counters]
            hint = did_you_mean(e.counter, names)
            self.error(e.counter_span, "unknown_counter",
                       f"this policy declares no counter `{e.counter}`",
                       hint or f"declare it: counter {e.counter}: count per day")
        if e.amount is not None:
            t = self.expr(e.amount)
            whole = counter is not None and counter.kind == "count"
            if t.kind != "any" and not t.is_numeric:
                self.error(e.amount.span, "type_error",
                           f"`count` needs a number, but {self.text(e.amount)} is {t}",
                           "count a number toward the counter: count event.nights toward nights")
            elif whole and t.kind == "decimal":
                self.error(e.amount.span, "type_error",
                           f"counter {e.counter} counts whole numbers, but {self.text(e.amount)} "
                           "is decimal", f"declare it `counter {e.counter}: sum ...`, or count a "
                           "whole number")
            elif t.optional:
                self.optional_error(e.amount, t)
        if e.limit is not None:
            lt = self.expr(e.limit)
            if lt.kind != "any" and not lt.is_numeric:
                self.error(e.limit.span, "type_error",
                           f"`up to` needs a number, but {self.text(e.limit)} is {lt}",
                           "write for example: up to 1500.00")
            elif lt.optional:
                self.optional_error(e.limit, lt)

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
