"""The response bytes the service writes itself are protobuf's own, byte for byte.

:mod:`service.wire` serialises decisions from cached templates and frames them
into responses by hand; every test here holds those bytes to the message they
parse back to and to protobuf's serialiser (``SerializeToString(deterministic=True)``)
wherever the order is defined: everywhere but several awards in one decision
(map order is not part of the wire format, and upb's deterministic order is
not plain key order), which are compared as parsed messages.
"""

from __future__ import annotations

import dataclasses
import re
import tokenize
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2
from google.rpc import status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl.decision import Benefit, Decision, Reason
from service import wire
from service.errors import InvalidArgument, PolicyFailed, Unavailable, Violation, status_for
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.servicer import LoyaltyRulesServicer
from service.store import PolicyStore
from service.wire import (
    VARINT,
    DecisionEncoder,
    batch_tail,
    decision_message,
    python_to_value,
    result_bytes,
    stream_response_bytes,
    tag,
)
from tests.service.conftest import POLICIES, gold_customer, jfk_lhr

SERVICE = Path(__file__).resolve().parents[2] / "service"
LONG = "x" * 200  # its length takes a two-byte varint
VERY_LONG = "é" * 9000  # 18,000 bytes: a three-byte varint


def reference(decision: Decision) -> bytes:
    """What protobuf itself writes for a decision."""
    return decision_message(decision).SerializeToString(deterministic=True)


def assert_encodes_like_protobuf(encoder: DecisionEncoder, decision: Decision) -> None:
    """Bytes, payload and message of ``encoder`` for ``decision`` are protobuf's own (the bytes
    exactly unless several awards leave the order of their entries open)."""
    expected = reference(decision)
    encoded = encoder.serialize(decision)
    assert pb.Decision.FromString(encoded) == decision_message(decision)
    assert len(encoded) == len(expected)
    if len(decision.awards) <= 1 or decision.reasons is not None:
        assert encoded == expected
    assert encoder.payload(decision) == VARINT[len(encoded)] + encoded
    assert encoder.message(decision) == decision_message(decision)


# -- tags --------------------------------------------------------------------------------------

#: Every tag constant and a message with only that field set (protobuf writes the tag first).
TAGGED = {
    "DECISION_AWARDS": pb.Decision(awards={"miles": "1"}),
    "EVALUATE_DECISION": pb.EvaluateResponse(decision=pb.Decision()),
    "BATCH_RESULTS": pb.EvaluateBatchResponse(results=[pb.BatchResult()]),
    "BATCH_REVISION": pb.EvaluateBatchResponse(revision="r"),
    "BATCH_FAILED": pb.EvaluateBatchResponse(failed=1),
    "RESULT_CORRELATION_ID": pb.BatchResult(correlation_id="c"),
    "RESULT_DECISION": pb.BatchResult(decision=pb.Decision()),
    "RESULT_ERROR": pb.BatchResult(error=status_pb2.Status()),
    "STREAM_CORRELATION_ID": pb.EvaluateStreamResponse(correlation_id="c"),
    "STREAM_DECISION": pb.EvaluateStreamResponse(decision=pb.Decision()),
    "STREAM_ERROR": pb.EvaluateStreamResponse(error=status_pb2.Status()),
}


@pytest.mark.parametrize("name", sorted(TAGGED))
def test_tag_constants_are_what_protobuf_writes(name):
    """Each tag constant starts protobuf's own serialisation of a message with only that field."""
    assert TAGGED[name].SerializeToString().startswith(getattr(wire, name))


def test_award_entry_tags_are_the_map_entrys():
    """An awards map entry is key (the currency) then value (the amount text), as protobuf writes it."""
    entry = pb.Decision(awards={"miles": "1"}).SerializeToString()
    assert entry == wire.DECISION_AWARDS + b"".join(
        [VARINT[10], wire.AWARD_KEY, VARINT[5], b"miles", wire.AWARD_VALUE, VARINT[1], b"1"])


