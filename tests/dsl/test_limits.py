"""Limits: deep nesting, big files, many rules and big inputs give diagnostics, never crashes.

A policy that nests too deeply, a file that is too large or a policy with too many rules is
refused with its own diagnostic (``too_deep``, ``too_large``, ``too_many_rules``) and never
drives a stage into a ``RecursionError``. Evaluation always terminates: every loop in a
policy is an aggregate over a list of the input, so its work is bounded by the input's size.
Inputs are bounded by the schema (numbers of at most 18 digits, strings of at most 10,000
characters, lists of at most 10,000 items): beyond that they are refused with an InputError,
and at the bounds every evaluation still works. These are correctness tests, not timed ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from strategies import SCHEMA, decisions

import dsl
from dsl.front.parser import MAX_SOURCE_BYTES
from tests.dsl.input.reference import prepare_customer, prepare_event

#: The largest whole number an input may hold (dsl.schema.schema.MAX_INPUT_DIGITS: 18 digits).
LARGEST = 10**18 - 1

CUSTOMER = {"id": "c1", "member_since": "2010-01-01"}
VISIT = {"id": "e1", "kind": "visit", "time": "2026-03-01T09:30:00Z", "party_size": 2}


def policy(*members: str, kind: str = "visit") -> str:
    return "policy p\n  on " + kind + "\n" + "".join(f"  {m}\n" for m in members)


def load(text: str) -> dsl.PolicySet:
    return dsl.load_source(text, schema=SCHEMA)


def refusal(text: str) -> list[dsl.Diagnostic]:
    """The error diagnostics for a policy text that must be refused."""
    with pytest.raises(dsl.PolicyError) as caught:
        load(text)
    return [d for d in caught.value.diagnostics if d.severity == "error"]


# -- nesting depth -----------------------------------------------------------------------------


def nested_aggregates(n: int) -> str:
    text = "1"
    for i in range(n):
        text = f"sum({text} for x{i} in [1])"
    return text


#: Whole-number expressions nested ``n`` levels deep, and their value for VISIT (party size 2,
#: no score). ``n`` is even, so chains of `-` and `not` keep their sign.
SHAPES: dict[str, tuple[Callable[[int], str], Callable[[int], int]]] = {
    "sum-chain": (lambda n: " + ".join(["event.party_size"] * n), lambda n: 2 * n),
    "right-nested-parentheses": (lambda n: "(1 + " * n + "1" + ")" * n, lambda n: n + 1),
    "if-then-else": (lambda n: "if event.party_size > 0 then " * n + "1" + " else 2" * n, lambda n: 1),
    "not-chain": (lambda n: "if " + "not " * n + "(event.party_size > 0) then 1 else 0", lambda n: 1),
    "unary-minus": (lambda n: "- " * n + "event.party_size", lambda n: 2),
    "nested-calls": (lambda n: "abs(" * n + "event.party_size" + ")" * n, lambda n: 2),
    "otherwise-chain": (lambda n: " otherwise ".join(["customer.score"] * n) + " otherwise 1", lambda n: 1),
    "and-chain": (lambda n: "if " + " and ".join(["event.party_size > 0"] * n) + " then 1 else 0",
                  lambda n: 1),
    "nested-aggregates": (nested_aggregates, lambda n: 1),
    "nested-lists": (lambda n: "count(x for x in " + "[" * n + "1" + "]" * n + ")", lambda n: 1),
}

#: Where an expression can sit, as policy members around ``X`` (which must give the award).
CONTEXTS = {
    "let": ("let v = X", "rule r: award v miles"),
    "award": ("rule r: award X miles",),
    "condition": ("rule r when X == X: award X miles",),
    "grant-parameter": ('rule r: grant "upgrade" with cabin = "c", seats = X', "rule s: award X miles"),
    "table-row": ("table t by event.party_size:", "  2 -> X", "  else -> 0", "rule r: award t miles"),
    "decide-row": ("decide v first:", "  when X > 0 -> X", "  else -> 0", "rule r: award v miles"),
    "group-rule": ("group g takes best miles:", "  rule r when X > 0: award X miles"),
    "cap": ("rule r: award X miles", "cap miles at X + 1"),
}


def placed(context: str, expression: str) -> str:
    return policy(*(m.replace("X", f"({expression})") for m in CONTEXTS[context]))


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_deep_nesting_is_too_deep(shape: str, context: str) -> None:
    """An expression nested hundreds of levels deep is refused with too_deep, never a RecursionError."""
    errors = refusal(placed(context, SHAPES[shape][0](300)))
    assert {d.code for d in errors} == {"too_deep"}


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_moderate_nesting_is_accepted(shape: str, context: str) -> None:
    """An expression nested 30 levels deep loads, compiles and evaluates the same both ways."""
    make, value = SHAPES[shape]
    policy_set = load(placed(context, make(30)))
    for d in decisions(policy_set, CUSTOMER, VISIT):
        assert d.awards == {"miles": value(30)}


@pytest.mark.parametrize("terms", [1_000, 20_000])
def test_very_long_chains_are_too_deep(terms: int) -> None:
    """Chains of thousands of operators are refused with too_deep, never a RecursionError."""
    chain = " + ".join(["1"] * terms)
    errors = refusal(policy(f"let v = {chain}", "rule r: award v miles"))
    assert [d.code for d in errors] == ["too_deep"]


def test_too_deep_diagnostic_is_pinned() -> None:
    """The too_deep diagnostic says where, how deep, and what to do."""
    errors = refusal(policy("let v = " + "-" * 70 + "event.party_size", "rule r: award v miles"))
    assert [d.render() for d in errors] == [
        "<policy>:3:69: too_deep: this expression nests deeper than 48 levels\n"
        "    |   let v = " + "-" * 70 + "event.party_size\n"
        "    |" + " " * 69 + "^" * 28 + "\n"
        "    = hint: split it into several `let` bindings"
    ]


def test_parentheses_around_one_value_do_not_nest() -> None:
    """Ten thousand parentheses around one value are just that value: no recursion anywhere."""
    policy_set = load(policy("let v = " + "(" * 10_000 + "event.party_size" + ")" * 10_000,
                             "rule r: award v miles"))
    for d in decisions(policy_set, CUSTOMER, VISIT):
        assert d.awards == {"miles": 2}


# -- file size -----------------------------------------------------------------------------------


def padded(size: int, filler: str = "x") -> str:
    """A valid policy of exactly ``size`` bytes in UTF-8, padded by a comment."""
    head = policy('rule r: tag "x"')
    room = size - len(head.encode()) - len(b"# \n")
    count, rest = divmod(room, len(filler.encode()))
    return head + "# " + filler * count + "x" * rest + "\n"


def test_file_at_the_size_limit_is_accepted() -> None:
    """A file of exactly MAX_SOURCE_BYTES bytes loads."""
    text = padded(MAX_SOURCE_BYTES)
    assert len(text.encode()) == MAX_SOURCE_BYTES
    assert [p.name for p in load(text).policies] == ["p"]


def test_file_over_the_size_limit_is_too_large() -> None:
    """One byte over the limit is refused with too_large, worded as pinned."""
    errors = refusal(padded(MAX_SOURCE_BYTES + 1))
    assert [d.render() for d in errors] == [
        "<policy>:1:1: too_large: the file is 524289 bytes; a policy file may be at most 524288 bytes\n"
        "    = hint: split the policy into several files"
    ]


def test_size_limit_counts_bytes_not_characters() -> None:
    """A file under the limit in characters but over it in UTF-8 bytes is too_large."""
    text = padded(MAX_SOURCE_BYTES + 2, filler="é")
    assert len(text) < MAX_SOURCE_BYTES
    assert [d.code for d in refusal(text)] == ["too_large"]


# -- rule, row and member counts ------------------------------------------------------------------


def test_the_most_rules_a_policy_may_hold_all_apply() -> None:
    """A policy of 2000 rules (the limit) loads, and every rule fires in both evaluators."""
    policy_set = load(policy(*(f"rule r{i}: award 1 miles" for i in range(2000))))
    for d in decisions(policy_set, CUSTOMER, VISIT):
        assert (d.awards, len(d.fired)) == ({"miles": 2000}, 2000)


def test_one_rule_over_the_limit_is_too_many_rules() -> None:
    """The 2001st rule is refused with too_many_rules, pointing at it."""
    errors = refusal(policy(*(f'rule r{i}: tag "x"' for i in range(2001))))
    assert [d.render() for d in errors] == [
        "<policy>:2003:3: too_many_rules: the policy has 2001 rules; the limit is 2000\n"
        '    |   rule r2000: tag "x"\n'
        "    |   ^^^^^^^^^^^^^^^^^^^\n"
        "    = hint: split it into several policies"
    ]


def test_rules_inside_groups_count_towards_the_limit() -> None:
    """Rules in groups count like any other: 1000 in a group and 1001 outside are too many."""
    grouped = ["group g takes first:"] + [f'  rule g{i} when event.party_size > {i}: tag "x"'
                                          for i in range(1000)]
    errors = refusal(policy(*grouped, *(f'rule r{i}: tag "x"' for i in range(1001))))
    assert [d.code for d in errors] == ["too_many_rules"]


def test_table_over_the_row_limit_is_too_large() -> None:
    """A table of 5001 rows is refused with too_large, worded as pinned."""
    rows = [f"  {i} -> {i}" for i in range(5001)]
    errors = refusal(policy("table t by event.party_size:", *rows, "rule r: award t otherwise 0 miles"))
    assert [d.render() for d in errors] == [
        "<policy>:3:3: too_large: the table has 5001 rows; the limit is 5000\n"
        "    |   table t by event.party_size:\n"
        "    |   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        "    = hint: split it"
    ]


def test_policy_over_the_member_limit_is_too_large() -> None:
    """A policy of more than 6000 members is refused with too_large, worded as pinned."""
    errors = refusal(policy(*(f"let v{i} = {i}" for i in range(6001)), 'rule r: tag "x"'))
    assert [d.render() for d in errors] == [
        "<policy>:1:1: too_large: the policy has 6002 members; the limit is 6000\n"
        "    | policy p\n"
        "    | ^^^^^^^^\n"
        "    = hint: split it into several policies"
    ]


# -- evaluation is bounded by its input --------------------------------------------------------------


def purchase(amounts: list[int]) -> dict[str, Any]:
    return {"id": "e1", "kind": "purchase", "time": "2026-03-01T09:30:00Z", "amount": "0",
            "items": [{"sku": f"s{i}", "category": "fresh" if i % 2 else "tools", "amount": str(a)}
                      for i, a in enumerate(amounts)]}


def test_aggregates_over_a_big_list_are_exact() -> None:
    """Aggregates over 10,000 items (the most a list may hold) visit each once and give exact
    results in both evaluators."""
    amounts = [(i * 7919) % 10_007 for i in range(10_000)]
    policy_set = load(policy(
        "let fresh = count(i for i in event.items where i.category == \"fresh\")",
        "let total = sum(i.amount for i in event.items)",
        "let top = max(i.amount for i in event.items)",
        "let low = min(i.amount for i in event.items)",
        "let sane = all(i.amount >= 0 for i in event.items)",
        "rule counted when sane and any(i.amount > 10000 for i in event.items):",
        "  award fresh miles",
        "  award total points",
        "  award top - low credit",
        "round points down",
        "round credit down",
        kind="purchase",
    ))
    expected = {"miles": 5_000, "points": sum(amounts), "credit": max(amounts) - min(amounts)}
    for d in decisions(policy_set, CUSTOMER, purchase(amounts)):
        assert d.awards == expected


def test_a_list_over_the_item_limit_is_an_input_error() -> None:
    """A list of 10,001 items is refused before any policy runs, worded as pinned."""
    with pytest.raises(dsl.InputError) as caught:
        prepare_event(SCHEMA, purchase([1] * 10_001))
    assert str(caught.value) == "event.items: has more than 10000 items"


def test_nested_aggregates_over_input_lists_are_too_costly() -> None:
    """An aggregate over an input list inside another could take 10,000 x 10,000 steps: refused
    with too_costly at the inner aggregate, worded as pinned."""
    # Was accepted (and evaluated on 300 items): at the 10,000 items an input may hold it is
    # 10**8 steps, far past any cost bound.
    inner = "any(j.amount > i.amount for j in event.items)"
    errors = refusal(policy(
        f"let beaten = count(i for i in event.items where {inner})",
        "rule r: award beaten miles",
        kind="purchase",
    ))
    assert [d.render() for d in errors] == [
        f"<policy>:3:51: too_costly: {inner} could take 500000000 steps in one evaluation "
        "(10000 items, 10000 times, 5 operations each); the limit is 1000000\n"
        f"    |   let beaten = count(i for i in event.items where {inner})\n"
        "    |" + " " * 51 + "^" * len(inner) + "\n"
        "    = hint: aggregate over one list at a time: compute what does not depend on the "
        "outer item in a `let` first"
    ]


def test_nested_aggregates_over_a_short_list_are_bounded_by_the_input() -> None:
    """An aggregate over a short literal list inside one over the input is accepted, and
    finishes exactly."""
    amounts = list(range(300))
    policy_set = load(policy(
        "let beaten = count(i for i in event.items where any(i.amount > k for k in [10, 100]))",
        "rule r: award beaten miles",
        kind="purchase",
    ))
    for d in decisions(policy_set, CUSTOMER, purchase(amounts)):
        assert d.awards == {"miles": 289}


def best_of(product: str) -> str:
    """A group whose rule a awards ``product``; explain writes it into rule b's reason."""
    return policy("group g takes best miles:", f"  rule a: award {product} miles",
                  "  rule b: award 1 miles")


