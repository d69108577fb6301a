"""Policy tests: TOML files of cases kept beside the policies, and the functions that run them.

A policy author tests a policy without writing Python. Beside ``earn_miles.policy``
sits ``earn_miles.test.toml``::

    [[case]]
    name = "a short own flight earns the 500-mile minimum"
    customer = { member_since = 2020-05-01 }

    [case.event]
    time = 2026-03-01T09:30:00Z

    [case.event.flight]
    origin = "BOS"
    destination = "LGA"
    fare = "89.00"

    [case.expect]
    awards = { miles = 500 }

A case's ``customer`` and ``event`` are the ``Customer`` and ``Event`` messages of the
gRPC API in their mapping form, exactly what grpcurl sends (read by
:class:`~dsl.input.request.MappingDecoder`; TOML's own dates and times are welcome), so a
request copied from a log or from grpcurl becomes a case as it is.

Everything here is a pure function of its arguments: :func:`load_case_file` reads
and checks one file against a schema, :func:`run_case` evaluates one case against a
:class:`PolicySet`, :func:`run_directory` does both for a whole directory and
returns a :class:`Report`. Mistakes in a test file (an unknown field, a float where
an exact decimal is expected, a tier the schema does not declare) become
:class:`~dsl.errors.Diagnostic` values positioned in the test file and naming the
case, exactly like policy diagnostics; nothing here prints or exits.

The format is described in ``docs/language.md`` ("Policy tests").
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsl.decision import Decision, format_duration
from dsl.errors import (
    Diagnostic,
    EvaluationError,
    InputError,
    PolicyError,
    Span,
    did_you_mean,
    sort_diagnostics,
)
from dsl.input.request import ACCEPTS, MappingDecoder, json_name
from dsl.schema.schema import Schema, SchemaError, convert_scalar, parse_decimal

if TYPE_CHECKING:
    from dsl.policyset import PolicySet

#: How test files are named: ``<anything>.test.toml``, anywhere below the directory.
TEST_FILE_SUFFIX = ".test.toml"

#: The top-level keys of a test file: its cases, and coverage settings (see dsl.tools.coverage).
TOP_LEVEL_KEYS = ("case", "coverage")
#: The keys a ``[[case]]`` table and its ``expect`` table may hold.
CASE_KEYS = ("name", "policy", "customer", "event", "expect")
EXPECT_KEYS = ("awards", "benefits", "tier", "tags", "error")

#: Filled in when a case leaves them out: a test rarely cares about ids.
DEFAULT_CUSTOMER_ID = "test-customer"
DEFAULT_EVENT_ID = "test-event"


# -- what a test file holds ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpectedBenefit:
    """A benefit a case expects. ``params`` is None when only the name is checked."""

    name: str
    params: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a case expects to come out.

    Every part is checked exactly: a part the file leaves out means "none" (no
    awards, no benefits, no tier, no tags). ``error``, when set, instead expects
    the input to be rejected or the evaluation to fail with a message containing it.
    """

    awards: dict[str, int | Decimal] = field(default_factory=dict)
    benefits: tuple[ExpectedBenefit, ...] = ()
    tier: str | None = None
    tags: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Case:
    """One ``[[case]]`` of a test file, checked against the schema and ready to run.

    ``customer`` and ``event`` are the ``Customer`` and ``Event`` messages as written
    (the request form; ids filled in); :func:`run_case` decodes them, so that a case
    may expect the decoding itself to fail.
    """

    file: str
    line: int
    name: str
    policies: tuple[str, ...]
    customer: dict[str, Any]
    event: dict[str, Any]
    expect: Expectation


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One part of a decision that differs from the expectation, both sides rendered."""

    part: str
    expected: str
    actual: str


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The outcome of one case.

    ``mismatches`` is empty when the case passed. ``reasons`` are the explain
    lines of the evaluation (only collected for a failing case). ``error`` is the
    message of an input or evaluation error the case did not expect.
    """

    case: Case
    mismatches: tuple[Mismatch, ...] = ()
    reasons: tuple[str, ...] = ()
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.mismatches and not self.error

    def render(self) -> str:
        """The human form: where the case is, and for a failure expected against actual."""
        where = f"{self.case.file}:{self.case.line}"
        if self.passed:
            return f"{where}: PASS {self.case.name}"
        lines = [f"{where}: FAIL {self.case.name}"]
        if self.error:
            lines.append(f"    error:    {self.error}")
        width = max((len(m.part) for m in self.mismatches), default=0) + 1
        for m in self.mismatches:
            label = f"{m.part}:".ljust(width)
            lines.append(f"    {label} expected {m.expected}")
            lines.append(f"    {' ' * width} actual   {m.actual}")
        if self.reasons:
            lines.append("    reasons:")
            lines.extend(f"      {r}" for r in self.reasons)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The machine form used by ``loyalty test --format json``."""
        return {
            "file": self.case.file,
            "line": self.case.line,
            "name": self.case.name,
            "passed": self.passed,
            "error": self.error,
            "mismatches": [
                {"part": m.part, "expected": m.expected, "actual": m.actual}
                for m in self.mismatches
            ],
            "reasons": list(self.reasons),
        }


@dataclass(slots=True)
class Report:
    """Everything one run of the tests found: policy or test-file diagnostics and case results."""

    files: list[str] = field(default_factory=list)
    results: list[CaseResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    #: Policy warnings (never a reason to fail): shown, so that authors see them.
    warnings: list[Diagnostic] = field(default_factory=list)
    revision: str = ""
    keyword: str | None = None

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.passed)

    @property
    def exit_status(self) -> int:
        """0 when every case passed, 1 when a case failed, 2 when a file could not be used."""
        if self.diagnostics or not self.results:
            return 2
        return 1 if self.failed else 0

    def summary(self) -> str:
        """One closing line: counts, and the revision of the policy set tested."""
        if self.diagnostics and not self.results:
            n = len(self.diagnostics)
            return f"{n} problem{'s' if n != 1 else ''} found; no case was run"
        if not self.results:
            if self.keyword is not None:
                return f'no case name contains "{self.keyword}"'
            return f"no test cases found (test files end in {TEST_FILE_SUFFIX})"
        parts = [f"{self.passed} passed"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.diagnostics:
            n = len(self.diagnostics)
            parts.append(f"{n} problem{'s' if n != 1 else ''} in test files")
        files = len(self.files)
        parts_text = ", ".join(parts)
        return f"{parts_text} ({files} file{'s' if files != 1 else ''}, revision {self.revision})"

    def to_dict(self) -> dict[str, Any]:
        """The machine form used by ``loyalty test --format json``."""
        status = {0: "passed", 1: "failed", 2: "error"}[self.exit_status]
        return {
            "status": status,
            "revision": self.revision,
            "files": list(self.files),
            "passed": self.passed,
            "failed": self.failed,
            "cases": [r.to_dict() for r in self.results],
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "warnings": [d.to_dict() for d in self.warnings],
        }


# -- finding and loading test files ------------------------------------------------------


def find_test_files(directory: Path | str) -> list[Path]:
    """Every ``*.test.toml`` file below ``directory`` (recursively), sorted by path."""
    root = Path(directory)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob(f"*{TEST_FILE_SUFFIX}") if p.is_file())


def programme_root(directory: Path | str) -> Path:
    """The directory whose policies a test below ``directory`` runs against.

    That is the nearest directory at or above ``directory`` holding a
    ``schema.toml`` (a business's programme: its schema and every policy below
    it), or ``directory`` itself when there is none. So ``loyalty test
    policies/retail`` runs the retail tests against the whole ``policies/`` set.
    """
    start = Path(directory)
    start = start.parent if start.is_file() else start
    if (start / "schema.toml").is_file():
        return start
    for candidate in start.resolve().parents:
        if (candidate / "schema.toml").is_file():
            return Path(_display_path(candidate))
    return start


def load_case_file(
    text: str, file: str, schema: Schema, policy_names: Iterable[str] = ()
) -> tuple[list[Case], list[Diagnostic]]:
    """Read one test file: its cases, and a diagnostic for every mistake in it.

    ``policy_names`` are the policies a case may name in ``policy``; a case with a
    mistake is left out of the returned cases (its diagnostics say why).
    """
    loader = _CaseLoader(text, file, schema, tuple(policy_names))
    return loader.load()


class _CaseLoader:
    def __init__(self, text: str, file: str, schema: Schema, policy_names: tuple[str, ...]) -> None:
        self.text = text
        self.file = file
        self.schema = schema
        self.policy_names = policy_names
        self.locator = _Locator(text)
        self.decoder = MappingDecoder(schema)
        self.diagnostics: list[Diagnostic] = []

    def error(self, span: Span, code: str, message: str, hint: str = "") -> None:
        self.diagnostics.append(Diagnostic(
            self.file, span, code, message, hint, source_line=self.locator.line(span.line)
        ))

    def load(self) -> tuple[list[Case], list[Diagnostic]]:
        try:
            data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            span, message = _toml_error_position(str(exc), self.text)
            self.error(span, "test_syntax", f"this is not valid TOML: {message}",
                       _syntax_hint(self.locator.line(span.line)))
            return [], self.diagnostics
        for key in data:
            if key not in TOP_LEVEL_KEYS:  # [coverage] is read by dsl.tools.coverage
                hint = did_you_mean(key, TOP_LEVEL_KEYS) or "each case starts with a [[case]] line"
                self.error(self.locator.top_level(key), "test_unknown_key",
                           f'unknown top-level key "{key}"', hint)
        raw_cases = data.get("case", [])
        if not isinstance(raw_cases, list) or not all(isinstance(c, dict) for c in raw_cases):
            self.error(self.locator.top_level("case"), "test_bad_value",
                       "`case` must be a list of tables, written [[case]]")
            return [], self.diagnostics
        if not raw_cases and not self.diagnostics:
            self.error(Span.point(1, 1), "test_no_cases", "this test file has no [[case]]",
                       "add a [[case]] with a name, a customer, an event and an [case.expect]")
        cases: list[Case] = []
        names: dict[str, int] = {}
        for index, raw in enumerate(raw_cases):
            before = len(self.diagnostics)
            case = self.case(index, raw)
            if case is not None and case.name in names:
                self.error(self.locator.key(index, ["name"]), "test_duplicate_case",
                           f'a case named "{case.name}" is already on line {names[case.name]}',
                           "give every case its own name")
            if case is not None:
                names.setdefault(case.name, case.line)
            if case is not None and len(self.diagnostics) == before:
                cases.append(case)
        return cases, sort_diagnostics(self.diagnostics)

    # -- one case ----------------------------------------------------------------

    def case(self, index: int, raw: dict[str, Any]) -> Case | None:
        loc = self.locator
        line = loc.case_line(index)
        name = raw.get("name")
        label = f'case "{name}"' if isinstance(name, str) and name else f"case #{index + 1}"
        for key in raw:
            if key not in CASE_KEYS:
                hint = did_you_mean(key, CASE_KEYS) or f"a case holds {', '.join(CASE_KEYS)}"
                self.error(loc.key(index, [key]), "test_unknown_key",
                           f'{label}: unknown key "{key}"', hint)
        if not isinstance(name, str) or not name.strip():
            where = loc.key(index, ["name"]) if "name" in raw else Span.point(line, 1, 8)
            self.error(where, "test_missing_key" if name is None else "test_bad_value",
                       f"{label}: every case needs a name (a string)",
                       'add a line such as name = "gold member earns double"')
            return None
        policies = self.policies(index, label, raw.get("policy"))
        customer = self.record(index, label, "customer", raw.get("customer"), DEFAULT_CUSTOMER_ID)
        event = self.record(index, label, "event", raw.get("event"), DEFAULT_EVENT_ID)
        expect = self.expectation(index, label, raw.get("expect"))
        expects_error = isinstance(raw.get("expect"), dict) and "error" in raw["expect"]
        if customer is not None and event is not None and not expects_error:
            self.check_input(index, label, customer, event)
        if customer is None or event is None or expect is None or policies is None:
            return None
        return Case(self.file, line, name, policies, customer, event, expect)

    def policies(self, index: int, label: str, raw: Any) -> tuple[str, ...] | None:
        if raw is None:
            return ()
        names = [raw] if isinstance(raw, str) else raw
        span = self.locator.key(index, ["policy"])
        if not isinstance(names, list) or not all(isinstance(p, str) for p in names):
            self.error(span, "test_bad_value",
                       f"{label}: `policy` must be a policy name or a list of names")
            return None
        for p in names:
            if p not in self.policy_names:
                hint = did_you_mean(p, self.policy_names)
                self.error(span, "test_unknown_policy", f'{label}: no policy is named "{p}"',
                           hint or "name a policy from this directory (its `policy NAME` line)")
                return None
        return tuple(names)

    def record(
        self, index: int, label: str, what: str, raw: Any, default_id: str
    ) -> dict[str, Any] | None:
        if raw is None:
            self.error(Span.point(self.locator.case_line(index), 1, 8), "test_missing_key",
                       f"{label}: the case has no {what}",
                       f"add {what} = {{ ... }} with the {what}'s fields")
            return None
        if not isinstance(raw, dict):
            self.error(self.locator.key(index, [what]), "test_bad_value",
                       f"{label}: {what} must be a table such as {{ tier = \"GOLD\" }}")
            return None
        out = dict(raw)
        out.setdefault("id", default_id)
        return out

    def check_input(
        self, index: int, label: str, customer: dict[str, Any], event: dict[str, Any]
    ) -> None:
        try:
            self.decoder.request({"customer": customer, "event": event})
        except InputError as exc:
            self.input_errors(index, label, exc)

    def input_errors(self, index: int, label: str, exc: InputError) -> None:
        for err in exc.errors:
            span = self.locator.key(index, _path_keys(err.path))
            reason, _, suggestion = err.reason.partition("; did you mean")
            hint = f"did you mean{suggestion}" if suggestion else self.input_hint(err.path, reason)
            self.error(span, "test_bad_input", f"{label}: {err.path}: {reason}", hint)

    def input_hint(self, path: str, reason: str) -> str:
        """What to write instead, in the test file's own terms."""
        m = _MISPLACED.match(reason)
        if m:  # the schema's flat form: a kind's field beside the event's own
            details = m[1].rpartition(".")[2]
            return (f"a {details} event's own fields go in a [case.event.{details}] section "
                    f"(or event = {{ ..., {details} = {{ ... }} }})")
        m = _EXTENSION.search(reason)
        if m:
            return f"write attributes = {{ {m[1]} = {self.typed_value(path, m[1])} }}"
        return _input_hint(reason)

    def typed_value(self, path: str, name: str) -> str:
        """An example typed value for the extension field ``name`` at ``path``."""
        root = path.partition(".")[0]
        tables = [self.schema.customer] if root == "customer" else [
            self.schema.event_common, *self.schema.events.values()]
        for fields in tables:
            if name in fields:
                kind = ACCEPTS.get(fields[name].type.kind, ("string_value",))[0]
                return f'{{ {json_name(kind)} = "..." }}'
        return '{ stringValue = "..." }'

    # -- the expectation -------------------------------------------------------------

    def expectation(self, index: int, label: str, raw: Any) -> Expectation | None:
        loc = self.locator
        if raw is None:
            self.error(Span.point(loc.case_line(index), 1, 8), "test_missing_key",
                       f"{label}: the case has no [case.expect] table",
                       "add [case.expect] with the awards (and benefits, tier, tags) it must give")
            return None
        if not isinstance(raw, dict):
            self.error(loc.key(index, ["expect"]), "test_bad_value",
                       f"{label}: expect must be a table, written [case.expect]")
            return None
        ok = True
        for key in raw:
            if key not in EXPECT_KEYS:
                hint = did_you_mean(key, EXPECT_KEYS) or f"expect holds {', '.join(EXPECT_KEYS)}"
                self.error(loc.key(index, ["expect", key]), "test_unknown_key",
                           f'{label}: unknown expectation "{key}"', hint)
                ok = False
        error = raw.get("error")
        if error is not None:
            if not isinstance(error, str) or not error:
                self.error(loc.key(index, ["expect", "error"]), "test_bad_value",
                           f"{label}: `error` must be the text the error message contains")
                return None
            others = [k for k in raw if k != "error" and k in EXPECT_KEYS]
            if others:
                self.error(loc.key(index, ["expect", others[0]]), "test_bad_value",
                           f"{label}: a case that expects an error expects nothing else",
                           f'delete "{others[0]}" or the error')
                return None
            return Expectation(error=error) if ok else None
        awards = self.awards(index, label, raw.get("awards", {}))
        benefits = self.benefits(index, label, raw.get("benefits", []))
        tier = self.tier(index, label, raw.get("tier"))
        tags = self.tags(index, label, raw.get("tags", []))
        if awards is None or benefits is None or tier is False or tags is None or not ok:
            return None
        return Expectation(awards, benefits, tier or None, tags)

    def awards(self, index: int, label: str, raw: Any) -> dict[str, int | Decimal] | None:
        span = self.locator.key(index, ["expect", "awards"])
        if not isinstance(raw, dict):
            self.error(span, "test_bad_value",
                       f"{label}: awards must be a table such as {{ miles = 1250 }}")
            return None
        out: dict[str, int | Decimal] = {}
        ok = True
        for currency, value in raw.items():
            where = self.locator.key(index, ["expect", "awards", currency])
            known = self.schema.currencies.get(currency)
            if known is None:
                hint = did_you_mean(currency, self.schema.currencies)
                known_list = ", ".join(sorted(self.schema.currencies))
                self.error(where, "test_unknown_currency",
                           f'{label}: "{currency}" is not a currency (known: {known_list})', hint)
                ok = False
                continue
            try:
                amount = parse_decimal(value)
            except ValueError as exc:
                self.error(where, "test_bad_value", f"{label}: awards.{currency}: {exc}",
                           _input_hint(str(exc)))
                ok = False
                continue
            if known.decimals == 0 and amount != amount.to_integral_value():
                self.error(where, "test_bad_value",
                           f"{label}: {currency} are awarded in whole units, not {amount}",
                           "write a whole number")
                ok = False
                continue
            if amount != 0:  # "miles = 0" reads naturally and means "no miles"
                out[currency] = int(amount) if known.decimals == 0 else amount
        return out if ok else None

    def benefits(self, index: int, label: str, raw: Any) -> tuple[ExpectedBenefit, ...] | None:
        span = self.locator.key(index, ["expect", "benefits"])
        if not isinstance(raw, list):
            self.error(span, "test_bad_value",
                       f'{label}: benefits must be a list such as ["priority-rebooking"]')
            return None
        out: list[ExpectedBenefit] = []
        ok = True
        for item in raw:
            params_raw: Any = None
            if isinstance(item, str):
                name = item
            elif isinstance(item, dict) and isinstance(item.get("name"), str):
                name = item["name"]
                extra = set(item) - {"name", "with"}
                if extra:
                    self.error(span, "test_unknown_key",
                               f'{label}: benefit "{name}" has an unknown key "{sorted(extra)[0]}"',
                               'write { name = "...", with = { parameter = value } }')
                    ok = False
                    continue
                params_raw = item.get("with", {})
            else:
                self.error(span, "test_bad_value",
                           f"{label}: each benefit is a name or a table "
                           '{ name = "...", with = { parameter = value } }')
                ok = False
                continue
            declared = self.schema.benefits.get(name)
            if declared is None:
                hint = did_you_mean(name, self.schema.benefits)
                self.error(span, "test_unknown_benefit",
                           f'{label}: "{name}" is not a benefit the schema declares', hint)
                ok = False
                continue
            if any(b.name == name for b in out):
                self.error(span, "test_bad_value", f'{label}: benefit "{name}" is listed twice')
                ok = False
                continue
            params = self.params(index, label, name, declared, params_raw)
            if params is False:
                ok = False
                continue
            out.append(ExpectedBenefit(name, params if isinstance(params, dict) else None))
        return tuple(out) if ok else None

    def params(
        self, index: int, label: str, benefit: str, declared: Mapping[str, Any], raw: Any
    ) -> dict[str, Any] | bool | None:
        if raw is None:
            return None
        span = self.locator.key(index, ["expect", "benefits", "with"])
        if not isinstance(raw, dict):
            self.error(span, "test_bad_value",
                       f"{label}: `with` must be a table such as {{ grace = \"15 minutes\" }}")
            return False
        out: dict[str, Any] = {}
        for pname, value in raw.items():
            where = self.locator.key(index, ["expect", "benefits", "with", pname])
            ptype = declared.get(pname)
            if ptype is None:
                hint = did_you_mean(pname, declared) or (
                    f"{benefit} takes " + (", ".join(declared) if declared else "no parameters"))
                self.error(where, "test_unknown_key",
                           f'{label}: benefit "{benefit}" has no parameter "{pname}"', hint)
                return False
            try:
                out[pname] = convert_scalar(ptype.required(), value)
            except ValueError as exc:
                self.error(where, "test_bad_value", f"{label}: {benefit}.{pname}: {exc}",
                           _input_hint(str(exc)))
                return False
        return out

    def tier(self, index: int, label: str, raw: Any) -> str | bool | None:
        if raw is None:
            return None
        span = self.locator.key(index, ["expect", "tier"])
        if not isinstance(raw, str) or raw not in self.schema.tiers:
            known = ", ".join(self.schema.tiers) or "none declared"
            hint = did_you_mean(str(raw), self.schema.tiers)
            self.error(span, "test_unknown_tier",
                       f"{label}: {_show_loose(raw)} is not a tier (known: {known})", hint)
            return False
        return raw

    def tags(self, index: int, label: str, raw: Any) -> tuple[str, ...] | None:
        if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
            self.error(self.locator.key(index, ["expect", "tags"]), "test_bad_value",
                       f'{label}: tags must be a list of strings such as ["decade-member"]')
            return None
        return tuple(sorted(set(raw)))