@pytest.mark.parametrize(("message", "field", "expected"), [
    (pb.Decision.DESCRIPTOR, "revision", bytes([1 << 3 | 2])),
    (pb.EvaluateBatchResponse.DESCRIPTOR, "failed", bytes([3 << 3 | 0])),
    (pb.Value.DESCRIPTOR, "bool_value", bytes([4 << 3 | 0])),
    (pb.Event.DESCRIPTOR, "attributes", bytes([(20 << 3 | 2) & 0x7F | 0x80, (20 << 3 | 2) >> 7])),
    (descriptor_pb2.SourceCodeInfo.Location.DESCRIPTOR, "path", bytes([1 << 3 | 2])),
    (descriptor_pb2.FieldOptions.DESCRIPTOR, "packed", bytes([2 << 3 | 0])),
    (descriptor_pb2.UninterpretedOption.DESCRIPTOR, "double_value", bytes([6 << 3 | 1])),
], ids=["string", "int32", "bool", "two-byte-tag", "packed-repeated", "proto2-bool", "double"])
def test_tag_is_field_number_and_wire_type(message, field, expected):
    """``tag`` encodes (number << 3 | wire type) as a varint, packed repeated fields length-delimited."""
    assert tag(message, field) == expected


#: Bytes literals in service/ that are not protobuf: the one place each may appear, and why.
NOT_WIRE = {
    ("logs.py", 'b"\\n"'),  # the end of a JSON log line
    ("workers.py", 'b"."'),  # a worker's "ready" byte on its pipe to the supervisor
}


def test_no_module_writes_tags_by_hand():
    """Outside the generated code, service/ holds no bytes literal but b"" and a known few that
    are not protobuf: every tag comes from the descriptors, in service.wire."""
    found = set()
    for path in sorted(SERVICE.glob("*.py")):
        with path.open("rb") as f:
            for token in tokenize.tokenize(f.readline):
                text = token.string
                is_bytes = token.type == tokenize.STRING and re.match(r"[rR]?[bB]", text)
                if is_bytes and text not in ('b""', "b''"):
                    found.add((path.name, text))
    assert found <= NOT_WIRE, f"bytes written by hand: {sorted(found - NOT_WIRE)}"


# -- decisions -----------------------------------------------------------------------------------

REV = "r0123456789ab"
FIRED = [("earn", "flown"), ("earn", "elite")]

#: One benefit per kind of parameter value.
PARAMS: dict[str, Any] = {
    "int": 3,
    "negative-int": -(2**63),
    "decimal": Decimal("12.50"),
    "decimal-exponent": Decimal("1.25E+3"),
    "string": "gold",
    "bool": True,
    "date": date(2026, 2, 28),
    "datetime": datetime(2026, 3, 1, 9, 30, 15, 250_000, tzinfo=UTC),
    "timedelta": timedelta(minutes=15, microseconds=7),
    "list": [1, "two", Decimal("3.0"), [False]],
    "dict": {"sku": "A-1", "quantity": 2, "amount": Decimal("4.99")},
    "none": None,
}

