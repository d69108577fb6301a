"""Reading policy test files: TOML text to :class:`~dsl.tools.testing.cases.Case` values.

A case's ``customer`` and ``event`` have their plain attribute values typed by the schema
(:mod:`dsl.tools.plainvalues`), then are checked by the same
:class:`~dsl.input.request.MappingDecoder` a request goes through; every mistake in a file
becomes a :class:`~dsl.errors.Diagnostic` positioned in the test file (:class:`Locator`
finds the line of a case's key) and naming the case.
"""

from __future__ import annotations

import bisect
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from dsl import bounded_toml
from dsl.errors import Diagnostic, FieldError, InputError, Span, did_you_mean, sort_diagnostics
from dsl.input.request import MappingDecoder
from dsl.schema.schema import Schema, convert_scalar, parse_decimal
from dsl.tools.plainvalues import type_plain_values
from dsl.tools.stateinput import parse_history, parse_state
from dsl.tools.testing.cases import TEST_FILE_SUFFIX, Case, Expectation, ExpectedBenefit
from dsl.tools.testing.show import show_value

#: The top-level keys of a test file: its cases, and coverage settings (see dsl.tools.coverage).
TOP_LEVEL_KEYS = ("case", "coverage")
#: The keys a ``[[case]]`` table and its ``expect`` table may hold.
CASE_KEYS = ("name", "policy", "customer", "event", "state", "history", "expect")
EXPECT_KEYS = ("awards", "benefits", "tier", "tags", "counted", "says", "language", "error")

#: Filled in when a case leaves them out: a test rarely cares about ids.
DEFAULT_CUSTOMER_ID = "test-customer"
DEFAULT_EVENT_ID = "test-event"


def find_test_files(directory: Path | str) -> list[Path]:
    """Every ``*.test.toml`` file below ``directory`` (recursively), sorted by path."""
    root = Path(directory)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob(f"*{TEST_FILE_SUFFIX}") if p.is_file())


def load_case_file(
    text: str, file: str, schema: Schema, policy_names: Iterable[str] = ()
) -> tuple[list[Case], list[Diagnostic]]:
    """Read one test file: its cases, and a diagnostic for every mistake in it.

    ``policy_names`` are the policies a case may name in ``policy``; a case with a
    mistake is left out of the returned cases (its diagnostics say why).
    """
    loader = _CaseLoader(text, file, schema, tuple(policy_names))
    return loader.load()


#: A test file's bounds: bounded_toml's defaults, and at most 40,000 tables (about 10,000 cases with
#: their sub-tables), far above the largest bundled file.
TEST_FILE_LIMITS = bounded_toml.Limits(max_tables=40_000)

