"""The abstract syntax tree: dataclass nodes that carry their source span.

Every later stage (checks, the reference interpreter, the code generator, the
formatter) walks these nodes; none of them sees Lark's parse tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from dsl.errors import NO_SPAN, Span
from dsl.schema.types import Months


@dataclass(eq=False)
class Node:
    """Base of every node. ``span`` is where it was written."""

    span: Span = field(default=NO_SPAN, kw_only=True)


# -- expressions ----------------------------------------------------------------------


@dataclass(eq=False)
class Expr(Node):
    """Base of expressions."""


@dataclass(eq=False)
class Literal(Expr):
    """A constant: int, Decimal (decimals and percents), str, bool, date, datetime, timedelta,
    :class:`~dsl.schema.types.Months` (a calendar span)."""

    value: int | Decimal | str | bool | date | datetime | timedelta | Months
    text: str = ""


@dataclass(eq=False)
class ListExpr(Expr):
    items: list[Expr]


@dataclass(eq=False)
class Name(Expr):
    """A bare name: ``customer``, ``event``, a ``let`` binding or a table."""

    name: str


@dataclass(eq=False)
class Attribute(Expr):
    """``value.name``: a field of the customer, the event or a record."""

    value: Expr
    name: str


@dataclass(eq=False)
class Call(Expr):
    """A built-in function call such as ``max(a, b)``."""

    func: str
    args: list[Expr]


@dataclass(eq=False)
class Aggregate(Expr):
    """``sum(item.amount for item in event.items where item.category != "gift")``."""

    func: str
    body: Expr
    var: str
    source: Expr
    where: Expr | None


@dataclass(eq=False)
class Unary(Expr):
    """``-x`` (op ``neg``) or ``not x`` (op ``not``)."""

    op: str
    operand: Expr


@dataclass(eq=False)
class Binary(Expr):
    """Arithmetic (``+ - * / % of``), comparison (``== != < <= > >=``), ``in``, ``not in``,
    ``and``, ``or`` and ``otherwise``."""

    op: str
    left: Expr
    right: Expr


@dataclass(eq=False)
class Presence(Expr):
    """``x is missing`` (``present`` False) or ``x is present`` (``present`` True)."""

    operand: Expr
    present: bool


@dataclass(eq=False)
class Between(Expr):
    """``t between 15:00 and 18:00``: whether the time of day of ``t`` (a datetime, on its
    own clock) is at or after ``start`` and before ``end``; across midnight when ``end`` is
    earlier than ``start``."""

    operand: Expr
    start: time
    end: time


@dataclass(eq=False)
class IfExpr(Expr):
    cond: Expr
    then: Expr
    orelse: Expr


# -- policy members ------------------------------------------------------------------


@dataclass(eq=False)
class Let(Node):
    """``let name = expr``: computed once per evaluation, in order."""

    name: str
    value: Expr


@dataclass(eq=False)
class TableRow(Node):
    """A lookup-table row. ``keys`` is empty for the ``else`` row."""

    keys: list[Literal]
    value: Expr


@dataclass(eq=False)
class Table(Node):
    """``table name by expr:`` a lookup from a key to a value, first (and only) match."""

    name: str
    key: Expr
    rows: list[TableRow]


@dataclass(eq=False)
class DecideRow(Node):
    """A decision-table row. ``cond`` is None for the ``else`` row."""

    cond: Expr | None
    value: Expr


@dataclass(eq=False)
class Decide(Node):
    """``decide name first|collect:`` a decision table with a stated hit policy."""

    name: str
    hit: str
    rows: list[DecideRow]


@dataclass(eq=False)
class Effect(Node):
    """Base of rule effects."""


@dataclass(eq=False)
class Award(Effect):
    """``award amount currency [up to limit]``."""

    amount: Expr
    currency: str
    limit: Expr | None = None
    currency_span: Span = NO_SPAN


@dataclass(eq=False)
class Grant(Effect):
    """``grant "benefit" [with name = value, ...]``."""

    benefit: str
    params: list[tuple[str, Expr, Span]]


@dataclass(eq=False)
class Qualify(Effect):
    """``qualify for "TIER"``."""

    tier: str


@dataclass(eq=False)
class Tag(Effect):
    """``tag "label"``."""

    tag: str


@dataclass(eq=False)
class Count(Effect):
    """``count [amount] toward counter [up to limit]``: what this event adds to a counter.

    ``amount`` None counts 1. With ``limit``, the amount is clipped to the room the counter's
    window has left (``limit`` minus what it holds and what this decision already counted);
    what is counted goes into ``Decision.counted``.
    """

    amount: Expr | None
    counter: str
    limit: Expr | None = None
    counter_span: Span = NO_SPAN


@dataclass(eq=False)
class RuleText(Node):
    """``says [language] "text"``: what a customer reads about a rule that applied.

    ``language`` is empty for a text without a tag. ``parts`` alternate literal text and
    placeholder names (:class:`dsl.front.texts.Template`); ``placeholders`` are the
    placeholders read as expressions (a :class:`Name` or an :class:`Attribute` chain), one per
    name in ``parts``, each with its span inside the string.
    """

    language: str
    text: str
    parts: tuple[str, ...]
    placeholders: list[Expr]
    language_span: Span = NO_SPAN


@dataclass(eq=False)
class Rule(Node):
    """``rule name [when cond]: effects``, and what the rule ``says`` to a customer."""

    name: str
    cond: Expr | None
    effects: list[Effect]
    name_span: Span = NO_SPAN
    texts: list[RuleText] = field(default_factory=list)


@dataclass(eq=False)
class Group(Node):
    """``group name takes first|best currency:`` rules of which one at most applies."""

    name: str
    mode: str
    currency: str
    rules: list[Rule]


@dataclass(eq=False)
class Cap(Node):
    """``cap currency at amount``: the most this policy awards of a currency per event."""

    currency: str
    amount: Expr


@dataclass(eq=False)
class Round(Node):
    """``round currency down|up|half even|half up [each award]``.

    Without ``each award`` the policy's total of the currency is rounded once, after
    every rule and before the caps; with it, every award is rounded on its own.
    """

    currency: str
    mode: str
    per_award: bool = False


#: The calendar units a counter's period may name (in the programme's time zone).
CALENDAR_UNITS = ("day", "week", "month", "quarter", "year")


@dataclass(eq=False)
class Period(Node):
    """Which entries of a counter a policy reads at an event.

    ``kind`` ``calendar``: the ``unit`` (day, week, month, quarter, year) holding the event,
    in the programme's time zone; ``rolling``: the ``length`` up to the event, inclusive;
    ``ever``: every entry up to the event.
    """

    kind: str
    unit: str = ""
    length: timedelta | None = None
    text: str = ""


@dataclass(eq=False)
class Counter(Node):
    """``counter name: count|sum per period``: a counter the store keeps for each customer.

    ``history.name`` reads the sum of its entries in the period's window at the event (before
    this event); ``count ... toward name`` adds to it. A ``count`` counter holds whole numbers
    (1 per counted event unless told), a ``sum`` counter exact amounts.
    """

    name: str
    kind: str
    period: Period
    name_span: Span = NO_SPAN


@dataclass(eq=False)
class Use(Node):
    """``use excluded_products, tier_bonus from supermarket_common``: shared definitions a
    policy (or another definitions block) takes by name.

    Resolution (:mod:`dsl.analysis.shared`) replaces the line by the definitions it names,
    and those they read, so that every later stage sees them as the policy's own members.
    """

    names: list[str]
    module: str
    name_spans: list[Span] = field(default_factory=list)
    module_span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Imported:
    """Where a member that :class:`Use` brought into a policy is defined."""

    #: The definitions block it comes from, and that block's file and text (both "" for a
    #: name of a ``use`` line that failed: the checker knows it, as a name of any type).
    module: str
    file: str
    source: str
    #: The policy's ``use`` line, and where this name is written on it (the line's span
    #: for a definition brought in because an imported one reads it).
    use: Span
    at: Span
    #: Whether the ``use`` line names it (False: an imported definition reads it).
    named: bool


Member = Let | Table | Decide | Rule | Group | Cap | Round | Counter | Use


@dataclass(eq=False)
class Policy(Node):
    """One policy: its header and its members, in source order."""

    name: str
    version: int = 1
    effective_from: date | None = None
    effective_until: date | None = None
    kinds: list[str] = field(default_factory=list)
    description: str = ""
    members: list[Member] = field(default_factory=list)
    file: str = "<policy>"
    source: str = ""
    header_spans: dict[str, Span] = field(default_factory=dict)
    #: After resolution: name -> where each member a ``use`` line brought in is defined.
    imported: dict[str, Imported] = field(default_factory=dict)

    @property
    def lets(self) -> list[Let]:
        return [m for m in self.members if isinstance(m, Let)]

    @property
    def rules(self) -> list[Rule]:
        """Every rule, including those inside groups, in source order."""
        out: list[Rule] = []
        for m in self.members:
            if isinstance(m, Rule):
                out.append(m)
            elif isinstance(m, Group):
                out.extend(m.rules)
        return out

    @property
    def counters(self) -> list[Counter]:
        """The counters the policy declares, in source order."""
        return [m for m in self.members if isinstance(m, Counter)]

    @property
    def caps(self) -> list[Cap]:
        return [m for m in self.members if isinstance(m, Cap)]

    @property
    def roundings(self) -> list[Round]:
        return [m for m in self.members if isinstance(m, Round)]


@dataclass(eq=False)
class Definitions(Node):
    """``definitions NAME``: bindings, tables and decision tables written once for a
    programme, which its policies take by name (``use NAME from ...``)."""

    name: str
    description: str = ""
    members: list[Let | Table | Decide | Use] = field(default_factory=list)
    file: str = "<policy>"
    source: str = ""
    name_span: Span = NO_SPAN
    description_span: Span = NO_SPAN

    @property
    def defined(self) -> dict[str, Let | Table | Decide]:
        """The definitions this block itself writes, by name (what a ``use`` line may name)."""
        return {m.name: m for m in self.members if not isinstance(m, Use)}


#: Field annotations that never hold a node: :func:`walk` does not look inside such fields.
#: (A field whose annotation is not listed here is looked inside, so a new node-holding field
#: is walked without touching this set.)
_PLAIN_FIELDS = frozenset({
    "Span", "bool", "int", "str", "time", "date | None", "timedelta | None", "list[Span]",
    "list[str]", "tuple[str, ...]", "dict[str, Span]", "dict[str, Imported]",
    "int | Decimal | str | bool | date | datetime | timedelta | Months",
})
#: Per node class, the names of its fields that may hold nodes, last field first.
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def _child_fields(cls: type) -> tuple[str, ...]:
    names = tuple(name for name, f in cls.__dataclass_fields__.items()  # type: ignore[attr-defined]
                  if name != "span" and str(f.type) not in _PLAIN_FIELDS)[::-1]
    _CHILD_FIELDS[cls] = names
    return names


def walk(node: Node):  # type: ignore[no-untyped-def]
    """Every node below ``node`` (itself included), depth first, without recursion.

    Looks inside lists and tuples, not dicts; skips the fields that hold only plain values
    (:data:`_PLAIN_FIELDS`). The lint stage, the check of unused counters and the disk cache
    each walk every policy, so this loop is kept tight.
    """
    stack: list[object] = [node]
    pop, push = stack.pop, stack.extend
    fields_of = _CHILD_FIELDS.get
    while stack:
        x = pop()
        if isinstance(x, Node):
            yield x
            cls = type(x)
            fields = fields_of(cls)
            if fields is None:
                fields = _child_fields(cls)
            for f in fields:
                stack.append(getattr(x, f))
        elif isinstance(x, (list, tuple)):
            push(x[::-1])


def conjuncts(e: Expr) -> list[Expr]:
    """The parts of a top-level ``a and b and c`` chain, left to right (``[e]`` otherwise).

    Explanations name the first of them that is false.
    """
    out: list[Expr] = []
    stack = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, Binary) and x.op == "and":
            stack.append(x.right)
            stack.append(x.left)
        else:
            out.append(x)
    return out


def source_text(policy_source: str, span: Span) -> str:
    """The exact text a span covers in ``policy_source``."""
    if span.line <= 0:
        return ""
    lines = policy_source.splitlines()
    if span.line == span.end_line:
        return lines[span.line - 1][span.column - 1 : span.end_column - 1]
    parts = [lines[span.line - 1][span.column - 1 :]]
    parts.extend(lines[span.line : span.end_line - 1])
    parts.append(lines[span.end_line - 1][: span.end_column - 1])
    return " ".join(p.strip() for p in parts)