CASES: dict[str, Decision] = {
    "empty": Decision(""),
    "empty-revision": Decision("", {"miles": 100}, tags=["t"], fired=FIRED),
    "revision-only": Decision(REV),
    "one-whole-award": Decision(REV, {"miles": 1250}, policies=["earn"], fired=FIRED),
    "one-decimal-award": Decision(REV, {"credit": Decimal("12.50")}, policies=["earn"], fired=FIRED),
    "decimal-in-exponent-form": Decision(REV, {"credit": Decimal("1.25E+1")}),
    "zero-award": Decision(REV, {"miles": 0}),
    "large-award": Decision(REV, {"points": 10**30}),
    "several-currencies": Decision(REV, {"miles": 300, "credit": Decimal("12.50"), "points": 7,
                                         "bonus": Decimal("0.5")}, tier="GOLD", fired=FIRED),
    "awards-only": Decision(REV, {"miles": 1}),
    "empty-currency": Decision(REV, {"": 1}),
    "benefit-without-params": Decision(REV, {"miles": 1}, [Benefit("priority", {}, "earn", "r")]),
    **{f"benefit-param-{name}": Decision(REV, {"miles": 5}, [Benefit("perk", {"p": value}, "earn", "r")])
       for name, value in PARAMS.items()},
    "benefit-every-param": Decision(REV, {}, [Benefit("perk", {n: v for n, v in PARAMS.items()}, "e", "r")]),
    "two-benefits": Decision(REV, {"miles": 9}, [Benefit("a", {"n": 1}, "p", "r"),
                                                 Benefit("b", {}, "p", "s")]),
    "tier-tags-fired": Decision(REV, {"miles": 2}, [], "PLATINUM", ["decade-member", "vip"],
                                ["earn", "status"], FIRED),
    "reasons": Decision(REV, {"miles": 1250, "credit": Decimal("2.00")}, [], "GOLD", ["t"], ["earn"], FIRED,
                        [Reason("earn", "flown", "fired", "", {"miles": 1250, "credit": Decimal("2.00")}, 3),
                         Reason("earn", "elite", "not_fired", "customer.tier == GOLD", {}, 7),
                         Reason("cap", "", "capped", "cap 1000", {"miles": 1000}, 0)]),
    "reasons-asked-none-given": Decision(REV, {"miles": 1}, reasons=[]),
    "unicode": Decision("révision-ü", {"マイル": 100, "crédit": Decimal("1.10")},
                        [Benefit("café", {"note": "naïve ☕"}, "política", "règle")], "ÖR",
                        ["🎉", "ß"], ["política"], [("política", "règle")]),
    "long-strings": Decision(LONG, {LONG: 1, "miles": 2}, [Benefit(LONG, {LONG: LONG}, LONG, LONG)], LONG,
                             [LONG], [LONG], [(LONG, LONG)]),
    "very-long-strings": Decision(REV, {VERY_LONG: 3}, [Benefit("b", {"p": VERY_LONG}, "p", "r")],
                                  None, [VERY_LONG], ["p"], [("p", VERY_LONG)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_decisions_encode_as_protobuf_does(name):
    """A decision's bytes are protobuf's deterministic serialisation, from a fresh encoder and
    again from its cached template."""
    encoder = DecisionEncoder()
    for _ in range(2):
        assert_encodes_like_protobuf(encoder, CASES[name])


def test_decisions_encode_alike_from_one_encoder():
    """One encoder, every case twice in turn: no template or cached award entry answers for another."""
    encoder = DecisionEncoder()
    for decision in [*CASES.values(), *CASES.values()]:
        assert_encodes_like_protobuf(encoder, decision)


def test_the_template_cache_starts_over_when_full():
    """An encoder keeps at most max_templates shapes and stays right after clearing."""
    encoder = DecisionEncoder(max_templates=3)
    decisions = [Decision(REV, {"miles": i}, tags=[f"t{i}"]) for i in range(10)]
    for decision in decisions + decisions:
        assert_encodes_like_protobuf(encoder, decision)
    assert len(encoder._templates) <= 3


def test_one_shape_with_awards_of_many_lengths():
    """A shape keeps a bounded number of length prefixes, and every length is right past the bound."""
    encoder = DecisionEncoder()
    decisions = [Decision(REV, {"c" * n: 10**n}, tags=["t"]) for n in range(1, 120)]
    for decision in decisions + decisions:
        assert_encodes_like_protobuf(encoder, decision)
    ((prefixes, *_),) = encoder._templates.values()
    assert len(prefixes) <= wire._PREFIXES_MAX


def test_decision_message_keeps_amounts_exact_and_params_typed():
    """Awards are decimal strings (never exponent form); benefit parameters keep their types."""
    decision = Decision(
        revision=REV,
        awards={"miles": 1250, "credit": Decimal("1.25E+1")},
        benefits=[Benefit("late-arrival-grace", {"grace": timedelta(minutes=15)}, "p", "r"),
                  Benefit("donor-recognition", {"level": "gold"}, "p", "s")],
        tier="GOLD", tags=["a", "b"], policies=["p"], fired=[("p", "r"), ("p", "s")],
        reasons=[Reason("p", "r", "fired", "", {"miles": 1250}, 3)],
    )
    message = decision_message(decision)
    assert dict(message.awards) == {"miles": "1250", "credit": "12.5"}
    assert message.benefits[0].params["grace"].duration_value.seconds == 900
    assert message.benefits[1].params["level"].string_value == "gold"
    assert message.tier == "GOLD" and list(message.tags) == ["a", "b"]
    assert [(f.policy, f.rule) for f in message.fired] == [("p", "r"), ("p", "s")]
    assert message.reasons[0].text == 'p.r: fired +1250 miles -- says "R"'
    assert message.reasons[0].says == "R" and message.reasons[0].line == 3


@pytest.mark.parametrize(("value", "kind", "expected"), [
    (None, None, None),
    (True, "bool_value", True),
    (7, "int_value", 7),
    (Decimal("1E+2"), "decimal_value", "100"),
    ("s", "string_value", "s"),
    (date(2026, 1, 2), "date_value", "2026-01-02"),
    (("a", 1), "list_value", pb.ValueList(values=[pb.Value(string_value="a"), pb.Value(int_value=1)])),
], ids=["none", "bool", "int", "decimal", "string", "date", "tuple"])
def test_python_to_value_keeps_each_kind(value, kind, expected):
    """Each runtime value becomes the Value kind that says what it is (a bool is not an int)."""
    message = wire.python_to_value(value)
    assert message.WhichOneof("kind") == kind
    if kind is not None:
        assert getattr(message, kind) == expected


def test_decimal_awards_keep_their_decimals_after_an_equal_amount():
    """Decimal("12.5") equals Decimal("12.50"): the encoding must not reuse one for the other."""
    encoder = DecisionEncoder()
    for amount, text in ((Decimal("12.5"), "12.5"), (Decimal("12.50"), "12.50"), (12, "12")):
        decision = Decision(REV, {"credit": amount}, [], None, [], ["p"], [("p", "r")])
        assert pb.Decision.FromString(encoder.serialize(decision)).awards["credit"] == text


# -- generated decisions ---------------------------------------------------------------------------

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
#: Mostly short names, once in a while one long enough for multi-byte lengths.
names = st.one_of(st.sampled_from(["a", "b", "miles", "crédit"]), texts, st.just(LONG))
amounts = st.one_of(st.integers(0, 10**15),
                    st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False),
                    st.sampled_from([Decimal("1.5"), Decimal("1.50"), Decimal("1E+3"), Decimal("0.00")]))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.decimals(allow_nan=False, allow_infinity=False, places=3), texts,
    st.dates(), st.datetimes(timezones=st.just(UTC)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650)),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)), max_leaves=6)