@pytest.mark.parametrize("factors", [2, 5], ids=["18-by-18-digits", "five-18-digit-factors"])
def test_explain_copes_with_the_largest_awards(factors: int) -> None:
    """The largest products of inputs, up to the 90 digits of five, are explained: explain
    decides like evaluate and writes the award into its reasons."""
    # Was, with a party size of 10**2200 (now refused as input): a 4401-digit award, which
    # Python refuses to turn into text, so explain failed where evaluate succeeded.
    policy_set = load(best_of(" * ".join(["event.party_size"] * factors)))
    award = LARGEST**factors
    for d in decisions(policy_set, CUSTOMER, {**VISIT, "party_size": LARGEST}):
        assert d.awards == {"miles": award}
        if d.reasons is not None:
            assert [r.detail for r in d.reasons if r.rule == "b"] == [f"group g chose a ({award} miles)"]


def test_a_product_past_100_digits_is_number_too_large() -> None:
    """Six 18-digit inputs multiplied could pass 100 digits: refused with number_too_large, as pinned."""
    product = " * ".join(["event.party_size"] * 6)
    errors = refusal(best_of(product))
    assert [d.render() for d in errors] == [
        f"<policy>:4:19: number_too_large: {product} could grow past 100 digits: evaluating it "
        "would have no bounded cost\n"
        f"    |     rule a: award {product} miles\n"
        "    |" + " " * 19 + "^" * len(product) + "\n"
        "    = hint: this arithmetic multiplies large values together; simplify it"
    ]


