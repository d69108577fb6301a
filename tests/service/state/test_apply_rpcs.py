"""Apply, ApplyBatch and Reverse through a real server on 127.0.0.1 and a real store (a SQLite
file, a PostgreSQL schema): exactly once by id, limits read in the transaction, reversals in
proportion, bad input refused with the field and nothing written.

The periods come from :mod:`stand_in` (a bonus at most once a day, 5% on up to 1500.00 of
purchases a quarter) until the language's own land; the figures below are worked by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import grpc
import pytest
from serving import LiveServer, status_of
from stand_in_serve import build_with_periods

import service.store
from service.client import purchase
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from tests.service.conftest import gold_customer, jfk_lhr


@dataclass
class Served(LiveServer):
    """A server with the stand-in periods on a fresh store, and the store itself."""

    def apply(self, event: pb.Event, **kwargs: object) -> pb.ApplyResponse:
        return self.stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=event, **kwargs))  # type: ignore[arg-type]

    def reverse(self, event_id: str, reversal_id: str, *items: pb.ReturnedItem) -> pb.ReverseResponse:
        return self.stub.Reverse(pb.ReverseRequest(event_id=event_id, reversal_id=reversal_id, items=items))

    def written(self) -> tuple[int, int]:
        """(events, entries) stored for c-1."""
        return len(self.state.events("c-1")), len(self.state.counter_entries("c-1"))


@pytest.fixture
def served(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """A real server on 127.0.0.1 with the bundled policies plus the stand-in's periods."""
    monkeypatch.setattr(service.store, "build_snapshot", build_with_periods)
    with Served.started(store_url) as started:
        yield started


def basket(id: str = "p-1", time: str = "2026-03-01T10:00:00Z", amount: str = "1400.00") -> pb.Event:
    """A purchase of 1400.00: two units of A at 1000.00 the line, one of B at 400.00."""
    return purchase(id, time=time, amount=amount, items=[
        {"sku": "A", "category": "coffee", "amount": "1000.00", "quantity": 2},
        {"sku": "B", "category": "coffee", "amount": "400.00"},
    ])


def test_apply_counts_toward_the_periods_and_a_retry_returns_the_stored_decision(served: Served) -> None:
    """The first Apply earns the day's bonus and 5% of 1400.00 and counts both; the same id and
    body again returns the same response with replayed set and writes nothing."""
    first = served.apply(basket())
    assert (first.decision.awards["bonus"], first.decision.awards["cashback"]) == ("100", "70.00")
    assert dict(first.counted) == {"daily_bonus": "1", "quarter_spend": "1400.00"}
    assert first.body_digest.startswith("sha256:") and len(first.body_digest) == 71
    assert not first.replayed
    written = served.written()
    assert written == (1, 2)
    again = served.apply(basket(), explain=True)  # explain is not part of the body
    assert again.replayed
    again.replayed = False
    assert again == first
    assert served.written() == written


def test_a_second_event_reads_what_the_first_counted(served: Served) -> None:
    """Once a day: no second bonus. The quarter's cap: 200.00 more earns 5% of the 100.00 below it."""
    served.apply(basket())
    second = served.apply(basket("p-2", "2026-03-01T11:00:00Z", "200.00"))
    assert "bonus" not in second.decision.awards
    assert second.decision.awards["cashback"] == "5.00"
    assert dict(second.counted) == {"quarter_spend": "100.00"}


def test_evaluate_is_a_quote_that_reads_the_counters_and_writes_nothing(served: Served) -> None:
    """After an Apply, Evaluate of the same day's event sees the bonus used, and stores nothing."""
    served.apply(basket())
    written = served.written()
    quote = served.stub.Evaluate(pb.EvaluateRequest(customer=gold_customer(),
                                                    event=basket("p-9", amount="200.00")))
    assert "bonus" not in quote.decision.awards
    assert quote.decision.awards["cashback"] == "5.00"
    assert served.written() == written


def test_the_same_id_with_another_body_is_already_exists_naming_both_digests(served: Served) -> None:
    """A reused event id with another amount: ALREADY_EXISTS, both digests, nothing written."""
    first = served.apply(basket())
    written = served.written()
    with pytest.raises(grpc.RpcError) as caught:
        served.apply(basket(amount="1.00"))
    code, message, _, info = status_of(caught.value)
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert info["field"] == "event.id"
    assert info["stored_digest"] == first.body_digest
    assert info["request_digest"] != first.body_digest
    assert message == (f"event 'p-1' was already applied with body digest {first.body_digest}; "
                       f"this request's digest is {info['request_digest']}")
    assert served.written() == written


