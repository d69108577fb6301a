"""Apply, ApplyBatch and Reverse: the RPCs that commit to the customer state store.

``Apply`` decodes a request as ``Evaluate`` does, then in one store transaction
(:meth:`service.state.StateStore.apply`) reads the sums of the windows the policy set's
periods need, evaluates with them, and appends what the decision counted toward each counter
as entries at the event's time. The event id is the idempotency key and the body digest
(:func:`body_digest`) tells a retry from a reuse: the same id and body returns the stored
response (``replayed``), another body is ALREADY_EXISTS naming both digests.

What the store keeps for an applied event (its "decision" column) is :func:`stored_apply`'s
bytes: the ``ApplyResponse`` as first sent, and what a later partial reversal needs of the
event (the purchase amount and its lines). A reversal keeps a JSON text: its
``ReverseResponse`` (base64), its request digest and the units it returned.

Reversal rule (docs/state.md, "Reversals"): without items, a reversal takes back whatever the
event earned that earlier reversals left; with returned items, each award is taken back in
proportion, ``award x returned amount / purchase amount``, rounded toward zero in the award's
unit (its decimals as the decision wrote them), and each counted entry likewise in its own
unit; never more than is left. A returned amount is the line amount times the returned units
over the line's units.

The functions here are called by :class:`StateRpcs`, which :class:`service.servicer.
LoyaltyRulesServicer` mixes in; pure helpers stay outside the class.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any, Protocol

import grpc
import structlog
from google.protobuf.message import DecodeError

from dsl import periods
from dsl.decision import Decision
from dsl.errors import EvaluationError
from dsl.schema.schema import MAX_ID
from service.errors import (
    AlreadyExists,
    InvalidArgument,
    PolicyFailed,
    ServiceError,
    StateRefused,
    Violation,
    service_error,
    status_for,
)
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.ledger import award_lots, request_time, with_takeback
from service.logs import call_fields
from service.state.api import (
    Amount,
    ApplyItem,
    NewEntry,
    Outcome,
    StateError,
    StateStore,
    StateUnavailable,
    StateWriteFailed,
    StoredEvent,
    Window,
)
from service.state.group import GroupCommit
from service.wire import VARINT, tag

log = structlog.get_logger("loyalty.apply")
decision_log = structlog.get_logger("loyalty.decision")

#: The start a window open at the beginning (``start`` None: "all history") is read from.
EARLIEST = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
#: The prefix of every body digest: the hash function, so that another one can follow.
DIGEST_PREFIX = "sha256:"



_APPLY = pb.ApplyResponse.DESCRIPTOR
_COUNTED_ENTRY = _APPLY.fields_by_name["counted"].message_type
APPLY_DECISION = tag(_APPLY, "decision")
APPLY_REPLAYED = tag(_APPLY, "replayed")
APPLY_DIGEST = tag(_APPLY, "body_digest")
APPLY_COUNTED = tag(_APPLY, "counted")
_KEY = tag(_COUNTED_ENTRY, "key")
_VALUE = tag(_COUNTED_ENTRY, "value")
_RESULTS = tag(pb.ApplyBatchResponse.DESCRIPTOR, "results")
_REVISION = tag(pb.ApplyBatchResponse.DESCRIPTOR, "revision")
_FAILED = tag(pb.ApplyBatchResponse.DESCRIPTOR, "failed")
_RESULT_ID = tag(pb.ApplyBatchResult.DESCRIPTOR, "correlation_id")
_RESULT_APPLIED = tag(pb.ApplyBatchResult.DESCRIPTOR, "applied")
_RESULT_ERROR = tag(pb.ApplyBatchResult.DESCRIPTOR, "error")
#: What a replay appends to the stored response: ``replayed = true`` (a later field wins).
REPLAYED_TRUE = APPLY_REPLAYED + VARINT[1]
_REVERSE_REPLAYED = tag(pb.ReverseResponse.DESCRIPTOR, "replayed") + VARINT[1]

#: Reads the exact sums of store windows, in order (inside an apply's transaction, or a quote).
StateReader = Callable[[Sequence[Window]], list[Amount]]


# -- the language half's contract ----------------------------------------------------------


class StatefulPolicySet(Protocol):
    """What ``Apply``, a quote and the shadow need of a policy set (:class:`dsl.policyset.
    PolicySet` is one): whether it reads state, the windows an event reads, and an evaluation
    given their sums. Its decisions say what they counted (:attr:`dsl.decision.Decision.counted`)."""

    @property
    def reads_state(self) -> bool:
        """Whether any policy declares counters (else :meth:`windows` is always empty)."""
        ...

    @property
    def has_texts(self) -> bool:
        """Whether any rule declares a ``says`` text (Apply then explains, for the lots)."""
        ...

    @property
    def text_kinds(self) -> frozenset[str]:
        """The event kinds whose policies have a rule with a ``says`` text."""
        ...

    def windows(self, customer: dict[str, Any], event: dict[str, Any]) -> list[periods.Window]:
        """The windows the policies that apply to ``event`` read, deduplicated."""
        ...

    def evaluate(self, customer: dict[str, Any], event: dict[str, Any], explain: bool = False,
                 only: Any = None, *,
                 state: Mapping[periods.Window, Amount] | None = None) -> Decision:
        """The decision, each window of :meth:`windows` read from ``state``."""
        ...


def reads_and_counts(
    policy_set: StatefulPolicySet,
    customer: dict[str, Any],
    event: dict[str, Any],
    state: StateReader | None,
    *,
    explain: bool = False,
    only: list[str] | None = None,
) -> tuple[Decision, dict[str, Amount]]:
    """Evaluate ``event`` for ``customer`` with the stored sums its policies' periods read, and
    return the decision and what it counts toward each counter (zero amounts left out).

    ``state`` reads the sums (None: every window sums to zero, the stateless recipe). An event
    whose policies read no window is evaluated exactly as ``Evaluate`` always did.
    """
    windows = policy_set.windows(customer, event)
    if not windows:
        if explain or only:
            return policy_set.evaluate(customer, event, explain, only), {}
        return policy_set.evaluate(customer, event), {}
    if state is None:
        sums: list[Amount] = [0] * len(windows)
    else:
        sums = state([store_window(w) for w in windows])
    decision = policy_set.evaluate(customer, event, explain, only,
                                   state=dict(zip(windows, sums, strict=True)))
    counted = decision.counted
    if not counted:
        return decision, {}
    return decision, {name: amount for name, amount in counted.items() if amount}


#: The store's window for each language window met lately (a batch reads the same few many
#: times); bounded: cleared when full.
_STORE_WINDOWS: dict[periods.Window, Window] = {}
_STORE_WINDOWS_MAX = 4096


def store_window(window: periods.Window) -> Window:
    """The store's window for the language's (whose ``start`` may be None: from the beginning)."""
    made = _STORE_WINDOWS.get(window)
    if made is None:
        start = window.start
        made = Window(window.counter, EARLIEST if start is None else start, window.end)
        if len(_STORE_WINDOWS) >= _STORE_WINDOWS_MAX:
            _STORE_WINDOWS.clear()
        _STORE_WINDOWS[window] = made
    return made


def text_kinds(policy_set: StatefulPolicySet) -> frozenset[str]:
    """The event kinds for which Apply explains internally, so that the lots it writes keep
    their rules' texts (filled in only by an evaluation with explain): those whose policies
    have a rule that ``says`` something (none: the set pays nothing). The caller's response is
    not changed: the reasons are dropped before it is encoded."""
    if not getattr(policy_set, "has_texts", False):
        return frozenset()
    return frozenset(getattr(policy_set, "text_kinds", ()))


def has_windows(policy_set: StatefulPolicySet) -> bool:
    """Whether ``policy_set`` reads stored state (a policy declares counters)."""
    return policy_set.reads_state


def quoting(policy_set: StatefulPolicySet, state: StateStore | None) -> Callable[..., Decision]:
    """``evaluate(customer, event, explain=False, only=None)`` for pure calls: the policy set's
    own ``evaluate`` when it reads no state (the hot path unchanged), else one that reads the
    customer's stored sums first (a quote: nothing is written)."""
    if not policy_set.reads_state or state is None:
        return policy_set.evaluate
    sums = state.sums

    def evaluate(customer: dict[str, Any], event: dict[str, Any], explain: bool = False,
                 only: list[str] | None = None) -> Decision:
        reader = _customer_reader(sums, customer["id"])
        return reads_and_counts(policy_set, customer, event, reader, explain=explain, only=only)[0]

    return evaluate