class _CaseLoader:
    def __init__(self, text: str, file: str, schema: Schema, policy_names: tuple[str, ...]) -> None:
        self.text = text
        self.file = file
        self.schema = schema
        self.policy_names = policy_names
        self.locator = Locator(text)
        self.decoder = MappingDecoder(schema)
        self.diagnostics: list[Diagnostic] = []

    def error(self, span: Span, code: str, message: str, hint: str = "") -> None:
        self.diagnostics.append(Diagnostic(
            self.file, span, code, message, hint, source_line=self.locator.line(span.line)
        ))

    def load(self) -> tuple[list[Case], list[Diagnostic]]:
        try:
            data = bounded_toml.loads(self.text, TEST_FILE_LIMITS)
        except bounded_toml.TomlBoundError as exc:
            self.error(Span.point(exc.line, exc.column), "test_too_large",
                       f"this test file is too large: {exc.message}",
                       "split the cases over several test files beside the policy")
            return [], self.diagnostics
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
        state: dict[str, Any] = {}
        history: tuple[dict[str, Any], ...] = ()
        try:
            if "state" in raw:
                state = parse_state(raw["state"])
        except ValueError as exc:
            self.error(loc.key(index, ["state"]), "test_bad_value", f"{label}: {exc}",
                       'write state = { counter = 3, other = "1400.00" }')
            return None
        try:
            if "history" in raw:
                history = parse_history(raw["history"])
        except ValueError as exc:
            self.error(loc.key(index, ["history"]), "test_bad_value", f"{label}: {exc}",
                       'write history = [{ counter = "visits", at = 2026-03-01T10:00:00Z, '
                       "amount = 1 }]")
            return None
        history = self.typed_history(index, label, history)
        if history is None:
            return None
        if customer is None or event is None or expect is None or policies is None:
            return None
        return Case(self.file, line, name, policies, customer, event, expect, state, history)

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
        out, errors = type_plain_values(self.decoder.layout, what, raw)
        if errors:
            self.input_errors(index, label, errors)
            return None
        out.setdefault("id", default_id)
        return out

    def check_input(
        self, index: int, label: str, customer: dict[str, Any], event: dict[str, Any]
    ) -> None:
        try:
            self.decoder.request({"customer": customer, "event": event})
        except InputError as exc:
            self.input_errors(index, label, exc.errors)

    def input_errors(self, index: int, label: str, errors: Sequence[FieldError]) -> None:
        for err in errors:
            span = self.locator.key(index, _path_keys(err.path))
            reason, _, suggestion = err.reason.partition("; did you mean")
            where = _DECLARE.search(reason) or _DECLARE.search(suggestion)
            if where:  # a field under a details message's attributes: say where it goes
                reason, suggestion = _DECLARE.sub("", reason), _DECLARE.sub("", suggestion)
                name = err.path.rpartition(".")[2]
                declare = (f'declare it in schema.toml under [events.{where[1]}] (for example '
                           f'{name} = "string?") and write it in [case.event] as attributes = '
                           f"{{ {name} = ... }}")
                hint = f"did you mean{suggestion} (for a new field, {declare})" if suggestion else declare
            elif suggestion:
                hint = f"did you mean{suggestion}"
            else:
                hint = self.input_hint(err.path, reason)
            self.error(span, "test_bad_input", f"{label}: {err.path}: {reason}", hint)

    def typed_history(self, index: int, label: str, history: tuple[dict[str, Any], ...]
                      ) -> tuple[dict[str, Any], ...] | None:
        """The history's earlier events with their plain attribute values typed (as a case's own)."""
        out: list[dict[str, Any]] = []
        ok = True
        for i, item in enumerate(history):
            if "event" not in item:
                out.append(item)
                continue
            event, errors = type_plain_values(self.decoder.layout, "event", item["event"])
            if errors:
                self.input_errors(index, label, [FieldError(f"history[{i}].{e.path}", e.reason)
                                                 for e in errors])
                ok = False
            out.append({"event": event})
        return tuple(out) if ok else None

    def input_hint(self, path: str, reason: str) -> str:
        """What to write instead, in the test file's own terms."""
        m = _MISPLACED.match(reason)
        if m:  # the schema's flat form: a kind's field beside the event's own
            details = m[1].rpartition(".")[2]
            return (f"a {details} event's own fields go in a [case.event.{details}] section "
                    f"(or event = {{ ..., {details} = {{ ... }} }})")
        m = _EVENT_ATTRIBUTE.search(reason)
        if m:  # an event-level extension field written under the kind's details
            return f"write it in [case.event] (not [case.event.{path.split('.')[1]}]): " \
                   f"attributes = {{ {m[1]} = {self.plain_value('event', m[1])} }}"
        m = _EXTENSION.search(reason)
        if m:
            return f"write attributes = {{ {m[1]} = {self.plain_value(path, m[1])} }}"
        return _input_hint(reason)

    def plain_value(self, path: str, name: str) -> str:
        """An example plain value for the extension field ``name`` at ``path``, by its type."""
        root = path.partition(".")[0]
        tables = [self.schema.customer] if root == "customer" else [
            self.schema.event_common, *self.schema.events.values()]
        for fields in tables:
            if name in fields:
                return _EXAMPLES.get(fields[name].type.kind, '"..."')
        return '"..."'

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
        try:
            counted = parse_state(raw.get("counted", {}))
        except ValueError as exc:
            self.error(loc.key(index, ["expect", "counted"]), "test_bad_value",
                       f"{label}: expect.{str(exc).replace('state', 'counted', 1)}",
                       'write counted = { quarterly_spend = "100.00" }')
            return None
        says = self.says(index, label, raw.get("says", {}), raw.get("language", ""))
        if awards is None or benefits is None or tier is False or tags is None or not ok \
                or says is None:
            return None
        return Expectation(awards, benefits, tier or None, tags, counted=counted, says=says,
                           language=raw.get("language", ""))

    def says(self, index: int, label: str, raw: Any, language: Any) -> dict[str, str] | None:
        """``says = { rule = "text" }`` and the ``language`` its texts are in."""
        if not isinstance(language, str) or len(language) > 35:
            self.error(self.locator.key(index, ["expect", "language"]), "test_bad_value",
                       f'{label}: language must be a language tag such as "fr"')
            return None
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            self.error(self.locator.key(index, ["expect", "says"]), "test_bad_value",
                       f'{label}: says must be a table of rule names and the texts they say, '
                       'such as { loyal_for_a_decade = "+74 miles for 11 years with us" }')
            return None
        return dict(raw)

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
                       f"{label}: {show_value(raw)} is not a tier (known: {known})", hint)
            return False
        return raw

    def tags(self, index: int, label: str, raw: Any) -> tuple[str, ...] | None:
        if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
            self.error(self.locator.key(index, ["expect", "tags"]), "test_bad_value",
                       f'{label}: tags must be a list of strings such as ["decade-member"]')
            return None
        return tuple(sorted(set(raw)))


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


class Locator:
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
        # Offsets where each line starts, so a position costs a bisection, not a count of
        # the text before it (which made a file of many cases quadratic to load).
        self.line_starts = [0, *(m.end() for m in re.finditer("\n", text))]

    def line(self, number: int) -> str:
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""

    def _line_col(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

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


#: An example plain value of each kind of type, for hints.
_EXAMPLES = {"int": "4", "decimal": '"12.50"', "bool": "true", "date": "2026-03-01",
             "datetime": "2026-03-01T09:30:00Z", "duration": '"15 minutes"', "list": "[...]",
             "record": "{ ... }"}

_MISPLACED = re.compile(r"belongs in (event\.\w+): write it as ")
_EVENT_ATTRIBUTE = re.compile(r"belongs in event\.attributes .*: write it as event\.attributes\.(\w+)")
_DECLARE = re.compile(r" \(a field the directory adds to (\w+) events is declared in schema\.toml[^)]*\)")
_EXTENSION = re.compile(r"(\w+) is an extension field: send it in attributes")


def _input_hint(reason: str) -> str:
    if "binary floating-point" in reason:
        return 'TOML numbers with a point are floats; write exact decimals in quotes: "12.50"'
    if "needs a time zone" in reason:
        return "end the time with Z for UTC, e.g. 2026-03-01T09:30:00Z"
    if "is required" in reason:
        return "add the field to the case"
    return ""
