"""Time zones through the real service: the coffee shop's happy hour on the store's clock,
and a zone that is not an IANA name refused as INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import grpc
import pytest

from service import client
from service.client import field_violations
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from tests.service.conftest import gold_customer


def order(time: str, **attributes: object) -> pb.Event:
    """A coffee-shop order (the bundled schema's extension kind) with ``attributes`` set."""
    event = pb.Event(id="o-1", kind="order", time=client.timestamp(time))
    for name, value in attributes.items():
        event.attributes[name].CopyFrom(client.python_to_value(value))
    return event


@pytest.mark.parametrize(("time", "zone", "stars", "tags"), [
    # Wednesday 20:30Z = 15:30 EST, the programme's default zone: 1 + 1 happy-hour star
    pytest.param("2026-03-04T20:30:00Z", None, "2", ["happy-hour"], id="new-york-default"),
    # the same instant is 05:30 on Thursday in Tokyo: 1 star
    pytest.param("2026-03-04T20:30:00Z", "Asia/Tokyo", "1", [], id="tokyo"),
    # Saturday 01:30Z = Friday 17:30 PST in Los Angeles: still a weekday's happy hour
    pytest.param("2026-03-07T01:30:00Z", "America/Los_Angeles", "2", ["happy-hour"], id="los-angeles"),
])
def test_happy_hour_follows_the_stores_clock(stub, time, zone, stars, tags):
    """The coffee policy reads event.store_zone (sent as an attribute) through local()."""
    attributes = {"store_zone": zone} if zone else {}
    request = pb.EvaluateRequest(customer=gold_customer(), event=order(time, **attributes),
                                 only_policies=["coffee_rewards"])
    d = stub.Evaluate(request, timeout=5).decision
    assert dict(d.awards) == {"stars": stars}
    assert list(d.tags) == tags


@pytest.mark.parametrize(("zone", "reason"), [
    ("Europe/Londn", '"Europe/Londn" is not an IANA time zone name (such as Europe/London); '
                     "did you mean `Europe/London`?"),
    ("../../etc/passwd", '"../../etc/passwd" is not an IANA time zone name (such as Europe/London)'),
])
def test_a_zone_that_is_not_an_iana_name_is_invalid_argument(stub, zone, reason):
    """A bad zone never reaches zoneinfo: the request is refused, naming the field."""
    request = pb.EvaluateRequest(customer=gold_customer(),
                                 event=order("2026-03-04T20:30:00Z", store_zone=zone))
    with pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(request, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(info.value) == [("event.attributes.store_zone", reason)]
