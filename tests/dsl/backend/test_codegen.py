"""The code generator: golden files for whole policies, and a table of expression translations.

Regenerate the golden files after an intended change with::

    LOYALTY_REGENERATE_GOLDEN=1 python -m pytest tests/dsl/backend/test_codegen.py
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import dsl
from dsl.policyset import build, holds_definitions
from dsl.programme import definition_sources
from tests.dsl.input.reference import prepare_customer, prepare_event

GOLDEN = Path(__file__).with_name("golden")
SCHEMA = dsl.Schema.for_directory("policies")
REGENERATE = os.environ.get("LOYALTY_REGENERATE_GOLDEN") == "1"


#: Files of shared definitions compile into the policies that use them, not on their own.
POLICY_FILES = [p for p in sorted(Path("policies").rglob("*.policy"))
                if not holds_definitions(p.read_text())]


@pytest.mark.parametrize("policy_file", POLICY_FILES, ids=lambda p: p.stem)
def test_generated_code_matches_golden(policy_file: Path) -> None:
    """Each bundled policy compiles to exactly its reviewed golden module (with the shared
    definitions it uses, from the programme's definitions files)."""
    sources = [(str(policy_file), policy_file.read_text()),
               *definition_sources("policies", exclude=policy_file)]
    ps = build(sources, SCHEMA)
    source = "\n\n".join(p.source(v) for p in ps.compiled for v in ("evaluate", "explain"))
    golden = GOLDEN / f"{policy_file.stem}.py.txt"
    if REGENERATE:
        golden.write_text(source)
    assert golden.exists(), f"no golden file {golden}: run with LOYALTY_REGENERATE_GOLDEN=1"
    assert source == golden.read_text()


def evaluate_let(expr: str, event: dict[str, Any] | None = None) -> tuple[str, Any, Any]:
    """Compile ``let x = expr`` and return (generated line, compiled value, interpreted value)."""
    text = f"policy p\n  on flight\n  let x = {expr}\n  rule r: tag \"t\"\n"
    ps = dsl.load_source(text, schema=SCHEMA)
    [p] = ps.compiled
    line = next(ln.strip() for ln in p.generated.source.splitlines() if ln.strip().startswith("v_x ="))
    c = prepare_customer(SCHEMA, {"id": "c", "member_since": "2010-02-28", "tier": "GOLD"})
    e = prepare_event(SCHEMA, event or {"id": "e", "kind": "flight", "time": "2026-03-01T10:00:00Z",
                                       "origin": "JFK", "destination": "LHR", "fare": "99.50"})
    from dsl.backend.interpreter import Interpreter

    interp = Interpreter(p.ast, SCHEMA, p.check.rounding, p.check.ranked)
    env = {"customer": c, "event": e}
    interpreted = interp.eval(p.ast.lets[0].value, env)
    namespace: dict[str, Any] = {}
    compiled = eval(line.split("=", 1)[1], {**p.module.evaluate.__globals__, "c": c, "e": e}, namespace)
    return line, compiled, interpreted


@pytest.mark.parametrize(
    ("expr", "python", "value"),
    [
        pytest.param("1 + 2 * 3", "v_x = (1 + (2 * 3))", 7, id="precedence"),
        pytest.param("10 / 4", "v_x = div(10, 4)", Decimal("2.5"), id="division-is-exact-decimal"),
        pytest.param("50% of 30", "v_x = (K1 * 30)", Decimal("15.0"), id="percent-of"),
        pytest.param("-7 % 3", "v_x = mod(-7, 3)", 2, id="remainder-has-the-divisor-sign"),
        pytest.param("event.fare % 10", "v_x = mod(e['fare'], 10)", Decimal("9.50"),
                     id="remainder-of-a-decimal-is-exact"),
        pytest.param('event.cabin == "economy"', "v_x = (e['cabin'] == 'economy')", True,
                     id="field-comparison"),
        pytest.param("(event.distance_miles otherwise 7) + 1",
                     "v_x = ((e['distance_miles'] if e['distance_miles'] is not None else 7) + 1)", 8,
                     id="otherwise-in-an-expression"),
        pytest.param("if event.partner then 1 else 2", "v_x = (1 if e['partner'] else 2)", 2,
                     id="if-then-else"),
        pytest.param('event.cabin in ["economy", "business"]',
                     "v_x = (e['cabin'] in ['economy', 'business'])", True, id="membership"),
        pytest.param("max(event.fare, 100)", "v_x = (100 if 100 > e['fare'] else e['fare'])", 100,
                     id="max-of-two-inlined"),
        pytest.param("tenure_years(customer.member_since, event.date)",
                     "v_x = fn_tenure_years(c['member_since'], e['date'])", 16, id="builtin-call"),
        pytest.param("event.carrier is missing", "v_x = (e['carrier'] is None)", True, id="is-missing"),
        pytest.param('"a\\"b"', "v_x = 'a\"b'", 'a"b', id="string-escapes-via-repr"),
    ],
)
def test_expression_translation(expr: str, python: str, value: Any) -> None:
    """Each expression compiles to the expected readable Python, and both evaluators agree on it."""
    line, compiled, interpreted = evaluate_let(expr)
    assert line == python
    assert compiled == value
    assert interpreted == value