# -- running ----------------------------------------------------------------------------


def run_case(policy_set: PolicySet, case: Case) -> CaseResult:
    """Evaluate one case against ``policy_set`` and compare the decision with the expectation.

    The fast path decides pass or fail; a failing case is evaluated again with
    ``explain=True`` so that the result carries the reasons.
    """
    only = list(case.policies) or None
    expected_error = case.expect.error
    try:
        customer, event = policy_set.decoder.request({"customer": case.customer,
                                                      "event": case.event})
        decision = policy_set.evaluate(customer, event, only=only)
    except (InputError, EvaluationError) as exc:
        message = str(exc)
        if expected_error is not None and expected_error in message:
            return CaseResult(case)
        if expected_error is not None:
            return CaseResult(case, (Mismatch("error", _quote(expected_error), _quote(message)),))
        return CaseResult(case, error=message)
    if expected_error is not None:
        got = _show_decision(decision)
        return CaseResult(case, (Mismatch("error", _quote(expected_error), f"no error; {got}"),))
    disagreement = _check_interpreter(policy_set, customer, event, only, decision)
    if disagreement:
        return CaseResult(case, error=disagreement)
    mismatches = compare(case.expect, decision)
    if not mismatches:
        return CaseResult(case)
    explained = policy_set.evaluate(customer, event, explain=True, only=only)
    reasons = tuple(r.render() for r in explained.reasons or ())
    return CaseResult(case, tuple(mismatches), reasons)


