"""The one definition of "the decision changed", and the one plain form of a decision's values."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from dsl.decision import Benefit, Decision, decision_changed, plain


def _d(awards: dict[str, int | Decimal] | None = None, tier: str | None = None,
       tags: list[str] | None = None, benefits: list[Benefit] | None = None,
       fired: list[tuple[str, str]] | None = None, revision: str = "r1") -> Decision:
    return Decision(revision, awards or {}, benefits or [], tier, tags or [], [], fired or [])


GRACE = Benefit("late-arrival-grace", {"grace": timedelta(minutes=15)}, "p", "r")
LONGER = Benefit("late-arrival-grace", {"grace": timedelta(minutes=30)}, "p", "r")

CASES = [
    pytest.param(_d({"miles": 500}), _d({"miles": 500}, revision="r2", fired=[("p", "other")]),
                 None, None, False, id="revision_and_fired_rules_do_not_count"),
    pytest.param(_d({"miles": 500}), _d({"miles": 750}), None, None, True, id="awards"),
    pytest.param(_d(tier="GOLD"), _d(tier=None), None, None, True, id="tier"),
    pytest.param(_d(tags=["a", "b"]), _d(tags=["b", "a"]), None, None, False,
                 id="tags_in_another_order"),
    pytest.param(_d(tags=["a"]), _d(tags=[]), None, None, True, id="tags"),
    pytest.param(_d(benefits=[GRACE]), _d(benefits=[LONGER]), None, None, True,
                 id="benefit_parameters"),
    pytest.param(None, None, "p.policy:3: boom", "p.policy:3: boom", False, id="same_error"),
    pytest.param(_d(), None, None, "p.policy:3: boom", True, id="a_new_error"),
    pytest.param(None, _d(), None, None, False, id="a_failure_shows_nothing_like_an_empty_one"),
]


@pytest.mark.parametrize(("before", "after", "before_error", "after_error", "changed"), CASES)
def test_the_decision_changed_when_the_customer_would_see_it(
        before: Decision | None, after: Decision | None, before_error: str | None,
        after_error: str | None, changed: bool) -> None:
    """Awards, benefits with their parameters, tier, tags or the error: nothing else counts."""
    assert decision_changed(before, after, before_error, after_error) is changed


def test_the_plain_form_is_json_ready() -> None:
    """Exact decimals as text, durations in the language's words, dates ISO, tuples as lists."""
    assert plain({"a": Decimal("1.50"), "b": (timedelta(minutes=15), date(2026, 3, 1)),
                  "c": [1, True, None, "x"]}) == {
        "a": "1.50", "b": ["15 minutes", "2026-03-01"], "c": [1, True, None, "x"]}
