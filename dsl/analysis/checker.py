"""Static checks, the front door: the checking stages of one policy, in order.

The checker runs after parsing and before code generation. It collects every
problem in a file instead of stopping at the first, and records the type of
each expression, which the code generator uses. Each stage is one job in its own
module (OPA's compiler stages, cel-go's ``checker/`` beside ``cost.go``):

- :mod:`dsl.analysis.typecheck`: names and types against the schema;
- :mod:`dsl.analysis.conflicts`: conditions that never hold, rules that never fire;
- :mod:`dsl.analysis.lints`: what checks but reads like a known mistake (warnings);
- :mod:`dsl.analysis.cost`: the cost bound of every evaluation (:class:`CostBound`);
- :mod:`dsl.analysis.result`: what they produce (:class:`CheckResult`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from dsl.analysis.conflicts import find_conflicts
from dsl.analysis.cost import check_sizes
from dsl.analysis.lints import find_lints
from dsl.analysis.result import CheckResult, CostBound
from dsl.analysis.typecheck import Checker
from dsl.front import nodes as n
from dsl.schema.schema import Schema

__all__ = ["STAGES", "CheckResult", "Checker", "CostBound", "Stage", "check_policy"]


class Stage(NamedTuple):
    """One named checking stage, and when it runs (given the checker as the stages left it)."""

    name: str
    run: Callable[[Checker], None]
    when: Callable[[Checker], bool] = lambda checker: True


#: The stages, in order; each may rely on what the ones before it left in the result.
#: A stage that sets ``halted`` stops the ones after it.
STAGES: tuple[Stage, ...] = (
    # First: the event kinds it reads decide which event fields exist for the type checker,
    # and a bad header is worth reporting even on a policy too large to check further.
    Stage("header", Checker.check_header),
    # Before any walk over the members, so that a policy past the limits costs nothing more.
    Stage("limits", Checker.check_limits),
    # Roundings, bindings, rules, groups and caps in source order (a name is usable after its
    # definition); records the type of every expression, which the later stages read.
    Stage("types", Checker.check_members),
    # After types, so that a rule whose condition is ill-typed is reported for that first;
    # before sizes, whose verdict depends on there being no error at all.
    Stage("conflicts", find_conflicts),
    # Only on a policy with no error so far: a lint reads like a mistake only in a policy that
    # means what it says (and reads the types the types stage recorded).
    Stage("lints", find_lints, lambda checker: checker.result.ok),
    # Only on a policy with no error so far: the size pass reads every expression's type
    # and assumes each is what the checker accepted.
    Stage("sizes", check_sizes, lambda checker: checker.result.ok),
    # Last: a binding counts as used when any stage above read it.
    Stage("unused", Checker.check_unused),
)


def check_policy(schema: Schema, policy: n.Policy, stages: tuple[Stage, ...] = STAGES
                 ) -> CheckResult:
    """Check one policy against ``schema``: every diagnostic, and the type of every expression."""
    checker = Checker(schema, policy)
    for stage in stages:
        if checker.halted:
            break
        if stage.when(checker):
            checker.result.stages.append(stage.name)
            stage.run(checker)
    return checker.result
