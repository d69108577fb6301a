"""The builtins' table is the one declaration: every consumer reads every entry of it.

The checker, the runtime's exports to generated code, the reference interpreter, the code
generator, the cost bound, docs/language.md and the Hypothesis strategies each fail a test
here when they miss an entry (or know a builtin the table does not).

    LOYALTY_REGENERATE_GOLDEN=1 python -m pytest tests/dsl/library/test_builtins.py

rewrites docs/language.md's table from the entries.
"""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path

import pytest
import strategies

import dsl
from dsl.analysis.checker import check_policy
from dsl.backend.codegen import CodeGenerator
from dsl.backend.interpreter import Interpreter
from dsl.errors import PolicyError
from dsl.front import nodes as n
from dsl.front.parser import parse
from dsl.library import runtime as rt
from dsl.library.builtins import BUILTINS, BUILTINS_LIST, EXPORTS, Builtin, cost_table, docs_table

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "language.md"
REGENERATE = os.environ.get("LOYALTY_REGENERATE_GOLDEN") == "1"
SCHEMA = dsl.Schema.for_directory("policies")
ENTRIES = [pytest.param(b, id=b.name) for b in BUILTINS_LIST]
#: Type kinds a parameter may accept (``dsl.schema.types.Type.kind``).
KINDS = {"int", "decimal", "string", "bool", "date", "datetime", "duration", "airport",
         "currency_code", "enum", "list", "record"}


def _example_policy(b: Builtin) -> str:
    return f"policy p\n  on flight\n  let v = {b.example[0]}\n  rule r: award 1 miles\n"


def test_the_table_has_one_entry_per_name() -> None:
    """Names are unique, and BUILTINS is keyed by them in the table's order."""
    assert [b.name for b in BUILTINS_LIST] == list(BUILTINS)
    assert len(BUILTINS) == len(BUILTINS_LIST)


@pytest.mark.parametrize("b", ENTRIES)
def test_every_entry_declares_its_type_rule_cost_and_doc(b: Builtin) -> None:
    """An entry has an implementation in the runtime, a type rule (a fixed signature with a
    result, or a generic rule with an arity), a cost and size the checker knows, a doc row
    and an example."""
    assert callable(b.impl) and b.impl.__module__ == rt.__name__
    if b.rule is None:
        assert b.params, "a fixed signature needs its parameters"
        assert b.arity is None
        for p in b.params:
            assert p.kinds and set(p.kinds) <= KINDS and p.message.startswith(f"{b.name}()")
    else:
        assert not b.params and b.arity is not None
    assert 1 <= b.min_args <= b.max_args
    assert b.cost in typing.get_args(typing.get_type_hints(Builtin)["cost"])
    assert b.size in typing.get_args(typing.get_type_hints(Builtin)["size"])
    assert b.doc and b.usage and b.gives and "|" not in b.doc + b.usage + b.gives
    assert b.example[0].startswith(f"{b.name}(") and b.example[1] is not None


@pytest.mark.parametrize("b", ENTRIES)
def test_every_implementation_is_exported_to_generated_code(b: Builtin) -> None:
    """Generated code calls a builtin as fn_<name>: the runtime's EXPORTS hold exactly the
    table's implementations under those names."""
    assert EXPORTS[f"fn_{b.name}"] is b.impl


def test_generated_code_can_call_no_other_function() -> None:
    """No fn_ name in EXPORTS lacks an entry (a builtin the table does not declare)."""
    assert {k[3:] for k in EXPORTS if k.startswith("fn_")} == set(BUILTINS)


@pytest.mark.parametrize("b", ENTRIES)
def test_every_example_checks_and_both_evaluators_agree_on_it(b: Builtin) -> None:
    """The checker accepts each entry's example; the interpreter and the generated code
    both compute its declared value (so both reach the entry's implementation)."""
    source = _example_policy(b)
    dsl.load_source(source, file="p.policy", schema=SCHEMA)  # raises on any error
    policy = parse(source, "p.policy")[0]
    check = check_policy(SCHEMA, policy)
    value = next(m for m in policy.members if isinstance(m, n.Let)).value
    interpreted = rt.in_evaluation_context(Interpreter(policy, SCHEMA, {}).eval, value, {})
    gen = CodeGenerator(policy, check, SCHEMA)
    python = gen.expr(value)
    compiled = rt.in_evaluation_context(eval, python, {**EXPORTS, **gen.constants})
    assert interpreted == compiled == b.example[1]
    assert type(interpreted) is type(b.example[1])


@pytest.mark.parametrize("b", ENTRIES)
def test_every_entry_rejects_a_wrong_number_of_arguments(b: Builtin) -> None:
    """The checker reads the arity from the entry."""
    args = ", ".join(["1"] * (b.max_args + 1))
    with pytest.raises(PolicyError) as exc:
        dsl.load_source(f"policy p\n  on flight\n  let v = {b.name}({args})\n  rule r: award 1 miles\n",
                        file="p.policy", schema=SCHEMA)
    assert "wrong_arguments" in exc.value.render()


def test_a_name_not_in_the_table_is_an_unknown_function() -> None:
    """The checker accepts no function the table does not declare."""
    with pytest.raises(PolicyError) as exc:
        dsl.load_source("policy p\n  on flight\n  let v = percentile([1, 2])\n  rule r: award 1 miles\n",
                        file="p.policy", schema=SCHEMA)
    text = exc.value.render()
    assert "unknown function `percentile`" in text
    assert ", ".join(sorted(BUILTINS)) in text


def _docs_table() -> str:
    text = DOCS.read_text()
    start = text.index("| Function | Gives | Meaning |", text.index("## Built-in functions"))
    return text[start:text.index("\n\n", start) + 1]


def test_the_docs_table_is_the_entries() -> None:
    """docs/language.md's builtin table is docs_table(): one row per entry, in order."""
    if REGENERATE:
        text = DOCS.read_text()
        DOCS.write_text(text.replace(_docs_table(), docs_table(), 1))
    assert _docs_table() == docs_table(), "run with LOYALTY_REGENERATE_GOLDEN=1 to rewrite it"
    rows = _docs_table().splitlines()[2:]
    named = [re.match(r"\| `(\w+)\(", row).group(1) for row in rows]  # type: ignore[union-attr]
    assert named == list(BUILTINS)


def test_the_strategies_generate_every_builtin() -> None:
    """The Hypothesis policy writer can call every entry (fixed signatures from the table
    itself; generic rules through a writer of their own)."""
    assert strategies.generated_builtins() == set(BUILTINS)


def test_every_call_kind_the_strategies_write_is_in_the_table() -> None:
    """The writer's hand-written generators name only declared builtins."""
    assert set(strategies.GENERIC_CALLS) <= set(BUILTINS)
    assert all(BUILTINS[name].rule is not None for name in strategies.GENERIC_CALLS)


def _cost_table() -> str:
    text = DOCS.read_text()
    start = text.index("| Function | Steps a call |", text.index("## Bounds and cost"))
    return text[start:text.index("\n\n", start) + 1]


def test_the_docs_cost_table_is_the_entries() -> None:
    """docs/language.md's table of steps per builtin is cost_table(): the entries' ``steps``."""
    if REGENERATE:
        text = DOCS.read_text()
        DOCS.write_text(text.replace(_cost_table(), cost_table(), 1))
    assert _cost_table() == cost_table(), "run with LOYALTY_REGENERATE_GOLDEN=1 to rewrite it"
