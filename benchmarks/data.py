"""Deterministic benchmark data: realistic customers and events, and synthetic policy sets.

Everything here is generated from a fixed seed, so every run (and every machine)
measures the same inputs. Raw mappings look like what a backend sends; the
``prepared`` variants pass them through the reference ``prepare_customer`` and
``prepare_event`` (tests/dsl/input/reference.py), which give the value domain the
evaluator, the interpreter and the hand-written function all take.

Policy generators return policy source text in the language (``dsl/front/policy.lark``):

- :func:`filler_policy`: a policy that never applies to the benchmark's flight
  events (another event kind, or a flight policy whose effective window excludes 2026);
- :func:`rules_policy`: one applying flight policy with ``R`` rules;
- :func:`varied_policy`: a policy of any kind, shaped like the bundled examples,
  for parse/check/compile sets;
- :func:`loaded_set` and :func:`compile_set`: whole sets, as ``{file name: text}``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from dsl.schema import airports
from dsl.schema.schema import Schema
from tests.dsl.input.reference import prepare_customer, prepare_event

#: The seed behind every generated data set.
SEED = 20260101

ROOT = Path(__file__).resolve().parent.parent
#: The bundled policy directory (its ``schema.toml`` declares tiers, currencies, benefits).
POLICIES_DIR = ROOT / "policies"
#: The airline policy the evaluation benchmarks measure.
AIRLINE_POLICY = POLICIES_DIR / "airline" / "earn_miles.policy"

TIERS: tuple[str | None, ...] = (None, "MVP", "GOLD", "PLATINUM", "75K")

# Real IATA codes, by region. The carrier is a US network airline: its hubs are in NA.
NORTH_AMERICA = [
    "JFK", "LGA", "EWR", "BOS", "ORD", "DFW", "DEN", "SFO", "LAX", "SEA", "ATL", "MIA", "IAH",
    "PHX", "LAS", "MSP", "DTW", "PHL", "CLT", "IAD", "DCA", "SAN", "PDX", "SLC", "AUS", "HNL",
    "ANC", "YYZ", "YVR", "MEX",
]
EUROPE = ["LHR", "CDG", "FRA", "AMS", "MAD", "FCO", "ZRH", "MUC", "DUB", "IST"]
MIDDLE_EAST_AFRICA = ["DXB", "DOH", "JNB", "CAI"]
ASIA = ["NRT", "HND", "ICN", "PEK", "PVG", "HKG", "SIN", "DEL", "BOM", "BKK"]
OCEANIA = ["SYD", "MEL", "AKL"]
SOUTH_AMERICA = ["GRU", "EZE", "BOG", "SCL"]
HUBS = ["JFK", "EWR", "ORD", "SFO", "IAH", "DEN", "LAX"]
FOREIGN_REGIONS = (EUROPE, MIDDLE_EAST_AFRICA, ASIA, OCEANIA, SOUTH_AMERICA)
#: Shuttles and short hops, mostly under the 500-mile minimum.
SHORT_ROUTES = [
    ("LGA", "BOS"), ("DCA", "LGA"), ("SFO", "LAX"), ("SEA", "PDX"), ("DFW", "IAH"),
    ("ORD", "DTW"), ("ORD", "MSP"), ("LAX", "LAS"), ("LAX", "PHX"), ("ATL", "CLT"),
    ("AUS", "DFW"), ("SAN", "SFO"), ("JFK", "BOS"), ("EWR", "IAD"), ("DEN", "SLC"),
    ("YYZ", "ORD"), ("PHL", "BOS"), ("SEA", "YVR"),
]
PARTNER_CARRIERS = ("LH", "NH", "AC", "SQ", "NZ", "TK", "LX", "OS")
OFFSETS = [UTC] * 7 + [timezone(timedelta(hours=h)) for h in (-8, -5, 1, 9, 10)]

EFFECTIVE_FROM = date(2026, 1, 1)


# -- customers and events ------------------------------------------------------------------


def _leap_years(lo: int, hi: int) -> list[int]:
    return [y for y in range(lo, hi + 1) if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)]


def _raw_customer(rng: random.Random, index: int) -> dict[str, Any]:
    # Tenure mix: new members to 30-year members, some joined on 29 February.
    roll = rng.random()
    if roll < 0.015:
        since = date(rng.choice(_leap_years(1996, 2024)), 2, 29)
    else:
        years = rng.choices(
            [rng.uniform(0, 1.2), rng.uniform(1, 5), rng.uniform(5, 10), rng.uniform(10, 20),
             rng.uniform(20, 30)],
            weights=[20, 35, 25, 15, 5],
        )[0]
        since = date(2026, 7, 1) - timedelta(days=int(years * 365.25))
    tenure = max(0, 2026 - since.year)
    # Elite tiers come with tenure: new members are rarely elite.
    weights = [85, 10, 3, 1.5, 0.5] if tenure < 2 else [52, 21, 14, 8, 5]
    tier = rng.choices(TIERS, weights=weights)[0]
    flights = int(tenure * rng.uniform(1, 30) * (1 + TIERS.index(tier)))
    customer: dict[str, Any] = {
        "id": f"C{index:06d}",
        "member_since": since.isoformat(),
        "lifetime": {
            "miles": int(flights * rng.uniform(600, 2600)),
            "flights": flights,
            "spend": f"{Decimal(flights) * Decimal(rng.randint(150, 900)):.2f}",
        },
    }
    if tier is not None:
        customer["tier"] = tier
    if rng.random() < 0.6:
        customer["birthday"] = date(rng.randint(1940, 2005), rng.randint(1, 12),
                                    rng.randint(1, 28)).isoformat()
    return customer


def _route(rng: random.Random) -> tuple[str, str, bool]:
    """(origin, destination, partner) with a realistic mix of short, domestic and long haul."""
    roll = rng.random()
    partner = False
    if roll < 0.20:
        a, b = rng.choice(SHORT_ROUTES)
    elif roll < 0.58:
        a, b = rng.sample(NORTH_AMERICA, 2)
    elif roll < 0.85:
        a, b = rng.choice(HUBS), rng.choice(rng.choice(FOREIGN_REGIONS))
    else:
        # Partner flights: within a foreign region (often short) or between two of them.
        partner = True
        region = rng.choice(FOREIGN_REGIONS)
        if rng.random() < 0.6 and len(region) > 2:
            a, b = rng.sample(region, 2)
        else:
            a, b = rng.choice(region), rng.choice(rng.choice(FOREIGN_REGIONS))
            if a == b:
                b = rng.choice([c for c in EUROPE if c != a])
    if rng.random() < 0.5:
        a, b = b, a
    return a, b, partner


def _instant(rng: random.Random, earliest: date) -> datetime:
    """A moment in 2026 not before ``earliest``; about 2% fall in December 2025 instead."""
    jan1, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    lo = datetime.combine(max(earliest, date(2025, 12, 1)), datetime.min.time(), UTC)
    if lo < jan1 and rng.random() < 0.02:
        end = jan1  # a few flights before the policy's effective date
    else:
        lo = max(lo, jan1)
    return lo + timedelta(seconds=int(rng.random() * (end - lo).total_seconds()))


def _raw_flight(rng: random.Random, index: int, since: date) -> dict[str, Any]:
    origin, destination, partner = _route(rng)
    gc = airports.great_circle_miles(origin, destination)
    long_haul = gc > 3000
    cabin = rng.choices(
        ["economy", "premium_economy", "business", "first"],
        weights=[65, 14, 16, 5] if long_haul else [82, 6, 10, 2],
    )[0]
    when = _instant(rng, since)
    if since.month == 2 and since.day == 29 and rng.random() < 0.3:
        # Around a 29 February joiner's anniversary in a non-leap year.
        day = rng.choice([date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)])
        when = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=rng.randint(6, 20))
    rate = {"economy": "0.11", "premium_economy": "0.19", "business": "0.42", "first": "0.71"}
    fare = (Decimal(max(gc, 150)) * Decimal(rate[cabin]) + Decimal(rng.randint(0, 9999)) / 100)
    event: dict[str, Any] = {
        "id": f"E{index:07d}",
        "kind": "flight",
        "time": when.astimezone(rng.choice(OFFSETS)).isoformat().replace("+00:00", "Z"),
        "origin": origin,
        "destination": destination,
        "fare": f"{fare:.2f}",
        "cabin": cabin,
        "partner": partner,
        "carrier": rng.choice(PARTNER_CARRIERS) if partner else "LY",
    }
    if rng.random() < 0.8:
        # Backends usually send the ticketed distance (a little over the great circle);
        # the rest leave it out and the policy looks the airports up.
        event["distance_miles"] = round(gc * rng.uniform(1.0, 1.03))
    if rng.random() < 0.1:
        event["currency"] = rng.choice(["EUR", "GBP", "JPY", "CAD"])
    return event


Pair = tuple[dict[str, Any], dict[str, Any]]


def raw_airline_pairs(n: int = 10_000, seed: int = SEED) -> list[Pair]:
    """``n`` (customer, flight event) pairs as loose mappings, the way a backend sends them.

    About 3,000 distinct customers per 10,000 events; elite members fly more often.
    """
    rng = random.Random(seed)
    customers = [_raw_customer(rng, i) for i in range(max(1, n * 3 // 10))]
    weights = [2 + TIERS.index(c.get("tier")) for c in customers]
    pairs = []
    for i, customer in enumerate(rng.choices(customers, weights=weights, k=n)):
        since = date.fromisoformat(customer["member_since"])
        pairs.append((customer, _raw_flight(rng, i, since)))
    return pairs


def prepare_pairs(
    schema: Schema, raw: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Prepare raw pairs with the schema; a customer shared by several events is prepared once."""
    cache: dict[int, dict[str, Any]] = {}
    out = []
    for customer, event in raw:
        key = id(customer)
        if key not in cache:
            cache[key] = prepare_customer(schema, customer)
        out.append((cache[key], prepare_event(schema, event)))
    return out


