"""What an evaluation returns: a :class:`Decision`, with its benefits and (on request) reasons."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

#: A value a policy can compute: the runtime's whole value domain.
Value = int | Decimal | str | bool | date | datetime | timedelta | list[Any] | None


@dataclass(frozen=True, slots=True)
class Benefit:
    """A benefit granted by a rule, e.g. ``late-arrival-grace`` with ``{"grace": 15 minutes}``."""

    name: str
    params: dict[str, Value]
    policy: str
    rule: str


@dataclass(frozen=True, slots=True)
class Reason:
    """One line of an explanation.

    ``kind`` is one of:

    - ``fired``: the rule's condition held; ``awards`` is what it contributed.
    - ``not_fired``: the condition did not hold; ``detail`` is the first false condition.
    - ``not_chosen``: the rule fired but its group (best-of or first-match) chose another.
    - ``rounded``: an award (``each award``), or a policy's total of a currency (``rule`` is
      empty), was rounded; ``detail`` says from what to what.
    - ``capped``: a cap cut an award; ``detail`` names the cap.
    - ``clamped``: a negative amount was raised to zero.

    ``texts`` are a fired rule's ``says`` texts, filled in, as (language, text) pairs in the
    order the rule declares them (the language empty for a text without one); :meth:`says`
    picks one.
    """

    policy: str
    rule: str
    kind: str
    detail: str = ""
    awards: dict[str, int | Decimal] = field(default_factory=dict)
    line: int = 0
    texts: tuple[tuple[str, str], ...] = ()

    def says(self, language: str | None = None) -> str:
        """What a customer reads about a fired rule: its text in ``language`` (``fr``,
        ``pt_BR`` or ``pt-BR``; a text for ``pt`` serves ``pt_BR``), else its first text, or,
        for a rule that declares none, a plain text made from its name. Empty for any line
        but ``fired``."""
        if self.kind != "fired":
            return ""
        return text_in(self.texts, self.rule, language)

    def speaking(self, language: str) -> Reason:
        """This line with its text in ``language`` first (so :meth:`says` with no language,
        and the wire's ``says`` field, give it)."""
        chosen = self.says(language)
        if not self.texts or self.texts[0][1] == chosen:
            return self
        first = next(t for t in self.texts if t[1] == chosen)
        return replace(self, texts=(first, *(t for t in self.texts if t is not first)))

    def render(self) -> str:
        """One readable line, as ``loyalty eval --explain`` prints it (a fired rule's line
        ends with what it says to the customer)."""
        who = f"{self.policy}.{self.rule}" if self.rule else self.policy
        amounts = ", ".join(f"{v} {k}" for k, v in sorted(self.awards.items()))
        parts = [f"{who}: {self.kind}"]
        if amounts:
            parts.append(f"+{amounts}" if self.kind == "fired" else amounts)
        if self.detail:
            parts.append(f"({self.detail})")
        line = " ".join(parts)
        if self.kind == "fired" and self.rule:
            line += f" -- says {json.dumps(self.says(), ensure_ascii=False)}"
        return line


@dataclass(slots=True)
class Decision:
    """The combined outcome of every policy that applied to one (customer, event).

    ``awards`` maps currency name to an amount (``int`` for whole-unit currencies,
    ``Decimal`` for currencies with decimals). ``tier`` is the highest tier any
    rule qualified the customer for, or ``None``. ``tags`` are sorted and unique.
    ``policies`` names the policies that applied, in evaluation order; ``fired`` lists
    (policy, rule) for every rule whose effects applied.
    ``reasons`` is ``None`` unless the evaluation was asked to explain. ``counted`` is what
    this decision adds to each counter (see the property).
    """

    revision: str
    awards: dict[str, int | Decimal] = field(default_factory=dict)
    benefits: list[Benefit] = field(default_factory=list)
    tier: str | None = None
    tags: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    fired: list[tuple[str, str]] = field(default_factory=list)
    reasons: list[Reason] | None = None
    #: Behind :attr:`counted`: None until something is counted, so that a decision of a
    #: policy without counters allocates nothing more.
    _counted: dict[str, int | Decimal] | None = None

    @property
    def counted(self) -> dict[str, int | Decimal]:
        """What this decision adds to each counter (``count ... toward``): the service appends
        them as entries at the event's time; empty when none. Read it, or set it whole:
        :func:`dsl.library.runtime.count_toward` is what adds to it."""
        counted = self._counted
        return counted if counted is not None else {}

    @counted.setter
    def counted(self, value: dict[str, int | Decimal]) -> None:
        self._counted = value

    def award_texts(self, language: str | None = None
                    ) -> list[tuple[str, str, dict[str, int | Decimal], str]]:
        """(policy, rule, awards, text) for every rule that applied, in evaluation order: what
        a statement prints beside each award, ``text`` in ``language`` (see
        :meth:`Reason.says`). Needs the reasons: evaluate with ``explain=True``."""
        if self.reasons is None:
            raise ValueError("award texts need the reasons: evaluate with explain=True")
        return [(r.policy, r.rule, dict(r.awards), r.says(language))
                for r in self.reasons if r.kind == "fired"]

    def speak(self, language: str) -> None:
        """Put every reason's text in ``language`` first (see :meth:`Reason.speaking`)."""
        if self.reasons is not None and language:
            self.reasons = [r.speaking(language) for r in self.reasons]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (decimals and dates as strings), used by the CLI and tests.
        A fired reason carries ``says``: its rule's text (:meth:`Reason.says`)."""
        out: dict[str, Any] = {
            "revision": self.revision,
            "awards": {k: plain(v) for k, v in sorted(self.awards.items())},
            "benefits": [
                {"name": b.name, "params": {k: plain(v) for k, v in sorted(b.params.items())},
                 "policy": b.policy, "rule": b.rule}
                for b in self.benefits
            ],
            "tier": self.tier,
            "tags": list(self.tags),
            "policies": list(self.policies),
            "fired": [f"{p}.{r}" for p, r in self.fired],
        }
        if self._counted:
            out["counted"] = {k: plain(v) for k, v in sorted(self._counted.items())}
        if self.reasons is not None:
            out["reasons"] = [
                {"policy": r.policy, "rule": r.rule, "kind": r.kind, "detail": r.detail,
                 "awards": {k: plain(v) for k, v in sorted(r.awards.items())}, "line": r.line,
                 **({"says": r.says()} if r.kind == "fired" else {})}
                for r in self.reasons
            ]
        return out


def plain(value: Any) -> Any:
    """The JSON form of a value a decision or a report holds: exact decimals as strings,
    durations in the policy language's words, dates and times in ISO form, tuples as lists.
    The one plain form: ``to_dict`` here, ``loyalty diff`` and ``loyalty replay`` use it."""
    if value is None or isinstance(value, bool | int | str | float):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


def decision_changed(before: Decision | None, after: Decision | None,
                     before_error: str | None = None, after_error: str | None = None) -> bool:
    """Whether a customer would see a different outcome: the one definition of "the decision
    changed", used by ``loyalty diff``, ``loyalty replay`` and the service's shadow.

    A customer sees awards, benefits (name and parameters), tier and tags, or the error that
    stopped the evaluation (a None decision: it failed). Not the revision, nor which policies
    or rules produced them: a renamed rule with the same effect is no change.
    """
    if before_error != after_error:
        return True
    a = before if before is not None else _NOTHING
    b = after if after is not None else _NOTHING
    # Cheapest comparisons first: replay asks this of every event of a history.
    return (a.awards != b.awards or a.tier != b.tier
            or (a.tags != b.tags and sorted(a.tags) != sorted(b.tags))
            or (bool(a.benefits or b.benefits) and _benefits(a) != _benefits(b)))


#: What a failed evaluation shows a customer: nothing.
_NOTHING = Decision("")


def _benefits(d: Decision) -> list[tuple[str, dict[str, Value]]]:
    return [(b.name, b.params) for b in d.benefits]


def format_params(params: Mapping[str, Any]) -> str:
    """Benefit parameters as the policy language writes them: ``grace = 15 minutes``."""
    return ", ".join(f"{k} = {format_value(v)}" for k, v in sorted(params.items()))


def format_value(value: Any) -> str:
    """A parameter value as the policy language writes it: ``15 minutes``, ``true``, ``"x"``."""
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def text_value(value: Any) -> str:
    """A value as a rule's text shows it to a customer: :func:`format_value`'s words (a
    decimal exactly as it is, ``12.50``), except that a text is shown bare (no quotes), a
    missing value as nothing and a list as its items joined by commas."""
    kind = type(value)
    if kind is str:
        return value
    if kind is int:
        return str(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list | tuple):
        return ", ".join(text_value(v) for v in value)
    return format_value(value)


def text_in(texts: tuple[tuple[str, str], ...] | list[tuple[str, str]], rule: str,
            language: str | None = None) -> str:
    """The one of a rule's filled-in ``texts`` ((language, text) pairs, as the rule declares
    them) a customer reads in ``language`` (``fr``, ``pt_BR`` or ``pt-BR``; a text for ``pt``
    serves ``pt_BR``), else the first; for a rule without texts, :func:`default_text` of its
    name. What :meth:`Reason.says` and a statement's lines (the texts stored with a lot) show."""
    if not texts:
        return default_text(rule)
    if language:
        wanted = language.replace("-", "_")
        for tag, text in texts:
            if tag == wanted:
                return text
        base = wanted.split("_")[0]
        for tag, text in texts:
            if tag and tag.split("_")[0] == base:
                return text
    return texts[0][1]


def default_text(rule: str) -> str:
    """The plain text of a rule that says nothing itself, made from its name:
    ``loyal_for_a_decade`` -> ``Loyal for a decade``."""
    words = " ".join(w for w in rule.split("_") if w)
    return words[:1].upper() + words[1:]


def format_duration(value: timedelta) -> str:
    """A duration in the policy language's own words: ``15 minutes``, ``2 days``."""
    seconds = int(value.total_seconds())
    for unit, size in (("weeks", 604800), ("days", 86400), ("hours", 3600), ("minutes", 60),
                       ("seconds", 1)):
        if seconds and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit if n not in (1, -1) else unit[:-1]}"
    return "0 seconds"