def _customer_reader(sums: Callable[[str, Sequence[Window]], list[Amount]], customer_id: str) -> StateReader:
    def read(windows: Sequence[Window]) -> list[Amount]:
        return sums(customer_id, windows)

    return read


def shadow_reader(state: StateStore, customer_id: str, minus: Mapping[str, Amount] | None,
                  at: dt.datetime | None) -> StateReader:
    """Live sums for the shadow set (never written). For an applied event, ``minus`` (what its
    live decision counted, at ``at``) is taken out again, so the shadow sees what the live set
    saw before the apply."""

    def read(windows: Sequence[Window]) -> list[Amount]:
        sums = state.sums(customer_id, windows)
        if not minus or at is None:
            return sums
        return [s - minus.get(w.counter, 0) if w.start <= at < w.end else s
                for s, w in zip(sums, windows, strict=True)]

    return read


# -- digests and stored forms -------------------------------------------------------------------


def body_digest(customer: pb.Customer, event: pb.Event) -> str:
    """The digest of an Apply body: sha256 over the customer's and then the event's
    deterministic serialisation, each preceded by its length as a protobuf varint."""
    c = customer.SerializeToString(deterministic=True)
    e = event.SerializeToString(deterministic=True)
    return DIGEST_PREFIX + hashlib.sha256(VARINT[len(c)] + c + VARINT[len(e)] + e).hexdigest()