reasons = st.builds(Reason, names, names, st.sampled_from(["fired", "not_fired", "capped"]), texts,
                    st.dictionaries(names, amounts, max_size=3), st.integers(0, 2**31 - 1))
decisions = st.builds(
    Decision,
    revision=st.one_of(st.just(REV), st.just(""), names),
    awards=st.dictionaries(names, amounts, max_size=4),
    benefits=st.lists(st.builds(Benefit, names, st.dictionaries(names, values, max_size=3), names, names),
                      max_size=3),
    tier=st.one_of(st.none(), names),
    tags=st.lists(names, max_size=3),
    policies=st.lists(names, max_size=3),
    fired=st.lists(st.tuples(names, names), max_size=3),
    reasons=st.one_of(st.none(), st.none(), st.lists(reasons, max_size=3)),
)

#: One encoder across examples, so templates and award entries are reused between decisions.
SHARED = DecisionEncoder()


@settings(max_examples=200, deadline=None)
@given(st.lists(decisions, min_size=1, max_size=4))
def test_generated_decisions_encode_as_protobuf_does(batch):
    """Any decision (awards, typed parameters of every kind, reasons, unicode, long names) is
    written exactly as protobuf writes it, by a fresh encoder and by one already in use."""
    fresh = DecisionEncoder()
    for decision in batch + batch:
        assert_encodes_like_protobuf(fresh, decision)
        assert_encodes_like_protobuf(SHARED, decision)


