"""What a change to a policy set would do: to its structure, and to decisions on sample cases.

:func:`compare_structure` compares two loaded :class:`~dsl.policyset.PolicySet` values
policy by policy (added, removed, changed; version, window, event kinds, description;
rules and other members added, removed and changed), by meaning: a policy whose text
changed but whose AST did not (reformatted, comments edited) is "text only".

:func:`read_cases` reads JSON-lines cases, each an ``EvaluateRequest`` body as grpcurl sends
it (``{"customer": {...}, "event": {...}}``, the request form) with an optional ``name``,
and decodes them for both sets' schemas; :func:`compare_decisions` evaluates every case with
both sets and sums up what changed. Nothing here prints; ``loyalty diff`` renders these.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from dsl.analysis.bounds import AwardBound, format_amount
from dsl.decision import Decision, decision_changed, format_params, plain
from dsl.errors import EvaluationError, InputError
from dsl.front import nodes as n
from dsl.input.request import MappingDecoder
from dsl.policyset import CompiledPolicy, PolicyInfo, PolicySet
from dsl.schema.schema import Schema
from dsl.tools.formatter import structure

__all__ = [
    "Case",
    "CaseError",
    "CaseResult",
    "Impact",
    "Outcome",
    "PolicyChange",
    "StructureDiff",
    "compare_bounds",
    "compare_decisions",
    "compare_structure",
    "describe_window",
    "read_cases",
]

Amount = int | Decimal


# -- structure -----------------------------------------------------------------------------


@dataclass
class PolicyChange:
    """How one policy present in both sets changed in meaning.

    ``headers`` maps ``version``, ``effective``, ``on``, ``description`` and ``file`` to
    (old, new) text for each one that changed. Rules are named by their own name; other
    members as ``let base``, ``table elite_bonus``, ``cap miles``, ``group cabin_bonus``.
    """

    name: str
    headers: dict[str, tuple[str, str]] = field(default_factory=dict)
    rules_added: list[str] = field(default_factory=list)
    rules_removed: list[str] = field(default_factory=list)
    rules_changed: list[str] = field(default_factory=list)
    members_added: list[str] = field(default_factory=list)
    members_removed: list[str] = field(default_factory=list)
    members_changed: list[str] = field(default_factory=list)
    #: Currency -> (old, new) award bound that moved: "at most 25,000", "unbounded", "none".
    bounds: dict[str, tuple[str, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "name": self.name,
            "bounds": {k: {"old": old, "new": new} for k, (old, new) in self.bounds.items()},
            "headers": {k: {"old": old, "new": new} for k, (old, new) in self.headers.items()},
            "rules": {"added": self.rules_added, "removed": self.rules_removed,
                      "changed": self.rules_changed},
            "members": {"added": self.members_added, "removed": self.members_removed,
                        "changed": self.members_changed},
        }


@dataclass
class StructureDiff:
    """Policies added, removed and changed between two sets (by name)."""

    added: list[PolicyInfo] = field(default_factory=list)
    removed: list[PolicyInfo] = field(default_factory=list)
    changed: list[PolicyChange] = field(default_factory=list)
    #: same meaning, different text (reformatted, comments edited, moved to another file)
    text_only: list[PolicyChange] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    schema_changed: bool = False
    #: Shared definitions block -> the policies whose meaning changed through it (a member
    #: taken from it was added, removed or changed), sorted.
    shared: dict[str, list[str]] = field(default_factory=dict)

    @property
    def differs(self) -> bool:
        """Whether the sets differ in meaning (text-only changes do not count)."""
        return bool(self.added or self.removed or self.changed or self.schema_changed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "differs": self.differs,
            "schema_changed": self.schema_changed,
            "added": [_info_dict(p) for p in self.added],
            "removed": [_info_dict(p) for p in self.removed],
            "changed": [c.to_dict() for c in self.changed],
            "text_only": [c.to_dict() for c in self.text_only],
            "unchanged": list(self.unchanged),
            "shared": {k: list(v) for k, v in self.shared.items()},
        }


def compare_structure(old: PolicySet, new: PolicySet, old_root: str | Path | None = None,
                      new_root: str | Path | None = None) -> StructureDiff:
    """Compare two policy sets policy by policy, by meaning rather than by text.

    Files are compared relative to ``old_root`` and ``new_root`` (the directories the
    sets were loaded from), so that the same layout in two places is no change.
    """
    before = {p.name: p for p in old.compiled}
    after = {p.name: p for p in new.compiled}
    diff = StructureDiff(schema_changed=old.schema.digest != new.schema.digest)
    diff.added = [after[name].info for name in sorted(after.keys() - before.keys())]
    diff.removed = [before[name].info for name in sorted(before.keys() - after.keys())]
    for name in sorted(before.keys() & after.keys()):
        a, b = before[name], after[name]
        change = _compare_policy(a, b, _relative(a.info.file, old_root),
                                 _relative(b.info.file, new_root))
        if structure(a.ast) != structure(b.ast):  # files, text and positions left out
            diff.changed.append(change)
            for module in _shared_changes(a.ast, b.ast, change):
                diff.shared.setdefault(module, []).append(name)
        elif _own_text(a.ast) != _own_text(b.ast) or "file" in change.headers:
            diff.text_only.append(change)
        else:
            diff.unchanged.append(name)
    return diff


def _shared_changes(a: n.Policy, b: n.Policy, change: PolicyChange) -> list[str]:
    """The shared definitions blocks through which a policy's meaning changed."""
    touched = set(change.members_added) | set(change.members_removed) | set(change.members_changed)
    out: set[str] = set()
    for policy in (a, b):
        for member in policy.members:
            imported = _imported(policy, member)
            if imported is not None and _member_key(member, imported) in touched:
                out.add(imported.module)
    return sorted(out)