def reversal_digest(event_id: str, items: Sequence[pb.ReturnedItem]) -> str:
    """The digest of a Reverse body: sha256 over the event id and the returned items in order."""
    body = pb.ReverseRequest(event_id=event_id, items=items).SerializeToString(deterministic=True)
    return DIGEST_PREFIX + hashlib.sha256(body).hexdigest()


def amount_text(value: Amount) -> str:
    """Exact decimal text, never in exponent form."""
    return str(value) if isinstance(value, int) else format(value, "f")


def parse_amount(text: str) -> Amount:
    """The amount :func:`amount_text` wrote: an int when it has no point, else a Decimal."""
    return int(text) if "." not in text else Decimal(text)


def _string_field(field_tag: bytes, text: str) -> bytes:
    raw = text.encode()
    return field_tag + VARINT[len(raw)] + raw


def _counted_bytes(counted: Mapping[str, Amount]) -> bytes:
    parts = []
    for counter, amount in counted.items():
        entry = _string_field(_KEY, counter) + _string_field(_VALUE, amount_text(amount))
        parts.append(APPLY_COUNTED + VARINT[len(entry)] + entry)
    return b"".join(parts)


def apply_response_bytes(decision_payload: bytes, digest: str, counted: Mapping[str, Amount]) -> bytes:
    """An ``ApplyResponse`` (``replayed`` false): ``decision_payload`` is a
    :meth:`service.wire.DecisionEncoder.payload` (its length in front)."""
    out = APPLY_DECISION + decision_payload + _string_field(APPLY_DIGEST, digest)
    return out + _counted_bytes(counted) if counted else out


def stored_apply(response: bytes, event: pb.Event) -> bytes:
    """What the store keeps for an applied event: the response as sent, its length in front
    (a protobuf varint), then, for a purchase with lines, the reversal basis as JSON (the
    purchase amount and each line's SKU, amount and units). Bytes, not text: the hot path
    pays no encoding; ``loyalty state show`` decodes it."""
    stored = VARINT[len(response)] + response
    if event.WhichOneof("details") == "purchase" and event.purchase.items:
        purchase = event.purchase
        basis = {"amount": purchase.amount,
                 "items": [[i.sku, i.amount, i.quantity if i.HasField("quantity") else 1]
                           for i in purchase.items]}
        stored += json.dumps(basis, separators=(",", ":")).encode()
    return stored


