"""Decisions -> response bytes: the one module that writes the ``loyalty.v1`` wire format.

The service answers its evaluating RPCs with responses it serialises itself (the
handlers :func:`service.server.method_handlers` builds send them as they are):
building a thousand nested messages field by field, only for gRPC to serialise them
again, costs more than the rules. This module holds everything that writes those bytes:

- the message builders (:func:`decision_message`, :func:`benefit_message`,
  :func:`reason_message`, :func:`python_to_value`), which are the reference: every
  byte written here parses back to what they build;
- :class:`DecisionEncoder`, one per policy set, which serialises a decision from a
  cached template per decision shape plus the awards;
- the framing of responses around a decision: :class:`BatchResponse` (an
  ``EvaluateBatchResponse`` written item by item), :func:`result_bytes`,
  :func:`stream_response_bytes`, :func:`evaluate_response_bytes` and :func:`batch_tail`.

Every tag is computed once, at import, from the generated descriptors
(:func:`tag`), so a renumbered field in ``loyalty.proto`` changes the bytes here
too. What is written parses to exactly the builders' messages, and is byte for
byte protobuf's own deterministic serialisation (fields in number order) wherever
that order is defined: everywhere but a decision's awards when there are several,
which are written in the decision's own order (tests hold both).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from google.protobuf import descriptor as _descriptor
from google.protobuf import duration_pb2, timestamp_pb2

from dsl.decision import Benefit, Decision, Reason
from service.gen.loyalty.v1 import loyalty_pb2 as pb

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FD = _descriptor.FieldDescriptor

# -- varints and tags --------------------------------------------------------------------------

_SMALL_VARINTS = [bytes((i,)) for i in range(128)]


def _varint(n: int) -> bytes:
    """``n`` (not negative) as a protobuf varint."""
    if n < 128:
        return _SMALL_VARINTS[n]
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class _Varints(dict[int, bytes]):
    """``VARINT[n]``: ``n`` encoded as a protobuf varint (lengths below 64 KiB are kept)."""

    def __missing__(self, n: int) -> bytes:
        encoded = _varint(n)
        if n < 65536:
            self[n] = encoded
        return encoded


#: Encoded varints by value, filled on first use.
VARINT = _Varints()


def _strip_varint(data: bytes) -> bytes:
    """``data`` without the varint at its front."""
    end = 0
    while data[end] & 0x80:
        end += 1
    return data[end + 1 :]


#: Wire type 0: varint.
WIRE_VARINT = 0
#: Wire type 1: 64-bit.
WIRE_FIXED64 = 1
#: Wire type 2: length-delimited (strings, bytes, messages, packed repeated scalars).
WIRE_LENGTH_DELIMITED = 2
#: Wire type 5: 32-bit.
WIRE_FIXED32 = 5

_WIRE_TYPES = {
    **dict.fromkeys((_FD.TYPE_INT32, _FD.TYPE_INT64, _FD.TYPE_UINT32, _FD.TYPE_UINT64,
                     _FD.TYPE_SINT32, _FD.TYPE_SINT64, _FD.TYPE_BOOL, _FD.TYPE_ENUM), WIRE_VARINT),
    **dict.fromkeys((_FD.TYPE_FIXED64, _FD.TYPE_SFIXED64, _FD.TYPE_DOUBLE), WIRE_FIXED64),
    **dict.fromkeys((_FD.TYPE_STRING, _FD.TYPE_BYTES, _FD.TYPE_MESSAGE), WIRE_LENGTH_DELIMITED),
    **dict.fromkeys((_FD.TYPE_FIXED32, _FD.TYPE_SFIXED32, _FD.TYPE_FLOAT), WIRE_FIXED32),
}


def wire_type(field: _descriptor.FieldDescriptor) -> int:
    """The wire type protobuf writes ``field`` with (a packed repeated scalar is length-delimited)."""
    if field.is_packed:
        return WIRE_LENGTH_DELIMITED
    try:
        return _WIRE_TYPES[field.type]
    except KeyError:  # groups: proto2 only, never in loyalty.proto
        raise ValueError(f"{field.full_name}: no wire type for field type {field.type}") from None


def tag(message: _descriptor.Descriptor, field_name: str) -> bytes:
    """The encoded tag (field number and wire type) that starts ``field_name`` of ``message``."""
    field = message.fields_by_name[field_name]
    return _varint(field.number << 3 | wire_type(field))


_DECISION = pb.Decision.DESCRIPTOR
_AWARD_ENTRY = _DECISION.fields_by_name["awards"].message_type

#: ``Decision.awards``: one map entry.
DECISION_AWARDS = tag(_DECISION, "awards")
#: The awards map entry's key (the currency) and value (the amount text).
AWARD_KEY = tag(_AWARD_ENTRY, "key")
AWARD_VALUE = tag(_AWARD_ENTRY, "value")

#: ``EvaluateResponse.decision``: all an Evaluate response holds.
EVALUATE_DECISION = tag(pb.EvaluateResponse.DESCRIPTOR, "decision")

#: ``EvaluateBatchResponse``: one ``results`` entry per item, then the revision and the failures.
BATCH_RESULTS = tag(pb.EvaluateBatchResponse.DESCRIPTOR, "results")
BATCH_REVISION = tag(pb.EvaluateBatchResponse.DESCRIPTOR, "revision")
BATCH_FAILED = tag(pb.EvaluateBatchResponse.DESCRIPTOR, "failed")

#: ``BatchResult``: the correlation id, then the decision or the error.
RESULT_CORRELATION_ID = tag(pb.BatchResult.DESCRIPTOR, "correlation_id")
RESULT_DECISION = tag(pb.BatchResult.DESCRIPTOR, "decision")
RESULT_ERROR = tag(pb.BatchResult.DESCRIPTOR, "error")

#: ``EvaluateStreamResponse``: the correlation id, then the decision or the error.
STREAM_CORRELATION_ID = tag(pb.EvaluateStreamResponse.DESCRIPTOR, "correlation_id")
STREAM_DECISION = tag(pb.EvaluateStreamResponse.DESCRIPTOR, "decision")
STREAM_ERROR = tag(pb.EvaluateStreamResponse.DESCRIPTOR, "error")

# -- messages: the reference encoding ----------------------------------------------------------


def amount_text(value: int | Decimal) -> str:
    """An award amount as exact decimal text, never in exponent form: ``1250``, ``12.50``."""
    if type(value) is int:
        return str(value)
    return format(value, "f")


def datetime_to_timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """An aware datetime as a ``Timestamp``."""
    delta = value - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=delta.microseconds * 1000)


def python_to_value(value: Any) -> pb.Value:
    """A runtime value (a benefit parameter, a client's extension field) as a ``Value``."""
    if value is None:
        return pb.Value()
    if isinstance(value, bool):  # before int: a bool is an int to isinstance
        return pb.Value(bool_value=value)
    if isinstance(value, int):
        return pb.Value(int_value=value)
    if isinstance(value, Decimal):
        return pb.Value(decimal_value=format(value, "f"))
    if isinstance(value, str):
        return pb.Value(string_value=value)
    if isinstance(value, datetime):  # before date: a datetime is a date to isinstance
        return pb.Value(time_value=datetime_to_timestamp(value))
    if isinstance(value, date):
        return pb.Value(date_value=value.isoformat())
    if isinstance(value, timedelta):
        # A Duration's seconds and nanos share one sign (both toward zero): -1 µs is
        # (0, -1000), not timedelta's own (-1 day, 86399 s, 999999 µs).
        micros = value // timedelta(microseconds=1)
        seconds = abs(micros) // 1_000_000 * (1 if micros >= 0 else -1)
        nanos = (micros - seconds * 1_000_000) * 1000
        return pb.Value(duration_value=duration_pb2.Duration(seconds=seconds, nanos=nanos))
    if isinstance(value, list | tuple):
        return pb.Value(list_value=pb.ValueList(values=[python_to_value(v) for v in value]))
    if isinstance(value, dict):
        return pb.Value(record_value=pb.Record(fields={k: python_to_value(v) for k, v in value.items()}))
    return pb.Value(string_value=str(value))


def decision_message(decision: Decision) -> pb.Decision:
    """A :class:`~dsl.decision.Decision` as a ``loyalty.v1.Decision``."""
    msg = pb.Decision(
        revision=decision.revision,
        awards={k: amount_text(v) for k, v in decision.awards.items()},
        tier=decision.tier or "",
        tags=decision.tags,
        policies=decision.policies,
    )
    if decision.benefits:
        msg.benefits.extend(benefit_message(b) for b in decision.benefits)
    fired = msg.fired
    for policy, rule in decision.fired:
        fired.add(policy=policy, rule=rule)
    if decision.reasons:
        msg.reasons.extend(reason_message(r) for r in decision.reasons)
    return msg


def benefit_message(benefit: Benefit) -> pb.Benefit:
    """A granted benefit with its typed parameters."""
    return pb.Benefit(
        name=benefit.name,
        params={k: python_to_value(v) for k, v in benefit.params.items()},
        policy=benefit.policy,
        rule=benefit.rule,
    )


def reason_message(reason: Reason) -> pb.Reason:
    """One line of an explanation."""
    return pb.Reason(
        policy=reason.policy,
        rule=reason.rule,
        kind=reason.kind,
        detail=reason.detail,
        awards={k: amount_text(v) for k, v in reason.awards.items()},
        line=reason.line,
        text=reason.render(),
        says=reason.says(),
    )


def _serialized(decision: Decision) -> bytes:
    """The reference bytes of a decision (deterministic: one shape, one encoding)."""
    return decision_message(decision).SerializeToString(deterministic=True)


# -- decisions, from templates -------------------------------------------------------------------

#: Most decision shapes one encoder keeps (then it starts over).
TEMPLATES_MAX = 4096
#: (currency, whole amount) -> the encoded ``Decision.awards`` map entry.
_AWARD_ENTRIES: dict[tuple[str, int], bytes] = {}
_AWARD_ENTRIES_MAX = 65536
#: Currency -> the start of its awards map entries: the key, then the value's tag.
_CURRENCY_PREFIXES: dict[str, bytes] = {}


def _award_entry(currency: str, amount: int | Decimal) -> bytes:
    """The encoded ``Decision.awards`` map entry for one amount (kept for whole amounts)."""
    prefix = _CURRENCY_PREFIXES.get(currency)
    if prefix is None:  # a handful of currencies: never cleared
        key = currency.encode()
        prefix = _CURRENCY_PREFIXES[currency] = AWARD_KEY + _varint(len(key)) + key + AWARD_VALUE
    whole = amount.__class__ is int
    value = (str(amount) if whole else format(amount, "f")).encode()
    size = VARINT[len(value)]
    encoded = b"".join((DECISION_AWARDS, VARINT[len(prefix) + len(size) + len(value)], prefix, size, value))
    if whole:
        if len(_AWARD_ENTRIES) >= _AWARD_ENTRIES_MAX:
            _AWARD_ENTRIES.clear()
        _AWARD_ENTRIES[(currency, amount)] = encoded  # type: ignore[index]
    return encoded


def _benefits_key(benefits: list[Benefit]) -> tuple[Any, ...]:
    """What identifies the granted benefits' encoding; parameters by type and exact text
    (``True == 1`` and ``Decimal("1.5") == Decimal("1.50")``, but they encode differently)."""
    return tuple([
        (b.name, b.policy, b.rule,
         tuple([(k, v.__class__, str(v)) for k, v in b.params.items()]) if b.params else ())
        for b in benefits
    ])


#: A decision shape's encoding: (total length -> that length in front of the revision field,
#: the revision field (before the awards, field 2), every field after the awards, the length
#: of both, and both with that length in front (the bytes of a decision without awards)).
_Template = tuple[dict[int, bytes], bytes, bytes, int, bytes]
#: Most prefixes (length and revision) one template keeps: a shape's awards take a few lengths.
_PREFIXES_MAX = 64


def _prefix(prefixes: dict[int, bytes], head: bytes, size: int) -> bytes:
    """``size`` as a varint, then ``head``; kept in ``prefixes`` while it has room."""
    prefix = VARINT[size] + head
    if len(prefixes) < _PREFIXES_MAX:
        prefixes[size] = prefix
    return prefix


class DecisionEncoder:
    """Serialises decisions as ``loyalty.v1.Decision``, fast, for one policy set.

    Everything but the awards repeats across decisions (the same rules fire for
    many customers), so the rest is serialised once per decision shape and kept;
    a decision is then its shape's bytes with the awards' map entries spliced in
    where field 2 belongs. Entries for whole amounts are kept too (module-wide:
    they do not depend on the policy set).

    Build one per policy set (the policy store does, beside the converter); its
    cache is only ever added to or cleared whole, so it is safe to share between
    threads.
    """

    def __init__(self, max_templates: int = TEMPLATES_MAX) -> None:
        self.max_templates = max_templates
        self._templates: dict[tuple[Any, ...], _Template] = {}

    def message(self, decision: Decision) -> pb.Decision:
        """A decision as a message (reasons included when the decision has them)."""
        message = pb.Decision()
        self.into(message, decision)
        return message

    def into(self, target: pb.Decision, decision: Decision) -> None:
        """Fill the empty message ``target`` with ``decision`` (in place: no copy into a parent)."""
        target.MergeFromString(self.serialize(decision))

    def serialize(self, decision: Decision) -> bytes:
        """A decision serialised as a ``loyalty.v1.Decision``: ``_serialized(decision)``, faster."""
        return _strip_varint(self.payload(decision))

    def payload(self, decision: Decision) -> bytes:
        """A serialised decision with its length in front: what follows the field's tag in a
        response (:data:`EVALUATE_DECISION`, :data:`RESULT_DECISION`, :data:`STREAM_DECISION`)."""
        if decision.reasons is not None:  # explanations differ every time: no template
            encoded = _serialized(decision)
            return VARINT[len(encoded)] + encoded
        benefits = decision.benefits
        tags = decision.tags
        if not benefits:
            granted: Any = None
        elif len(benefits) == 1 and not benefits[0].params:
            b = benefits[0]
            granted = (b.name, b.policy, b.rule)
        else:
            granted = _benefits_key(benefits)
        try:
            # One flat tuple: the fired rules are pairs and tags and policies strings, and
            # the number of tags says where they end, so no two shapes share a key.
            key = (decision.revision, decision.tier, granted, len(tags), *decision.fired, *tags,
                   *decision.policies)
            template = self._templates.get(key)
        except TypeError:  # an unhashable benefit parameter (a list): no template
            encoded = _serialized(decision)
            return VARINT[len(encoded)] + encoded
        if template is None:
            template = self._template(key, decision)
        prefixes, head, tail, size, bare = template
        awards = decision.awards
        if not awards:
            return bare
        # Entries are kept for whole amounts only: Decimal("12.5") == Decimal("12.50"), and
        # the text must keep the currency's decimals.
        if len(awards) == 1:  # the usual case, without a loop
            ((currency, amount),) = awards.items()
            entry = (_AWARD_ENTRIES.get((currency, amount)) if amount.__class__ is int else None  # type: ignore[arg-type]
                     ) or _award_entry(currency, amount)
            # The length and the revision come as one cached prefix: a concatenation fewer.
            total = size + len(entry)
            return (prefixes.get(total) or _prefix(prefixes, head, total)) + entry + tail
        # In the decision's order: map order is not part of the wire format, and upb's own
        # "deterministic" order is its own (not plain byte order), so it is not imitated here.
        entries = b"".join([
            (_AWARD_ENTRIES.get(item) if item[1].__class__ is int else None) or _award_entry(*item)  # type: ignore[arg-type]
            for item in awards.items()
        ])
        total = size + len(entries)
        return (prefixes.get(total) or _prefix(prefixes, head, total)) + entries + tail

    def _template(self, key: tuple[Any, ...], decision: Decision) -> _Template:
        """Serialise and keep the shape of ``decision``: all of it but the awards."""
        # Fields are written in number order, so the revision (field 1) alone comes before
        # the awards (field 2), and everything else after.
        head = _serialized(Decision(decision.revision))
        tail = _serialized(Decision("", {}, decision.benefits, decision.tier, decision.tags,
                                    decision.policies, decision.fired, None))
        size = len(head) + len(tail)
        template = ({}, head, tail, size, VARINT[size] + head + tail)
        if len(self._templates) >= self.max_templates:
            self._templates.clear()
        self._templates[key] = template
        return template


# -- responses around decisions ------------------------------------------------------------------


def _outcome(correlation_id: str, decision: bytes | None, error: bytes | None,
             id_tag: bytes, decision_tag: bytes, error_tag: bytes) -> bytes:
    """The fields of a ``BatchResult`` or an ``EvaluateStreamResponse``."""
    if decision is not None:
        outcome = (decision_tag, decision)
    elif error is not None:
        outcome = (error_tag, VARINT[len(error)], error)
    else:
        raise ValueError("a result needs a decision or an error")
    raw = correlation_id.encode()
    if raw:
        return b"".join((id_tag, VARINT[len(raw)], raw, *outcome))
    return b"".join(outcome)


def result_bytes(correlation_id: str, decision: bytes | None, error: bytes | None = None) -> bytes:
    """One ``BatchResult`` as an ``EvaluateBatchResponse.results`` field: the correlation id and
    either ``decision`` (a :meth:`DecisionEncoder.payload`: length in front) or ``error`` (a
    serialised ``google.rpc.Status``)."""
    result = _outcome(correlation_id, decision, error, RESULT_CORRELATION_ID, RESULT_DECISION,
                      RESULT_ERROR)
    return BATCH_RESULTS + VARINT[len(result)] + result


def batch_tail(revision: str, failed: int) -> bytes:
    """What follows the results of an ``EvaluateBatchResponse``: the revision and the number of
    failed items (each left out when empty, as protobuf does)."""
    out = b""
    if revision:
        raw = revision.encode()
        out = BATCH_REVISION + VARINT[len(raw)] + raw
    if failed:
        out += BATCH_FAILED + VARINT[failed]
    return out


def stream_response_bytes(correlation_id: str, decision: bytes | None, error: bytes | None = None) -> bytes:
    """One ``EvaluateStreamResponse``: the correlation id and either ``decision`` (a
    :meth:`DecisionEncoder.payload`) or ``error`` (a serialised ``google.rpc.Status``)."""
    return _outcome(correlation_id, decision, error, STREAM_CORRELATION_ID, STREAM_DECISION,
                    STREAM_ERROR)


def evaluate_response_bytes(decision: bytes) -> bytes:
    """One ``EvaluateResponse`` around ``decision`` (a :meth:`DecisionEncoder.payload`)."""
    return EVALUATE_DECISION + decision


#: The tags of a ``BatchResult`` with a correlation id and a decision, together.
_RESULT_TAGS_SIZE = len(RESULT_CORRELATION_ID) + len(RESULT_DECISION)


class BatchResponse:
    """An ``EvaluateBatchResponse``, written as its items are decided, in item order.

    Each item adds its result (:meth:`decision` or :meth:`error`); :meth:`finish` adds the
    revision and the failures and returns the response's bytes. A decision's result is
    framed in :meth:`decision` itself, byte for byte as :func:`result_bytes` frames it:
    the batch loop pays one call per item here, and a second call for the framing would
    cost more than the framing does.
    """

    __slots__ = ("_parts", "_payload")

    def __init__(self, encoder: DecisionEncoder) -> None:
        self._parts: list[bytes] = []
        self._payload = encoder.payload

    def decision(self, correlation_id: str, decision: Decision) -> None:
        """The next item's result: its correlation id (left out when empty) and its decision."""
        payload = self._payload(decision)
        if correlation_id:
            raw = correlation_id.encode()
            size = VARINT[len(raw)]
            self._parts += (BATCH_RESULTS, VARINT[_RESULT_TAGS_SIZE + len(size) + len(raw) + len(payload)],
                            RESULT_CORRELATION_ID, size, raw, RESULT_DECISION, payload)
        else:
            self._parts += (BATCH_RESULTS, VARINT[len(RESULT_DECISION) + len(payload)], RESULT_DECISION,
                            payload)

    def error(self, correlation_id: str, status: bytes) -> None:
        """The next item's result: its correlation id and its error (a serialised
        ``google.rpc.Status``)."""
        self._parts.append(result_bytes(correlation_id, None, status))

    def finish(self, revision: str, failed: int) -> bytes:
        """The whole response: every result added, then the revision and the failed items' count."""
        self._parts.append(batch_tail(revision, failed))
        return b"".join(self._parts)