def _imported(policy: n.Policy, member: n.Node) -> n.Imported | None:
    if not isinstance(member, n.Let | n.Table | n.Decide):
        return None
    return policy.imported.get(member.name)


def _member_key(member: n.Let | n.Table | n.Decide, imported: n.Imported | None) -> str:
    key = f"{type(member).__name__.lower()} {member.name}"
    return key if imported is None else f"{key} (from {imported.module})"


def _relative(file: str, root: str | Path | None) -> str:
    if root is None:
        return file
    try:
        return Path(file).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:  # a file given on its own
        return Path(file).name


def _own_text(policy: n.Policy) -> list[str]:
    """The lines a policy was written on (its file may hold others)."""
    return policy.source.split("\n")[policy.span.line - 1 : policy.span.end_line]


def _compare_policy(a: CompiledPolicy, b: CompiledPolicy, old_file: str,
                    new_file: str) -> PolicyChange:
    change = PolicyChange(a.name)
    for key, old, new in (
        ("version", str(a.info.version), str(b.info.version)),
        ("effective", describe_window(a.info), describe_window(b.info)),
        ("on", ", ".join(a.info.kinds), ", ".join(b.info.kinds)),
        ("description", a.info.description, b.info.description),
        ("file", old_file, new_file),
    ):
        if old != new:
            change.headers[key] = (old, new)
    old_rules, new_rules = _rules(a.ast), _rules(b.ast)
    change.rules_added = [r for r in new_rules if r not in old_rules]
    change.rules_removed = [r for r in old_rules if r not in new_rules]
    change.rules_changed = [r for r in old_rules if r in new_rules and old_rules[r] != new_rules[r]]
    old_members, new_members = _members(a.ast), _members(b.ast)
    change.members_added = [m for m in new_members if m not in old_members]
    change.members_removed = [m for m in old_members if m not in new_members]
    change.members_changed = [m for m in old_members
                              if m in new_members and old_members[m] != new_members[m]]
    change.bounds = compare_bounds(a.award_bounds, b.award_bounds)
    return change


def compare_bounds(old: list[AwardBound], new: list[AwardBound]) -> dict[str, tuple[str, str]]:
    """Currency -> (old, new) for each award bound that moved (``none``: not awarded)."""
    def show(b: AwardBound | None) -> str:
        if b is None:
            return "none"
        if b.maximum is None:
            return "unbounded"
        text = f"at most {format_amount(b.maximum)}"
        if b.period_maximum is not None:
            text += f"; at most {format_amount(b.period_maximum)} {b.period}"
        return text

    before = {b.currency: b for b in old}
    after = {b.currency: b for b in new}
    out: dict[str, tuple[str, str]] = {}
    for currency in [*before, *(c for c in after if c not in before)]:
        was, now = show(before.get(currency)), show(after.get(currency))
        if was != now:
            out[currency] = (was, now)
    return out


def describe_window(info: PolicyInfo) -> str:
    """An effective window in words: ``always``, ``from 2026-01-01``, ``2026-01-01 to ...``."""
    start, until = info.effective_from, info.effective_until
    if start is None and until is None:
        return "always"
    if until is None:
        return f"from {start}"
    if start is None:
        return f"until {until}"
    return f"{start} to {until}"


