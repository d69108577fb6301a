"""Rule texts in the front end: ``says [language] "..."`` parsed, its placeholders read by hand
(``dsl.front.texts``), and every malformed text named with its place."""

from __future__ import annotations

import pytest

from dsl.errors import PolicyError
from dsl.front import nodes as n
from dsl.front.parser import parse
from dsl.front.texts import MAX_PLACEHOLDERS, read_template

HEAD = "policy p\n  on flight\n  let tenure = 3\n"


def rule_of(body: str) -> n.Rule:
    return parse(HEAD + body, "p.policy")[0].rules[0]


def errors_of(body: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse(HEAD + body, "p.policy")
    return [d.render() for d in info.value.diagnostics]


@pytest.mark.parametrize(("token", "parts", "names"), [
    pytest.param('"plain words"', ("plain words",), [], id="no_placeholder"),
    pytest.param('"{miles} miles for {tenure} years"', ("", "miles", " miles for ", "tenure", " years"),
                 ["miles", "tenure"], id="two_placeholders"),
    pytest.param('"{customer.tier}"', ("", "customer.tier", ""), ["customer.tier"], id="a_field"),
    pytest.param('"{{not}} a {{placeholder}}"', ("{not} a {placeholder}",), [], id="doubled_braces"),
    pytest.param(r'"say \"{miles}\"\n"', ('say "', "miles", '"\n'), ["miles"], id="escapes_decoded"),
])
def test_a_template_is_literal_text_between_placeholders(token: str, parts: tuple[str, ...],
                                                         names: list[str]) -> None:
    """A text reads into alternating literal parts and placeholder names, braces doubled to
    write a brace, string escapes decoded."""
    template = read_template(token)
    assert template.parts == parts
    assert [p.name for p in template.placeholders] == names
    assert not template.problems


@pytest.mark.parametrize(("token", "message"), [
    pytest.param('"{0.__class__}"', "`{0.__class__}` is not a placeholder", id="format_attribute_trick"),
    pytest.param('"{miles!r}"', "`{miles!r}` is not a placeholder", id="conversion"),
    pytest.param('"{miles:>10}"', "`{miles:>10}` is not a placeholder", id="format_spec"),
    pytest.param('"{a[0]}"', "`{a[0]}` is not a placeholder", id="index"),
    pytest.param('"{}"', "`{}` is not a placeholder", id="empty"),
    pytest.param('"{miles"', "a `{` opens a placeholder that is never closed", id="unclosed"),
    pytest.param('"miles}"', "a `}` closes no placeholder", id="lone_close"),
])
def test_anything_but_a_name_or_field_is_refused(token: str, message: str) -> None:
    """A text can hold nothing str.format would interpret: no attribute of an index, no
    conversion, no format specification; each is a problem, not a placeholder."""
    template = read_template(token)
    assert [p.message for p in template.problems] == [message]
    assert not template.placeholders


def test_placeholders_are_bounded() -> None:
    """A text holds at most MAX_PLACEHOLDERS placeholders."""
    token = '"' + "{a}" * (MAX_PLACEHOLDERS + 1) + '"'
    template = read_template(token)
    assert len(template.placeholders) == MAX_PLACEHOLDERS
    assert [p.message for p in template.problems] == [
        f"a text may hold at most {MAX_PLACEHOLDERS} placeholders"]


def test_says_lines_become_the_rules_texts_with_placeholder_spans() -> None:
    """`says` lines leave the effects and become the rule's texts, in order, each
    placeholder an expression whose span is its place inside the string."""
    rule = rule_of('  rule r:\n    award 1 miles\n    says "{miles} for {customer.tier}"\n'
                   '    says fr "{miles} pour {tenure} ans"\n')
    assert [type(e).__name__ for e in rule.effects] == ["Award"]
    assert [(t.language, t.text) for t in rule.texts] == [
        ("", "{miles} for {customer.tier}"), ("fr", "{miles} pour {tenure} ans")]
    first = rule.texts[0].placeholders
    assert isinstance(first[0], n.Name) and first[0].name == "miles"
    assert (first[0].span.line, first[0].span.column, first[0].span.end_column) == (6, 12, 17)
    assert isinstance(first[1], n.Attribute) and first[1].name == "tier"
    assert isinstance(first[1].value, n.Name) and first[1].value.name == "customer"
    assert (first[1].span.column, first[1].span.end_column) == (24, 37)


def test_says_may_stand_before_the_effects() -> None:
    """A text may be written anywhere in the rule's block."""
    rule = rule_of('  rule r:\n    says "Welcome"\n    award 1 miles\n')
    assert [t.text for t in rule.texts] == ["Welcome"]
    assert len(rule.effects) == 1


def test_a_keyword_can_be_a_language() -> None:
    """`in` and `is` are keywords elsewhere, but a language tag after `says`."""
    rule = rule_of('  rule r:\n    award 1 miles\n    says in "x"\n    says is "y"\n')
    assert [t.language for t in rule.texts] == ["in", "is"]


@pytest.mark.parametrize(("body", "expected"), [
    pytest.param(
        '  rule r:\n    award 1 miles\n    says "{0.__class__}"\n',
        ["p.policy:6:11: bad_text: `{0.__class__}` is not a placeholder\n"
         '    |     says "{0.__class__}"\n'
         "    |           ^^^^^^^^^^^^^\n"
         "    = hint: a placeholder is a name or a field and nothing else, such as {miles} or "
         "{customer.tier}"],
        id="not_a_placeholder"),
    pytest.param(
        '  rule r:\n    award 1 miles\n    says French "x"\n',
        ["p.policy:6:10: bad_language: `French` is not a language tag\n"
         '    |     says French "x"\n'
         "    |          ^^^^^^\n"
         "    = hint: write a language as two or three lower-case letters, with a region after "
         "an underscore if needed: en, fr, pt_BR"],
        id="bad_language"),
    pytest.param(
        '  rule r:\n    award 1 miles\n    says fr "a"\n    says fr "b"\n',
        ["p.policy:7:5: duplicate_text: rule r already has a `fr` text (line 6)\n"
         '    |     says fr "b"\n'
         "    |     ^^^^^^^^^^^\n"
         "    = hint: keep one text per language"],
        id="two_texts_in_one_language"),
    pytest.param(
        '  rule r: says "hello"\n',
        ["p.policy:4:3: no_effect: rule r says something but does nothing\n"
         '    |   rule r: says "hello"\n'
         "    |   ^^^^^^^^^^^^^^^^^^^^\n"
         "    = hint: give it an effect, such as `award 100 points`, above its text"],
        id="text_without_effect"),
])
def test_malformed_texts_are_diagnostics(body: str, expected: list[str]) -> None:
    """A malformed text, language or set of texts is a positioned diagnostic with a hint."""
    assert errors_of(body) == expected


def test_texts_per_rule_are_bounded() -> None:
    """A rule has at most MAX_TEXTS texts."""
    from dsl.front.texts import MAX_TEXTS

    langs = ["aa", "ab", "ac", "ad", "ae", "af", "ag", "ah", "ai"][:MAX_TEXTS + 1]
    body = "  rule r:\n    award 1 miles\n" + "".join(f'    says {x} "t"\n' for x in langs)
    [error] = errors_of(body)
    assert error.startswith(f"p.policy:{6 + MAX_TEXTS}:5: too_large: rule r has {MAX_TEXTS + 1} texts; "
                            f"the limit is {MAX_TEXTS}")