# -- input at the edges --------------------------------------------------------------------------------


@pytest.mark.parametrize("instant", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"],
                         ids=["before-year-1-in-utc", "after-year-9999-in-utc"])
def test_instants_outside_the_calendar_are_input_errors(instant: str) -> None:
    """An event time that leaves the calendar when converted to UTC is an InputError, not an OverflowError."""
    # Was: parse_datetime's astimezone(UTC) raised OverflowError, which escaped.
    with pytest.raises(dsl.InputError) as caught:
        prepare_event(SCHEMA, {**VISIT, "time": instant})
    assert [e.path for e in caught.value.errors] == ["event.time"]


INPUTS_PAST_THE_BOUNDS = [
    pytest.param("event", {"party_size": LARGEST + 1},
                 "event.party_size: is out of range (at most 18 digits)", id="int-of-19-digits"),
    pytest.param("customer", {"score": -LARGEST - 1},
                 "customer.score: is out of range (at most 18 digits)", id="negative-int-of-19-digits"),
    pytest.param("customer", {"score": str(LARGEST + 1)},
                 "customer.score: is out of range (at most 18 digits)", id="int-text-of-19-digits"),
    pytest.param("event", {"spend": str(LARGEST + 1)},
                 "event.spend: is out of range (at most 18 digits before the point and 18 after)",
                 id="decimal-of-19-digits"),
    pytest.param("event", {"spend": "0." + "0" * 18 + "1"},
                 "event.spend: is out of range (at most 18 digits before the point and 18 after)",
                 id="decimal-of-19-places"),
    pytest.param("event", {"venue": "x" * 10_001},
                 "event.venue: is longer than 10000 characters", id="string-of-10001-characters"),
]


