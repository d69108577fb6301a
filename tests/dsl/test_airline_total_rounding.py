"""The bundled airline policy computes its programme's stated formula, on generated flights.

The terms (policies/airline/earn_miles.policy): miles = base x (100% + cabin bonus +
elite bonus + tenure bonus), rounded down once, at most 25,000 per flight, where base
is the distance flown (at least 500 on the airline's own flights). The policy writes
one rule per bonus and `round miles down`; this test computes the formula again here
in plain Python with exact fractions, sharing nothing with dsl, and compares.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import dsl
from tests.dsl.input.reference import prepare_customer, prepare_event

ROOT = Path(__file__).resolve().parents[2]
POLICY = "earn_miles_by_distance"
SEED = 20261202
FLIGHTS = 3000

CABIN = {"economy": Fraction(0), "premium_economy": Fraction(25, 100),
         "business": Fraction(50, 100), "first": Fraction(75, 100)}
ELITE = {None: Fraction(0), "MVP": Fraction(50, 100), "GOLD": Fraction(100, 100),
         "PLATINUM": Fraction(125, 100), "75K": Fraction(125, 100)}
CABIN_RULE = {"premium_economy": "premium_cabin", "business": "business_cabin",
              "first": "first_cabin"}


def whole_years(since: date, on: date) -> int:
    """Completed years of membership; a 29 February join date has its anniversary on 28 February."""
    years = on.year - since.year
    anniversary_day = since.day
    if (since.month, since.day) == (2, 29) and not (on.year % 4 == 0 and
                                                     (on.year % 100 != 0 or on.year % 400 == 0)):
        anniversary_day = 28
    if (on.month, on.day) < (since.month, anniversary_day):
        years -= 1
    return max(years, 0)


def expected_miles(flight: dict[str, Any]) -> int:
    """floor(base x (1 + cabin + elite + tenure)), capped at 25,000: the terms, by hand."""
    distance = flight["distance"]
    base = distance if flight["partner"] else max(distance, 500)
    tenure = Fraction(10, 100) if whole_years(flight["since"], flight["on"]) >= 10 else 0
    total = base * (1 + CABIN[flight["cabin"]] + ELITE[flight["tier"]] + tenure)
    return min(math.floor(total), 25_000)


def each_bonus_rounded_down(flight: dict[str, Any]) -> int:
    """What rounding every bonus on its own would pay (the language's old default)."""
    distance = flight["distance"]
    base = distance if flight["partner"] else max(distance, 500)
    tenure = Fraction(10, 100) if whole_years(flight["since"], flight["on"]) >= 10 else 0
    parts = [base, base * CABIN[flight["cabin"]], base * ELITE[flight["tier"]], base * tenure]
    return min(sum(math.floor(p) for p in parts), 25_000)


def generated_flights() -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    flights = []
    for _ in range(FLIGHTS):
        on = date(2026, 1, 1) + timedelta(days=rng.randrange(365))
        since = date(1995, 1, 1) + timedelta(days=rng.randrange(31 * 365))
        if rng.random() < 0.02:
            since = date(rng.choice([2004, 2008, 2012, 2016]), 2, 29)
        flights.append({
            "on": on,
            "since": min(since, on),
            "tier": rng.choice(list(ELITE)),
            "cabin": rng.choice(list(CABIN)),
            "partner": rng.random() < 0.2,
            # Mostly ordinary distances, some short ones (the minimum) and some that reach the cap.
            "distance": rng.choice([rng.randrange(0, 600), rng.randrange(100, 5000),
                                    rng.randrange(100, 5000), rng.randrange(5000, 15000)]),
        })
    return flights


def request(flight: dict[str, Any], i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    customer = {"id": f"c{i}", "member_since": flight["since"].isoformat()}
    if flight["tier"] is not None:
        customer["tier"] = flight["tier"]
    event = {"id": f"e{i}", "kind": "flight", "time": f"{flight['on'].isoformat()}T12:00:00Z",
             "origin": "JFK", "destination": "LAX", "distance_miles": flight["distance"],
             "fare": "100.00", "cabin": flight["cabin"], "partner": flight["partner"]}
    return customer, event


def test_policy_pays_the_total_rounded_down_once_on_generated_flights() -> None:
    """On 3,000 seeded flights the policy's miles are floor(base x (1 + bonuses)), capped; each
    bonus rule still fires on its own."""
    schema = dsl.Schema.for_directory(ROOT / "policies")
    policy_set = dsl.load_directory(ROOT / "policies" / "airline", schema=schema)
    flights = generated_flights()
    wrong = []
    for i, flight in enumerate(flights):
        raw_customer, raw_event = request(flight, i)
        customer, event = prepare_customer(schema, raw_customer), prepare_event(schema, raw_event)
        d = policy_set.evaluate(customer, event, only=[POLICY])
        want = expected_miles(flight)
        fired = ["flown_miles"]
        if flight["cabin"] in CABIN_RULE:
            fired.append(CABIN_RULE[flight["cabin"]])
        fired.append("elite")
        if whole_years(flight["since"], flight["on"]) >= 10:
            fired.append("loyal_for_a_decade")
        got = (d.awards.get("miles", 0), [rule for _, rule in d.fired])
        if got != (want, fired):
            wrong.append(f"{flight}: policy {got}, by hand {(want, fired)}")
        if i % 10 == 0:  # the specification agrees too (slower: a sample)
            assert policy_set.evaluate_interpreted(customer, event, only=[POLICY]).awards == d.awards
    assert not wrong, f"{len(wrong)} of {len(flights)} differ; first:\n" + "\n".join(wrong[:5])


def test_generated_flights_tell_the_two_roundings_apart() -> None:
    """The data exercises the difference: rounding each bonus would pay less on many flights."""
    flights = generated_flights()
    lower = sum(1 for f in flights if each_bonus_rounded_down(f) < expected_miles(f))
    assert lower > len(flights) // 10
