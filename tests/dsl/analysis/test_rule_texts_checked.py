"""The checker on rule texts: every placeholder names what its rule awards, a binding or a
field, and anything else is a diagnostic with its place and a "did you mean"."""

from __future__ import annotations

import pytest

import dsl
from dsl.analysis.checker import check_policy
from dsl.front.parser import parse

SCHEMA = dsl.Schema.for_directory("policies")
HEAD = "policy p\n  on flight\n  let tenure = tenure_years(customer.member_since, event.date)\n"


def diagnostics(body: str) -> list[str]:
    result = check_policy(SCHEMA, parse(HEAD + body, "p.policy")[0])
    return [d.render() for d in result.diagnostics]


def test_awards_bindings_and_fields_are_placeholders() -> None:
    """The rule's currency, a let and a field are all a text may name; nothing is reported,
    and the binding a text names counts as used."""
    assert diagnostics(
        "  rule r when tenure >= 10:\n    award 10 miles\n"
        '    says "{miles} miles for {tenure} years, {customer.tier} {event.origin}"\n') == []


@pytest.mark.parametrize(("body", "expected"), [
    pytest.param(
        '  rule r:\n    award 1 miles\n    says "{mils}"\n',
        ["p.policy:6:12: unknown_placeholder: rule r says `{mils}`, which it neither awards "
         "nor defines\n"
         '    |     says "{mils}"\n'
         "    |            ^^^^\n"
         "    = hint: did you mean `miles`?",
         "p.policy:3:3: warning: unused_binding: `tenure` is defined but never used\n"
         "    |   let tenure = tenure_years(customer.member_since, event.date)\n"
         "    |   " + "^" * 60 + "\n"
         "    = hint: use it or delete it"],
        id="misspelt_currency"),
    pytest.param(
        '  rule r:\n    award 1 miles\n    says fr "{tenur} ans"\n',
        ["p.policy:6:15: unknown_placeholder: rule r says `{tenur}`, which it neither awards "
         "nor defines\n"
         '    |     says fr "{tenur} ans"\n'
         "    |               ^^^^^\n"
         "    = hint: did you mean `tenure`?",
         "p.policy:3:3: warning: unused_binding: `tenure` is defined but never used\n"
         "    |   let tenure = tenure_years(customer.member_since, event.date)\n"
         "    |   " + "^" * 60 + "\n"
         "    = hint: use it or delete it"],
        id="misspelt_binding"),
    pytest.param(
        '  rule r when tenure > 1:\n    award 1 miles\n    says "{points}"\n',
        ["p.policy:6:12: unknown_placeholder: rule r says `{points}`, which it neither awards "
         "nor defines\n"
         '    |     says "{points}"\n'
         "    |            ^^^^^^\n"
         "    = hint: a placeholder names a currency the rule awards, a let, a table or a field "
         "such as {customer.tier}; here: miles, tenure"],
        id="a_currency_another_rule_awards"),
    pytest.param(
        '  rule r when tenure > 1:\n    award 1 miles\n    says "{customer.tiers}"\n',
        ["p.policy:6:12: unknown_field: customer has no field `tiers`\n"
         '    |     says "{customer.tiers}"\n'
         "    |            ^^^^^^^^^^^^^^\n"
         "    = hint: did you mean `tier`?"],
        id="misspelt_field"),
    pytest.param(
        '  rule r when tenure > 1:\n    award 1 miles\n    says "{customer}"\n',
        ["p.policy:6:12: type_error: `customer` is a record; read one of its fields\n"
         '    |     says "{customer}"\n'
         "    |            ^^^^^^^^\n"
         "    = hint: for example customer.member_since"],
        id="a_record"),
    pytest.param(
        '  rule r when tenure > 1:\n    award 1 miles\n    says "{later}"\n  let later = 2\n',
        ["p.policy:6:12: unknown_name: `later` is used before it is defined (line 7)\n"
         '    |     says "{later}"\n'
         "    |            ^^^^^\n"
         "    = hint: move its definition above this line",
         "p.policy:7:3: warning: unused_binding: `later` is defined but never used\n"
         "    |   let later = 2\n"
         "    |   ^^^^^^^^^^^^^\n"
         "    = hint: use it or delete it"],
        id="a_binding_defined_later"),
])
def test_unknown_placeholders_are_diagnostics(body: str, expected: list[str]) -> None:
    """A placeholder the rule cannot fill is reported where it stands, with a hint."""
    assert diagnostics(body) == expected