small = st.sampled_from(["a", "b", "p"])
small_amounts = st.one_of(st.integers(0, 3), st.sampled_from([Decimal("1.5"), Decimal("1.50"), Decimal("1")]))
small_params = st.dictionaries(st.sampled_from(["n", "grace"]), st.one_of(
    st.integers(0, 2), st.booleans(), st.sampled_from([Decimal("1"), Decimal("1.0"), timedelta(minutes=1)])),
    max_size=2)
small_decisions = st.builds(
    Decision,
    revision=st.sampled_from(["r0123456789ab", "r000000000000"]),
    awards=st.dictionaries(st.sampled_from(["miles", "credit"]), small_amounts, max_size=2),
    benefits=st.lists(st.builds(Benefit, small, small_params, small, small), max_size=2),
    tier=st.sampled_from([None, "GOLD"]),
    tags=st.lists(small, max_size=2),
    policies=st.lists(small, max_size=2),
    fired=st.lists(st.tuples(small, small), max_size=3),
)

#: (type, value) -> an equal value of another type or text.
_TWINS: dict[tuple[type, Any], Any] = {
    (Decimal, Decimal("1.5")): Decimal("1.50"), (Decimal, Decimal("1.50")): Decimal("1.5"),
    (Decimal, Decimal("1")): Decimal("1.0"), (Decimal, Decimal("1.0")): 1, (int, 1): True,
    (bool, True): 1, (int, 0): False, (bool, False): 0, (int, 2): Decimal("2"), (int, 3): Decimal("3"),
}


@st.composite
def look_alike_decisions(draw: st.DrawFn) -> list[Decision]:
    """Decisions that differ from one drawn decision in one way only (so that their cache
    keys come close): the awards, a benefit's parameters, or where names sit (tags or policies)."""
    base = draw(small_decisions)
    out = [base]
    for _ in range(draw(st.integers(1, 6))):
        change = draw(st.sampled_from(["awards", "twins", "params", "names"]))
        if change == "awards":
            awards = draw(st.dictionaries(st.sampled_from(["miles", "credit"]), small_amounts, max_size=2))
            out.append(dataclasses.replace(base, awards=awards))
        elif change == "twins":  # values equal to the base's (and hashed alike) but not the same
            awards = {k: _TWINS.get((type(v), v), v) for k, v in base.awards.items()}
            benefits = [dataclasses.replace(b, params={k: _TWINS.get((type(v), v), v)
                                                       for k, v in b.params.items()})
                        for b in base.benefits]
            out.append(dataclasses.replace(base, awards=awards, benefits=benefits))
        elif change == "params" and base.benefits:
            first = dataclasses.replace(base.benefits[0], params=draw(small_params))
            out.append(dataclasses.replace(base, benefits=[first, *base.benefits[1:]]))
        else:
            names_ = draw(st.lists(small, max_size=3))
            split = draw(st.integers(0, len(names_)))
            out.append(dataclasses.replace(base, tags=names_[:split], policies=names_[split:]))
    return out


@settings(max_examples=500, deadline=None)
@given(look_alike_decisions())
def test_cached_decision_payloads_are_each_decisions_own(batch):
    """Payloads kept by shape and awards never answer for another decision: equal amounts with
    other text (1.5 and 1.50), True and 1, tags and policies that swap places."""
    encoder = DecisionEncoder()  # a fresh cache, filled by the decisions drawn together
    for decision in batch + batch:
        assert_encodes_like_protobuf(encoder, decision)


# -- framing ---------------------------------------------------------------------------------------

DECISION = Decision(REV, {"miles": 3750}, tags=["decade-member"], policies=["earn"], fired=FIRED)
ERRORS = {
    "invalid-argument": status_for(InvalidArgument([
        Violation("event.flight.origin", '"XXX" is not an airport'),
        Violation("customer.id", "is required")])),
    "unavailable": status_for(Unavailable("no policy set is loaded yet")),
    "internal": status_for(RuntimeError("boom")),
    "long-message": status_for(Unavailable(VERY_LONG)),
}
CORRELATION_IDS = {"none": "", "short": "item-1", "unicode": "ïd-☕", "long": LONG, "very-long": VERY_LONG}


