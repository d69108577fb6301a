"""Every expression walker visits every node kind, and fails loudly on one it does not know."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import dsl
from dsl.analysis.bounds import BoundsPass
from dsl.analysis.checker import check_policy
from dsl.analysis.cost import _SizePass
from dsl.analysis.typecheck import Checker
from dsl.backend.codegen import CodeGenerator
from dsl.backend.interpreter import Interpreter
from dsl.front import nodes as n
from dsl.front.parser import parse
from dsl.front.visitor import ExprVisitor, UnknownNode, expression_kinds
from dsl.library import runtime as rt
from dsl.tools.exprlayout import ExprText

SCHEMA = dsl.Schema.for_directory("policies")
SOURCE = "policy p\n  on flight\n  rule r: award 1 miles\n"
WALKERS = [Checker, _SizePass, Interpreter, CodeGenerator, ExprText, BoundsPass]


@dataclass(eq=False)
class Mystery(n.Expr):
    """A node kind no walker has heard of (as a new one would be, before its visit_ methods)."""


def test_the_node_kinds_are_the_expression_classes() -> None:
    """expression_kinds() finds every expression class of dsl.front.nodes (and nothing else)."""
    names = {k.__name__ for k in expression_kinds()}
    assert names == {"Literal", "ListExpr", "Name", "Attribute", "Call", "Aggregate", "Unary",
                     "Binary", "Presence", "Between", "IfExpr"}


@pytest.mark.parametrize("walker", WALKERS, ids=lambda w: w.__name__)
def test_every_walker_has_a_visit_method_for_every_expression_kind(walker: type) -> None:
    """A new node kind in dsl.front.nodes fails here until each walker says what it means."""
    assert issubclass(walker, ExprVisitor)
    missing = [k.__name__ for k in expression_kinds() if not hasattr(walker, f"visit_{k.__name__}")]
    assert missing == []


def _walkers() -> dict[str, object]:
    policy = parse(SOURCE, "p.policy")[0]
    check = check_policy(SCHEMA, policy)
    checker = Checker(SCHEMA, policy)
    return {
        "Checker": lambda e: checker.expr(e),
        "_SizePass": lambda e: _SizePass(checker).measure(e, {}, 1),
        "Interpreter": lambda e: rt.in_evaluation_context(Interpreter(policy, SCHEMA, {}).eval, e, {}),
        "CodeGenerator": lambda e: CodeGenerator(policy, check, SCHEMA).expr(e),
        "ExprText": lambda e: ExprText().visit(e),
        "BoundsPass": lambda e: BoundsPass(SCHEMA, policy, check).visit(e, {}),
    }


@pytest.mark.parametrize("name", [w.__name__ for w in WALKERS])
def test_an_unknown_node_kind_raises_in_every_walker(name: str) -> None:
    """generic_visit raises: no walker type-checks, bounds, evaluates or compiles an
    unknown kind of expression as a silent default (the checker used to call it `any`)."""
    visit = _walkers()[name]
    with pytest.raises(UnknownNode, match=f"{name} has no visit_Mystery"):
        visit(Mystery())  # type: ignore[operator]


def test_an_unknown_node_kind_raises_inside_a_known_one() -> None:
    """The walk reaches the unknown kind through its parent's visit method too."""
    visit = _walkers()["Checker"]
    with pytest.raises(UnknownNode):
        visit(n.Unary("not", Mystery()))  # type: ignore[operator]


def _every_node(value: object) -> list[n.Node]:
    """The reference for nodes.walk: every node inside ``value`` (fields, lists, tuples; the
    ``span`` field aside), depth first, by plain recursion over every field."""
    if isinstance(value, n.Node):
        out = [value]
        for name in value.__dataclass_fields__:
            if name != "span":
                out += _every_node(getattr(value, name))
        return out
    if isinstance(value, list | tuple):
        return [x for item in value for x in _every_node(item)]
    return []


def test_walk_finds_every_node_of_every_bundled_policy_in_order() -> None:
    """nodes.walk skips the fields it knows hold plain values (for speed); it still yields
    exactly the nodes a recursion over every field finds, in the same order, for every
    policy and definitions block of the bundled programmes."""
    from pathlib import Path

    from dsl.policyset import definitions_in

    seen = 0
    for path in sorted(Path("policies").rglob("*.policy")):
        for top in definitions_in(str(path), path.read_text()):
            assert [id(x) for x in n.walk(top)] == [id(x) for x in _every_node(top)], path
            seen += 1
    assert seen > 10
