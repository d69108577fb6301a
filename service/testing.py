"""Test and benchmark helpers: a trivial servicer with the same messages as the real one.

The benchmarks serve :class:`TrivialServicer` through the same
:func:`service.server.create_server` (same threads, options and interceptor), so
the difference they measure is what the real servicer does: conversion, rules
and building the decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import grpc

from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc

#: The fixed decision the trivial servicer answers with: the shape of a typical airline decision.
FIXED_DECISION = pb.Decision(
    revision="r000000000000",
    awards={"miles": "3750"},
    tier="",
    tags=["decade-member"],
    policies=["earn_miles_by_distance"],
    fired=[
        pb.FiredRule(policy="earn_miles_by_distance", rule="flown_miles"),
        pb.FiredRule(policy="earn_miles_by_distance", rule="business_cabin"),
        pb.FiredRule(policy="earn_miles_by_distance", rule="elite"),
    ],
)


class TrivialServicer(pb_grpc.LoyaltyRulesServicer):
    """Answers every call with :data:`FIXED_DECISION`, without reading the request's fields."""

    def Evaluate(self, request: pb.EvaluateRequest, context: grpc.ServicerContext) -> pb.EvaluateResponse:
        """A fixed decision."""
        return pb.EvaluateResponse(decision=FIXED_DECISION)

    def EvaluateBatch(
        self, request: pb.EvaluateBatchRequest, context: grpc.ServicerContext
    ) -> pb.EvaluateBatchResponse:
        """A fixed decision per item."""
        response = pb.EvaluateBatchResponse(revision=FIXED_DECISION.revision)
        results = response.results
        for item in request.items:
            results.add(correlation_id=item.correlation_id, decision=FIXED_DECISION)
        return response

    def EvaluateStream(
        self, request_iterator: Iterable[pb.EvaluateStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.EvaluateStreamResponse]:
        """A fixed decision per message."""
        for request in request_iterator:
            yield pb.EvaluateStreamResponse(
                correlation_id=request.correlation_id, decision=FIXED_DECISION
            )

    def Apply(self, request: pb.ApplyRequest, context: grpc.ServicerContext) -> pb.ApplyResponse:
        """A fixed decision, as if applied."""
        return pb.ApplyResponse(decision=FIXED_DECISION, body_digest="sha256:0")

    def ApplyBatch(self, request: pb.ApplyBatchRequest,
                   context: grpc.ServicerContext) -> pb.ApplyBatchResponse:
        """A fixed decision per item, as if applied."""
        response = pb.ApplyBatchResponse(revision=FIXED_DECISION.revision)
        for item in request.items:
            response.results.add(correlation_id=item.correlation_id,
                                 applied=pb.ApplyResponse(decision=FIXED_DECISION, body_digest="sha256:0"))
        return response

    def Reverse(self, request: pb.ReverseRequest, context: grpc.ServicerContext) -> pb.ReverseResponse:
        """Nothing reversed."""
        return pb.ReverseResponse(event_id=request.event_id, reversal_id=request.reversal_id, whole=True)

    def Redeem(self, request: pb.RedeemRequest, context: grpc.ServicerContext) -> pb.RedeemResponse:
        """Nothing drawn."""
        return pb.RedeemResponse(redemption_id=request.redemption_id, available_after="0")

    def GetBalance(self, request: pb.GetBalanceRequest,
                   context: grpc.ServicerContext) -> pb.GetBalanceResponse:
        """No balances."""
        return pb.GetBalanceResponse(customer_id=request.customer_id)

    def GetStatement(self, request: pb.GetStatementRequest,
                     context: grpc.ServicerContext) -> pb.GetStatementResponse:
        """No lines."""
        return pb.GetStatementResponse()

    def ListPolicies(
        self, request: pb.ListPoliciesRequest, context: grpc.ServicerContext
    ) -> pb.ListPoliciesResponse:
        """No policies."""
        return pb.ListPoliciesResponse(revision=FIXED_DECISION.revision)