def _check_interpreter(
    policy_set: PolicySet,
    customer: dict[str, Any],
    event: dict[str, Any],
    only: list[str] | None,
    decision: Decision,
) -> str:
    """An error message when the reference interpreter decides otherwise than compiled code.

    That would be a bug in the evaluator, not in the policy; a policy test is a
    cheap place to notice it, so every case runs both.
    """
    try:
        reference = policy_set.evaluate_interpreted(customer, event, only=only)
    except EvaluationError as exc:
        return f"the reference interpreter failed where compiled code did not: {exc}"
    mine, theirs = _outcome(decision), _outcome(reference)
    if mine == theirs:
        return ""
    return ("the compiled evaluator and the reference interpreter disagree (an evaluator bug; "
            f"please report it): compiled {mine}, interpreted {theirs}")


def _outcome(d: Decision) -> str:
    benefits = show_benefits([(b.name, b.params) for b in d.benefits])
    return (f"awards {show_awards(d.awards)}, benefits {benefits}, tier {show_value(d.tier)}, "
            f"tags {show_value(sorted(d.tags))}")


def compare(expect: Expectation, decision: Decision) -> list[Mismatch]:
    """Every part of ``decision`` that differs from ``expect`` (awards, benefits, tier, tags)."""
    out: list[Mismatch] = []
    actual_awards = {k: v for k, v in decision.awards.items() if v != 0}
    if not _same_awards(expect.awards, actual_awards):
        out.append(Mismatch("awards", show_awards(expect.awards), show_awards(actual_awards)))
    actual_benefits = {b.name: b.params for b in decision.benefits}
    benefits_ok = set(actual_benefits) == {b.name for b in expect.benefits} and all(
        b.params is None or _same_params(b.params, actual_benefits[b.name])
        for b in expect.benefits
    )
    if not benefits_ok:
        detailed = {b.name for b in expect.benefits if b.params is not None}
        out.append(Mismatch(
            "benefits",
            show_benefits([(b.name, b.params) for b in expect.benefits]),
            show_benefits([
                (b.name, b.params if b.name in detailed else None) for b in decision.benefits
            ]),
        ))
    if expect.tier != decision.tier:
        out.append(Mismatch("tier", _show_loose(expect.tier), _show_loose(decision.tier)))
    actual_tags = tuple(sorted(set(decision.tags)))
    if expect.tags != actual_tags:
        out.append(Mismatch("tags", _show_loose(list(expect.tags)), _show_loose(list(actual_tags))))
    return out