@pytest.mark.parametrize(("record", "fields", "message"), INPUTS_PAST_THE_BOUNDS)
def test_inputs_past_the_bounds_are_input_errors(record: str, fields: dict[str, Any], message: str) -> None:
    """A number (or its text) or a string one step past the schema's bounds is an InputError,
    worded as pinned."""
    with pytest.raises(dsl.InputError) as caught:
        if record == "customer":
            prepare_customer(SCHEMA, {**CUSTOMER, **fields})
        else:
            prepare_event(SCHEMA, {**VISIT, **fields})
    assert str(caught.value) == message


def test_inputs_at_the_bounds_are_accepted_exactly() -> None:
    """The largest numbers, the most decimal places and the longest string an input may hold
    arrive unchanged."""
    customer = prepare_customer(SCHEMA, {**CUSTOMER, "score": -LARGEST})
    event = prepare_event(SCHEMA, {**VISIT, "party_size": LARGEST, "venue": "x" * 10_000,
                                  "spend": "999999999999999999.999999999999999999"})
    assert (customer["score"], event["party_size"], event["venue"], str(event["spend"])) == (
        -LARGEST, LARGEST, "x" * 10_000, "999999999999999999.999999999999999999")


def test_oversized_number_text_is_a_plain_input_error() -> None:
    """A 5000-digit whole number sent as text is an InputError naming the field, in the caller's words."""
    # Was: the reason was Python's own message, which told an API client to call
    # sys.set_int_max_str_digits().
    with pytest.raises(dsl.InputError) as caught:
        prepare_customer(SCHEMA, {**CUSTOMER, "lifetime": {"miles": "9" * 5000}})
    assert [e.path for e in caught.value.errors] == ["customer.lifetime.miles"]
    assert "sys." not in caught.value.errors[0].reason
