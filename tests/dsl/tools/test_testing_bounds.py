"""Policy test files are read within bounds: hostile files get a positioned diagnostic, not a
RecursionError, an out-of-memory kill or a quadratic load."""

from __future__ import annotations

import pytest

from dsl.schema.schema import Schema
from dsl.tools.testing.loader import Locator, load_case_file

SCHEMA = Schema.load(None)

CASE = """
[[case]]
name = "c{i}"
customer = {{ member_since = 2020-01-01 }}
event = {{ kind = "visit", time = 2026-03-04T14:00:00Z }}
expect = {{ awards = {{}} }}
"""


@pytest.mark.parametrize(("name", "text", "where", "message"), [
    ("nested-100000-deep", "[[case]]\nname = 'x'\nv = " + "[" * 100_000 + "]" * 100_000 + "\n", (3, 37),
     "this test file is too large: values nest more than 32 levels deep"),
    ("dotted-key-bomb", "[[case]]\n" + "k" + ".k" * 8_000 + " = 1\n", (2, 64),
     "this test file is too large: a dotted key has more than 32 parts"),
    ("40001-tables", "[[case]]\nname = 'x'\n" * 40_001, (80_001, 1),
     "this test file is too large: more than 40,000 tables"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 30 else "")
def test_a_hostile_test_file_is_one_positioned_diagnostic(name, text, where, message):
    """The file is refused with test_too_large at the place it crossed the bound, and a hint."""
    cases, diagnostics = load_case_file(text, "hostile.test.toml", SCHEMA)
    assert cases == []
    assert [(d.code, (d.line, d.column), d.message, d.hint) for d in diagnostics] == [
        ("test_too_large", where, message, "split the cases over several test files beside the policy")]


def test_positions_in_a_file_of_many_cases_are_found_by_line_table():
    """Every case's line comes from the table of line starts (the old count of the text before
    each position made a file of 64,000 cases take 54 s)."""
    text = "".join(CASE.format(i=i) for i in range(5_000))
    locator = Locator(text)
    assert [locator.case_line(i) for i in (0, 1, 4_999)] == [2, 8, 2 + 6 * 4_999]
    assert locator._line_col(len(text)) == (text.count("\n") + 1, 1)