@pytest.mark.parametrize("event_id, field, reason", [
    ("e" * 129, "event.id", "is longer than 128 characters"),
    ("", "event.id", "is required"),
], ids=["over-the-bound", "missing"])
def test_a_bad_event_id_is_invalid_argument_with_the_field_and_nothing_written(
        served: Served, event_id: str, field: str, reason: str) -> None:
    """The event id is the key: one over 128 characters, or none, is refused before the store."""
    with pytest.raises(grpc.RpcError) as caught:
        served.apply(jfk_lhr(event_id))
    code, _, violations, _ = status_of(caught.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in violations] == [field]
    assert reason in violations[0][1]
    assert served.written() == (0, 0)


def test_a_partial_reversal_takes_back_in_proportion_and_gives_the_limit_back(served: Served) -> None:
    """One unit of A returned: 500.00 of 1400.00, so 5/14 of each award and of each counted
    entry, rounded toward zero in its unit; the quarter then has 500.00 more room."""
    first = served.apply(basket())
    served.apply(basket("p-2", "2026-03-01T11:00:00Z", "200.00"))  # quarter_spend now 1500.00
    back = served.reverse("p-1", "r-1", pb.ReturnedItem(sku="A", quantity=1))
    points = int(first.decision.awards["points"])
    assert dict(back.reversed) == {"cashback": "25.00", "bonus": "35", "points": str(points * 5 // 14)}
    assert dict(back.counted) == {"quarter_spend": "-500.00"}  # 1 x 5/14 of the bonus count rounds to 0
    assert not back.whole and not back.replayed
    later = served.apply(basket("p-3", "2026-03-02T10:00:00Z", "600.00"))
    assert later.decision.awards["cashback"] == "25.00"  # 5% of the 500.00 given back
    assert served.reverse("p-1", "r-1", pb.ReturnedItem(sku="A", quantity=1)).replayed


def test_a_whole_reversal_after_a_partial_one_takes_back_the_rest_once(served: Served) -> None:
    """Whole after partial: the remainder exactly; a second whole reversal has nothing left."""
    first = served.apply(basket())
    served.reverse("p-1", "r-1", pb.ReturnedItem(sku="A", quantity=1))
    rest = served.reverse("p-1", "r-2")
    points = int(first.decision.awards["points"])
    left = points - points * 5 // 14
    assert dict(rest.reversed) == {"cashback": "45.00", "bonus": "65", "points": str(left)}
    assert dict(rest.counted) == {"quarter_spend": "-900.00", "daily_bonus": "-1"}
    assert rest.whole
    nothing = served.reverse("p-1", "r-3")
    assert (dict(nothing.reversed), dict(nothing.counted)) == ({}, {})
    entries = served.state.counter_entries("c-1")
    assert sum(e.amount for e in entries if e.counter == "quarter_spend") == Decimal("0.00")
    assert sum(e.amount for e in entries if e.counter == "daily_bonus") == 0


@pytest.mark.parametrize("items, field, reason", [
    ([pb.ReturnedItem(sku="Z")], "items[0].sku", "event 'p-1' has no item with SKU 'Z'"),
    ([pb.ReturnedItem(sku="B", quantity=2)], "items[0].quantity",
     "SKU 'B' has 1 of 1 units left to return, not 2"),
    ([pb.ReturnedItem(sku="A"), pb.ReturnedItem(sku="A", quantity=1)], "items[1].quantity",
     "SKU 'A' has 0 of 2 units left to return, not 1"),
    ([pb.ReturnedItem(sku="")], "items[0].sku", "is required"),
    ([pb.ReturnedItem(sku="A", quantity=0)], "items[0].quantity", "must be at least 1 (unset: every unit)"),
], ids=["unknown-sku", "too-many-units", "returned-twice-in-one-call", "no-sku", "zero-units"])
def test_a_reversal_of_items_the_event_did_not_have_is_invalid_argument_and_writes_nothing(
        served: Served, items: list[pb.ReturnedItem], field: str, reason: str) -> None:
    """Items the purchase did not have (or has no units left of): INVALID_ARGUMENT naming the item."""
    served.apply(basket())
    written = served.written()
    with pytest.raises(grpc.RpcError) as caught:
        served.reverse("p-1", "r-1", *items)
    code, _, violations, _ = status_of(caught.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert violations == [(field, reason)]
    assert served.written() == written
    assert served.state.events("c-1")[0].reversals == ()


def test_items_of_an_event_without_purchase_lines_are_invalid_argument(served: Served) -> None:
    """A flight has no items to return: it can only be reversed whole."""
    served.apply(jfk_lhr("f-1"))
    with pytest.raises(grpc.RpcError) as caught:
        served.reverse("f-1", "r-1", pb.ReturnedItem(sku="A"))
    code, _, violations, _ = status_of(caught.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert violations == [("items", "event 'f-1' has no purchase items to return; "
                                    "reverse it whole (send no items)")]
    assert served.reverse("f-1", "r-2").whole


def test_reversing_an_unknown_event_is_not_found_and_a_reused_reversal_id_already_exists(
        served: Served) -> None:
    """NOT_FOUND names the event id field; a reversal id reused with other items is ALREADY_EXISTS."""
    with pytest.raises(grpc.RpcError) as caught:
        served.reverse("never", "r-1")
    code, message, _, _ = status_of(caught.value)
    assert (code, message) == (grpc.StatusCode.NOT_FOUND, "event_id: event 'never' was never applied")
    served.apply(basket())
    first = served.reverse("p-1", "r-1", pb.ReturnedItem(sku="B"))
    with pytest.raises(grpc.RpcError) as caught:
        served.reverse("p-1", "r-1")
    code, _, _, info = status_of(caught.value)
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert (info["field"], info["stored_digest"]) == ("reversal_id", first.body_digest)
    assert len(served.state.events("c-1")[0].reversals) == 1


def test_apply_batch_gives_each_item_its_result_and_applies_a_repeated_id_once(served: Served) -> None:
    """One bad item, one reused id with another body, one repeated id: the rest commit together."""
    items = [
        pb.BatchItem(correlation_id="a", customer=gold_customer(), event=basket()),
        pb.BatchItem(correlation_id="b", customer=gold_customer(), event=basket()),
        pb.BatchItem(correlation_id="c", customer=gold_customer(), event=jfk_lhr("f-1", origin="XXX")),
        pb.BatchItem(correlation_id="d", customer=gold_customer(), event=basket(amount="9.00")),
        pb.BatchItem(correlation_id="e", customer=gold_customer(), event=basket("p-2", "2026-03-01T11:00:00Z",
                                                                                "200.00")),
    ]
    response = served.stub.ApplyBatch(pb.ApplyBatchRequest(items=items))
    results = {r.correlation_id: r for r in response.results}
    assert response.failed == 2
    assert results["a"].applied.decision.awards["bonus"] == "100"
    assert results["b"].applied.replayed
    assert results["b"].applied.body_digest == results["a"].applied.body_digest
    assert results["c"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert results["d"].error.code == grpc.StatusCode.ALREADY_EXISTS.value[0]
    assert results["e"].applied.decision.awards["cashback"] == "5.00"  # saw item a's 1400.00
    assert served.written() == (2, 3)
    unary = served.apply(basket())
    assert unary.replayed and unary.decision == results["a"].applied.decision


def test_the_retry_policy_covers_the_state_rpcs() -> None:
    """The documented service config retries UNAVAILABLE for every method, Apply and Reverse
    included (safe: both are idempotent by id), with the 30 s default deadline."""
    from service.client import RETRY_POLICY, SERVICE_CONFIG

    (everything, stream) = SERVICE_CONFIG["methodConfig"]  # type: ignore[misc]
    assert everything == {"name": [{"service": "loyalty.v1.LoyaltyRules"}], "timeout": "30s",
                          "retryPolicy": RETRY_POLICY}
    assert stream["name"] == [{"service": "loyalty.v1.LoyaltyRules", "method": "EvaluateStream"}]
    assert "UNAVAILABLE" in RETRY_POLICY["retryableStatusCodes"]  # type: ignore[operator]
