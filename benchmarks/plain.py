"""The airline earning policy in plain Python, request mapping in, plain dict out: the headline baseline.

This is what an engineer would write for ``policies/airline/earn_miles.policy``
without this project. A backend has the request as the proto3 JSON mapping of
``loyalty.v1.EvaluateRequest`` after ``json.loads`` (camelCase names, 64-bit
integers as strings, the event's kind given by which details object it has)::

    {"customer": {"id": "C000042", "memberSince": "2012-02-29", "tier": "GOLD"},
     "event": {"id": "E0000042", "time": "2026-03-01T09:30:00Z",
               "flight": {"origin": "JFK", "destination": "LHR", "distanceMiles": "3451",
                          "fare": "420.00", "cabin": "business"}}}

and wants plain data back: ``{"awards": {"miles": 8949}, "benefits":
["priority-rebooking"], "tags": ["decade-member"]}`` (whole miles as ``int``,
benefit names as strings).

A fair baseline, neither a strawman nor a cheat: it parses every field it reads
the way a careful engineer would (``date.fromisoformat`` for the join date,
``datetime.fromisoformat`` for the time, made UTC before its date is taken, a
time without a zone refused, ``int`` for the distance, negative distances
refused), and reads nothing the policy does not use (the fare, currency,
carrier, lifetime counters and birthday are left alone: no rule reads them).
The arithmetic is exact integer arithmetic, as in :mod:`benchmarks.handwritten`.
The airport table is the project's (:func:`dsl.schema.airports.great_circle_miles`, the
data every implementation needs); nothing else comes from ``dsl``.

``benchmarks/test_equivalence.py`` holds it to the policy set on every benchmark
item, which is what makes the comparison honest.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from benchmarks.handwritten import tenure_years  # the anniversary rule, written once
from dsl.schema.airports import great_circle_miles

EFFECTIVE_FROM = date(2026, 1, 1)
MINIMUM_MILES = 500
#: The policy's cap; the bundled schema's cap per event (100,000 miles) is above it.
CAP = 25_000
#: Cabin -> percent of base: the best-of group (one cabin matches at most one rule).
CABIN_BONUS = {"first": 75, "business": 50, "premium_economy": 25}
#: Tier -> percent of base; any other tier (or none) earns no elite bonus.
ELITE_BONUS = {"MVP": 50, "GOLD": 100, "PLATINUM": 125, "75K": 125}
DECADE_BENEFIT = "priority-rebooking"
DECADE_TAG = "decade-member"


def earn_miles(request: Mapping[str, Any]) -> dict[str, Any]:
    """The airline policy's outcome for one request mapping (see the module's docstring).

    Raises ``KeyError`` for a missing required field, ``ValueError`` for a date,
    time or distance that does not parse (or a time without a zone, or a negative
    distance) and :class:`dsl.schema.airports.UnknownAirport` for an unknown airport
    looked up for its distance.
    """
    event = request["event"]
    flight = event.get("flight")
    if flight is None:  # not a flight: the policy does not apply
        return {"awards": {}, "benefits": [], "tags": []}
    when = datetime.fromisoformat(event["time"])
    if when.tzinfo is None:
        raise ValueError(f"event.time needs a time zone: {event['time']!r}")
    on = when.astimezone(UTC).date()
    if on < EFFECTIVE_FROM:
        return {"awards": {}, "benefits": [], "tags": []}
    customer = request["customer"]
    since = date.fromisoformat(customer["memberSince"])
    distance = flight.get("distanceMiles")
    if distance is None:
        flown = great_circle_miles(flight["origin"], flight["destination"])
    else:
        flown = int(distance)
        if flown < 0:
            raise ValueError(f"flight.distanceMiles must not be negative: {distance!r}")
    base = flown if flight.get("partner", False) else max(flown, MINIMUM_MILES)
    # base x (100% + cabin + elite + tenure), rounded down once, as the programme's terms say
    percent = 100 + CABIN_BONUS.get(flight.get("cabin", "economy"), 0)
    percent += ELITE_BONUS.get(customer.get("tier"), 0)  # type: ignore[arg-type]
    if tenure_years(since, on) >= 10:
        percent += 10
        benefits, tags = [DECADE_BENEFIT], [DECADE_TAG]
    else:
        benefits, tags = [], []
    miles = base * percent // 100
    if miles > CAP:
        miles = CAP
    return {"awards": {"miles": miles} if miles else {}, "benefits": benefits, "tags": tags}


def outcome(decision: Any) -> dict[str, Any]:
    """A :class:`dsl.Decision` in :func:`earn_miles`'s form, to compare the two."""
    return {"awards": dict(decision.awards), "benefits": [b.name for b in decision.benefits],
            "tags": list(decision.tags)}