def _split_stored(stored: bytes) -> tuple[bytes, bytes]:
    """The response and the basis (b"" when none) of :func:`stored_apply`'s bytes."""
    size = shift = i = 0
    while True:
        byte = stored[i]
        size |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            break
        shift += 7
    return stored[i:i + size], stored[i + size:]


def stored_response(stored: bytes) -> bytes:
    """The ``ApplyResponse`` bytes of a stored applied event."""
    return _split_stored(stored)[0]


def explained_texts(store: StateStore, customer: str) -> dict[tuple[str, str, str], str]:
    """What each fired rule of each stored Apply of ``customer`` said, by (event, policy,
    rule): a stored response holds its reasons (and their ``says``) only when Apply was called
    with explain. Statements read it only for lots written before lots kept their texts
    (:func:`service.ledger.award_says`)."""
    out: dict[tuple[str, str, str], str] = {}
    for event in store.events(customer):
        try:
            response = pb.ApplyResponse.FromString(stored_response(event.decision))
        except (ValueError, KeyError, TypeError, IndexError, DecodeError):
            continue
        for reason in response.decision.reasons:
            if reason.kind == "fired" and reason.says:
                out.setdefault((event.event_id, reason.policy, reason.rule), reason.says)
    return out


def stored_basis(stored: bytes) -> dict[str, Any]:
    """The reversal basis of a stored applied event ({} for one without purchase lines)."""
    basis = _split_stored(stored)[1]
    return json.loads(basis) if basis else {}


def _call_error(exc: Exception) -> Exception:
    """A store or policy error as the service error it is; anything else unchanged."""
    if isinstance(exc, StateError):
        return service_error(exc)
    if isinstance(exc, EvaluationError):
        return PolicyFailed(exc)
    return exc


# -- the RPCs -----------------------------------------------------------------------------------


