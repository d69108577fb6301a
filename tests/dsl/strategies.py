"""Hypothesis strategies for the policy language: valid policies as source text, and their inputs.

``policy_sources(kind)`` writes one or two policies for an event kind from a small typed
expression generator over the test schema's fields (``SCHEMA``: the standard schema plus
``TEST_SCHEMA_TOML``, which adds tiers, a 2-decimal currency, benefits with parameters and an
optional field of every type). Every expression is built for the type it must have, so the
checker accepts the text; the only diagnostics it may still give are the ones no local
generator can rule out (a condition the checker proves is never true), listed in
``UNAVOIDABLE``.

Number literals have at most ``dsl.front.parser.MAX_DIGITS`` (30) digits, the most the language
accepts. A policy may still multiply large values past the checker's bound on computed numbers
(``number_too_large``); the differential tests skip the few policies refused for that.

``raw_customers(schema)`` and ``raw_events(schema, kind)`` draw loose input mappings from a
schema's own field declarations (negative -- down to a field's declared minimum --, zero and
large numbers, leap days, missing optional fields), for the reference ``prepare_customer`` and
``prepare_event`` (tests/dsl/input/reference.py). Every input is within the schema's bounds
(``dsl.schema.schema.MAX_INPUT_DIGITS``): numbers reach them (``±(10^18 - 1)``, 18 decimal places)
but never pass them, since inputs beyond them are refused before any policy runs.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

from hypothesis import strategies as st

import dsl
from dsl.front.parser import MAX_DIGITS
from dsl.library.builtins import BUILTINS
from dsl.schema.schema import BASE_SCHEMA_PATH, MAX_INPUT_DIGITS, Field, Schema
from dsl.schema.types import Type
from tests.dsl.input.reference import prepare_customer, prepare_event

#: Type of the generic weighted choice in :meth:`PolicyWriter.choose`.
T = TypeVar("T")

TEST_SCHEMA_TOML = """
tiers = ["SILVER", "GOLD", "PLATINUM"]

[currencies]
credit = { decimals = 2, cap_per_event = "250000.00" }

[benefits]
perk = {}
grace = { period = "duration" }
voucher = { value = "decimal", note = "string" }
upgrade = { cabin = "string", seats = "int" }

[customer]
score = "int?"
balance = "decimal?"
nickname = "string?"
segment = "enum(alpha, beta, gamma)?"
patience = "duration?"
last_visit = "datetime?"
zone = { type = "timezone", default = "America/New_York" }

[events.purchase]
store = "string?"
discount = "decimal?"
coupon_until = "date?"

[records.item]
weight = "int?"
"""

SCHEMA = Schema.from_texts([
    (str(BASE_SCHEMA_PATH), BASE_SCHEMA_PATH.read_text(encoding="utf-8")),
    ("tests/dsl/strategies.py:TEST_SCHEMA_TOML", TEST_SCHEMA_TOML),
])


@st.composite
def window_sums(draw: Callable[[Any], Any], policy_set: dsl.PolicySet, customer: dict[str, Any],
                event: dict[str, Any]) -> dict[Any, int | Decimal] | None:
    """A state for ``policy_set.evaluate``: a sum for every window the event reads (a whole
    number for a ``count`` counter), or None (every window reads 0)."""
    windows = policy_set.windows(customer, event)
    if not windows or draw(st.integers(0, 3)) == 0:
        return None
    kinds = {name: kind for p in policy_set.compiled for name, kind, _ in p.counters}
    whole = st.one_of(st.integers(0, 12), st.integers(-3, 10**6), st.just(10**17))
    exact = st.one_of(whole, st.decimals(min_value=-100, max_value=10**6, places=2),
                      st.sampled_from([Decimal("1499.99"), Decimal("0.000000001")]))
    return {w: draw(whole if kinds.get(w.counter) == "count" else exact) for w in windows}

#: Event kinds the policy generator writes for.
KINDS = ("purchase", "flight", "visit", "appointment")

#: Checker errors a generated policy may still earn: conditions the checker proves false.
UNAVOIDABLE = frozenset({"never_fires", "unreachable_row"})
#: Checker errors for what a policy could compute past the language's bounds (numbers, text,
#: steps, the calendar, durations): the property tests skip generated policies refused for them.
SIZE_CODES = frozenset({"number_too_large", "text_too_long", "too_costly", "date_out_of_range",
                        "duration_too_long"})

#: The periods generated counters read (calendar in the programme's zone, rolling, ever).
PERIODS = ("per day", "per calendar week", "per month", "per quarter", "per year",
           "per rolling 7 days", "per rolling 1 hour", "per rolling 26 weeks", "ever")

#: Currency -> decimals, as the test schema declares them.
CURRENCIES = {"miles": 0, "points": 0, "credit": 2}
ROUNDINGS = ("down", "up", "half even", "half up")

ENUMS: dict[str, tuple[str, ...]] = {
    "tier": ("SILVER", "GOLD", "PLATINUM"),
    "segment": ("alpha", "beta", "gamma"),
    "cabin": ("economy", "premium_economy", "business", "first"),
    "channel": ("store", "online", "app"),
}

#: Strings shared by policy literals and input values, so that comparisons sometimes hold.
STRINGS = ("", "gold", "fresh", "garden", "JFK", "a b", 'say "hi"', "back\\slash", "two\nlines",
           "{braces}", "x' or '1", "été", "tab\there")

AIRPORTS = ("JFK", "LHR", "SYD", "SIN", "LAX", "NRT")

#: Time zones for literals and inputs: with and without summer time, a half-hour offset, a
#: half-hour summer time shift (Lord Howe), and one east of the date line.
TIME_ZONES = ("UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
              "Pacific/Auckland")

SPECIAL_DATES = (date(2024, 2, 29), date(2000, 2, 29), date(1900, 2, 28), date(2023, 2, 28),
                 date(2024, 3, 1), date(2026, 1, 1), date(1, 1, 1), date(9999, 12, 31))

#: Large whole-number literals, up to the longest the language accepts (30 digits).
BIG_INT_LITERALS = (10**9, 2**31, 2**63 + 1, 10**18 + 1, 10**MAX_DIGITS - 1, -(10**25),
                    123456789012345678901234567891)

#: The largest magnitude of an input number: inputs have at most 18 digits.
MAX_INPUT = 10**MAX_INPUT_DIGITS - 1

#: Large whole-number inputs, up to the schema's bound on both sides (2**53 + 1 is the
#: first whole number a binary float cannot hold).
BIG_INTS = (10**9, 2**31, 2**53 + 1, 10**17 + 7, MAX_INPUT, -MAX_INPUT, -(10**15))

# -- rendering literals ------------------------------------------------------------------------


def dsl_string(text: str) -> str:
    """``text`` as a policy-language string literal (the grammar's escapes: \\\\ \\" \\n \\t)."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{body}"'


def dsl_decimal(value: Decimal) -> str:
    """A decimal literal (always with a point, never an exponent); negative ones with a minus."""
    text = format(value, "f")
    if "." not in text:
        text += ".0"
    return text


# Strategies built once: the writer draws hundreds of values per policy.
_integers = cache(st.integers)
_INT_LITERALS = st.one_of(st.integers(0, 12), st.integers(-1000, 100_000),
                          st.sampled_from(BIG_INT_LITERALS))
_DECIMAL_LITERALS = st.decimals(min_value=-1000, max_value=1000, places=2)
_DATE_LITERALS = st.one_of(st.sampled_from(SPECIAL_DATES[:6]),
                           st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)))
