"""The airline earning policy as an engineer would write it: dicts in, dict out, no project types.

The baseline of the in-process gates since issue 20. :mod:`benchmarks.handwritten` has to
build the project's :class:`~dsl.decision.Decision` (about 0.8 us of its time), which
flatters the compiled evaluator; this one takes the prepared (customer, event) dicts
``PolicySet.evaluate`` takes (standard-library values: dates, ints, strings) and returns
what a caller wants::

    {"awards": {"miles": 8949}, "benefits": ["priority-rebooking"], "tags": ["decade-member"]}

Exact integer arithmetic, one dictionary lookup per table, the set's cap per event.
``benchmarks/test_equivalence.py`` holds it to the policy set on every benchmark pair.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from benchmarks.handwritten import tenure_years
from dsl.schema.airports import great_circle_miles

EFFECTIVE_FROM = date(2026, 1, 1)
MINIMUM_MILES = 500
#: The policy's cap (the bundled schema's 100,000 per event is above it).
CAP = 25_000
CABIN_BONUS = {"first": 75, "business": 50, "premium_economy": 25}
ELITE_BONUS = {"MVP": 50, "GOLD": 100, "PLATINUM": 125, "75K": 125}
_NOTHING: dict[str, Any] = {"awards": {}, "benefits": [], "tags": []}


def earn_miles(customer: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The airline policy's outcome for one prepared (customer, event) pair."""
    on = event["date"]
    if event["kind"] != "flight" or on < EFFECTIVE_FROM:
        return {"awards": {}, "benefits": [], "tags": []}
    flown = event["distance_miles"]
    if flown is None:
        flown = great_circle_miles(event["origin"], event["destination"])
    base = flown if event["partner"] else max(flown, MINIMUM_MILES)
    percent = 100 + CABIN_BONUS.get(event["cabin"], 0) + ELITE_BONUS.get(customer["tier"], 0)
    if tenure_years(customer["member_since"], on) >= 10:
        percent += 10
        benefits, tags = ["priority-rebooking"], ["decade-member"]
    else:
        benefits, tags = [], []
    miles = base * percent // 100  # the total, rounded down once
    if miles > CAP:
        miles = CAP
    return {"awards": {"miles": miles} if miles else {}, "benefits": benefits, "tags": tags}
