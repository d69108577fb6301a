"""The reference interpreter: the executable specification of what a policy means.

It walks the AST directly, with no cleverness, calling the same runtime helpers
as compiled code. The differential tests hold the code generator to it: on
every input the compiled and interpreted evaluations give the same decision,
reasons included.

One policy's evaluation, in order:

1. ``let``, ``table`` and ``decide`` members are computed in source order;
2. rules run in source order. A rule whose condition holds *fires*: each award
   is computed -- left exact when the policy rounds the currency's total
   (``round C MODE``), rounded on its own under ``round C MODE each award``, made
   exact in the currency when it has no rounding -- limited by ``up to`` (rounded
   down), and raised to zero if negative; then its benefits, tier and tags apply.
   A ``takes first`` group applies its first rule that fires and evaluates no
   more; a ``takes best C`` group evaluates every rule's condition and awards
   and applies only the one with the most of currency C (the first on ties);
3. each total-rounded currency's total is rounded once, with its mode;
4. each ``cap`` (rounded down to the currency) limits the policy's total;
5. the totals are added to the decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Overflow
from typing import Any

from dsl.decision import Benefit, Decision, Reason
from dsl.front import nodes as n
from dsl.front.visitor import ExprVisitor
from dsl.library import runtime as rt
from dsl.library.builtins import BUILTINS
from dsl.schema.schema import Schema


class _Fault(Exception):
    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message


@dataclass
class _RuleOutcome:
    rule: n.Rule
    awards: dict[str, Any]
    reasons: list[Reason]


def fault_message(exc: BaseException) -> str:
    """The policy author's words for a failure during evaluation."""
    if isinstance(exc, rt.PolicyFault):
        return str(exc)
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, Overflow):  # the evaluation context's Emax: see dsl.library.runtime.new_context
        return rt.OUT_OF_BOUNDS
    if isinstance(exc, OverflowError):
        # Python's datetime and timedelta: the checker warns where date and duration
        # arithmetic can leave their range (dsl.analysis.cost); here it did.
        return rt.calendar_fault(exc)
    if isinstance(exc, ArithmeticError):
        return rt.OUT_OF_BOUNDS
    # Never a Python class name: the author can do nothing with one.
    return "evaluation failed: an internal error (a bug: please report it with the policy)"


