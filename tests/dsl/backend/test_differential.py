"""Differential tests: the compiled evaluator agrees with the reference interpreter.

The interpreter (``dsl/backend/interpreter.py``) is the executable specification; the code generator
must give the same decision on every policy and every input, reasons included, and fail
with the same ``EvaluationError`` (policy, file, line, message) when the interpreter fails.
Policies and inputs come from ``strategies.py``. Decisions are compared strictly: an award
of ``1000`` is not the same as one of ``Decimal("1000.00")``, since callers see the
difference (``Decision.to_dict``, the service's protobuf conversion, the explain text).

Both sides run through the one evaluate interface, ``PolicySet.evaluate(..., runner=...)``
with :data:`~dsl.backend.runner.COMPILED` and :data:`~dsl.backend.runner.INTERPRETED`
(``dsl/backend/runner.py``), so they share the selection and the combination and differ only
in how each policy runs. A failure prints the generated policy (``note``) and a
``@reproduce_failure`` blob.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import warnings
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, Phase, assume, given, note, reject, settings
from hypothesis import strategies as st
from strategies import (
    KINDS,
    SCHEMA,
    SIZE_CODES,
    UNAVOIDABLE,
    policy_sources,
    raw_customers,
    raw_events,
    window_sums,
)

import dsl
from dsl.backend.runner import COMPILED, INTERPRETED, Runner
from tests.dsl.input.reference import prepare_customer, prepare_event

ROOT = Path(__file__).resolve().parents[3]

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    print_blob=True,
    # No explain phase: it re-runs a failing case hundreds of times for little news.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- helpers ---------------------------------------------------------------------------------


def strict(value: Any) -> Any:
    """A structure that is equal for two values only when they agree in type and in text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return type(value).__name__, {f.name: strict(getattr(value, f.name))
                                      for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {repr(k): strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return f"{type(value).__name__}: {value!r}"


def outcome(evaluate: Any, customer: dict[str, Any], event: dict[str, Any], explain: bool) -> Any:
    """What one evaluation gave: the strict decision, or the EvaluationError's fields.

    The inputs are copied first, and the copies must be unchanged afterwards: evaluation
    is pure.
    """
    c, e = copy.deepcopy(customer), copy.deepcopy(event)
    try:
        result = strict(evaluate(c, e, explain=explain))
    except dsl.EvaluationError as exc:
        result = ("EvaluationError", exc.policy, exc.file, exc.line, exc.message)
    assert (c, e) == (customer, event), "evaluation changed its input"
    return result


@dataclass(frozen=True)
class Case:
    """A generated policy text with raw inputs for the event kind it applies to."""

    source: str
    customer: dict[str, Any]
    event: dict[str, Any]


@st.composite
def cases(draw: Any) -> Case:
    kind = draw(st.sampled_from(KINDS))
    return Case(draw(policy_sources(kind)), draw(raw_customers(SCHEMA)), draw(raw_events(SCHEMA, kind)))


@lru_cache(maxsize=64)
def load(source: str) -> dsl.PolicySet:
    """The policy set for a generated text (cached: shrinking varies the inputs of one text)."""
    return dsl.load_source(source, file="generated.policy", schema=SCHEMA)


def prepare(case: Case) -> tuple[dsl.PolicySet, dict[str, Any], dict[str, Any]]:
    """Load and prepare a case; reject the few policies the checker rightly refuses."""
    note(f"policy text:\n{case.source}")
    try:
        policy_set = load(case.source)
    except dsl.PolicyError as exc:
        codes = {d.code for d in exc.diagnostics if d.severity == "error"}
        if codes <= UNAVOIDABLE:
            reject()
        # Large literals multiplied together may pass the checker's bound on computed
        # numbers. Rare: none in 2000 generated policies when the bound was set; run with
        # --hypothesis-show-statistics to see how often.
        too_large = codes <= UNAVOIDABLE | SIZE_CODES
        if too_large:
            hypothesis.event("skipped: the checker refused it for its size or cost")
        assume(not too_large)
        raise AssertionError(f"the checker refused a generated policy:\n{exc.render()}") from None
    customer = prepare_customer(SCHEMA, case.customer)
    event = prepare_event(SCHEMA, case.event)
    note(f"prepared customer: {customer!r}")
    note(f"prepared event: {event!r}")
    return policy_set, customer, event


def by(policy_set: dsl.PolicySet, runner: Runner, state: Any = None) -> Any:
    """``policy_set``'s evaluation through ``runner``: the one interface both runners share
    (with the window sums ``state``, for policies with counters)."""
    return functools.partial(policy_set.evaluate, runner=runner, state=state)


def assert_agree(policy_set: dsl.PolicySet, customer: dict[str, Any], event: dict[str, Any],
                 explain: bool, state: Any = None) -> None:
    compiled = outcome(by(policy_set, COMPILED, state), customer, event, explain)
    interpreted = outcome(by(policy_set, INTERPRETED, state), customer, event, explain)
    assert compiled == interpreted


# -- generated policies ----------------------------------------------------------------------

# These properties fail while a disagreement listed at the end of this file is open (each
# has its own minimised regression test there). Do not weaken them: fix dsl/.


@PROPERTY
@given(case=cases(), data=st.data())
def test_evaluate_agrees_with_interpreter(case: Case, data: st.DataObject) -> None:
    """Compiled evaluation gives the interpreter's decision (what it counted included), or
    the same EvaluationError; policies with counters read generated window sums."""
    policy_set, customer, event = prepare(case)
    state = data.draw(window_sums(policy_set, customer, event))
    note(f"state: {state!r}")
    assert_agree(policy_set, customer, event, explain=False, state=state)


@PROPERTY
@given(case=cases(), data=st.data())
def test_explain_agrees_with_interpreter(case: Case, data: st.DataObject) -> None:
    """Compiled explain gives the interpreter's decision and reasons, or the same EvaluationError."""
    policy_set, customer, event = prepare(case)
    state = data.draw(window_sums(policy_set, customer, event))
    note(f"state: {state!r}")
    assert_agree(policy_set, customer, event, explain=True, state=state)


@settings(PROPERTY, max_examples=100)
@given(case=cases())
def test_explain_decides_like_evaluate(case: Case) -> None:
    """Asking for reasons changes nothing else: explain's decision without reasons is evaluate's."""
    policy_set, customer, event = prepare(case)
    plain = outcome(by(policy_set, COMPILED), customer, event, explain=False)
    explained = outcome(by(policy_set, COMPILED), customer, event, explain=True)
    if isinstance(explained, tuple) and explained[0] == "Decision":
        explained[1]["reasons"] = strict(None)
    assert explained == plain


# -- the bundled example policies --------------------------------------------------------------


@cache
def bundled() -> dsl.PolicySet:
    return dsl.load_directory(ROOT / "policies")


@st.composite
def bundled_inputs(draw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = bundled().schema
    kind = draw(st.sampled_from(sorted({k for p in bundled().policies for k in p.kinds})))
    return draw(raw_customers(schema)), draw(raw_events(schema, kind))


@settings(PROPERTY, max_examples=150)
@given(raw=bundled_inputs(), explain=st.booleans(), data=st.data())
def test_bundled_policies_agree_with_interpreter(raw: tuple[dict[str, Any], dict[str, Any]],
                                                 explain: bool, data: st.DataObject) -> None:
    """On the example policies in policies/, compiled and interpreted evaluation agree."""
    policy_set = bundled()
    customer = prepare_customer(policy_set.schema, raw[0])
    event = prepare_event(policy_set.schema, raw[1])
    state = data.draw(window_sums(policy_set, customer, event))
    assert_agree(policy_set, customer, event, explain, state)


# -- disagreements the properties found, minimised -----------------------------------------------
# Each case was found by the properties above and reduced by hand; the assertion is the
# specification (compiled == interpreted). The comment says what went wrong before the fix.

CUSTOMER = {"id": "c1", "member_since": "2010-01-01"}
VISIT = {"id": "e1", "kind": "visit", "time": "2026-03-01T09:30:00Z"}
#: The largest whole number an input may hold (18 digits; see dsl.schema.schema.MAX_INPUT_DIGITS).
LARGEST = 10**18 - 1

DISAGREEMENTS = [
    pytest.param(
        # Was: compiled code used an int cap as it is (award 1000, "cap credit at 1000:
        # 2000.50 -> 1000"); the interpreter rounds every cap to the currency's decimals
        # (Decimal("1000.00"), "cap credit at 1000.00: 2000.50 -> 1000.00").
        "policy p\n  on visit\n  rule r: award 2000.5 credit\n  cap credit at 1000\n  round credit down\n",
        CUSTOMER, VISIT, True,
        id="int-cap-on-2-decimal-currency",
    ),
    pytest.param(
        # Was: the exact integer path for a constant ratio gave 61728394506172839450617283945
        # for 50% of a 30-digit party size, where the interpreter's Decimal (28 significant
        # digits) gives ...950. Inputs now have at most 18 digits; the same edge at the
        # largest: 0.999999999999 * 999999999999999999 is 999999999998999999.000000000001.
        # Under a 28-digit context Decimal dropped the tail (rounding up gave
        # 999999999998999999); the evaluation context's 100 digits keep it, so both
        # evaluators give 999999999999000000, as the exact integer path does.
        # (`each award`: the integer path serves per-award rounding only.)
        "policy p\n  on visit\n  rule r: award 99.9999999999% of event.party_size miles\n"
        "  round miles up each award\n",
        CUSTOMER, {**VISIT, "party_size": LARGEST}, False,
        id="constant-ratio-of-the-largest-input",
    ),
    pytest.param(
        # The same award under total rounding: it stays exact until the total is rounded
        # once (999999999998999999.000000000001 up: 999999999999000000), in both evaluators.
        "policy p\n  on visit\n  rule r: award 99.9999999999% of event.party_size miles\n"
        "  rule s: award 0.5 of event.party_size miles\n  round miles up\n",
        CUSTOMER, {**VISIT, "party_size": LARGEST}, True,
        id="largest-input-summed-exactly-then-rounded",
    ),
    pytest.param(
        # Was: -0.5 * 0 is Decimal("-0.0"), rounded to Decimal("-0.00"). Compiled explain
        # reported the rule's award as it was: fired +-0.00 credit; the interpreter added each
        # award to 0 first: fired +0.00 credit. Now a zero award is the currency's own zero.
        "policy p\n  on visit\n  rule r: award -0.5 * 0 credit\n  round credit down\n",
        CUSTOMER, VISIT, True,
        id="negative-zero-award-in-reasons",
    ),
    pytest.param(
        # Was: with a party size of 10**2200, rule a's award had 4401 digits, too many for
        # Python to turn into text, so writing rule b's not_chosen reason ("group g chose
        # a (...)") failed in both evaluators, at different lines. Inputs now have at most
        # 18 digits (and computed numbers at most 100), so every award can be written; at
        # the largest input rule a awards a 36-digit number, and the reasons agree.
        "policy p\n  on visit\n  group g takes best miles:\n"
        "    rule a: award event.party_size * event.party_size miles\n    rule b: award 1 miles\n",
        CUSTOMER, {**VISIT, "party_size": LARGEST}, True,
        id="largest-award-written-into-a-reason",
    ),
]


@pytest.mark.parametrize(("source", "customer", "event", "explain"), DISAGREEMENTS)
def test_minimised_disagreement(source: str, customer: dict[str, Any], event: dict[str, Any],
                                explain: bool) -> None:
    """A minimised case the properties found: compiled and interpreted evaluation agree on it."""
    policy_set = dsl.load_source(source, schema=SCHEMA)
    c, e = prepare_customer(SCHEMA, customer), prepare_event(SCHEMA, event)
    assert_agree(policy_set, c, e, explain)


def test_constant_ratio_award_is_the_same_in_evaluate_and_explain() -> None:
    """Asking for reasons does not change a large award (the exact ratio path must match Decimal)."""
    # Was: evaluate gave 61728394506172839450617283945 miles, explain ...950 (for a 30-digit
    # party size, which is now refused as input; this is the same edge at the largest input).
    policy_set = dsl.load_source(DISAGREEMENTS[1].values[0], schema=SCHEMA)
    c = prepare_customer(SCHEMA, CUSTOMER)
    e = prepare_event(SCHEMA, {**VISIT, "party_size": LARGEST})
    assert policy_set.evaluate(c, e).awards == policy_set.evaluate(c, e, explain=True).awards


@pytest.mark.parametrize("condition", ['"a" is present', '("a" otherwise "b") == "b"', "1 is missing"],
                         ids=["literal-is-present", "literal-otherwise", "literal-is-missing"])
def test_generated_code_compiles_without_warnings(condition: str) -> None:
    """A valid policy compiles with warnings turned into errors (no SyntaxWarning from codegen)."""
    # Was: `"a" is present` became `('a' is not None)`, which Python warns about ('"is not"
    # with a literal'); under -W error the policy was refused as internal_error.
    source = f'policy p\n  on visit\n  rule r when {condition}: tag "x"\n'
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        policy_set = dsl.load_source(source, schema=SCHEMA)
    assert [p.name for p in policy_set.policies] == ["p"]


def test_collect_of_a_possibly_missing_value_is_refused() -> None:
    """A `collect` row that may give a missing value is an optional_value error, not a run-time TypeError."""
    # Was: the checker typed the list as `list of int`, so sum() over it passed the checker
    # and a missing score made both evaluators fail with "evaluation failed: TypeError".
    source = ("policy p\n  on visit\n  decide scores collect:\n"
              "    when event.party_size > 0 -> customer.score\n"
              "  rule r: award sum(s for s in scores) miles\n")
    with pytest.raises(dsl.PolicyError) as caught:
        dsl.load_source(source, schema=SCHEMA)
    assert [d.render() for d in caught.value.diagnostics if d.severity == "error"] == [
        "<policy>:4:34: optional_value: customer.score may be missing, and this use needs a value\n"
        "    |     when event.party_size > 0 -> customer.score\n"
        "    |                                  ^^^^^^^^^^^^^^\n"
        "    = hint: give a default: `customer.score otherwise 0`, or check it first: "
        "`customer.score is present and ...`"
    ]
