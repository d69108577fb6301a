"""The checker's front door: its stages run in order, and each files full diagnostics."""

from __future__ import annotations

import pytest

import dsl
from dsl.analysis.checker import STAGES, Stage, check_policy
from dsl.analysis.typecheck import Checker
from dsl.front.parser import parse

SCHEMA = dsl.Schema.for_directory("policies")
FLIGHT = "policy p\n  on flight\n"
PURCHASE = "policy p\n  on purchase\n"
ALL_STAGES = ["header", "limits", "types", "conflicts", "lints", "sizes", "unused"]


def checked(source: str, stages: tuple[Stage, ...] = STAGES) -> tuple[list[str], list[str]]:
    """(the stages that ran, every diagnostic rendered) for one policy text."""
    result = check_policy(SCHEMA, parse(source, "p.policy")[0], stages)
    return result.stages, [d.render() for d in result.diagnostics]


CASES = [
    pytest.param(
        FLIGHT + '  rule r when event.fare > "500": award 1 miles\n',
        ["p.policy:3:15: type_error: cannot compare event.fare (decimal) with \"500\" (string)\n"
         '    |   rule r when event.fare > "500": award 1 miles\n'
         "    |               ^^^^^^^^^^^^^^^^^^\n"
         "    = hint: write the number without quotes: 500"],
        id="type_error_number_compared_with_text",
    ),
    pytest.param(
        FLIGHT + '  let x = event.fare + "1"\n  rule r when x > 1: award 1 miles\n',
        ["p.policy:3:11: type_error: cannot add event.fare (decimal) and \"1\" (string)\n"
         '    |   let x = event.fare + "1"\n'
         "    |           ^^^^^^^^^^^^^^^^\n"
         "    = hint: write numbers without quotes"],
        id="type_error_number_plus_text",
    ),
    pytest.param(
        FLIGHT + '  rule r when customer.tier == "gold": award 1 miles\n',
        ["p.policy:3:32: unknown_value: \"gold\" is not a possible tier here (one of: MVP, GOLD, "
         "PLATINUM, 75K)\n"
         '    |   rule r when customer.tier == "gold": award 1 miles\n'
         "    |                                ^^^^^^\n"
         "    = hint: did you mean `GOLD`?"],
        id="unknown_tier_value",
    ),
    pytest.param(
        FLIGHT + "  rule r when event.fare > 500 and event.fare < 100: award 1 miles\n",
        ["p.policy:3:15: never_fires: rule r can never fire: `event.fare > 500` and "
         "`event.fare < 100` cannot both hold\n"
         "    |   rule r when event.fare > 500 and event.fare < 100: award 1 miles\n"
         "    |               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
         "    = hint: correct the condition or delete the rule"],
        id="conflict_contradictory_condition",
    ),
    pytest.param(
        FLIGHT + "  group g takes first:\n    rule a: award 1 miles\n"
                 "    rule b when event.fare > 1: award 2 miles\n",
        ["p.policy:5:10: never_fires: rule b can never fire: group g takes the first rule that "
         "applies, and rule a (line 4) always does\n"
         "    |     rule b when event.fare > 1: award 2 miles\n"
         "    |          ^\n"
         "    = hint: move this rule above it, or delete it"],
        id="conflict_rule_after_catch_all_in_first_group",
    ),
    pytest.param(
        FLIGHT + "  decide d first:\n    when event.fare > 1 -> 1\n    when event.fare > 1 -> 2\n"
                 "    else -> 0\n  rule r: award d miles\n",
        ["p.policy:5:10: unreachable_row: the row on line 4 has the same condition, so this row "
         "is never used\n"
         "    |     when event.fare > 1 -> 2\n"
         "    |          ^^^^^^^^^^^^^^\n"
         "    = hint: change the condition or delete the row"],
        id="conflict_repeated_decision_row",
    ),
    pytest.param(
        PURCHASE + "  let x = sum(sum(j.quantity for j in event.items) for i in event.items)\n"
                   "  rule r: award x points\n",
        ["p.policy:3:15: too_costly: sum(j.quantity for j in event.items) could take 200000000 "
         "steps in one evaluation (10000 items, 10000 times, 2 operations each); the limit is "
         "1000000\n"
         "    |   let x = sum(sum(j.quantity for j in event.items) for i in event.items)\n"
         "    |               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
         "    = hint: aggregate over one list at a time: compute what does not depend on the "
         "outer item in a `let` first"],
        id="cost_aggregate_inside_aggregate",
    ),
    pytest.param(
        FLIGHT + "  let x = 10\n  rule r: award 1 miles\n",
        ["p.policy:3:3: warning: unused_binding: `x` is defined but never used\n"
         "    |   let x = 10\n"
         "    |   ^^^^^^^^^^\n"
         "    = hint: use it or delete it"],
        id="unused_binding_warning",
    ),
]


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_each_stage_files_its_diagnostics_in_full(source: str, expected: list[str]) -> None:
    """Type errors, conflicts, the cost bound and unused bindings keep their exact wording."""
    assert checked(source)[1] == expected


STAGE_CASES = [
    pytest.param(FLIGHT + "  rule r: award 1 miles\n", ALL_STAGES, id="clean_policy_runs_all"),
    pytest.param(FLIGHT + '  rule r when event.fare > "500": award 1 miles\n',
                 ["header", "limits", "types", "conflicts", "unused"],
                 id="an_error_skips_sizes"),
    pytest.param(FLIGHT + "  let x = 10\n" * 6001, ["header", "limits"],
                 id="past_the_limits_halts_after_limits"),
]


@pytest.mark.parametrize(("source", "ran"), STAGE_CASES)
def test_stages_run_in_order_and_only_when_they_may(source: str, ran: list[str]) -> None:
    """Stages run in STAGES order; lints and sizes only without errors; nothing after a halting
    stage."""
    assert checked(source)[0] == ran


def test_the_stage_table_is_the_documented_order() -> None:
    """The stage names, in order: the ordering constraints in dsl.analysis.checker rely on it."""
    assert [s.name for s in STAGES] == ALL_STAGES


def test_each_stage_sees_what_the_stages_before_it_left() -> None:
    """A stage runs after the ones before it: here every stage records how many
    diagnostics it found waiting, so a stage run out of order would show."""
    seen: list[tuple[str, int]] = []

    def spy(stage: Stage) -> Stage:
        def run(checker: Checker) -> None:
            seen.append((stage.name, len(checker.result.diagnostics)))
            stage.run(checker)
        return Stage(stage.name, run, stage.when)

    source = (FLIGHT + "  let x = 10\n"
              + "  rule r when event.fare > 500 and event.fare < 100: award 1 miles\n")
    ran, diagnostics = checked(source, tuple(spy(s) for s in STAGES))
    # conflicts files never_fires, so sizes is skipped and unused sees one diagnostic waiting.
    assert seen == [("header", 0), ("limits", 0), ("types", 0), ("conflicts", 0), ("unused", 1)]
    assert ran == ["header", "limits", "types", "conflicts", "unused"]
    assert [d.split(": ")[1] for d in diagnostics] == ["never_fires", "warning"]