def airline_pairs(
    schema: Schema | None = None, n: int = 10_000, seed: int = SEED
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``n`` prepared (customer, flight event) pairs for the bundled schema."""
    schema = schema or Schema.for_directory(POLICIES_DIR)
    return prepare_pairs(schema, raw_airline_pairs(n, seed))


#: The kinds whose fields travel in a details message (``Event.details``) rather than attributes.
DETAILS_KINDS = ("flight", "purchase", "visit", "appointment", "donation")
_LIFETIME = ("miles", "flights", "spend", "visits", "appointments", "donations", "donation_years")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _json_value(value: Any) -> Any:
    """A raw value as the proto3 JSON mapping writes it: 64-bit integers as strings."""
    if isinstance(value, bool) or not isinstance(value, int | list | dict):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return {_camel(k): _json_value(v) for k, v in value.items() if v is not None}


def request_mapping(customer: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
    """A raw pair as the proto3 JSON mapping of its ``EvaluateRequest``, as after ``json.loads``.

    What a backend holds before it calls the service: camelCase names, 64-bit
    integers and decimals as strings, fields left at their default value left
    out (zero counters, ``false``, empty strings), the event's kind given by its
    details object (``"flight": {...}``), its time as the raw text (RFC 3339, with
    the raw offset). Events of the standard kinds only (:data:`DETAILS_KINDS`).
    Every mapping parses with ``google.protobuf.json_format`` to the message
    :mod:`benchmarks.messages` builds from the same pair.
    """
    c: dict[str, Any] = {"id": customer["id"], "memberSince": customer["member_since"]}
    for name in ("tier", "birthday"):
        if customer.get(name):
            c[name] = customer[name]
    life = customer.get("lifetime")
    if life:
        c["lifetime"] = {_camel(k): str(life[k]) for k in _LIFETIME if life.get(k)}
    kind = event["kind"]
    e: dict[str, Any] = {"id": event["id"], "time": event["time"]}
    # Left out as proto3 JSON leaves them out; 0 stays (distance_miles is an optional field).
    details = {_camel(k): _json_value(v) for k, v in event.items()
               if k not in ("id", "kind", "time") and v is not None and v is not False
               and v != ""}
    if kind not in DETAILS_KINDS:
        raise ValueError(f"{kind!r} events travel as attributes, which this mapping does not write")
    e[kind] = details
    return {"customer": c, "event": e}


def airline_requests(n: int = 10_000, seed: int = SEED) -> list[dict[str, Any]]:
    """The ``n`` benchmark pairs of :func:`raw_airline_pairs` as request mappings, in order.

    Each request has its own customer mapping, as ``json.loads`` would give a backend.
    """
    return [request_mapping(c, e) for c, e in raw_airline_pairs(n, seed)]


def raw_edge_pairs() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Hand-picked corner cases: anniversaries, 29 February, the cap, zero, windows, kinds."""
    def customer(since: str, tier: str | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {"id": f"X-{since}-{tier}", "member_since": since}
        if tier:
            c["tier"] = tier
        return c

    def flight(time: str, *, a: str = "JFK", b: str = "LHR", miles: int | None = None,
               cabin: str = "economy", partner: bool = False) -> dict[str, Any]:
        e: dict[str, Any] = {"id": f"X-{time}-{a}{b}-{cabin}", "kind": "flight", "time": time,
                             "origin": a, "destination": b, "fare": "100.00", "cabin": cabin,
                             "partner": partner}
        if miles is not None:
            e["distance_miles"] = miles
        return e

    return [
        (customer("2016-03-01", "GOLD"), flight("2026-03-01T00:00:00Z", miles=3000)),  # 10 years
        (customer("2016-03-02", "GOLD"), flight("2026-03-01T23:59:59Z", miles=3000)),  # 9 years
        (customer("2016-02-29"), flight("2026-02-28T12:00:00Z", miles=800)),  # leap joiner: 10
        (customer("2016-02-29"), flight("2026-02-27T12:00:00Z", miles=800)),  # leap joiner: 9
        (customer("2024-02-29"), flight("2026-02-28T12:00:00Z", miles=800)),
        (customer("2026-05-01"), flight("2026-05-01T08:00:00Z", miles=100)),  # joined today
        (customer("2026-06-01"), flight("2026-05-01T08:00:00Z", miles=100)),  # joins later
        (customer("1996-01-01", "75K"), flight("2026-07-01T00:00:00Z", a="JFK", b="SIN",
                                                cabin="first")),  # hits the 25,000 cap
        (customer("2000-01-01", "PLATINUM"), flight("2026-07-01T00:00:00Z", miles=0,
                                                     partner=True)),  # zero miles
        (customer("2000-01-01", "MVP"), flight("2026-07-01T00:00:00Z", miles=0)),  # minimum 500
        (customer("2000-01-01", "MVP"), flight("2026-01-01T03:00:00+09:00", miles=900)),  # 2025 UTC
        (customer("2000-01-01", "MVP"), flight("2025-12-31T23:59:59-01:00", miles=900)),  # 2026 UTC
        (customer("2010-01-01"), flight("2026-04-01T00:00:00Z", a="LHR", b="CDG", partner=True,
                                         cabin="premium_economy")),
        (customer("2010-01-01", "GOLD"), flight("2026-04-01T00:00:00Z", miles=499,
                                                 cabin="business")),
        (customer("2010-01-01", "GOLD"), flight("2026-04-01T00:00:00Z", miles=1001,
                                                 cabin="business", partner=True)),
        (customer("2001-01-01", "75K"), flight("2026-04-01T00:00:00Z", miles=7999, cabin="first")),
        (customer("2001-01-01", "75K"), flight("2026-04-01T00:00:00Z", miles=8065, cabin="first")),
        (customer("2001-01-01"), {"id": "X-buy", "kind": "purchase",
                                  "time": "2026-04-01T10:00:00Z", "amount": "12.50"}),
        (customer("2001-01-01"), {"id": "X-visit", "kind": "visit",
                                  "time": "2026-04-01T10:00:00Z"}),
    ]


# -- events of other kinds ------------------------------------------------------------------


def raw_mixed_pairs(n: int = 10_000, seed: int = SEED) -> list[Pair]:
    """``n`` pairs with a mix of event kinds (flights, purchases, visits, appointments, donations).

    The mix is that of a coalition programme: mostly purchases and flights.
    """
    rng = random.Random(seed + 1)
    flights = raw_airline_pairs(n, seed)
    categories = ["grocery", "electronics", "apparel", "fuel", "gift-card", "pharmacy"]
    out = []
    for i, (customer, flight) in enumerate(flights):
        kind = rng.choices(["flight", "purchase", "visit", "appointment", "donation"],
                           weights=[35, 40, 12, 8, 5])[0]
        when = datetime.fromisoformat(flight["time"].replace("Z", "+00:00"))
        stamp = when.astimezone(UTC).isoformat().replace("+00:00", "Z")
        event: dict[str, Any]
        if kind == "flight":
            event = flight
        elif kind == "purchase":
            items = [
                {"sku": f"SKU{rng.randint(1, 99999):05d}", "category": rng.choice(categories),
                 "amount": f"{Decimal(rng.randint(99, 25000)) / 100:.2f}",
                 "quantity": rng.randint(1, 3)}
                for _ in range(rng.randint(1, 6))
            ]
            total = sum(Decimal(it["amount"]) * it["quantity"] for it in items)
            event = {"kind": "purchase", "amount": f"{total:.2f}", "items": items,
                     "channel": rng.choice(["store", "online", "app"])}
        elif kind == "visit":
            event = {"kind": "visit", "venue": rng.choice(["soho", "midtown", "brooklyn"]),
                     "party_size": rng.randint(1, 6),
                     "spend": f"{Decimal(rng.randint(1500, 40000)) / 100:.2f}"}
        elif kind == "appointment":
            late = timedelta(minutes=rng.choice([-5, 0, 3, 8, 14, 16, 25, 40]))
            arrived = (when + late).isoformat().replace("+00:00", "Z")
            event = {"kind": "appointment", "service": rng.choice(["grooming", "vet", "boarding"]),
                     "scheduled_at": stamp, "arrived_at": arrived}
            if rng.random() < 0.1:
                del event["arrived_at"]
        else:
            event = {"kind": "donation", "amount": f"{Decimal(rng.randint(500, 100000)) / 100:.2f}",
                     "recurring": rng.random() < 0.3}
        if kind != "flight":
            event = {"id": f"M{i:07d}", "time": stamp, **event}
        out.append((customer, event))
    return out


# -- synthetic policies ---------------------------------------------------------------------

_FLIGHT_PREAMBLE = """\
  let tenure = tenure_years(customer.member_since, event.date)
  let flown = event.distance_miles otherwise distance_miles(event.origin, event.destination)
  let base = if event.partner then flown else max(flown, 500)
"""


def airline_policy_source() -> str:
    """The bundled airline policy's text."""
    return AIRLINE_POLICY.read_text(encoding="utf-8")


def filler_policy(i: int) -> str:
    """Policy number ``i`` of a family that never applies to a 2026 flight.

    A quarter are flight policies that ended before 2026, a quarter flight policies
    that start in 2030 or later, and half are for other event kinds. Each is a real
    policy of five to eight rules, so that loading it costs what a real one does.
    """
    name = f"filler_{i:05d}"
    shape = i % 4
    if shape in (0, 1):
        if shape == 0:
            year = 2010 + i % 15
            window = f"effective {year}-01-01 to {year}-12-31"
        else:
            window = f"effective from {2030 + i % 20}-01-01"
        pct = 5 + i % 20
        return (
            f"policy {name}\n  version {1 + i % 7}\n  {window}\n  on flight\n"
            f'  "Synthetic flight policy {i}, outside the benchmark window."\n\n'
            + _FLIGHT_PREAMBLE
            + f"""
  rule base_{i}: award {pct}% of base miles
  rule long_haul when flown >= {2000 + i % 3000}: award {100 + i % 900} miles
  group cabin takes best miles:
    rule front when event.cabin == "first": award 40% of base miles
    rule middle when event.cabin == "business": award 20% of base miles
  rule veteran when tenure >= {5 + i % 20}:
    award 5% of base miles
    tag "veteran-{i % 50}"

  cap miles at {5000 + i % 20000}
  round miles down
"""
        )
    kind = ("purchase", "visit", "donation", "appointment")[(i // 2) % 4]
    window = f"effective from 20{20 + i % 6}-01-01"
    header = (f"policy {name}\n  version {1 + i % 5}\n  {window}\n  on {kind}\n"
              f'  "Synthetic {kind} policy {i}; never runs for a flight."\n\n')
    if kind == "purchase":
        body = f"""\
  let spent = event.amount
  rule per_unit: award spent points
  rule online_bonus when event.channel == "online": award {5 + i % 10}% of spent points
  rule big_basket when spent >= {50 + i % 200}: award {10 + i % 90} points
  rule loyal when tenure_years(customer.member_since, event.date) >= {3 + i % 10}:
    award 10% of spent points
    tag "long-standing-{i % 40}"

  cap points at {1000 + i % 5000}
  round points down
"""
    elif kind == "visit":
        body = f"""\
  let visits = customer.lifetime.visits + 1
  rule welcome when visits == {3 + i % 5}: grant "regular-welcome" with visit = visits
  rule party when event.party_size >= {4 + i % 4}: award {20 + i % 30} points
  rule spend: award event.spend points
  round points down
"""
    elif kind == "donation":
        body = f"""\
  let total = customer.lifetime.donations + event.amount
  rule thanks: award 1% of event.amount credit
  rule major when total >= {1000 + i % 9000}: tag "major-donor-{i % 30}"
  rule steady when customer.lifetime.donation_years >= {3 + i % 7}:
    grant "donor-recognition" with level = "steady"
  round credit down
"""
    else:
        body = f"""\
  let years = tenure_years(customer.member_since, event.date)
  rule grace when years >= {2 + i % 5} and customer.lifetime.appointments >= {6 + i % 12}:
    grant "late-arrival-grace" with grace = {10 + i % 20} minutes
  rule thanks when years >= 1: award {5 + i % 20} points
"""
    return header + body


def rules_policy(rules: int, name: str = "many_rules") -> str:
    """One flight policy (effective through 2026) with ``rules`` rules, about half of which fire.

    The rules look like the airline policy's: thresholds on distance and tenure,
    cabin tests, percentage and fixed awards, a few tags; a cap and rounding.
    """
    lines = [
        f"policy {name}", "  version 1", "  effective from 2026-01-01", "  on flight",
        f'  "Synthetic flight policy with {rules} rules."', "", _FLIGHT_PREAMBLE.rstrip("\n"), "",
    ]
    cabins = ("economy", "premium_economy", "business", "first")
    for r in range(rules):
        shape = r % 5
        rid = f"r{r:04d}"
        if shape == 0:
            cond, effect = f"flown >= {(r * 37) % 6000}", f"award {1 + r % 9}% of base miles"
        elif shape == 1:
            cond, effect = f'event.cabin == "{cabins[r % 4]}"', f"award {r % 50 + 1} miles"
        elif shape == 2:
            cond, effect = f"tenure >= {r % 25}", f"award {1 + r % 4}% of base miles"
        elif shape == 3:
            cond = f"not event.partner and base < {500 + r % 3000}"
            effect = f"award {r % 20 + 1} miles"
        else:
            cond, effect = f"flown > {(r * 53) % 9000}", f'tag "band-{r % 10}"'
        lines.append(f"  rule {rid} when {cond}: {effect}")
    lines += ["", "  cap miles at 25000", "  round miles down", ""]
    return "\n".join(lines)


def varied_policy(i: int) -> str:
    """Policy number ``i`` of a realistic family for compile sets: every kind, some applying.

    Flight policies reuse the airline policy's shape (a table, a best-of group,
    tenure), the others the filler shapes.
    """
    if i % 3:
        return filler_policy(i)
    pct = 5 + i % 40
    return f"""\
policy varied_{i:05d}
  version {1 + i % 9}
  effective {2024 + i % 4}-01-01 to {2027 + i % 4}-12-31
  on flight
  "Synthetic airline policy {i}."

{_FLIGHT_PREAMBLE}
  table elite_{i} by customer.tier:
    "MVP" -> {25 + i % 50}%
    "GOLD" -> {50 + i % 75}%
    "PLATINUM", "75K" -> {100 + i % 50}%
    else -> 0%

  rule flown_miles: award {pct}% of base miles
  group cabin_bonus takes best miles:
    rule first_cabin when event.cabin == "first": award 75% of base miles
    rule business_cabin when event.cabin == "business": award 50% of base miles
    rule premium_cabin when event.cabin == "premium_economy": award 25% of base miles
  rule elite: award elite_{i} of base miles
  rule loyal when tenure >= {5 + i % 10}:
    award 10% of base miles
    grant "priority-rebooking"
    tag "member-{i % 100}"

  cap miles at {10000 + i % 20000}
  round miles down
"""


def loaded_set(n: int, *, with_airline: bool = True) -> dict[str, str]:
    """A set of ``n`` policy files: the airline policy plus ``n - 1`` that never apply.

    With ``with_airline=False`` all ``n`` are fillers.
    """
    files: dict[str, str] = {}
    if with_airline:
        files["airline/earn_miles.policy"] = airline_policy_source()
    i = 0
    while len(files) < n:
        files[f"filler/f{i:05d}.policy"] = filler_policy(i)
        i += 1
    return files


def compile_set(n: int) -> dict[str, str]:
    """``n`` varied policy files (a third of them airline-like), for parse/check/compile timing."""
    return {f"varied/v{i:05d}.policy": varied_policy(i) for i in range(n)}


def write_policy_dir(directory: Path, files: Mapping[str, str]) -> Path:
    """Write ``files`` below ``directory``, with the bundled ``schema.toml``; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "schema.toml").write_text(
        (POLICIES_DIR / "schema.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory


def describe(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """Counts that show a prepared data set's mix (tiers, cabins, partner, missing distance)."""
    from collections import Counter

    flights = [(c, e) for c, e in pairs if e["kind"] == "flight"]
    return {
        "pairs": len(pairs),
        "customers": len({c["id"] for c, _ in pairs}),
        "kinds": dict(Counter(e["kind"] for _, e in pairs)),
        "tiers": dict(Counter(str(c["tier"]) for c, _ in pairs)),
        "cabins": dict(Counter(e["cabin"] for _, e in flights)),
        "partner": sum(e["partner"] for _, e in flights),
        "distance_missing": sum(e["distance_miles"] is None for _, e in flights),
        "before_2026": sum(e["date"] < EFFECTIVE_FROM for _, e in pairs),
        "leap_day_joiners": sum(
            1 for c, _ in pairs if (c["member_since"].month, c["member_since"].day) == (2, 29)
        ),
    }