class StateRpcs:
    """``Apply``, ``ApplyBatch`` and ``Reverse``, mixed into the servicer
    (:class:`service.servicer.LoyaltyRulesServicer`); the ``*_bytes`` variants answer the RPCs,
    as for the evaluating ones. The servicer supplies ``state`` (the store, or None),
    ``metrics``, ``shadow``, ``log_decisions``, ``_snapshot()``, ``_batch_budget(items)`` and
    ``commits``, the state's group commit (:mod:`service.state.group`) for unary Applies; it
    gives the ledger's RPCs :meth:`_explained_texts`."""

    state: StateStore | None
    metrics: Any
    shadow: Any
    log_decisions: bool
    _snapshot: Callable[[], Any]
    _batch_budget: Callable[[Sequence[pb.BatchItem]], Any]
    commits: GroupCommit | None

    #: For statements of lots written before lots kept their texts (``service.ledger.LedgerRpcs``).
    _explained_texts = staticmethod(explained_texts)

    def _state_store(self) -> StateStore:
        if self.state is None:
            raise StateRefused("this server keeps no customer state; start it with --state")
        return self.state

    def Apply(self, request: pb.ApplyRequest, context: grpc.ServicerContext) -> pb.ApplyResponse:
        """Evaluate one event and commit it, exactly once by its id."""
        return pb.ApplyResponse.FromString(self.apply_bytes(request, context))

    def apply_bytes(self, request: pb.ApplyRequest, context: grpc.ServicerContext) -> bytes:
        """:meth:`Apply`'s response, serialised (the RPC's handler calls this)."""
        store = self._state_store()
        snapshot = self._snapshot()
        fields = call_fields()
        fields["revision"] = snapshot.revision
        customer_msg, event_msg = request.customer, request.event
        try:
            customer, event = snapshot.converter.inputs(customer_msg, event_msg)
        except InvalidArgument:
            fields["customer_id"] = customer_msg.id[:MAX_ID]
            fields["event_id"] = event_msg.id[:MAX_ID]
            _require_inputs(request)
            raise
        fields["customer_id"] = customer["id"]
        fields["event_id"] = event["id"]
        digest = body_digest(customer_msg, event_msg)
        explain = request.explain
        policy_set = snapshot.policy_set
        for_texts = not explain and event["kind"] in text_kinds(policy_set)
        made: list[Any] = []

        def decide(reader: Any) -> Outcome:
            decision, counted = reads_and_counts(policy_set, customer, event, reader.sums,
                                                 explain=explain or for_texts)
            at = event["time"]
            lots = award_lots(policy_set, decision, at)
            if for_texts:
                decision.reasons = None  # explained for the lots' texts only: not the caller's
            response = apply_response_bytes(snapshot.encoder.payload(decision), digest, counted)
            made[:] = [decision, counted, response]
            return Outcome(stored_apply(response, event_msg),
                           [NewEntry(name, at, amount) for name, amount in counted.items()], lots)

        try:
            commits = self.commits if self.commits is not None and self.commits.store is store else None
            result = (commits or store).apply(customer["id"], event["id"], digest, decide)
        except (StateError, EvaluationError) as exc:
            if isinstance(exc, EvaluationError) and self.metrics is not None:
                self.metrics.count_evaluations("policy_failed")
            raise _call_error(exc) from None
        fields["replayed"] = result.replayed
        if result.replayed:
            return stored_response(result.decision) + REPLAYED_TRUE
        decision, counted, response = made
        _after_decision(self, snapshot, customer, event, customer_msg, event_msg, decision, counted)
        return response  # type: ignore[no-any-return]

    def ApplyBatch(self, request: pb.ApplyBatchRequest,
                   context: grpc.ServicerContext) -> pb.ApplyBatchResponse:
        """Many items in one transaction; each gets its own result or its own error."""
        return pb.ApplyBatchResponse.FromString(self.apply_batch_bytes(request, context))

    def apply_batch_bytes(self, request: pb.ApplyBatchRequest,
                          context: grpc.ServicerContext) -> bytes:
        """:meth:`ApplyBatch`'s response, serialised (the RPC's handler calls this)."""
        store = self._state_store()
        items = request.items
        count = len(items)
        budget = self._batch_budget(items)
        snapshot = self._snapshot()
        revision = snapshot.revision
        fields = call_fields()
        fields["items"] = count
        fields["revision"] = revision
        inputs = snapshot.converter.inputs  # the fast path; on any failure, the checking path
        explain = request.explain
        policy_set = snapshot.policy_set
        said_kinds = frozenset() if explain else text_kinds(policy_set)
        payload = snapshot.encoder.payload
        errors: dict[int, bytes] = {}
        made: dict[int, tuple[Any, ...]] = {}
        work: list[ApplyItem] = []
        positions: list[int] = []
        for index, item in enumerate(items):
            customer_msg, event_msg = item.customer, item.event
            try:
                if len(item.correlation_id) > MAX_ID:
                    raise InvalidArgument([Violation("correlation_id",
                                                     f"is longer than {MAX_ID} characters")])
                customer, event = inputs(customer_msg, event_msg, budget)
            except Exception as exc:
                if isinstance(exc, InvalidArgument):
                    try:
                        _require_inputs(item)
                    except InvalidArgument as missing:
                        exc = missing
                errors[index] = status_for(exc).SerializeToString()
                continue
            digest = body_digest(customer_msg, event_msg)
            work.append(ApplyItem(customer["id"], event["id"], digest,
                                  _batch_decide(policy_set, payload, customer, event, event_msg, digest,
                                                explain, made, index, event["kind"] in said_kinds)))
            positions.append(index)
        results = store.apply_many(work) if work else []
        for result in results:  # a store failure fails the whole call: nothing was written
            if isinstance(result.error, StateUnavailable | StateWriteFailed):
                raise service_error(result.error) from None
        parts: list[bytes] = []
        failed = len(errors)
        outcomes = dict(zip(positions, results, strict=True))
        fired: list[tuple[str, str]] = []
        applied: list[str] = []
        replayed = 0
        for index, item in enumerate(items):
            cid = item.correlation_id if len(item.correlation_id) <= MAX_ID else ""
            outcome = outcomes.get(index)
            if outcome is None:
                parts.append(_batch_result(cid, None, errors[index]))
                continue
            if outcome.error is not None:
                failed += 1
                exc = _call_error(outcome.error)
                if not isinstance(exc, ServiceError):
                    log.error("apply batch item failed", index=index, exc_info=exc, **fields)
                parts.append(_batch_result(cid, None, status_for(exc).SerializeToString()))
                continue
            result = outcome.result
            assert result is not None
            if result.replayed:
                replayed += 1
                parts.append(_batch_result(cid, stored_response(result.decision) + REPLAYED_TRUE, None))
                continue
            decision, counted, response, customer, event = made[index]
            fired += decision.fired
            applied += decision.policies
            parts.append(_batch_result(cid, response, None))
            if self.log_decisions or self.shadow is not None:
                _after_decision(self, snapshot, customer, event, items[index].customer, items[index].event,
                                decision, counted, count=False)
        if self.metrics is not None:
            self.metrics.count_decisions(count - failed - replayed, fired, applied)
        fields["failed"] = failed
        fields["replayed"] = replayed
        if revision:
            parts.append(_string_field(_REVISION, revision))
        if failed:
            parts.append(_FAILED + VARINT[failed])
        return b"".join(parts)

    def Reverse(self, request: pb.ReverseRequest, context: grpc.ServicerContext) -> pb.ReverseResponse:
        """Reverse (part of) an applied event, exactly once by the reversal id."""
        return pb.ReverseResponse.FromString(self.reverse_bytes(request, context))

    def reverse_bytes(self, request: pb.ReverseRequest, context: grpc.ServicerContext) -> bytes:
        """:meth:`Reverse`'s response, serialised (the RPC's handler calls this)."""
        store = self._state_store()
        event_id, reversal_id = request.event_id, request.reversal_id
        fields = call_fields()
        fields["event_id"] = event_id[:MAX_ID]
        fields["reversal_id"] = reversal_id[:MAX_ID]
        violations = [Violation(name, "is required") for name, value in
                      (("event_id", event_id), ("reversal_id", reversal_id)) if not value]
        violations += [Violation(name, f"is {len(value)} characters; at most {MAX_ID} are allowed")
                       for name, value in (("event_id", event_id), ("reversal_id", reversal_id))
                       if len(value) > MAX_ID]
        for i, item in enumerate(request.items):
            if not item.sku:
                violations.append(Violation(f"items[{i}].sku", "is required"))
            elif len(item.sku) > MAX_ID:
                violations.append(Violation(f"items[{i}].sku", f"is longer than {MAX_ID} characters"))
            if item.HasField("quantity") and item.quantity < 1:
                violations.append(Violation(f"items[{i}].quantity", "must be at least 1 (unset: every unit)"))
        if violations:
            raise InvalidArgument(violations)
        digest = reversal_digest(event_id, request.items)
        items = list(request.items)

        at = request_time(request, "time") if request.HasField("time") else dt.datetime.now(dt.UTC)

        def decide(stored: StoredEvent) -> Outcome:
            return with_takeback(decide_reversal(stored, reversal_id, items, digest), at)

        try:
            result = store.reverse(event_id, reversal_id, decide)
        except StateError as exc:
            raise service_error(exc) from None
        record = json.loads(result.decision)
        if result.replayed:
            if record.get("digest") != digest:
                raise AlreadyExists(
                    f"reversal {reversal_id!r} was already made with body digest {record.get('digest')}; "
                    f"this request's digest is {digest}", "reversal_id", str(record.get("digest")), digest)
            fields["replayed"] = True
            return base64.b64decode(record["response"]) + _REVERSE_REPLAYED
        return base64.b64decode(record["response"])