_MONTHS_COUNTS = st.one_of(st.integers(0, 40), st.sampled_from([1, 11, 12, 13, 1200, 9000]))
_DURATION_COUNTS = st.one_of(st.integers(0, 100), st.sampled_from([1, 1000, 600_000]))

# -- types of the generator --------------------------------------------------------------------
# Types are short strings: int, dec, bool, str, date, datetime, duration, enum:<name>,
# list:<elem> and item (a purchase item record). A trailing "?" marks an optional value.

INT, DEC, BOOL, STR, DATE, DT, DUR = "int", "dec", "bool", "str", "date", "datetime", "duration"
SCALARS = (INT, DEC, BOOL, STR, DATE, DT, DUR)
NUMERIC = (INT, DEC)
ORDERED = (INT, DEC, DATE, DT, DUR)

#: (path, type) of what every policy may read; "?" marks an optional field.
COMMON_FIELDS = (
    ("customer.lifetime.miles", INT), ("customer.lifetime.flights", INT),
    ("customer.lifetime.visits", INT), ("customer.lifetime.donation_years", INT),
    ("customer.lifetime.spend", DEC), ("customer.lifetime.donations", DEC),
    ("customer.id", STR), ("event.id", STR),
    ("customer.member_since", DATE), ("event.date", DATE), ("event.time", DT),
    ("customer.score", INT + "?"), ("customer.balance", DEC + "?"), ("customer.nickname", STR + "?"),
    ("customer.birthday", DATE + "?"), ("customer.patience", DUR + "?"),
    ("customer.last_visit", DT + "?"), ("customer.tier", "enum:tier?"),
    ("customer.segment", "enum:segment?"),
)

KIND_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "flight": (("event.distance_miles", INT + "?"), ("event.fare", DEC), ("event.currency", STR),
               ("event.origin", STR), ("event.destination", STR), ("event.cabin", "enum:cabin"),
               ("event.partner", BOOL), ("event.carrier", STR + "?")),
    "purchase": (("event.amount", DEC), ("event.currency", STR), ("event.channel", "enum:channel"),
                 ("event.store", STR + "?"), ("event.discount", DEC + "?"),
                 ("event.coupon_until", DATE + "?")),
    "visit": (("event.venue", STR + "?"), ("event.party_size", INT), ("event.spend", DEC)),
    "appointment": (("event.service", STR), ("event.scheduled_at", DT), ("event.arrived_at", DT + "?")),
}

ITEM_FIELDS = (("sku", STR), ("category", STR), ("amount", DEC), ("quantity", INT), ("weight", INT + "?"))

BENEFITS: dict[str, tuple[tuple[str, str], ...]] = {
    "perk": (), "grace": (("period", DUR),), "voucher": (("value", DEC), ("note", STR)),
    "upgrade": (("cabin", STR), ("seats", INT)),
}


_SIGNED_NUMBER = re.compile(r"[(\s-]*[0-9][0-9_.]*%?[)\s]*")


#: The writer's types for the value kinds of the builtins' parameters and results.
_KIND_TYPES = {"int": INT, "decimal": DEC, "date": DATE, "datetime": DT, "duration": DUR}


def _fixed_calls() -> dict[str, dict[str, list[tuple[str, ...]]]]:
    """Calls of the table's fixed-signature builtins the writer can make: by result type,
    by builtin, the argument types (every arity, every accepted kind the writer has)."""
    kinds = {t: k for k, t in _KIND_TYPES.items()}
    calls: dict[str, dict[str, list[tuple[str, ...]]]] = {}
    for b in BUILTINS.values():
        if b.rule is not None:
            continue
        for count in range(b.min_args, b.max_args + 1):
            options = [[_KIND_TYPES[k] for k in p.kinds if k in _KIND_TYPES] for p in b.params[:count]]
            for args in itertools.product(*options):
                result = b.result_type([Type(kinds[a]) for a in args])
                if result.kind in _KIND_TYPES:
                    calls.setdefault(_KIND_TYPES[result.kind], {}).setdefault(b.name, []).append(args)
    return calls


#: Fixed-signature builtins, read from the table (``PolicyWriter.builtin_call``).
FIXED_CALLS = _fixed_calls()
#: Builtins with a generic type rule: the writer has its own generators for these
#: (min_max, list_call, distance_miles on flights, and local).
GENERIC_CALLS = ("min", "max", "sum", "count", "distance_miles", "local")


def generated_builtins() -> set[str]:
    """The names of every builtin the writer can call."""
    return {name for calls in FIXED_CALLS.values() for name in calls} | set(GENERIC_CALLS)


def _required(t: str) -> str:
    return t[:-1] if t.endswith("?") else t


@dataclass
class _Binding:
    name: str
    type: str  # may end in "?"


