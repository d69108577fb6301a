"""Running policy tests: each case evaluated, compiled and interpreted, and compared.

:func:`run_case` evaluates one case against a :class:`~dsl.policyset.PolicySet`;
:func:`run_directory` loads a programme's policies and every test file below a directory,
runs the cases and returns a :class:`~dsl.tools.testing.cases.Report`. A policy or
test-file problem becomes a diagnostic of the report; nothing here prints or exits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from dsl.backend.runner import INTERPRETED
from dsl.decision import Decision
from dsl.errors import Diagnostic, EvaluationError, InputError, PolicyError, Span
from dsl.periods import Window
from dsl.policyset import PolicySet, load_directory
from dsl.programme import display_path, programme_root
from dsl.schema.schema import SchemaError
from dsl.tools.stateinput import state_for
from dsl.tools.testing.cases import Case, CaseResult, Expectation, Mismatch, Report
from dsl.tools.testing.loader import find_test_files, load_case_file
from dsl.tools.testing.show import show_awards, show_benefits, show_decision, show_text, show_value


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
        state = state_for(policy_set, case.customer, customer, event, case.state, case.history)
        # Texts are in the reasons: a case that checks them is evaluated explaining.
        decision = policy_set.evaluate(customer, event, explain=bool(case.expect.says), only=only,
                                       state=state)
    except (InputError, EvaluationError) as exc:
        message = str(exc)
        if expected_error is not None and expected_error in message:
            return CaseResult(case)
        if expected_error is not None:
            return CaseResult(case, (Mismatch("error", show_text(expected_error), show_text(message)),))
        return CaseResult(case, error=message)
    if expected_error is not None:
        got = show_decision(decision)
        return CaseResult(case, (Mismatch("error", show_text(expected_error), f"no error; {got}"),))
    disagreement = _check_interpreter(policy_set, customer, event, only, decision, state)
    if disagreement:
        return CaseResult(case, error=disagreement)
    mismatches = compare(case.expect, decision)
    if not mismatches:
        return CaseResult(case)
    explained = policy_set.evaluate(customer, event, explain=True, only=only, state=state)
    reasons = tuple(r.render() for r in explained.reasons or ())
    return CaseResult(case, tuple(mismatches), reasons)


def _check_interpreter(
    policy_set: PolicySet,
    customer: dict[str, Any],
    event: dict[str, Any],
    only: list[str] | None,
    decision: Decision,
    state: dict[Window, int | Decimal] | None = None,
) -> str:
    """An error message when the reference interpreter decides otherwise than compiled code.

    That would be a bug in the evaluator, not in the policy; a policy test is a
    cheap place to notice it, so every case runs both.
    """
    try:
        reference = policy_set.evaluate(customer, event, only=only, runner=INTERPRETED,
                                        state=state)
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
            f"tags {show_value(sorted(d.tags))}"
            + (f", counted {show_awards(d.counted)}" if d.counted else ""))


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
        out.append(Mismatch("tier", show_value(expect.tier), show_value(decision.tier)))
    actual_tags = tuple(sorted(set(decision.tags)))
    if expect.tags != actual_tags:
        out.append(Mismatch("tags", show_value(list(expect.tags)), show_value(list(actual_tags))))
    if not _same_awards(expect.counted, decision.counted):
        out.append(Mismatch("counted", show_awards(expect.counted), show_awards(decision.counted)))
    if expect.says:
        said: dict[str, str] = {}
        for r in decision.reasons or ():
            if r.kind == "fired":
                said.setdefault(r.rule, r.says(expect.language or None))
        for rule, text in expect.says.items():
            got = said.get(rule)
            if got != text:
                out.append(Mismatch(f"says.{rule}", show_text(text),
                                    show_text(got) if got is not None else "(the rule did not fire)"))
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
    report = Report(keyword=keyword)
    root = Path(policy_root) if policy_root is not None else programme_root(directory)
    try:
        policy_set = load_directory(root)
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
        file = display_path(path)
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


def _schema_diagnostic(exc: SchemaError, root: Path) -> Diagnostic:
    text = str(exc)
    file, _, message = text.partition(": ")
    if not message:
        file, message = str(root / "schema.toml"), text
    return Diagnostic(file, Span.point(1, 1), "schema_error", message)