def _framed(cid: str, outcome: str) -> tuple[bytes | None, bytes | None, dict[str, Any]]:
    """(decision payload, error bytes, the outcome as message fields) for a result."""
    if outcome == "decision":
        return DecisionEncoder().payload(DECISION), None, {"decision": decision_message(DECISION)}
    status = ERRORS[outcome]
    return None, status.SerializeToString(), {"error": status}


@pytest.mark.parametrize("outcome", ["decision", *ERRORS])
@pytest.mark.parametrize("cid", list(CORRELATION_IDS))
def test_batch_results_are_protobufs(cid, outcome):
    """A BatchResult framed as an EvaluateBatchResponse field, with or without a correlation id,
    with a decision or an error status, is what protobuf writes for it."""
    correlation_id = CORRELATION_IDS[cid]
    decision, error, fields = _framed(correlation_id, outcome)
    expected = pb.EvaluateBatchResponse(results=[pb.BatchResult(correlation_id=correlation_id, **fields)])
    framed = result_bytes(correlation_id, decision, error)
    assert pb.EvaluateBatchResponse.FromString(framed) == expected
    assert framed == expected.SerializeToString(deterministic=True)


@pytest.mark.parametrize("outcome", ["decision", *ERRORS])
@pytest.mark.parametrize("cid", list(CORRELATION_IDS))
def test_stream_responses_are_protobufs(cid, outcome):
    """An EvaluateStreamResponse, with or without a correlation id, a decision or an error."""
    correlation_id = CORRELATION_IDS[cid]
    decision, error, fields = _framed(correlation_id, outcome)
    expected = pb.EvaluateStreamResponse(correlation_id=correlation_id, **fields)
    framed = stream_response_bytes(correlation_id, decision, error)
    assert pb.EvaluateStreamResponse.FromString(framed) == expected
    assert framed == expected.SerializeToString(deterministic=True)


@pytest.mark.parametrize("revision", ["", REV], ids=["no-revision", "revision"])
def test_a_batch_response_is_its_results_in_order_then_the_tail(revision):
    """BatchResponse writes every result in the order added (decisions framed in its own
    method, errors by result_bytes), then the revision and the failures: what protobuf writes."""
    encoder = DecisionEncoder()
    response = wire.BatchResponse(encoder)
    expected = pb.EvaluateBatchResponse(revision=revision)
    failed = 0
    for cid in CORRELATION_IDS.values():
        for outcome in ("decision", *ERRORS):
            correlation_id = cid
            _decision, error, fields = _framed(correlation_id, outcome)
            if error is None:
                response.decision(correlation_id, DECISION)
            else:
                response.error(correlation_id, error)
                failed += 1
            expected.results.add(correlation_id=correlation_id, **fields)
    expected.failed = failed
    raw = response.finish(revision, failed)
    assert pb.EvaluateBatchResponse.FromString(raw) == expected
    assert raw == expected.SerializeToString(deterministic=True)


def test_an_empty_batch_response_is_the_tail_alone():
    """A batch without items is the revision alone, as protobuf writes it."""
    assert wire.BatchResponse(DecisionEncoder()).finish(REV, 0) == batch_tail(REV, 0)


def test_a_result_needs_an_outcome():
    """A result with neither a decision nor an error is a bug, said plainly."""
    with pytest.raises(ValueError, match="a decision or an error"):
        result_bytes("c", None)


@pytest.mark.parametrize(("revision", "failed"), [("", 0), (REV, 0), ("", 1), (REV, 3), (REV, 300),
                                                  ("révision", 2**31 - 1), (VERY_LONG, 128)],
                         ids=["nothing", "revision", "failed-only", "both", "failed-two-bytes",
                              "unicode-max-failed", "long-revision"])
def test_batch_tail_is_protobufs(revision, failed):
    """The revision and failure count after the results; empty ones left out, as protobuf does."""
    expected = pb.EvaluateBatchResponse(revision=revision, failed=failed)
    assert batch_tail(revision, failed) == expected.SerializeToString(deterministic=True)


def test_evaluate_response_is_protobufs():
    """An EvaluateResponse is the decision field around the payload."""
    expected = pb.EvaluateResponse(decision=decision_message(DECISION))
    framed = wire.evaluate_response_bytes(DecisionEncoder().payload(DECISION))
    assert framed == expected.SerializeToString(deterministic=True)