def _batch_decide(policy_set: StatefulPolicySet, payload: Callable[[Decision], bytes],
                  customer: dict[str, Any], event: dict[str, Any], event_msg: pb.Event, digest: str,
                  explain: bool,
                  made: dict[int, tuple[Any, ...]], index: int,
                  for_texts: bool = False) -> Callable[[Any], Outcome]:
    """One batch item's ``decide``: evaluate with the transaction's sums, keep what was made
    (``for_texts``: explained for the lots' texts, the reasons dropped before the response)."""

    def decide(reader: Any) -> Outcome:
        decision, counted = reads_and_counts(policy_set, customer, event, reader.sums,
                                             explain=explain or for_texts)
        at = event["time"]
        lots = award_lots(policy_set, decision, at)
        if for_texts:
            decision.reasons = None
        response = apply_response_bytes(payload(decision), digest, counted)
        made[index] = (decision, counted, response, customer, event)
        return Outcome(stored_apply(response, event_msg),
                       [NewEntry(name, at, amount) for name, amount in counted.items()] if counted else (),
                       lots)

    return decide


def _batch_result(correlation_id: str, response: bytes | None, error: bytes | None) -> bytes:
    body = _string_field(_RESULT_ID, correlation_id) if correlation_id else b""
    if response is not None:
        body += _RESULT_APPLIED + VARINT[len(response)] + response
    else:
        assert error is not None
        body += _RESULT_ERROR + VARINT[len(error)] + error
    return _RESULTS + VARINT[len(body)] + body


