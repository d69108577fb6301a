"""The airline policy served as an engineer would without this project: grpcio, the generated
messages and plain Python (issue 20's floor for ``EvaluateBatch``).

:class:`HandwrittenServicer` answers ``EvaluateBatch`` (and ``Evaluate``) for the bundled
airline policy alone, reading each item's protobuf fields directly and building the
response messages, with the same decisions the service gives for a set holding only that
policy (``benchmarks/test_service.py`` checks a batch of both for equality before it times
them). It checks nothing a well-formed request could get wrong and knows one policy: the
floor a generated servicer could reach, not a service. Every other RPC is the trivial
servicer's.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import grpc

from benchmarks.handwritten import tenure_years
from dsl.schema.airports import great_circle_miles
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.testing import TrivialServicer

POLICY = "earn_miles_by_distance"
#: The policy's ``effective from 2026-01-01``, in the programme's zone (the bundled schema's
#: Europe/London), as the instant that day starts: events are compared by their seconds.
EFFECTIVE_FROM_S = int(datetime(2026, 1, 1, tzinfo=ZoneInfo("Europe/London")).timestamp())
MINIMUM_MILES = 500
CAP = 25_000
#: Cabin bonus rules, in the policy's order: (cabin, rule, percent).
CABIN_RULES = {"first": ("first_cabin", 75), "business": ("business_cabin", 50),
               "premium_economy": ("premium_cabin", 25)}
ELITE_BONUS = {"MVP": 50, "GOLD": 100, "PLATINUM": 125, "75K": 125}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _fill(decision: pb.Decision, revision: str, customer: pb.Customer, event: pb.Event) -> None:
    """The airline policy's decision for one (customer, event), written into ``decision``."""
    decision.revision = revision
    seconds = event.time.seconds
    if seconds < EFFECTIVE_FROM_S:
        return  # the policy does not apply yet: an empty decision
    on = date.fromordinal(_EPOCH_ORDINAL + seconds // 86_400)  # the event's UTC date
    flight = event.flight
    flown = flight.distance_miles if flight.HasField("distance_miles") else \
        great_circle_miles(flight.origin, flight.destination)
    base = flown if flight.partner else max(flown, MINIMUM_MILES)
    fired = decision.fired
    fired.add(policy=POLICY, rule="flown_miles")
    percent = 100
    cabin = CABIN_RULES.get(flight.cabin)
    if cabin is not None:
        fired.add(policy=POLICY, rule=cabin[0])
        percent += cabin[1]
    percent += ELITE_BONUS.get(customer.tier, 0)
    fired.add(policy=POLICY, rule="elite")
    if tenure_years(date.fromisoformat(customer.member_since), on) >= 10:
        percent += 10
        fired.add(policy=POLICY, rule="loyal_for_a_decade")
        decision.benefits.add(name="priority-rebooking", policy=POLICY, rule="loyal_for_a_decade")
        decision.tags.append("decade-member")
    miles = min(base * percent // 100, CAP)  # the total rounded down once, then capped
    if miles:
        decision.awards["miles"] = str(miles)
    decision.policies.append(POLICY)


class HandwrittenServicer(TrivialServicer):
    """The airline policy behind grpcio, by hand; ``revision`` is the one the decisions name
    (the real service's, for a set holding only the airline policy)."""

    def __init__(self, revision: str) -> None:
        self.revision = revision

    def Evaluate(self, request: pb.EvaluateRequest, context: grpc.ServicerContext) -> pb.EvaluateResponse:
        """One decision."""
        response = pb.EvaluateResponse()
        _fill(response.decision, self.revision, request.customer, request.event)
        return response

    def EvaluateBatch(self, request: pb.EvaluateBatchRequest,
                      context: grpc.ServicerContext) -> pb.EvaluateBatchResponse:
        """One decision per item, in order."""
        revision = self.revision
        response = pb.EvaluateBatchResponse(revision=revision)
        add = response.results.add
        for item in request.items:
            _fill(add(correlation_id=item.correlation_id).decision, revision, item.customer, item.event)
        return response


def revision_of(policies: Any) -> str:
    """The revision the service names for the policy directory ``policies``."""
    import dsl

    return str(dsl.load_directory(policies).revision)