class PolicyWriter:
    """Writes the text of valid policies, drawing every choice from Hypothesis.

    Choices are ordered simplest first, so that shrinking leads to small policies.
    """

    def __init__(self, draw: Callable[[Any], Any], kind: str) -> None:
        self.draw = draw
        self.kind = kind
        self.fields = COMMON_FIELDS + KIND_FIELDS[kind]
        self.scope: list[_Binding] = []
        self.locals: list[_Binding] = []
        self.counter = 0
        self.rule_names = 0
        #: The currencies the rule being written awards (its texts may name them).
        self.awarded: list[str] = []
        #: (name, "count" or "sum") of the counters the current policy declares.
        self.counters: list[tuple[str, str]] = []

    # -- drawing helpers ---------------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def pick(self, options: Any) -> Any:
        options = list(options)
        return options[self.number(0, len(options) - 1)]

    def number(self, lo: int, hi: int) -> int:
        return self.draw(_integers(lo, hi))

    def choose(self, options: list[tuple[int, Callable[[], T]]]) -> T:
        """Run one of weighted alternatives (the first is where shrinking goes)."""
        options = [(w, f) for w, f in options if w > 0]
        total = sum(w for w, _ in options)
        x = self.number(0, total - 1)
        for w, f in options:
            if x < w:
                return f()
            x -= w
        raise AssertionError("unreachable")

    # -- literals ------------------------------------------------------------------------------

    def int_literal(self) -> str:
        value = self.draw(_INT_LITERALS)
        if value >= 1000 and self.number(0, 3) == 0:
            return f"{value:_}"  # underscores are allowed between digits
        return str(value)

    def dec_literal(self) -> str:
        return self.choose([
            (4, lambda: dsl_decimal(self.draw(_DECIMAL_LITERALS))),
            (3, lambda: f"{self.number(0, 200)}{self.pick(['', '.5', '.25', '.125'])}%"),
            (2, lambda: self.pick(["0.5", "0.005", "2.5", "1.25", "0.1", "1.0", "0.00"])),
            (1, lambda: self.pick(  # 30 digits each: the most a literal may have
                ["0." + "3" * (MAX_DIGITS - 1), "12345678901234567890123456789.5"])),
        ])

    def date_literal(self) -> str:
        d = self.draw(_DATE_LITERALS)
        return d.isoformat()

    def datetime_literal(self) -> str:
        d = self.date_literal()
        hh, mm = self.number(0, 23), self.number(0, 59)
        zone = self.pick(["Z", "+00:00", "+05:30", "-08:00"])
        secs = self.pick(["", ":00", ":59"])
        return f"{d}T{hh:02d}:{mm:02d}{secs}{zone}"

    def duration_literal(self) -> str:
        count = self.draw(_DURATION_COUNTS)
        unit = self.pick(["minute", "hour", "day", "week"])
        return f"{count} {unit}{'' if count == 1 and self.number(0, 1) else 's'}"

    def months_literal(self) -> str:
        """A calendar span: months, quarters or years, sometimes long enough to leave the calendar."""
        count = self.draw(_MONTHS_COUNTS)
        unit = self.pick(["month", "quarter", "year"])
        return f"{count} {unit}{'' if count == 1 else 's'}"

    def string_literal(self) -> str:
        return dsl_string(self.pick(STRINGS))

    def literal(self, t: str) -> str:
        if t.startswith("enum:"):
            return dsl_string(self.pick(ENUMS[t[5:]]))
        return {
            INT: self.int_literal, DEC: self.dec_literal, STR: self.string_literal,
            DATE: self.date_literal, DT: self.datetime_literal, DUR: self.duration_literal,
            BOOL: lambda: self.pick(["true", "false"]),
        }[t]()

    # -- leaves -------------------------------------------------------------------------------

    def readable(self) -> list[tuple[str, str]]:
        """(text, type) of every field, binding and list item in scope."""
        out = list(self.fields) + [(b.name, b.type) for b in self.scope]
        out += [(f"history.{name}", INT if kind == "count" else DEC) for name, kind in self.counters]
        for b in self.locals:
            if b.type == "item":
                out.extend((f"{b.name}.{f}", t) for f, t in ITEM_FIELDS)
            else:
                out.append((b.name, b.type))
        return out

    def leaf(self, t: str) -> str:
        """A literal, a field or a binding of type ``t`` (optional ones with a default)."""
        if t == BOOL:
            return self.bool_leaf()
        exact = [text for text, ft in self.readable() if ft == t]
        optional = [text for text, ft in self.readable() if ft == t + "?"]
        options: list[tuple[int, Callable[[], str]]] = []
        if not t.startswith("enum:") or not optional:
            options.append((3, lambda: self.literal(t)))
        if exact:
            options.append((6, lambda: self.pick(exact)))
        if optional:
            options.append((3, lambda: f"({self.pick(optional)} otherwise {self.literal(t)})"))
        return self.choose(options)

    def bool_leaf(self) -> str:
        """A condition without nested operators; rarely a constant, which the checker may refuse."""
        exact = [text for text, ft in self.readable() if ft == BOOL]
        optional = [text for text, ft in self.readable() if ft.endswith("?")]
        ordered = [(text, ft) for text, ft in self.readable() if ft in ORDERED]

        def compare() -> str:
            text, ft = self.pick(ordered)
            op = self.pick(["==", "!=", "<", "<=", ">", ">="])
            other = self.literal(self.pick(NUMERIC) if ft in NUMERIC else ft)
            return f"({text} {op} {other})" if self.number(0, 3) else f"({other} {op} {text})"

        return self.choose([
            (4, compare),
            (3 if exact else 0, lambda: self.pick(exact)),
            (2, lambda: f"({self.pick(optional)} is {self.pick(['missing', 'present'])})"),
            (1, lambda: self.pick(["true", "false"])),
        ])

    # -- expressions ---------------------------------------------------------------------------

    def expr(self, t: str, depth: int) -> str:
        """An expression of type ``t`` (never optional), at most ``depth`` operators deep."""
        if depth <= 0 or self.number(0, 2) == 0:
            return self.leaf(t)
        d = depth - 1
        if t == INT:
            return self.int_expr(d)
        if t == DEC:
            return self.dec_expr(d)
        if t == BOOL:
            return self.bool_expr(d)
        if t == STR:
            return self.choose([
                (3, lambda: f"({self.expr(STR, d)} + {self.expr(self.pick([STR, self.some_enum()]), d)})"),
                (2, lambda: self.if_expr(STR, d)),
                (1, lambda: f"({self.optional_of(STR)} otherwise {self.expr(STR, d)})"),
            ])
        if t.startswith("enum:"):
            return self.if_expr(t, d)
        if t == DATE:
            return self.choose([
                (3, lambda: f"({self.expr(DATE, d)} {self.pick(['+', '-'])} {self.expr(DUR, d)})"),
                (2, lambda: f"({self.expr(DATE, d)} {self.pick(['+', '-'])} {self.months_literal()})"),
                (1, lambda: f"({self.months_literal()} + {self.expr(DATE, d)})"),
                (1, lambda: f"({self.expr(DUR, d)} + {self.expr(DATE, d)})"),
                (2, lambda: self.builtin_call(DATE, d)),
                (1, lambda: f"{self.pick(['min', 'max'])}({self.expr(DATE, d)}, {self.expr(DATE, d)})"),
                (1, lambda: self.if_expr(DATE, d)),
            ])
        if t == DT:
            return self.choose([
                (3, lambda: f"({self.expr(DT, d)} {self.pick(['+', '-'])} {self.expr(DUR, d)})"),
                (1, lambda: f"({self.expr(DT, d)} {self.pick(['+', '-'])} {self.months_literal()})"),
                (2, lambda: self.local(d)),
                (1, lambda: f"{self.pick(['min', 'max'])}({self.expr(DT, d)}, {self.expr(DT, d)})"),
                (1, lambda: self.if_expr(DT, d)),
            ])
        if t == DUR:
            return self.choose([
                (3, lambda: f"({self.expr(DUR, d)} {self.pick(['+', '-'])} {self.expr(DUR, d)})"),
                (2, lambda: f"({self.expr(DATE, d)} - {self.expr(DATE, d)})"),
                (1, lambda: f"({self.expr(DT, d)} - {self.expr(DT, d)})"),
                (2, lambda: f"({self.expr(DUR, d)} {self.pick(['*', 'of'])} {self.small_int(d)})"),
                (1, lambda: f"({self.small_int(d)} * {self.expr(DUR, d)})"),
                (1, lambda: f"(- {self.expr(DUR, d)})"),
                (1, lambda: self.builtin_call(DUR, d)),
                (1, lambda: f"{self.pick(['min', 'max'])}({self.expr(DUR, d)}, {self.expr(DUR, d)})"),
                (1, lambda: self.if_expr(DUR, d)),
            ])
        raise AssertionError(t)

    def local(self, d: int) -> str:
        """``local(t, zone)``: a literal zone name, or the test schema's ``customer.zone``."""
        zone = self.choose([(2, lambda: dsl_string(self.pick(TIME_ZONES))), (1, lambda: "customer.zone")])
        return f"local({self.expr(DT, d)}, {zone})"

    def between(self, d: int) -> str:
        """``t between HH:MM and HH:MM``: two different times, sometimes across midnight."""
        start = self.pick([0, 60, 90, 120, 900, 1080, 1320, 1439])
        end = self.pick([m for m in (0, 60, 120, 180, 900, 1080, 1439) if m != start])
        return (f"({self.expr(DT, d)} between {start // 60:02d}:{start % 60:02d} "
                f"and {end // 60:02d}:{end % 60:02d})")

    def variable(self, t: str, d: int) -> str:
        """An expression of type ``t`` that is not a literal (so no condition on it is constant)."""
        exact = [text for text, ft in self.readable() if ft == t]
        optional = [text for text, ft in self.readable() if ft == t + "?"]
        return self.choose([
            (4 if exact else 0, lambda: self.pick(exact)),
            (2 if optional else 0, lambda: f"({self.pick(optional)} otherwise {self.literal(t)})"),
            (1 if d > 0 or not (exact or optional) else 0, lambda: self.expr(t, max(d, 1))),
        ])

    def either_of(self, t: str, d: int) -> str:
        """Something of type ``t`` or ``t?``."""
        return self.choose([(1, lambda: self.optional_of(t, d)), (1, lambda: self.expr(t, d))])

    def some_enum(self) -> str:
        known = {ft for _, ft in self.readable() if ft.startswith("enum:")}
        return self.pick(sorted({_required(x) for x in known}))

    def optional_of(self, t: str, d: int = 1) -> str:
        """Something of type ``t?``; a literal when nothing optional of that type is in scope."""
        optional = [text for text, ft in self.readable() if ft == t + "?"]
        if not optional:
            return self.literal(t)
        return self.choose([
            (6, lambda: self.pick(optional)),
            # Compound optional values: the generated code must not compute them twice
            # in the wrong place (a walrus in a comprehension's iterable is a SyntaxError).
            (1 if d > 0 else 0, lambda: f"(if {self.expr(BOOL, d - 1)} then {self.optional_of(t, d - 1)} "
                                        f"else {self.either_of(t, d - 1)})"),
            (1 if d > 0 else 0, lambda: f"({self.pick(optional)} otherwise {self.optional_of(t, d - 1)})"),
        ])

    def small_int(self, d: int) -> str:
        return self.choose([(3, lambda: str(self.number(-3, 9))), (1, lambda: self.expr(INT, d))])

    def if_expr(self, t: str, d: int, other: str | None = None) -> str:
        a, b = (t, other or t) if self.number(0, 1) else (other or t, t)
        return f"(if {self.expr(BOOL, d)} then {self.expr(a, d)} else {self.expr(b, d)})"

    def numeric_pair(self, want: str) -> tuple[str, str]:
        """Operand types whose +, - or * gives ``want`` (int: both int; dec: at least one dec)."""
        if want == INT:
            return INT, INT
        return self.pick([(DEC, DEC), (DEC, INT), (INT, DEC)])

    def date_like(self) -> str:
        return self.pick([DATE, DT])

    def int_expr(self, d: int) -> str:
        options: list[tuple[int, Callable[[], str]]] = [
            (6, lambda: f"({self.expr(INT, d)} {self.pick(['+', '-', '*', 'of'])} {self.expr(INT, d)})"),
            # A remainder: its divisor is often a small literal (every 10th visit), and may be zero
            # or negative (a fault, or the divisor's sign, on both evaluators alike).
            (2, lambda: f"({self.expr(INT, d)} % {self.small_int(d)})"),
            # Whole-number division, floored as `%` is (its divisor may be zero or negative too).
            (2, lambda: f"({self.expr(INT, d)} div {self.small_int(d)})"),
            (1, lambda: f"(- {self.expr(INT, d)})"),
            (10, lambda: self.builtin_call(INT, d)),
            (2, lambda: f"{self.pick(['min', 'max'])}({self.expr(INT, d)}, {self.expr(INT, d)})"),
            (1, lambda: f"max({self.expr(INT, d)}, {self.expr(INT, d)}, {self.expr(INT, d)})"),
            (1, lambda: self.list_call(INT, d)),
            (2, lambda: self.if_expr(INT, d)),
            (2, lambda: self.aggregate(INT, d)),
            (1, lambda: f"({self.optional_of(INT)} otherwise {self.expr(INT, d)})"),
        ]
        if self.kind == "flight":
            options.append((1, lambda: "distance_miles(event.origin, event.destination)"))
        return self.choose(options)

    def dec_expr(self, d: int) -> str:
        def arith() -> str:
            a, b = self.numeric_pair(DEC)
            return f"({self.expr(a, d)} {self.pick(['+', '-', '*', 'of'])} {self.expr(b, d)})"

        def remainder() -> str:
            if self.number(0, 1):
                return f"({self.expr(DEC, d)} % {self.small_int(d)})"
            a, b = self.numeric_pair(DEC)
            return f"({self.expr(a, d)} % {self.expr(b, d)})"

        return self.choose([
            (6, arith),
            (3, lambda: f"({self.expr(self.pick(NUMERIC), d)} / {self.expr(self.pick(NUMERIC), d)})"),
            (2, remainder),
            (1, lambda: f"(- {self.expr(DEC, d)})"),
            (3, lambda: self.builtin_call(DEC, d)),
            (2, lambda: self.min_max(DEC, d)),
            (1, lambda: self.list_call(DEC, d)),
            (2, lambda: self.if_expr(DEC, d, self.pick(NUMERIC))),
            (2, lambda: self.aggregate(DEC, d)),
            (1, lambda: f"({self.optional_of(DEC)} otherwise {self.expr(DEC, d)})"),
        ])

    def builtin_call(self, t: str, d: int) -> str:
        """A call of a fixed-signature builtin giving ``t``, picked from the table."""
        calls = FIXED_CALLS[t]
        name = self.pick(calls)
        args = self.pick(calls[name])
        params = BUILTINS[name].params
        texts = [self.places(d) if p.name == "places" else self.expr(a, d)
                 for p, a in zip(params, args, strict=False)]
        return f"{name}({', '.join(texts)})"

    def list_call(self, t: str, d: int) -> str:
        """``sum``, ``min`` or ``max`` of a list literal of ``t``, or (an int) ``count`` of a list."""
        if t == INT and self.number(0, 2) == 0:
            return f"count({self.list_source(d)[0]})"
        items = [self.expr(t, d) for _ in range(self.number(1, 3))]
        return f"{self.pick(['sum', 'min', 'max'])}([{', '.join(items)}])"

    def min_max(self, t: str, d: int) -> str:
        a, b = self.numeric_pair(t)
        return f"{self.pick(['min', 'max'])}({self.expr(a, d)}, {self.expr(b, d)})"

    def places(self, d: int) -> str:
        return self.choose([(4, lambda: str(self.number(0, 4))), (1, lambda: str(self.number(0, 14))),
                            (1, lambda: self.expr(INT, d))])

    def bool_expr(self, d: int) -> str:
        def compare_ordered() -> str:
            t = self.pick(ORDERED)
            if t in NUMERIC:
                a, b = self.pick(NUMERIC), self.pick(NUMERIC)
            else:
                a = b = t
            op = self.pick(["==", "!=", "<", "<=", ">", ">="])
            left, right = self.variable(a, d), self.expr(b, d)
            return f"({left} {op} {right})" if self.number(0, 3) else f"({right} {op} {left})"

        def compare_equal() -> str:
            t = self.pick([STR, BOOL, self.some_enum()])
            op = self.pick(["==", "!="])
            if t.startswith("enum:"):
                return f"({self.expr(t, d)} {op} {self.literal(t)})"
            return f"({self.variable(t, d)} {op} {self.expr(t, d)})"

        def compare_optional() -> str:
            t = self.pick([x for x in (INT, DEC, STR, DATE, DT, DUR, "enum:tier", "enum:segment")])
            left = self.optional_of(t)
            right = self.literal(t) if t.startswith("enum:") else self.expr(t, d)
            return f"({left} {self.pick(['==', '!='])} {right})"

        def compare_rank() -> str:
            # Tiers are ordered (lowest first): `<` and its kin compare by rank, not as text.
            tiers = ENUMS["tier"]
            left = f'(customer.tier otherwise {dsl_string(self.pick(tiers))})'
            right = self.choose([(3, lambda: dsl_string(self.pick(tiers))),
                                 (1, lambda: f'(customer.tier otherwise {dsl_string(self.pick(tiers))})')])
            op = self.pick(["<", "<=", ">", ">="])
            return f"({left} {op} {right})" if self.number(0, 3) else f"({right} {op} {left})"

        def presence() -> str:
            t = self.pick([INT, DEC, STR, DATE, DT, DUR])
            return f"({self.optional_of(t, d)} is {self.pick(['missing', 'present'])})"

        def membership() -> str:
            t = self.pick([INT, DEC, STR, DATE, self.some_enum()])
            word = self.pick(["in", "not in"])
            lists = [b.name for b in self.scope if b.type in (f"list:{t}", f"list:{t}?")]
            left = self.choose([(3, lambda: self.expr(t, d)), (1, lambda: self.optional_of(t))])
            if lists and self.number(0, 1):
                return f"({left} {word} {self.pick(lists)})"
            items = [self.literal(t) if t.startswith("enum:") else self.expr(t, d)
                     for _ in range(self.number(0, 3))]
            if t in NUMERIC and items:
                items.append(self.expr(self.pick(NUMERIC), d))
            return f"({left} {word} [{', '.join(items)}])"

        options: list[tuple[int, Callable[[], str]]] = [
            (8, compare_ordered),
            (4, compare_equal),
            (2, compare_optional),
            (2, compare_rank),
            (2, presence),
            (3, membership),
            (3, lambda: f"({self.expr(BOOL, d)} {self.pick(['and', 'or'])} {self.expr(BOOL, d)})"),
            (1, lambda: f"(not {self.expr(BOOL, d)})"),
            (2, lambda: self.aggregate(BOOL, d)),
            (1, lambda: self.if_expr(BOOL, d)),
            (2, lambda: self.between(d)),
        ]
        return self.choose(options)

    def condition(self) -> str:
        """A rule or decision-row condition; never a bare `true` or `false`, which the checker
        rightly refuses or which would hide the rules after it."""
        text = self.expr(BOOL, self.number(1, 2))
        if text in ("true", "false"):
            return f"({self.variable(INT, 0)} > {self.int_literal()})"
        return text

    # -- lists and aggregates ------------------------------------------------------------------

    def list_source(self, d: int) -> tuple[str, str]:
        """(text, element type) of a list to aggregate over."""
        options: list[tuple[int, Callable[[], tuple[str, str]]]] = []
        if self.kind == "purchase":
            options.append((4, lambda: ("event.items", "item")))
        lists = [b for b in self.scope if b.type.startswith("list:")]
        if lists:
            options.append((2, lambda: (lambda b: (b.name, b.type[5:]))(self.pick(lists))))

        def literal_list() -> tuple[str, str]:
            t = self.pick([INT, DEC, DATE, DUR, STR])
            items = [self.expr(t, d) for _ in range(self.number(1, 4))]
            return f"[{', '.join(items)}]", t

        options.append((3, literal_list))
        return self.choose(options)

    def aggregate(self, t: str, d: int) -> str:
        """``func(body for x in list where cond)`` giving type ``t``."""
        source, elem = self.list_source(d)
        if elem.endswith("?"):
            elem = _required(elem)
        var = self.fresh("i")
        self.locals.append(_Binding(var, elem))
        try:
            where = f" where {self.expr(BOOL, d)}" if self.number(0, 2) == 0 else ""
            if t == BOOL:
                func, body = self.pick(["any", "all"]), self.expr(BOOL, d)
            elif t == INT:
                func = self.pick(["count", "sum", "min", "max"])
                body = self.expr(self.pick(SCALARS) if func == "count" else INT, d)
            else:
                func, body = self.pick(["sum", "min", "max"]), self.expr(DEC, d)
        finally:
            self.locals.pop()
        return f"{func}({body} for {var} in {source}{where})"

    # -- members --------------------------------------------------------------------------------

    def let(self) -> str:
        t = self.pick([INT, DEC, BOOL, STR, DATE, DUR, DT])
        name = self.fresh("v")
        text = f"let {name} = {self.expr(t, self.number(0, 2))}"
        self.scope.append(_Binding(name, t))
        return text

    def table_keys(self, t: str) -> list[str]:
        """Distinct literal keys for a table keyed by type ``t``."""
        if t == BOOL:
            return self.draw(st.lists(st.sampled_from(["true", "false"]), min_size=1, max_size=2,
                                      unique=True))
        if t.startswith("enum:"):
            return [dsl_string(v) for v in self.draw(st.lists(st.sampled_from(ENUMS[t[5:]]), min_size=1,
                                                              max_size=3, unique=True))]
        if t == STR:
            return [dsl_string(v) for v in self.draw(st.lists(st.sampled_from(STRINGS), min_size=1,
                                                              max_size=3, unique=True))]
        if t == DATE:
            return [d.isoformat() for d in self.draw(st.lists(st.sampled_from(SPECIAL_DATES[:6]), min_size=1,
                                                              max_size=3, unique=True))]
        values = self.draw(st.lists(st.one_of(st.integers(-3, 12), st.sampled_from(
            [Decimal("0.5"), Decimal("2.50"), Decimal("-1.5"), Decimal("100")])),
            min_size=1, max_size=3, unique_by=lambda v: Decimal(v)))
        return [dsl_decimal(v) if isinstance(v, Decimal) else str(v) for v in values]

    def table(self) -> list[str]:
        name = self.fresh("t")
        key_t = self.pick([INT, STR, "enum:tier", DEC, BOOL, DATE, "enum:segment"])
        simple = [text for text, ft in self.readable() if _required(ft) == key_t]
        key = self.pick(simple) if simple and self.number(0, 1) else self.expr(key_t, self.number(0, 2))
        value_t = self.pick([DEC, INT, STR, DATE, DUR, BOOL])
        literal_values = self.number(0, 1) == 1
        keys = self.table_keys(key_t)
        # Split the distinct keys into rows of one or more keys each.
        rows: list[list[str]] = []
        for k in keys:
            if rows and self.number(0, 2) == 0:
                rows[-1].append(k)
            else:
                rows.append([k])

        def value() -> str:
            t = self.pick([DEC, INT]) if value_t == DEC else value_t
            return self.literal(t) if literal_values else self.expr(t, self.number(0, 2))

        lines = [f"table {name} by {key}:"]
        lines += [f"  {', '.join(r)} -> {value()}" for r in rows]
        has_else = self.number(0, 3) > 0
        if has_else:
            lines.append(f"  else -> {value()}")
        self.scope.append(_Binding(name, value_t if has_else else value_t + "?"))
        return lines

    def decide(self) -> list[str]:
        name = self.fresh("d")
        hit = self.pick(["first", "collect"])
        value_t = self.pick([INT, DEC, STR, DATE])

        optional = False

        def value() -> str:
            nonlocal optional
            if hit == "first" and self.number(0, 3) == 0:  # a collected list holds no missing value
                optional = True
                return self.optional_of(value_t)
            return self.expr(value_t, self.number(0, 2))

        lines = [f"decide {name} {hit}:"]
        lines += [f"  when {self.condition()} -> {value()}"
                  for _ in range(self.number(1, 3))]
        has_else = self.number(0, 2) > 0
        if has_else:
            lines.append(f"  else -> {self.expr(value_t, self.number(0, 2))}")
        if hit == "collect":
            self.scope.append(_Binding(name, f"list:{value_t}"))
        else:
            self.scope.append(_Binding(name, value_t + "?" if optional or not has_else else value_t))
        return lines

    # -- rules ----------------------------------------------------------------------------------

    def amount(self, currency: str, rounding: dict[str, str | None]) -> str:
        t = INT if rounding[currency] is None else self.pick([INT, DEC])
        if t == DEC and self.number(0, 2) == 0:
            # Constant ratio times a whole number: the code generator's exact integer path.
            ratios = [b.name for b in self.scope if b.type == DEC] + [self.dec_literal()]
            ratio = self.pick(ratios)
            op = self.pick(["of", "*"])
            whole = self.expr(INT, self.number(0, 2))
            return f"{ratio} {op} {whole}" if self.number(0, 1) else f"{whole} * {ratio}"
        return self.expr(t, self.number(0, 2))

    def effect(self, rounding: dict[str, str | None], must_award: str | None = None) -> str:
        def award(currency: str) -> str:
            self.awarded.append(currency)
            text = f"award {self.amount(currency, rounding)} {currency}"
            if self.number(0, 2) == 0:
                t = INT if rounding[currency] is None else self.pick(NUMERIC)
                text += f" up to {self.expr(t, self.number(0, 2))}"
            return text

        if must_award is not None:
            return award(must_award)

        def grant() -> str:
            benefit = self.pick(sorted(BENEFITS))
            params = [f"{p} = {self.expr(INT if t == DEC and self.number(0, 2) == 0 else t, 1)}"
                      for p, t in BENEFITS[benefit]]
            params = self.draw(st.permutations(params)) if params else []
            return f"grant {dsl_string(benefit)}" + (f" with {', '.join(params)}" if params else "")

        def count() -> str:
            name, kind = self.pick(self.counters)
            amount = "" if self.number(0, 2) == 0 else \
                self.expr(INT if kind == "count" else self.pick(NUMERIC), self.number(0, 2)) + " "
            text = f"count {amount}toward {name}"
            if self.number(0, 1):
                text += f" up to {self.expr(self.pick(NUMERIC), self.number(0, 2))}"
            return text

        return self.choose([
            (6, lambda: award(self.pick(sorted(CURRENCIES)))),
            *([(3, count)] if self.counters else []),
            (2, grant),
            (2, lambda: f"qualify for {dsl_string(self.pick(ENUMS['tier']))}"),
            (2, lambda: f"tag {dsl_string(self.pick([s for s in STRINGS if s]))}"),
        ])

    def rule(self, rounding: dict[str, str | None], *, conditional: bool | None = None,
             must_award: str | None = None) -> list[str]:
        self.rule_names += 1
        name = f"r{self.rule_names}"
        if conditional is None:
            conditional = self.number(0, 3) > 0
        head = f"rule {name}"
        if conditional:
            head += f" when {self.condition()}"
        self.awarded = []
        effects = [self.effect(rounding, must_award)]
        effects += [self.effect(rounding) for _ in range(self.number(0, 2))]
        effects += self.texts()
        if len(effects) == 1 and self.number(0, 1):
            return [f"{head}: {effects[0]}"]
        return [f"{head}:"] + [f"  {e}" for e in effects]

    def texts(self) -> list[str]:
        """None, or up to three `says` lines (in distinct languages) whose placeholders name
        what the rule awards, bindings, counters and fields; literal parts with braces and
        quotes."""
        names = sorted(set(self.awarded)) + [b.name for b in self.scope]
        names += [text for text, _ in self.fields]
        names += [f"history.{name}" for name, _ in self.counters]
        out = []
        for language in ["", "fr", "pt_BR"][:self.number(0, 3)]:
            parts = []
            for _ in range(self.number(0, 3)):
                parts.append(self.pick(["", "+", " for ", " {{x}} ", '\\"q\\" ', "é "]))
                parts.append("{" + self.pick(names) + "}")
            parts.append(self.pick(["", " thanks", " }}"]))
            out.append(f'says {language + " " if language else ""}"{"".join(parts)}"')
        return out

    def group(self, rounding: dict[str, str | None]) -> list[str]:
        name = self.fresh("g")
        mode = self.pick(["first", "best"])
        currency = self.pick(sorted(CURRENCIES)) if mode == "best" else None
        count = self.number(1, 3)
        lines = [f"group {name} takes {mode}{' ' + currency if currency else ''}:"]
        for i in range(count):
            # Only the last rule of a `takes first` group may apply always: the checker
            # rightly refuses rules after one that always applies.
            conditional = True if mode == "first" and i < count - 1 else None
            rule = self.rule(rounding, conditional=conditional,
                             must_award=currency if i == 0 else None)
            lines += [f"  {line}" for line in rule]
        return lines

    def cap_amount(self) -> str:
        """A cap: a number of zero or more, or an expression, which may still be negative at run
        time (and then caps at zero)."""
        t = self.pick([INT, DEC])
        text = self.choose([(2, lambda: self.literal(t)), (1, lambda: self.expr(t, 2))])
        # A negative number (`-5`, or `(- (- -5))`: the parser folds minus signs into the
        # literal) is the checker's bad_cap; negating it once more gives its magnitude.
        if _SIGNED_NUMBER.fullmatch(text) and text.count("-") % 2:
            text = f"(- {text})"
        return text

    def policy(self, name: str) -> str:
        self.scope = []
        lines = [f"policy {name}"]
        if self.number(0, 2) == 0:
            lines.append(f"  version {self.number(1, 99)}")
        lines.append(f"  on {self.kind}")
        if self.number(0, 2) == 0:
            lines.append(f"  {dsl_string(self.pick(STRINGS))}")
        if self.number(0, 5) == 0:
            lines.append(f"  effective from {self.pick(['1900-01-01', '2000-02-29'])}")
        lines.append("")
        rounding: dict[str, str | None] = {
            c: (self.pick(ROUNDINGS) if self.number(0, 3) > 0 else None) for c in sorted(CURRENCIES)
        }
        members: list[list[str]] = []
        # Counters first (the others may read them), each with a name of its own across the
        # policies of one text: two policies must not declare one name with two kinds.
        self.counters = []
        for _ in range(self.pick([0, 0, 1, 2])):
            name, kind = self.fresh("c"), self.pick(["count", "sum"])
            self.counters.append((name, kind))
            members.append([f"counter {name}: {kind} {self.pick(PERIODS)}"])
        for _ in range(self.number(1, 5)):
            what = self.pick(["rule", "let", "table", "decide", "group"])
            if what == "let":
                members.append([self.let()])
            elif what == "table":
                members.append(self.table())
            elif what == "decide":
                members.append(self.decide())
            elif what == "group":
                members.append(self.group(rounding))
            else:
                members.append(self.rule(rounding))
        if not any(m[0].startswith(("rule", "group")) for m in members):
            members.append(self.rule(rounding))
        for currency in sorted(CURRENCIES):
            if self.number(0, 3) == 0:
                members.append([f"cap {currency} at {self.cap_amount()}"])
        for currency, mode in rounding.items():
            if mode is not None:
                # The policy's total rounded once (the default), or each award on its own.
                each = " each award" if self.number(0, 1) else ""
                members.append([f"round {currency} {mode}{each}"])
        for m in members:
            lines += [f"  {line}" for line in m]
        return "\n".join(lines) + "\n"