def _after_decision(servicer: Any, snapshot: Any, customer: dict[str, Any], event: dict[str, Any],
                    customer_msg: pb.Customer, event_msg: pb.Event, decision: Decision,
                    counted: Mapping[str, Amount], count: bool = True) -> None:
    """Metrics, the decision log and the shadow for a decision just committed."""
    if count and servicer.metrics is not None:
        servicer.metrics.count_decision(decision.fired, decision.policies)
    if servicer.log_decisions:
        decision_log.info(
            "decision", customer_id=customer["id"], event_id=event_msg.id,
            kind=event_msg.kind or event_msg.WhichOneof("details"), revision=decision.revision,
            awards={k: str(v) for k, v in decision.awards.items()},
            benefits=[b.name for b in decision.benefits], tier=decision.tier, tags=decision.tags,
            policies=decision.policies, fired=[f"{p}.{r}" for p, r in decision.fired],
            counted={k: amount_text(v) for k, v in counted.items()}, applied=True)
    shadow = servicer.shadow
    if shadow is not None and shadow.sampled():
        shadow.offer(snapshot, [(customer, event, customer_msg, event_msg, decision)],
                     applied=dict(counted))


def _require_inputs(message: pb.ApplyRequest | pb.BatchItem) -> None:
    missing = [Violation(name, "is required") for name in ("customer", "event") if not message.HasField(name)]
    if missing:
        raise InvalidArgument(missing)


# -- reversals ----------------------------------------------------------------------------------


def _scale(amount: Amount) -> Decimal | None:
    """The unit an amount is written in: None for an int, else its last decimal place."""
    if isinstance(amount, int):
        return None
    exponent = amount.as_tuple().exponent
    return Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)


def _proportion(amount: Amount, fraction: Fraction) -> Amount:
    """``amount x fraction``, exactly, then rounded toward zero in ``amount``'s own unit."""
    product = Fraction(amount) * fraction
    unit = _scale(amount)
    if unit is None:
        return int(product)  # int() of a Fraction truncates toward zero
    return Decimal(int(product / Fraction(unit))) * unit


def _capped(amount: Amount, left: Amount) -> Amount:
    """``amount``, never more in magnitude than ``left`` (what earlier reversals left)."""
    if left >= 0:
        return max(min(amount, left), 0)
    return min(max(amount, left), 0)