def run_directory(
    directory: Path | str, *, keyword: str | None = None, policy_root: Path | str | None = None,
    observe: Callable[[PolicySet], Callable[[Case], None]] | None = None,
) -> Report:
    """Load the policy set and every test file below ``directory``, run the cases, report.

    The policies come from :func:`programme_root` of ``directory`` unless
    ``policy_root`` says otherwise. ``keyword`` keeps only cases whose name
    contains it (case-insensitively). Never raises for a policy or test-file
    problem: those become the report's diagnostics. ``observe``, given the loaded
    policy set, returns a function called with every case run (coverage uses it).
    """
    import dsl  # the package's API; imported here so that this module loads on its own

    report = Report(keyword=keyword)
    root = Path(policy_root) if policy_root is not None else programme_root(directory)
    try:
        policy_set = dsl.load_directory(root)
    except PolicyError as exc:
        report.diagnostics.extend(exc.diagnostics)
        return report
    except SchemaError as exc:
        report.diagnostics.append(_schema_diagnostic(exc, root))
        return report
    report.revision = policy_set.revision
    report.warnings.extend(policy_set.warnings)
    names = [p.name for p in policy_set.policies]
    seen = observe(policy_set) if observe is not None else None
    for path in find_test_files(directory):
        file = _display_path(path)
        report.files.append(file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = "it is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
            report.diagnostics.append(Diagnostic(
                file, Span.point(1, 1), "test_unreadable", f"cannot read the test file: {reason}",
                "save it as UTF-8 text"))
            continue
        cases, problems = load_case_file(text, file, policy_set.schema, names)
        report.diagnostics.extend(problems)
        for case in cases:
            if keyword is not None and keyword.lower() not in case.name.lower():
                continue
            report.results.append(run_case(policy_set, case))
            if seen is not None:
                seen(case)
    return report


# -- rendering values the way test files write them ------------------------------------------


def show_value(value: Any) -> str:
    """A value as a test file would write it: decimals and durations quoted, dates bare."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return f'"{value}"'
    if isinstance(value, timedelta):
        return f'"{format_duration(value)}"'
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {show_value(v)}" for k, v in sorted(value.items())) + " }"
    return str(value)


def show_awards(awards: Mapping[str, int | Decimal]) -> str:
    """Awards as a test file writes them, ``{ miles = 1250 }``; ``{}`` for none."""
    return show_value(dict(awards))


def show_benefits(benefits: Sequence[tuple[str, Mapping[str, Any] | None]]) -> str:
    """Benefit names, sorted, each with its parameters when they are compared."""
    parts = []
    for name, params in sorted(benefits, key=lambda b: b[0]):
        if params is None:
            parts.append(_quote(name))
        else:
            parts.append(f"{{ name = {_quote(name)}, with = {show_value(dict(params))} }}")
    return "[" + ", ".join(parts) + "]"


def _show_loose(value: Any) -> str:
    return show_value(value)


def _show_decision(decision: Decision) -> str:
    return f"awards {show_awards(decision.awards)}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _same_awards(
    expected: Mapping[str, int | Decimal], actual: Mapping[str, int | Decimal]
) -> bool:
    return set(expected) == set(actual) and all(
        Decimal(expected[k]) == Decimal(actual[k]) for k in expected
    )


def _same_params(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    if set(expected) != set(actual):
        return False
    for k, v in expected.items():
        a = actual[k]
        if isinstance(v, int | Decimal) and isinstance(a, int | Decimal) \
                and not isinstance(v, bool) and not isinstance(a, bool):
            if Decimal(v) != Decimal(a):
                return False
        elif v != a:
            return False
    return True


# -- positions in a TOML text --------------------------------------------------------------------


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")


def _toml_error_position(message: str, text: str) -> tuple[Span, str]:
    m = _TOML_POSITION.search(message)
    if m:
        return Span.point(int(m[1]), int(m[2])), message[: m.start()]
    lines = text.splitlines() or [""]
    line = len(lines)
    if _TOML_END.search(message):
        message = _TOML_END.sub("", message)
        if message.startswith("Cannot overwrite a value"):
            message += " (a key or a [table] is written twice)"
    return Span.point(line, max(len(lines[-1]), 1)), message


class _Locator:
    """Finds where a case, or a key inside a case, is written in the text of a test file.

    ``tomllib`` gives values without positions, so positions are recovered from
    the text: cases start at their ``[[case]]`` lines, and a key path such as
    ``event.items.amount`` is found by looking for each key in turn after the
    previous one, within the case.
    """

    _CASE_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*case[ \t]*\]\][ \t]*(#.*)?$", re.M)

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines()
        self.case_starts = [m.start() for m in self._CASE_HEADER.finditer(text)]

    def line(self, number: int) -> str:
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""

    def _line_col(self, offset: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, offset) + 1
        start = self.text.rfind("\n", 0, offset) + 1
        return line, offset - start + 1

    def case_line(self, index: int) -> int:
        if index < len(self.case_starts):
            return self._line_col(self.case_starts[index])[0]
        return 1

    def _case_range(self, index: int) -> tuple[int, int]:
        if index >= len(self.case_starts):
            return 0, len(self.text)
        start = self.case_starts[index]
        end = self.case_starts[index + 1] if index + 1 < len(self.case_starts) else len(self.text)
        return start, end

    @staticmethod
    def _key_pattern(key: str) -> re.Pattern[str]:
        k = re.escape(key)
        return re.compile(
            rf"(?:(?<![\w\-\"'])(?:{k})|\"{k}\"|'{k}')(?=\s*=|\s*\]|\s*\.)", re.M
        )

    def key(self, index: int, keys: Sequence[str]) -> Span:
        """The span of the last of ``keys`` found in order within case ``index``."""
        start, end = self._case_range(index)
        pos = start
        found: tuple[int, int] | None = None
        for key in keys:
            m = self._key_pattern(key).search(self.text, pos, end)
            if m is None:
                break
            found = (m.start(), m.end())
            pos = m.end()
        if found is None:
            return Span.point(self.case_line(index), 1, 8)
        line, col = self._line_col(found[0])
        return Span.point(line, col, found[1] - found[0])

    def top_level(self, key: str) -> Span:
        m = self._key_pattern(key).search(self.text)
        if m is None:
            return Span.point(1, 1)
        line, col = self._line_col(m.start())
        return Span.point(line, col, m.end() - m.start())


def _syntax_hint(line: str) -> str:
    if line.count("{") > line.count("}"):
        return ("a { ... } table must close on the same line in TOML; for a longer one "
                "write a [case.event] (or [case.customer]) section with one field per line")
    if line.count("[") > line.count("]") and "=" in line:
        return "a list may span lines, but every item needs a comma after it"
    return 'check the quotes, the commas and the "=" on this line'


def _path_keys(path: str) -> list[str]:
    """``event.items[0].amount`` -> ``["event", "items", "amount"]``."""
    return [re.sub(r"\[\d+\]$", "", part) for part in path.split(".") if part]


_MISPLACED = re.compile(r"belongs in (event\.\w+): write it as ")
_EXTENSION = re.compile(r"(\w+) is an extension field: send it in attributes")


def _input_hint(reason: str) -> str:
    if "binary floating-point" in reason:
        return 'TOML numbers with a point are floats; write exact decimals in quotes: "12.50"'
    if "needs a time zone" in reason:
        return "end the time with Z for UTC, e.g. 2026-03-01T09:30:00Z"
    if "is required" in reason:
        return "add the field to the case"
    return ""


def _schema_diagnostic(exc: SchemaError, root: Path) -> Diagnostic:
    text = str(exc)
    file, _, message = text.partition(": ")
    if not message:
        file, message = str(root / "schema.toml"), text
    return Diagnostic(file, Span.point(1, 1), "schema_error", message)


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
