"""The formatter on rule texts: ``says`` lines are kept, in order, after the effects, and a
rule with a text is always a block."""

from __future__ import annotations

import pytest

from dsl.front.parser import parse
from dsl.tools.formatter import format_source, structure

HEAD = "policy p\n  on flight\n\n"


@pytest.mark.parametrize(("source", "expected"), [
    pytest.param(
        HEAD + '  rule r:\n    award 1 miles\n    says   fr   "{miles} pour vous"\n',
        HEAD + '  rule r:\n    award 1 miles\n    says fr "{miles} pour vous"\n',
        id="spacing"),
    pytest.param(
        HEAD + '  rule r:\n    says "{miles} for you"\n    award 1 miles\n    tag "x"\n',
        HEAD + '  rule r:\n    award 1 miles\n    tag "x"\n    says "{miles} for you"\n',
        id="texts_after_the_effects"),
    pytest.param(
        HEAD + '  rule r:\n    award 1 miles\n    says "a \\"quoted\\" {{brace}}"\n    says de "b"\n',
        HEAD + '  rule r:\n    award 1 miles\n    says "a \\"quoted\\" {{brace}}"\n    says de "b"\n',
        id="escapes_and_order_kept"),
    pytest.param(
        HEAD + '  group g takes best miles:\n    rule a:\n      award 1 miles\n'
               '      says "one"  # why\n    rule b: award 2 miles\n',
        HEAD + '  group g takes best miles:\n    rule a:\n      award 1 miles\n'
               '      says "one"  # why\n    rule b: award 2 miles\n',
        id="in_a_group_with_a_comment"),
])
def test_texts_are_laid_out(source: str, expected: str) -> None:
    """`says` lines take one space after the keyword and the language, stand after the
    effects in the order written, and keep their comments; the result is a fixed point
    and means the same."""
    out = format_source(source)
    assert out == expected
    assert format_source(out) == out
    assert structure(parse(out)) == structure(parse(source))


def test_a_one_effect_rule_with_a_text_stays_a_block() -> None:
    """A rule that would fit on one line is still a block when it has a text."""
    source = HEAD + '  rule r:\n    award 1 miles\n    says "hi"\n'
    assert format_source(source) == source


def test_texts_in_another_language_or_placeholder_change_the_structure() -> None:
    """The structure the formatter verifies against sees the language and the
    placeholders, so a formatter that dropped either would be caught."""
    a = parse(HEAD + '  rule r:\n    award 1 miles\n    says fr "{miles}"\n')
    b = parse(HEAD + '  rule r:\n    award 1 miles\n    says de "{miles}"\n')
    c = parse(HEAD + '  rule r:\n    award 1 miles\n    says fr "{{miles}}"\n')
    assert len({structure(a), structure(b), structure(c)}) == 3