@st.composite
def policy_sources(draw: Callable[[Any], Any], kind: str) -> str:
    """The text of one or two valid policies for events of ``kind``."""
    writer = PolicyWriter(draw, kind)
    count = draw(st.integers(1, 2))
    return "\n".join(writer.policy(f"p{i + 1}") for i in range(count))


# -- inputs --------------------------------------------------------------------------------------

_ZONES = (UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)))


def _ints(low: int | None, high: int | None = None) -> st.SearchStrategy[int]:
    if high is not None:  # the schema's most, and the values just below it
        least = -10**6 if low is None else low
        return st.one_of(st.integers(max(least, high - 3), high), st.integers(least, high))
    if low is not None:  # the schema's minimum, and the values just above it
        return st.one_of(st.integers(low, low + 3), st.integers(low, 10**6),
                         st.sampled_from([v for v in BIG_INTS if v >= low]))
    return st.one_of(st.integers(-3, 12), st.integers(-10**6, 10**6), st.sampled_from(BIG_INTS))


def _decimals(low: Decimal | None, high: Decimal | None = None) -> st.SearchStrategy[str]:
    largest = "9" * MAX_INPUT_DIGITS + "." + "9" * MAX_INPUT_DIGITS  # 18 digits either side
    pool = ["0", "0.00", "-0.5", "0.005", "2.5", "199.99", "1E+3", "-1000000.01",
            "123456789012345678.55", "1E+17", largest, "-" + largest,
            "0." + "0" * (MAX_INPUT_DIGITS - 1) + "1"]
    if low is not None:
        pool = [v for v in pool if Decimal(v) >= low] + [str(low)]
    if high is not None:
        pool = [v for v in pool if Decimal(v) <= high] + [str(high)]
    return st.one_of(st.sampled_from(pool),
                     st.decimals(min_value=-10**6 if low is None else low,
                                 max_value=10**6 if high is None else high, places=2).map(str))


