"""The benchmark pairs as ``loyalty.v1`` protobuf messages, built as a backend would build them.

The load generator sends these to the real servicer and to the trivial one: the
same bytes on the wire for both arms of every service comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from service.gen.loyalty.v1 import loyalty_pb2 as pb


def customer_message(raw: Mapping[str, Any]) -> pb.Customer:
    """A ``Customer`` from a raw customer mapping (:func:`benchmarks.data.raw_airline_pairs`)."""
    msg = pb.Customer(id=raw["id"], member_since=raw["member_since"], tier=raw.get("tier") or "",
                      birthday=raw.get("birthday") or "")
    life = raw.get("lifetime") or {}
    if life:
        msg.lifetime.CopyFrom(pb.Lifetime(
            miles=life.get("miles", 0), flights=life.get("flights", 0),
            spend=life.get("spend", ""), visits=life.get("visits", 0),
            appointments=life.get("appointments", 0), donations=life.get("donations", ""),
            donation_years=life.get("donation_years", 0),
        ))
    return msg


def _timestamp(text: str) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromDatetime(datetime.fromisoformat(text.replace("Z", "+00:00")))
    return ts


def event_message(raw: Mapping[str, Any]) -> pb.Event:
    """An ``Event`` from a raw event mapping, of any kind."""
    msg = pb.Event(id=raw["id"], kind=raw["kind"])
    msg.time.CopyFrom(_timestamp(raw["time"]))
    kind = raw["kind"]
    if kind == "flight":
        flight = pb.Flight(origin=raw["origin"], destination=raw["destination"], fare=raw["fare"],
                           currency=raw.get("currency", ""), cabin=raw.get("cabin", ""),
                           partner=bool(raw.get("partner", False)),
                           carrier=raw.get("carrier") or "")
        if raw.get("distance_miles") is not None:
            flight.distance_miles = raw["distance_miles"]
        msg.flight.CopyFrom(flight)
    elif kind == "purchase":
        items = [pb.Item(sku=i["sku"], category=i["category"], amount=i["amount"],
                         quantity=i.get("quantity", 1)) for i in raw.get("items", [])]
        msg.purchase.CopyFrom(pb.Purchase(amount=raw["amount"], currency=raw.get("currency", ""),
                                          channel=raw.get("channel", ""), items=items))
    elif kind == "visit":
        visit = pb.Visit(venue=raw.get("venue") or "", spend=raw.get("spend", ""))
        if "party_size" in raw:
            visit.party_size = raw["party_size"]
        msg.visit.CopyFrom(visit)
    elif kind == "appointment":
        appt = pb.Appointment(service=raw["service"])
        appt.scheduled_at.CopyFrom(_timestamp(raw["scheduled_at"]))
        if raw.get("arrived_at"):
            appt.arrived_at.CopyFrom(_timestamp(raw["arrived_at"]))
        msg.appointment.CopyFrom(appt)
    elif kind == "donation":
        msg.donation.CopyFrom(pb.Donation(amount=raw["amount"], currency=raw.get("currency", ""),
                                          recurring=bool(raw.get("recurring", False))))
    return msg


def evaluate_requests(raw_pairs: list[tuple[Mapping[str, Any], Mapping[str, Any]]],
                      explain: bool = False) -> list[pb.EvaluateRequest]:
    """One ``EvaluateRequest`` per raw pair."""
    return [
        pb.EvaluateRequest(customer=customer_message(c), event=event_message(e), explain=explain)
        for c, e in raw_pairs
    ]


def batch_request(
    requests: list[pb.EvaluateRequest], start: int, size: int
) -> pb.EvaluateBatchRequest:
    """An ``EvaluateBatchRequest`` of ``size`` items taken cyclically from ``requests``."""
    items = []
    for k in range(size):
        r = requests[(start + k) % len(requests)]
        items.append(pb.BatchItem(correlation_id=str(k), customer=r.customer, event=r.event))
    return pb.EvaluateBatchRequest(items=items)


def stream_requests(
    requests: list[pb.EvaluateRequest], count: int
) -> list[pb.EvaluateStreamRequest]:
    """``count`` stream messages taken cyclically from ``requests``, numbered as correlation ids."""
    out = []
    for k in range(count):
        r = requests[k % len(requests)]
        out.append(pb.EvaluateStreamRequest(correlation_id=str(k), customer=r.customer,
                                            event=r.event))
    return out
