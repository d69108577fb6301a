"""The airline earning policy written by hand: the baseline the compiled evaluator must approach.

This is the function a careful engineer would write instead of a rules engine
for ``policies/airline/earn_miles.policy``: exact integer arithmetic (miles
are whole numbers and every percentage is a whole percent, so ``base * p // 100``
*is* "base x p%, rounded down", with no float and no Decimal needed), one
dictionary lookup per table, and the same :class:`~dsl.decision.Decision` the
policy set returns. ``benchmarks/test_equivalence.py`` holds it to the policy
set on every benchmark pair, which is what makes the speed comparison honest.

Semantics (the airline set, with the bundled schema's ``cap_per_event`` for miles):

- the policy applies to ``flight`` events dated (UTC) on or after 2026-01-01;
- ``flown`` is the event's distance, or the great-circle distance between its airports;
  ``base`` is ``flown`` on partner flights and at least 500 otherwise;
- ``flown_miles`` awards ``base``; the ``cabin_bonus`` group awards the best of
  75% (first), 50% (business) or 25% (premium economy); ``elite`` awards 50%, 100%
  or 125% by tier (0% without one) and always fires; ``loyal_for_a_decade``
  (tenure of ten years or more) awards 10%, grants ``priority-rebooking`` and
  tags ``decade-member``; the policy's total, ``base x (100% + the bonuses)``, is
  rounded down to a whole mile once (``round miles down``), as the programme's terms say;
- the policy total is capped at 25,000 miles, then the set's cap per event.

Distances are never negative (the schema's callers reject them), so rounding
down and rounding toward zero agree.
"""

from __future__ import annotations

from calendar import isleap
from collections.abc import Callable
from datetime import date
from typing import Any

from dsl.decision import Benefit, Decision
from dsl.schema.airports import great_circle_miles

POLICY = "earn_miles_by_distance"
EFFECTIVE_FROM = date(2026, 1, 1)
MINIMUM_MILES = 500
POLICY_CAP = 25_000
#: The bundled schema's ``cap_per_event`` for miles (``policies/schema.toml``).
SET_CAP = 100_000

#: Cabin -> (percent of base, rule name): the best-of group; one cabin matches at most one rule.
CABIN_BONUS = {
    "first": (75, "first_cabin"),
    "business": (50, "business_cabin"),
    "premium_economy": (25, "premium_cabin"),
}
#: The ``elite_bonus`` table, in percent of base.
ELITE_BONUS = {"MVP": 50, "GOLD": 100, "PLATINUM": 125, "75K": 125}

_FLOWN = (POLICY, "flown_miles")
_ELITE = (POLICY, "elite")
_DECADE = (POLICY, "loyal_for_a_decade")
_CABIN_FIRED = {cabin: (POLICY, rule) for cabin, (_, rule) in CABIN_BONUS.items()}
_CABIN_PERCENT = {cabin: pct for cabin, (pct, _) in CABIN_BONUS.items()}


def tenure_years(since: date, on: date) -> int:
    """Whole years of membership on ``on``, counted by anniversaries.

    A member who joined on 29 February has the anniversary on 28 February in a
    year without one. A date on or before ``since`` gives 0.
    """
    if on <= since:
        return 0
    month, day = since.month, since.day
    if month == 2 and day == 29 and not isleap(on.year):
        day = 28
    years = on.year - since.year
    if (on.month, on.day) < (month, day):
        years -= 1
    return years


Evaluate = Callable[[dict[str, Any], dict[str, Any]], Decision]


def evaluator(revision: str, set_cap: int = SET_CAP) -> Evaluate:
    """The hand-written evaluation for a policy set of revision ``revision``.

    Takes prepared (customer, event) dicts, like ``PolicySet.evaluate``.
    """
    cap = min(POLICY_CAP, set_cap)

    def earn_miles(customer: dict[str, Any], event: dict[str, Any]) -> Decision:
        on = event["date"]
        if event["kind"] != "flight" or on < EFFECTIVE_FROM:
            return Decision(revision)
        flown = event["distance_miles"]
        if flown is None:
            flown = great_circle_miles(event["origin"], event["destination"])
        base = flown if event["partner"] else max(flown, MINIMUM_MILES)
        percent = 100  # the flown miles themselves
        fired = [_FLOWN]
        cabin = event["cabin"]
        pct = _CABIN_PERCENT.get(cabin)
        if pct is not None:
            percent += pct
            fired.append(_CABIN_FIRED[cabin])
        percent += ELITE_BONUS.get(customer["tier"], 0)
        fired.append(_ELITE)
        benefits: list[Benefit] = []
        tags: list[str] = []
        if tenure_years(customer["member_since"], on) >= 10:
            percent += 10
            fired.append(_DECADE)
            benefits.append(Benefit("priority-rebooking", {}, POLICY, "loyal_for_a_decade"))
            tags.append("decade-member")
        miles = base * percent // 100  # the total, rounded down once
        if miles > cap:
            miles = cap
        return Decision(
            revision,
            awards={"miles": miles} if miles else {},
            benefits=benefits,
            tier=None,
            tags=tags,
            policies=[POLICY],
            fired=fired,
        )

    return earn_miles