def _rules(policy: n.Policy) -> dict[str, Any]:
    """Rule name -> its meaning, including the group it sits in (moving it is a change)."""
    out: dict[str, Any] = {}
    for member in policy.members:
        if isinstance(member, n.Rule):
            out[member.name] = (None, structure(member))
        elif isinstance(member, n.Group):
            for rule in member.rules:
                out[rule.name] = (member.name, structure(rule))
    return out


def _members(policy: n.Policy) -> dict[str, Any]:
    """Every member but rules, by a readable key; a group is its mode and its rules' order."""
    out: dict[str, Any] = {}
    for member in policy.members:
        if isinstance(member, n.Rule):
            continue
        if isinstance(member, n.Group):
            key = f"group {member.name}"
            value: Any = (member.mode, member.currency, tuple(r.name for r in member.rules))
        elif isinstance(member, n.Cap | n.Round):
            key = f"{type(member).__name__.lower()} {member.currency}"
            value = structure(member)
        elif isinstance(member, n.Let | n.Table | n.Decide):
            # A shared definition is named with its block: the change is the block's.
            key = _member_key(member, _imported(policy, member))
            value = structure(member)
        else:
            key = f"{type(member).__name__.lower()} {member.name}"
            value = structure(member)
        base, number = key, 2
        while key in out:  # a second `cap miles` is its own member
            key, number = f"{base} #{number}", number + 1
        out[key] = value
    return out


def _info_dict(info: PolicyInfo) -> dict[str, Any]:
    return {"name": info.name, "version": info.version, "file": info.file,
            "effective": describe_window(info), "on": list(info.kinds), "rules": list(info.rules)}


# -- cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One sample (customer, event), prepared for the old set's schema and the new one's.

    ``only`` is the request's ``onlyPolicies``: evaluate just those (None: every policy).
    """

    line: int
    label: str
    old: tuple[dict[str, Any], dict[str, Any]]
    new: tuple[dict[str, Any], dict[str, Any]]
    only: tuple[str, ...] | None = None


class CaseError(ValueError):
    """The cases file has mistakes; ``problems`` are ``file:line: path: reason`` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


#: A case is an EvaluateRequest body (both spellings of its keys) and an optional name.
_CASE_KEYS = ("customer", "event", "explain", "onlyPolicies", "only_policies", "name")


def read_cases(text: str, file: str, old: Schema, new: Schema) -> list[Case]:
    """Every case in JSON-lines ``text``, prepared for both schemas.

    Blank lines are skipped. A case is an ``EvaluateRequest`` body exactly as a caller
    sends it to the API (``customer`` and ``event`` in the request form, camelCase or
    snake_case; ``explain`` is accepted and has no effect; ``onlyPolicies`` limits
    both sets to those policies) and an optional ``name``. Raises :class:`CaseError`
    listing every problem, each with its line number and request path.
    """
    problems: list[str] = []
    cases: list[Case] = []
    same_schema = old.digest == new.digest
    old_decoder = MappingDecoder(old)
    new_decoder = old_decoder if same_schema else MappingDecoder(new)
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{file}:{number}"
        try:
            raw = json.loads(line, parse_float=str)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        except RecursionError:  # json recurses once per level of nesting
            problems.append(f"{where}: nests too deeply to be a request")
            continue
        if not isinstance(raw, dict):
            problems.append(f'{where}: a case is a JSON object with "customer" and "event"')
            continue
        shape_problems, customer, event, label = _case_shape(raw, where)
        problems.extend(shape_problems)
        only = _only(raw, where, problems)
        if customer is None or event is None:
            continue
        old_input, old_errors = _prepare(old_decoder, customer, event)
        if same_schema:
            new_input, new_errors = old_input, old_errors
        else:
            new_input, new_errors = _prepare(new_decoder, customer, event)
        problems.extend(_field_problems(where, old_errors, new_errors, same_schema))
        if old_input is not None and new_input is not None:
            if not label:
                label = f"customer {customer.get('id', '?')}, event {event.get('id', '?')}"
            cases.append(Case(number, label, old_input, new_input, only))
    if problems:
        raise CaseError(problems)
    return cases