class Interpreter(ExprVisitor[Any]):
    """Evaluates one checked policy by walking its AST."""

    def __init__(self, policy: n.Policy, schema: Schema, rounding: dict[str, str],
                 ranked: Mapping[int, tuple[str, ...]] | None = None) -> None:
        self.policy = policy
        self.schema = schema
        self.rounding = rounding
        #: The checker's comparisons by rank (:attr:`dsl.analysis.result.CheckResult.ranked`).
        self.ranked = {k: {v: i for i, v in enumerate(vs)} for k, vs in (ranked or {}).items()}
        #: Currencies rounded award by award (``each award``); the rest of ``rounding``
        #: is rounded once, on the policy's total.
        self.per_award = {r.currency for r in policy.roundings if r.per_award}
        self.tier_rank = {t: i for i, t in enumerate(schema.tiers)}
        self.line = policy.span.line

    def trace(self, node: n.Node, outcome: Any) -> None:
        """Called at every branch the evaluation takes; does nothing here.

        The coverage recorder (:mod:`dsl.tools.coverage`) overrides it. ``outcome`` is, by
        node: a table's key value, then ``"hit"`` on the row that matched; a decide row's
        condition (``True``/``False``; an ``else`` row: whether it was taken); a rule's
        ``"qualified"``/``"not_qualified"``, then ``"applied"``; the rule a group chose
        (``None`` for none); whether an award's ``up to`` or a ``cap`` limited the
        amount; an ``if``'s condition; whether ``otherwise``'s left side was
        present; whether ``and``/``or``'s left side was true. Tracing never changes a result.
        """

    # -- entry point -------------------------------------------------------------------------

    def run(self, customer: dict[str, Any], event: dict[str, Any], d: Decision,
            reasons: list[Reason] | None, history: dict[str, Any] | None = None) -> None:
        """Evaluate against one (customer, event), adding to decision ``d``. ``history`` holds
        the value of each of the policy's counters (:func:`dsl.periods.histories`)."""
        p = self.policy
        env: dict[str, Any] = {"customer": customer, "event": event,
                               "history": history if history is not None else {}}
        totals: dict[str, Any] = dict.fromkeys(awarded_currencies(p), 0)
        self.line = p.span.line
        try:
            for m in p.members:
                self.line = m.span.line
                if isinstance(m, n.Let):
                    env[m.name] = self.eval(m.value, env)
                elif isinstance(m, n.Table):
                    env[m.name] = self.table(m, env)
                elif isinstance(m, n.Decide):
                    env[m.name] = self.decide(m, env)
                elif isinstance(m, n.Rule):
                    outcome = self.fire(m, env, reasons)
                    if outcome is not None:
                        self.apply(outcome, env, d, totals, reasons)
                elif isinstance(m, n.Group):
                    self.group(m, env, d, totals, reasons)
            for r in p.roundings:
                if r.currency not in totals or r.per_award:
                    continue
                self.line = r.span.line
                decimals = self.schema.currencies[r.currency].decimals
                exact = totals[r.currency]
                totals[r.currency] = rt.round_award(exact, decimals, r.mode)
                if reasons is not None and totals[r.currency] != exact:
                    reasons.append(Reason(p.name, "", "rounded",
                                          f"total {exact} {r.currency} -> {totals[r.currency]} "
                                          f"({r.mode})", {}, r.span.line))
            for cap in p.caps:
                if cap.currency not in totals:
                    continue
                self.line = cap.span.line
                decimals = self.schema.currencies[cap.currency].decimals
                limit = rt.round_award(self.eval(cap.amount, env), decimals, "down")
                if limit < 0:  # a cap below zero caps at zero
                    limit = rt.to_currency(0, decimals)
                amount = totals.get(cap.currency)
                self.trace(cap, amount is not None and amount > limit)
                if amount is not None and amount > limit:
                    totals[cap.currency] = limit
                    if reasons is not None:
                        reasons.append(Reason(p.name, "", "capped",
                                              f"cap {cap.currency} at {limit}: {amount} -> {limit}",
                                              {cap.currency: limit}, cap.span.line))
        except _Fault:
            raise
        except Exception as exc:  # every failure becomes a positioned fault
            raise _Fault(self.line, fault_message(exc)) from None
        awards = d.awards
        for currency, amount in totals.items():
            awards[currency] = awards.get(currency, 0) + amount

    # -- members --------------------------------------------------------------------------------

    def table(self, t: n.Table, env: dict[str, Any]) -> Any:
        key = self.eval(t.key, env)
        self.trace(t, key)
        for row in t.rows:
            if not row.keys:
                self.trace(row, "hit")
                return self.eval(row.value, env)
            for k in row.keys:
                if key is not None and key == k.value:
                    self.trace(row, "hit")
                    return self.eval(row.value, env)
        return None

    def decide(self, d: n.Decide, env: dict[str, Any]) -> Any:
        if d.hit == "first":
            for row in d.rows:
                taken = row.cond is None or self.eval(row.cond, env) is True
                self.trace(row, taken)
                if taken:
                    return self.eval(row.value, env)
            return None
        out: list[Any] = []
        for row in d.rows:
            if row.cond is None:
                self.trace(row, not out)
                if not out:
                    out.append(self.eval(row.value, env))
            elif self.eval(row.cond, env) is True:
                self.trace(row, True)
                out.append(self.eval(row.value, env))
            else:
                self.trace(row, False)
        return out

    def first_false(self, cond: n.Expr, env: dict[str, Any]) -> str | None:
        """None when ``cond`` holds; else the source text of its first false conjunct."""
        for part in n.conjuncts(cond):
            if self.eval(part, env) is not True:
                return n.source_text(self.policy.source, part.span)
        return None

    def fire(self, r: n.Rule, env: dict[str, Any], reasons: list[Reason] | None) -> _RuleOutcome | None:
        """Evaluate a rule's condition and awards; None (and a reason) when it does not fire."""
        p = self.policy
        self.line = r.span.line
        if r.cond is not None:
            if reasons is None:
                if self.eval(r.cond, env) is not True:
                    self.trace(r, "not_qualified")
                    return None
            else:
                why = self.first_false(r.cond, env)
                if why is not None:
                    self.trace(r, "not_qualified")
                    reasons.append(Reason(p.name, r.name, "not_fired", why, {}, r.span.line))
                    return None
        self.trace(r, "qualified")
        outcome = _RuleOutcome(r, {}, [])
        for e in r.effects:
            if isinstance(e, n.Award):
                amount = self.award(e, env, outcome.reasons if reasons is not None else None, r)
                outcome.awards[e.currency] = outcome.awards.get(e.currency, 0) + amount
        return outcome

    def award(self, e: n.Award, env: dict[str, Any], reasons: list[Reason] | None,
              r: n.Rule) -> Any:
        p = self.policy
        decimals = self.schema.currencies[e.currency].decimals
        raw = self.eval(e.amount, env)
        mode = self.rounding.get(e.currency)
        if mode is None:
            value = rt.to_currency(raw, decimals)
        elif e.currency in self.per_award:
            value = rt.round_award(raw, decimals, mode)
        else:  # the policy's total is rounded once: the award stays exact
            value = rt.exact_award(raw, decimals)
        if reasons is not None and value != raw:
            reasons.append(Reason(p.name, r.name, "rounded",
                                  f"{raw} {e.currency} -> {value} ({mode})", {}, e.span.line))
        if e.limit is not None:
            limit = rt.round_award(self.eval(e.limit, env), decimals, "down")
            self.trace(e, value > limit)
            if value > limit:
                if reasons is not None:
                    reasons.append(Reason(p.name, r.name, "capped",
                                          f"up to {limit}: {value} -> {limit} {e.currency}",
                                          {}, e.span.line))
                value = limit
        if value <= 0:  # never negative; a zero is the currency's own zero, never -0.00
            if value < 0 and reasons is not None:
                reasons.append(Reason(p.name, r.name, "clamped",
                                      f"{value} {e.currency} -> 0 (awards are never negative)",
                                      {}, e.span.line))
            value = rt.to_currency(0, decimals)
        return value

    def apply(self, outcome: _RuleOutcome, env: dict[str, Any], d: Decision,
              totals: dict[str, Any], reasons: list[Reason] | None) -> None:
        """Apply a fired rule's effects to the policy totals and the decision."""
        p = self.policy
        r = outcome.rule
        self.line = r.span.line
        for currency, amount in outcome.awards.items():
            totals[currency] = totals.get(currency, 0) + amount
        for e in r.effects:
            if isinstance(e, n.Grant):
                params = {name: self.eval(value, env) for name, value, _ in e.params}
                d.benefits.append(Benefit(e.benefit, params, p.name, r.name))
            elif isinstance(e, n.Qualify):
                if d.tier is None or self.tier_rank[e.tier] > self.tier_rank[d.tier]:
                    d.tier = e.tier
            elif isinstance(e, n.Tag):
                d.tags.append(e.tag)
            elif isinstance(e, n.Count):
                self.line = e.span.line
                amount = 1 if e.amount is None else self.eval(e.amount, env)
                limit = None if e.limit is None else self.eval(e.limit, env)
                self.trace(e, limit is not None and
                           amount > limit - env["history"][e.counter] - d.counted.get(e.counter, 0))
                rt.count_toward(d, env["history"][e.counter], e.counter, amount, limit)
                self.line = r.span.line
        d.fired.append((p.name, r.name))
        self.trace(r, "applied")
        if reasons is not None:
            reasons.extend(outcome.reasons)
            reasons.append(Reason(p.name, r.name, "fired", "", dict(outcome.awards), r.span.line,
                                  self.texts(r, outcome.awards, env)))

    def texts(self, r: n.Rule, awards: dict[str, Any], env: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        """A fired rule's ``says`` texts filled in; an award placeholder shows the rule's
        amount rounded as the policy rounds its currency."""
        if not r.texts:
            return ()
        values: dict[str, Any] = {}
        for t in r.texts:
            for ph, name in zip(t.placeholders, t.parts[1::2], strict=True):
                if isinstance(ph, n.Name) and ph.name in awards:
                    amount = awards[ph.name]
                    mode = self.rounding.get(ph.name)
                    if mode is not None:
                        amount = rt.round_award(amount, self.schema.currencies[ph.name].decimals, mode)
                    values[name] = amount
                else:
                    values[name] = self.eval(ph, env)
        return rt.render_texts(tuple((t.language, t.parts) for t in r.texts), values)

    def group(self, g: n.Group, env: dict[str, Any], d: Decision, totals: dict[str, Any],
              reasons: list[Reason] | None) -> None:
        p = self.policy
        if g.mode == "first":
            chosen: n.Rule | None = None
            for r in g.rules:
                if chosen is not None:
                    if reasons is not None:
                        reasons.append(Reason(p.name, r.name, "not_chosen",
                                              f"group {g.name} already chose {chosen.name}", {},
                                              r.span.line))
                    continue
                outcome = self.fire(r, env, reasons)
                if outcome is not None:
                    chosen = r
                    self.apply(outcome, env, d, totals, reasons)
            self.trace(g, chosen)
            return
        # Every rule is evaluated; the reasons are told in rule order once the choice is made.
        entries: list[tuple[_RuleOutcome | None, list[Reason] | None]] = []
        for r in g.rules:
            buffer: list[Reason] | None = [] if reasons is not None else None
            entries.append((self.fire(r, env, buffer), buffer))
        fired = [o for o, _ in entries if o is not None]
        best = fired[0] if fired else None
        for o in fired[1:]:
            if o.awards.get(g.currency, 0) > best.awards.get(g.currency, 0):  # type: ignore[union-attr]
                best = o
        self.trace(g, best.rule if best is not None else None)
        for o, buffer in entries:
            if o is None:
                if reasons is not None and buffer is not None:
                    reasons.extend(buffer)
            elif o is best:
                self.apply(o, env, d, totals, reasons)
            elif reasons is not None and best is not None:
                reasons.extend(o.reasons)
                reasons.append(Reason(
                    p.name, o.rule.name, "not_chosen",
                    f"group {g.name} chose {best.rule.name} "
                    f"({best.awards.get(g.currency, 0)} {g.currency})",
                    dict(o.awards), o.rule.span.line))

    # -- expressions ----------------------------------------------------------------------------

    def eval(self, e: n.Expr, env: dict[str, Any]) -> Any:
        """The value of ``e`` with the names in ``env``."""
        return self.visit(e, env)

    def visit_Literal(self, e: n.Literal, env: dict[str, Any]) -> Any:
        return e.value

    def visit_Name(self, e: n.Name, env: dict[str, Any]) -> Any:
        return env[e.name]

    def visit_Attribute(self, e: n.Attribute, env: dict[str, Any]) -> Any:
        return self.eval(e.value, env)[e.name]

    def visit_ListExpr(self, e: n.ListExpr, env: dict[str, Any]) -> Any:
        return [self.eval(x, env) for x in e.items]

    def visit_Unary(self, e: n.Unary, env: dict[str, Any]) -> Any:
        v = self.eval(e.operand, env)
        return (not v) if e.op == "not" else -v

    def visit_Presence(self, e: n.Presence, env: dict[str, Any]) -> Any:
        v = self.eval(e.operand, env)
        return (v is not None) if e.present else (v is None)

    def visit_Between(self, e: n.Between, env: dict[str, Any]) -> Any:
        t = self.eval(e.operand, env)
        clock = t.hour * 60 + t.minute
        start, end = e.start.hour * 60 + e.start.minute, e.end.hour * 60 + e.end.minute
        # The language's definition, written out rather than calling the runtime's helper.
        if start < end:
            return start <= clock < end
        return clock >= start or clock < end

    def visit_IfExpr(self, e: n.IfExpr, env: dict[str, Any]) -> Any:
        if self.eval(e.cond, env) is True:
            self.trace(e, True)
            return self.eval(e.then, env)
        self.trace(e, False)
        return self.eval(e.orelse, env)

    def visit_Call(self, e: n.Call, env: dict[str, Any]) -> Any:
        impl = BUILTINS[e.func].impl
        return impl(*[self.eval(a, env) for a in e.args])

    def visit_Aggregate(self, e: n.Aggregate, env: dict[str, Any]) -> Any:
        values: list[Any] = []
        for item in self.eval(e.source, env):
            inner = dict(env)
            inner[e.var] = item
            if e.where is not None and self.eval(e.where, inner) is not True:
                continue
            values.append(self.eval(e.body, inner))
        f = e.func
        if f == "sum":
            return rt.total(values)
        if f == "count":
            return len(values)
        if f == "any":
            return any(v is True for v in values)
        if f == "all":
            return all(v is True for v in values)
        if f == "min":
            return rt.minimum(values)
        return rt.maximum(values)

    _ARITH: dict[str, Callable[[Any, Any], Any]] = {
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
        "of": lambda a, b: a * b,
        "/": rt.div,
        "%": rt.mod,
        "div": rt.idiv,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
    }

    def visit_Binary(self, e: n.Binary, env: dict[str, Any]) -> Any:
        op = e.op
        if op == "and" or op == "or":
            left = self.eval(e.left, env) is True
            self.trace(e, left)
            if left is (op == "or"):  # decided by the left side alone
                return left
            return self.eval(e.right, env) is True
        if op == "otherwise":
            v = self.eval(e.left, env)
            self.trace(e, v is not None)
            return v if v is not None else self.eval(e.right, env)
        a = self.eval(e.left, env)
        b = self.eval(e.right, env)
        if op == "in":
            return rt.contains(b, a)
        if op == "not in":
            return not rt.contains(b, a)
        ranks = self.ranked.get(id(e))
        if ranks is not None:  # an ordered enum (the tiers): by rank, never as text
            a, b = ranks[a], ranks[b]
        return self._ARITH[op](a, b)


def awarded_currencies(policy: n.Policy) -> list[str]:
    """The currencies a policy's rules award, in order of first appearance."""
    out: list[str] = []
    for r in policy.rules:
        for e in r.effects:
            if isinstance(e, n.Award) and e.currency not in out:
                out.append(e.currency)
    return out


def interpret(interp: Interpreter) -> Callable[..., None]:
    """A policy function with the compiled code's calling convention, backed by ``interp``.

    The returned ``run(customer, event, decision, reasons)`` raises
    :class:`~dsl.errors.EvaluationError` on a fault, as compiled code does.
    """
    from dsl.errors import EvaluationError

    p = interp.policy

    def run(customer: dict[str, Any], event: dict[str, Any], d: Decision,
            reasons: list[Reason] | None = None, history: dict[str, Any] | None = None) -> None:
        try:
            interp.run(customer, event, d, reasons, history)
        except _Fault as f:
            raise EvaluationError(p.name, p.file, f.line, f.message) from None

    return run