def _dates() -> st.SearchStrategy[date]:
    return st.one_of(st.sampled_from(SPECIAL_DATES),
                     st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)))


def _datetimes() -> st.SearchStrategy[str]:
    moments = st.one_of(
        st.sampled_from([datetime(2024, 2, 29, 23, 30), datetime(2024, 2, 29, 0, 0),
                         datetime(2026, 1, 1, 0, 0), datetime(1999, 12, 31, 23, 59, 59)]),
        st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31)),
    )
    return st.builds(lambda m, z: m.replace(tzinfo=z).isoformat(), moments, st.sampled_from(_ZONES))


def _durations() -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(["15 minutes", "0 minutes", "2 days", "-3 hours", "1 week"]),
                     st.integers(-10**7, 10**7))


_RAW: dict[tuple[int, Type, Any, Any], st.SearchStrategy[Any]] = {}


def raw_value(schema: Schema, t: Type, minimum: int | Decimal | None = None,
              maximum: int | Decimal | None = None) -> st.SearchStrategy[Any]:
    """A loose input value of type ``t`` (numbers from ``minimum`` to ``maximum``), as a caller
    would send it."""
    key = (id(schema), t, minimum, maximum)
    if key not in _RAW:
        _RAW[key] = _raw_value(schema, t, minimum, maximum)
    return _RAW[key]