def _case_shape(raw: dict[str, Any], where: str
                ) -> tuple[list[str], dict[str, Any] | None, dict[str, Any] | None, str]:
    """Problems with a case's keys, then its customer and event objects (None if unusable)."""
    problems = [f'{where}: {str(key)[:64]}: unknown key (a case is an EvaluateRequest body, '
                f'"customer", "event", "explain", "onlyPolicies", and an optional "name")'
                for key in raw if key not in _CASE_KEYS]
    if "explain" in raw and not isinstance(raw["explain"], bool):
        problems.append(f"{where}: explain: must be true or false")
    found: dict[str, dict[str, Any] | None] = {}
    for key in ("customer", "event"):
        value = raw.get(key)
        found[key] = value if isinstance(value, dict) else None
        if key not in raw:
            problems.append(f"{where}: {key}: is required")
        elif not isinstance(value, dict):
            problems.append(f"{where}: {key}: must be an object")
    name = raw.get("name", "")
    if not isinstance(name, str):
        problems.append(f"{where}: name: must be a string")
        name = ""
    return problems, found["customer"], found["event"], name


def _only(raw: dict[str, Any], where: str, problems: list[str]) -> tuple[str, ...] | None:
    """The case's ``onlyPolicies`` (either spelling), or None; a malformed one is a problem."""
    keys = [k for k in ("onlyPolicies", "only_policies") if k in raw]
    if len(keys) > 1:
        problems.append(f"{where}: only_policies: is given twice (also as onlyPolicies)")
        return None
    if not keys or raw[keys[0]] is None:
        return None
    names = raw[keys[0]]
    if not isinstance(names, list) or not all(isinstance(p, str) for p in names):
        problems.append(f"{where}: {keys[0]}: must be a list of policy names")
        return None
    return tuple(names) or None  # empty, as in the API: every policy


def _prepare(decoder: MappingDecoder, customer: Mapping[str, Any], event: Mapping[str, Any]
             ) -> tuple[tuple[dict[str, Any], dict[str, Any]] | None, list[tuple[str, str]]]:
    try:
        return decoder.request({"customer": customer, "event": event}), []
    except InputError as exc:
        return None, [(e.path, e.reason) for e in exc.errors]


def _field_problems(where: str, old: list[tuple[str, str]], new: list[tuple[str, str]],
                    same_schema: bool) -> list[str]:
    if same_schema:
        return [f"{where}: {path}: {reason}" for path, reason in old]
    out = []
    for path, reason in old:
        side = "" if (path, reason) in new else " (old policies' schema only)"
        out.append(f"{where}: {path}: {reason}{side}")
    out.extend(f"{where}: {path}: {reason} (new policies' schema only)"
               for path, reason in new if (path, reason) not in old)
    return out


# -- decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one evaluation meant for the customer, or the error that stopped it."""

    awards: dict[str, Amount]
    benefits: tuple[tuple[str, str], ...]  # (name, parameters as text), in decision order
    tier: str | None
    tags: tuple[str, ...]
    fired: tuple[tuple[str, str], ...]
    error: str | None = None
    #: The decision itself (None when the evaluation failed), for :meth:`same_for_customer`.
    decision: Decision | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, decision: Decision) -> Outcome:
        """The outcome a decision carries."""
        return cls(
            dict(decision.awards),
            tuple((b.name, format_params(b.params)) for b in decision.benefits),
            decision.tier, tuple(decision.tags), tuple(decision.fired), decision=decision,
        )

    @classmethod
    def failed(cls, exc: EvaluationError) -> Outcome:
        """The outcome of an evaluation that raised."""
        return cls({}, (), None, (), (), f"{exc.file}:{exc.line}: policy {exc.policy}: "
                                         f"{exc.message}")

    def same_for_customer(self, other: Outcome) -> bool:
        """Equal awards, benefits, tier, tags and error (which rules fired does not matter):
        :func:`dsl.decision.decision_changed`, the one definition."""
        return not decision_changed(self.decision, other.decision, self.error, other.error)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        out: dict[str, Any] = {
            "awards": {k: plain(v) for k, v in sorted(self.awards.items())},
            "benefits": [{"name": name, "params": params} for name, params in self.benefits],
            "tier": self.tier,
            "tags": list(self.tags),
            "fired": [f"{p}.{r}" for p, r in self.fired],
        }
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class CaseResult:
    """One case evaluated by both sets."""

    line: int
    label: str
    before: Outcome
    after: Outcome

    @property
    def changed(self) -> bool:
        """Whether the customer would see a different outcome."""
        return not self.before.same_for_customer(self.after)