def decide_reversal(stored: StoredEvent, reversal_id: str, items: Sequence[pb.ReturnedItem],
                    digest: str) -> Outcome:
    """The outcome of reversing ``stored`` (wholly without ``items``), as the module's rule says.

    Raises :class:`InvalidArgument` (nothing is written) for items the event did not have, or
    more units than it has left."""
    response = pb.ApplyResponse.FromString(stored_response(stored.decision))
    record = stored_basis(stored.decision)
    awards = {currency: parse_amount(text) for currency, text in response.decision.awards.items()}
    reversed_before: dict[str, Amount] = {}
    returned_before: dict[str, int] = {}
    for reversal in stored.reversals:
        earlier = json.loads(reversal.decision)
        before = pb.ReverseResponse.FromString(base64.b64decode(earlier["response"]))
        for currency, text in before.reversed.items():
            reversed_before[currency] = reversed_before.get(currency, 0) + parse_amount(text)
        for sku, units in earlier.get("returned", {}).items():
            returned_before[sku] = returned_before.get(sku, 0) + units
    awards_left = {c: a - reversed_before.get(c, 0) for c, a in awards.items()}
    # What each counted entry has left, by (counter, instant): the event's entries plus the
    # (negative) entries of earlier reversals.
    entries_left: dict[tuple[str, dt.datetime], Amount] = {}
    for entry in stored.entries:
        key = (entry.counter, entry.at)
        entries_left[key] = entries_left.get(key, 0) + entry.amount
    for reversal in stored.reversals:
        for entry in reversal.entries:
            key = (entry.counter, entry.at)
            if key in entries_left:
                entries_left[key] += entry.amount
    returned: dict[str, int] = {}
    if not items:
        take_awards = awards_left
        take_entries = entries_left
    else:
        fraction = _returned_fraction(stored.event_id, record, items, returned_before, returned)
        take_awards = {c: _capped(_proportion(a, fraction), awards_left[c]) for c, a in awards.items()}
        originals: dict[tuple[str, dt.datetime], Amount] = {}
        for entry in stored.entries:
            key = (entry.counter, entry.at)
            originals[key] = originals.get(key, 0) + entry.amount
        take_entries = {k: _capped(_proportion(a, fraction), entries_left.get(k, 0))
                        for k, a in originals.items()}
    out = pb.ReverseResponse(event_id=stored.event_id, reversal_id=reversal_id, whole=not items,
                             body_digest=digest)
    for currency, amount in take_awards.items():
        if amount:
            out.reversed[currency] = amount_text(amount)
    new_entries = []
    counted: dict[str, Amount] = {}
    for (counter, at), amount in take_entries.items():
        if amount:
            new_entries.append(NewEntry(counter, at, -amount))
            counted[counter] = counted.get(counter, 0) - amount
    for counter, amount in counted.items():
        if amount:
            out.counted[counter] = amount_text(amount)
    text = json.dumps({"v": 1, "response": base64.b64encode(out.SerializeToString()).decode("ascii"),
                       "digest": digest, "returned": returned}, separators=(",", ":"))
    return Outcome(text, new_entries)


def _returned_fraction(event_id: str, record: Mapping[str, Any], items: Sequence[pb.ReturnedItem],
                       returned_before: Mapping[str, int], returned: dict[str, int]) -> Fraction:
    """The returned amount over the purchase amount; fills ``returned`` (units per SKU)."""
    lines: dict[str, tuple[Decimal, int]] = {}
    for sku, amount, units in record.get("items", ()):
        total, count = lines.get(sku, (Decimal(0), 0))
        lines[sku] = (total + Decimal(amount), count + int(units))
    purchase = Decimal(record.get("amount") or "0")
    if not lines or not purchase:
        raise InvalidArgument([Violation(
            "items", f"event {event_id!r} has no purchase items to return; "
                     "reverse it whole (send no items)")])
    value = Fraction(0)
    for i, item in enumerate(items):
        line = lines.get(item.sku)
        if line is None:
            raise InvalidArgument([Violation(
                f"items[{i}].sku", f"event {event_id!r} has no item with SKU {item.sku!r}")])
        amount, units = line
        left = units - returned_before.get(item.sku, 0) - returned.get(item.sku, 0)
        wanted = item.quantity if item.HasField("quantity") else left
        if wanted > left or left <= 0:
            raise InvalidArgument([Violation(
                f"items[{i}].quantity" if item.HasField("quantity") else f"items[{i}].sku",
                f"SKU {item.sku!r} has {left} of {units} units left to return, not {wanted}")])
        returned[item.sku] = returned.get(item.sku, 0) + wanted
        value += Fraction(amount) * wanted / units
    return value / Fraction(purchase)