def _raw_value(schema: Schema, t: Type, minimum: Any, maximum: Any = None) -> st.SearchStrategy[Any]:
    kind = t.kind
    if kind == "int":
        return _ints(minimum, maximum)
    if kind == "decimal":
        return _decimals(None if minimum is None else Decimal(minimum),
                         None if maximum is None else Decimal(maximum))
    if kind == "bool":
        return st.booleans()
    if kind == "string":
        return st.sampled_from(STRINGS)
    if kind == "enum":
        return st.sampled_from(t.values)
    if kind == "airport":
        return st.sampled_from(AIRPORTS)
    if kind == "currency_code":
        return st.sampled_from(["USD", "EUR", "JPY", "GBP"])
    if kind == "timezone":
        return st.sampled_from(TIME_ZONES)
    if kind == "date":
        return _dates().map(date.isoformat)
    if kind == "datetime":
        return _datetimes()
    if kind == "duration":
        return _durations()
    if kind == "list":
        assert t.elem is not None
        return st.lists(raw_value(schema, t.elem), max_size=4)
    if kind == "record":
        return raw_record(schema, schema.records.get(t.name, {}))
    raise AssertionError(f"no inputs for {t}")


@st.composite
def raw_record(draw: Callable[[Any], Any], schema: Schema, fields: dict[str, Field]) -> dict[str, Any]:
    """A loose mapping for a record: optional and defaulted fields sometimes left out or null."""
    out: dict[str, Any] = {}
    for name, f in fields.items():
        if f.derived:
            continue
        may_omit = f.type.optional or f.has_default or f.type.kind == "record"
        choice = draw(_integers(0, 3)) if may_omit else 3
        if choice == 0:
            continue
        if choice == 1:
            out[name] = None
            continue
        out[name] = draw(raw_value(schema, f.type.required(), f.minimum, f.maximum))
    return out


def raw_customers(schema: Schema) -> st.SearchStrategy[dict[str, Any]]:
    """Loose customer mappings for the reference ``prepare_customer``."""
    return raw_record(schema, schema.customer)


def raw_events(schema: Schema, kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """Loose event mappings of ``kind`` for the reference ``prepare_event``."""
    fields = {k: f for k, f in {**schema.event_common, **schema.events[kind]}.items() if k != "kind"}
    return raw_record(schema, fields).map(lambda r: {**r, "kind": kind})


def decisions(policy_set: dsl.PolicySet, customer: dict[str, Any], event: dict[str, Any]
              ) -> list[dsl.Decision]:
    """The decision four ways: compiled and interpreted, with and without reasons."""
    c = prepare_customer(policy_set.schema, customer)
    e = prepare_event(policy_set.schema, event)
    return [evaluate(c, e, explain=explain)
            for evaluate in (policy_set.evaluate, policy_set.evaluate_interpreted)
            for explain in (False, True)]