@dataclass
class Impact:
    """What the new set would do to the cases, summed up.

    ``changed`` holds every case whose outcome for the customer changed (awards,
    benefits, tier, tags or an evaluation error), in file order. Counters count
    cases (``benefits``: cases granted the benefit; ``fired``: cases in which the rule
    fired); ``tiers`` counts (old tier, new tier) among cases whose tier changed.
    """

    cases: int = 0
    changed: list[CaseResult] = field(default_factory=list)
    awards_before: dict[str, Amount] = field(default_factory=dict)
    awards_after: dict[str, Amount] = field(default_factory=dict)
    benefits_before: Counter[str] = field(default_factory=Counter)
    benefits_after: Counter[str] = field(default_factory=Counter)
    tags_before: Counter[str] = field(default_factory=Counter)
    tags_after: Counter[str] = field(default_factory=Counter)
    tiers: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)
    fired_before: Counter[tuple[str, str]] = field(default_factory=Counter)
    fired_after: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors_before: int = 0
    errors_after: int = 0

    @property
    def differs(self) -> bool:
        """Whether any case's outcome changed."""
        return bool(self.changed)

    def currencies(self) -> list[str]:
        """Every currency awarded before or after, sorted."""
        return sorted(self.awards_before.keys() | self.awards_after.keys())

    def counter_changes(self, before: Counter[Any], after: Counter[Any]
                        ) -> list[tuple[Any, int, int]]:
        """(key, before, after) for every key whose count differs, sorted by key."""
        keys = sorted(before.keys() | after.keys(), key=str)
        return [(k, before[k], after[k]) for k in keys if before[k] != after[k]]

    def to_dict(self, show: int) -> dict[str, Any]:
        """A JSON-friendly form with the first ``show`` changed cases."""
        return {
            "cases": self.cases,
            "changed": len(self.changed),
            "awards": {
                c: {"before": plain(self.awards_before.get(c, 0)),
                    "after": plain(self.awards_after.get(c, 0)),
                    "delta": plain(self.awards_after.get(c, 0) - self.awards_before.get(c, 0))}
                for c in self.currencies()
            },
            "benefits": {k: {"before": b, "after": a} for k, b, a in
                         self.counter_changes(self.benefits_before, self.benefits_after)},
            "tags": {k: {"before": b, "after": a} for k, b, a in
                     self.counter_changes(self.tags_before, self.tags_after)},
            "tiers": [{"before": old, "after": new, "cases": count}
                      for (old, new), count in sorted(self.tiers.items(), key=str)],
            "rules": {f"{p}.{r}": {"before": b, "after": a} for (p, r), b, a in
                      self.counter_changes(self.fired_before, self.fired_after)},
            "errors": {"before": self.errors_before, "after": self.errors_after},
            "examples": [{"line": c.line, "case": c.label, "before": c.before.to_dict(),
                          "after": c.after.to_dict()} for c in self.changed[:show]],
        }


def compare_decisions(old: PolicySet, new: PolicySet, cases: Iterable[Case]) -> Impact:
    """Evaluate every case with both sets and sum up the differences."""
    impact = Impact()
    for case in cases:
        impact.cases += 1
        before = _outcome(old, *case.old, case.only)
        after = _outcome(new, *case.new, case.only)
        _count(before, impact.awards_before, impact.benefits_before, impact.tags_before,
               impact.fired_before)
        _count(after, impact.awards_after, impact.benefits_after, impact.tags_after,
               impact.fired_after)
        impact.errors_before += before.error is not None
        impact.errors_after += after.error is not None
        result = CaseResult(case.line, case.label, before, after)
        if result.changed:
            impact.changed.append(result)
            if before.tier != after.tier:
                impact.tiers[(before.tier, after.tier)] += 1
    return impact


def _outcome(policy_set: PolicySet, customer: dict[str, Any], event: dict[str, Any],
             only: tuple[str, ...] | None = None) -> Outcome:
    try:
        return Outcome.of(policy_set.evaluate(customer, event, only=only))
    except EvaluationError as exc:
        return Outcome.failed(exc)


def _count(outcome: Outcome, awards: dict[str, Amount],
           benefits: Counter[str], tags: Counter[str], fired: Counter[tuple[str, str]]) -> None:
    for currency, amount in outcome.awards.items():
        awards[currency] = awards.get(currency, 0) + amount
    benefits.update({name for name, _ in outcome.benefits})
    tags.update(set(outcome.tags))
    fired.update(set(outcome.fired))