# -- the servicer's responses ------------------------------------------------------------------------


class _Context:
    """The two ``ServicerContext`` methods the batch method asks (no deadline, never cancelled)."""

    def time_remaining(self) -> float:
        return 3600.0

    def is_active(self) -> bool:
        return True


@pytest.fixture(scope="module")
def servicer() -> LoyaltyRulesServicer:
    """The real servicer on the bundled policies, called in-process."""
    store = PolicyStore(POLICIES)
    assert store.load()
    return LoyaltyRulesServicer(store)


def _items(count: int) -> Iterator[tuple[str, pb.Customer, pb.Event]]:
    """Items with and without correlation ids; every fifth one fails (its event is missing)."""
    for i in range(count):
        event = jfk_lhr(f"e-{i}", fare=f"{100 + i}.50") if i % 5 != 4 else pb.Event()
        yield (f"c-{i}" if i % 2 else "", gold_customer(f"m-{i}"), event)


@pytest.mark.parametrize("count", [0, 1, 7, 300], ids=["empty", "one", "seven", "over-a-deadline-stride"])
def test_servicer_batch_bytes_are_protobufs(servicer, count):
    """The batch method's framing (results, correlation ids, errors, revision, failures, through
    BatchResponse) writes exactly what protobuf writes for the response it parses to."""
    request = pb.EvaluateBatchRequest(items=[pb.BatchItem(correlation_id=c, customer=m, event=e)
                                             for c, m, e in _items(count)])
    raw = servicer.evaluate_batch_bytes(request, _Context())
    response = pb.EvaluateBatchResponse.FromString(raw)
    assert raw == response.SerializeToString(deterministic=True)
    assert len(response.results) == count and response.failed == count // 5
    assert [r.correlation_id for r in response.results] == [c for c, _, _ in _items(count)]
    assert all(r.HasField("error") == (i % 5 == 4) for i, r in enumerate(response.results))


def test_servicer_stream_and_unary_bytes_are_protobufs(servicer):
    """Stream responses (decisions and errors, with and without ids) and a unary response too."""
    requests = [pb.EvaluateStreamRequest(correlation_id=c, customer=m, event=e, explain=i == 2)
                for i, (c, m, e) in enumerate(_items(10))]
    for raw in servicer.evaluate_stream_bytes(iter(requests), None):
        assert raw == pb.EvaluateStreamResponse.FromString(raw).SerializeToString(deterministic=True)
    raw = servicer.evaluate_bytes(pb.EvaluateRequest(customer=gold_customer(), event=jfk_lhr()), None)
    assert raw == pb.EvaluateResponse.FromString(raw).SerializeToString(deterministic=True)


def test_policy_failure_status_is_framed_like_any_error():
    """A FAILED_PRECONDITION status (a policy failed) frames like the others."""
    from dsl.errors import EvaluationError

    status = status_for(PolicyFailed(EvaluationError("earn", "earn.policy", 3, "division by zero")))
    framed = result_bytes("c", None, status.SerializeToString())
    expected = pb.EvaluateBatchResponse(results=[pb.BatchResult(correlation_id="c", error=status)])
    assert framed == expected.SerializeToString(deterministic=True)


@pytest.mark.parametrize("value", [timedelta(microseconds=-1), timedelta(seconds=-1, microseconds=-500_000),
                                   timedelta(seconds=-90), timedelta(days=-3, seconds=7),
                                   timedelta(microseconds=1), timedelta(0), timedelta(days=100_000)],
                         ids=str)
def test_a_duration_keeps_one_sign_and_its_exact_length(value):
    """Seconds and nanos of a Duration share one sign (protobuf refuses a mix), and the length
    is exact: a negative sub-second benefit parameter is -1 µs, not a day minus one."""
    d = python_to_value(value).duration_value
    assert not (d.seconds < 0 < d.nanos or d.nanos < 0 < d.seconds)
    assert timedelta(seconds=d.seconds, microseconds=d.nanos / 1000) == value
    d.ToJsonString()  # protobuf's own check of the form
