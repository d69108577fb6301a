"""The ``loyalty.v1.LoyaltyRules`` servicer: a thin layer over the policy store's snapshot
(:mod:`service.snapshot`: the policy set, its converter and its encoder) and the response
framing (:mod:`service.wire`).

Each call takes the store's current snapshot once and uses it throughout, so a
reload never changes the policy set under a call. Methods raise; the interceptor
(:mod:`service.interceptor`) turns exceptions into statuses.

The evaluating RPCs have two faces: ``Evaluate``, ``EvaluateBatch`` and
``EvaluateStream`` return messages (the generated servicer interface), and
``evaluate_bytes``, ``evaluate_batch_bytes`` and ``evaluate_stream_bytes`` return
the same responses already serialised, assembled from cached encodings; the
server answers the RPCs with the latter (:func:`service.server.method_handlers` builds
the handler table from the service descriptor, preferring them;
:func:`service.server.create_server` registers it).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import grpc
import structlog

from dsl.decision import Decision
from dsl.errors import EvaluationError, did_you_mean
from dsl.input.decoders import fast_or_check
from dsl.input.request import ItemBudget
from dsl.schema.schema import MAX_ID, MAX_REQUEST_ITEMS, Schema
from service.apply import StateRpcs, quoting
from service.bounds import (
    MAX_ATTRIBUTE_ENTRIES,
    attribute_maps_bounded,
    check_explain_batch,
    check_reply_size,
    explain_batch_limit,
    refuse_oversized_attribute_maps,
)
from service.convert import Converter
from service.errors import (
    DeadlineExceeded,
    InvalidArgument,
    PolicyFailed,
    ServiceError,
    Unavailable,
    Violation,
    status_for,
)
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from service.ledger import LedgerRpcs
from service.logs import call_fields
from service.metrics import Metrics
from service.shadow import Sample, Shadow
from service.snapshot import Snapshot
from service.state.api import StateStore
from service.state.group import GroupCommit
from service.store import PolicyStore
from service.wire import (
    BatchResponse,
    datetime_to_timestamp,
    evaluate_response_bytes,
    stream_response_bytes,
)

if TYPE_CHECKING:
    from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

decision_log = structlog.get_logger("loyalty.decision")
log = structlog.get_logger("loyalty.servicer")

#: The largest batch accepted by default.
DEFAULT_MAX_BATCH = 10_000
#: How many batch items are evaluated between two looks at the deadline.
_DEADLINE_STRIDE = 128


def instance_name() -> str:
    """``host/pid`` of this server process, as ListPolicies reports it."""
    return f"{socket.gethostname()}/{os.getpid()}"


class LoyaltyRulesServicer(StateRpcs, LedgerRpcs, pb_grpc.LoyaltyRulesServicer):
    """Evaluates requests against the store's current policy set; Apply, ApplyBatch and Reverse
    (:class:`service.apply.StateRpcs`) commit to the customer state store ``state``; Redeem,
    GetBalance and GetStatement (:class:`service.ledger.LedgerRpcs`) spend and read its ledger."""

    def __init__(
        self,
        store: PolicyStore,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        metrics: Metrics | None = None,
        log_decisions: bool = False,
        shadow: Shadow | None = None,
        max_reply_bytes: int = 16 * 1024 * 1024,
        state: StateStore | None = None,
    ) -> None:
        self.store = store
        #: The customer state store (:mod:`service.state`): Evaluate reads it, Apply writes it.
        self.state = state
        #: Unary Applies that arrive together share one transaction (:mod:`service.state.group`).
        self.commits = GroupCommit(state) if state is not None else None
        self.max_batch = max_batch
        #: The largest reply the server may send (``--max-message-bytes``).
        self.max_reply_bytes = max_reply_bytes
        #: The most items an EvaluateBatch with explain may hold (:func:`service.bounds.check_explain_batch`).
        self.max_explain_batch = explain_batch_limit(max_reply_bytes)
        self.metrics = metrics
        self.log_decisions = log_decisions
        #: The candidate set fed a sample of decisions (``loyalty serve --shadow``), or None.
        self.shadow = shadow
        #: What unary calls read of the current snapshot (:meth:`_prepare`).
        self._prepared: _Prepared | None = None

    # -- RPCs ----------------------------------------------------------------------------

    def Evaluate(self, request: pb.EvaluateRequest, context: grpc.ServicerContext) -> pb.EvaluateResponse:
        """One customer and one event -> one decision."""
        return pb.EvaluateResponse.FromString(self.evaluate_bytes(request, context))

    def evaluate_bytes(self, request: pb.EvaluateRequest, context: grpc.ServicerContext) -> bytes:
        """:meth:`Evaluate`'s response, serialised: what the server sends as it is (the RPC's
        handler, built by :func:`service.server.method_handlers` and registered by
        :func:`service.server.create_server`, calls this method)."""
        prepared = self._prepared
        snapshot = self.store.current
        if prepared is None or prepared.snapshot is not snapshot:
            prepared = self._prepare(self._snapshot())
        fields = call_fields()
        fields["revision"] = prepared.revision
        only = request.only_policies
        if only:
            _check_only_policies(prepared.snapshot, only)
        language = request.language
        if language:
            _check_language(language)
        decision = self._decide(prepared, request, request.explain, list(only) if only else None, fields)
        if language and decision.reasons:
            decision.speak(language)
        return evaluate_response_bytes(prepared.payload(decision))

    def EvaluateBatch(
        self, request: pb.EvaluateBatchRequest, context: grpc.ServicerContext
    ) -> pb.EvaluateBatchResponse:
        """Many items; each gets its own decision or its own error."""
        return pb.EvaluateBatchResponse.FromString(self.evaluate_batch_bytes(request, context))

    def evaluate_batch_bytes(self, request: pb.EvaluateBatchRequest, context: grpc.ServicerContext) -> bytes:
        """:meth:`EvaluateBatch`'s response, serialised: what the server sends as it is (the
        RPC's handler, built by :func:`service.server.method_handlers` and registered by
        :func:`service.server.create_server`, calls this method).

        The results are written as serialised ``BatchResult`` fields
        (:class:`service.wire.BatchResponse`): building a thousand nested messages field
        by field, or parsing the assembled bytes back into a message only for gRPC to
        serialise it again, costs more than the rules.
        """
        items = request.items
        count = len(items)
        check_explain_batch(count, request.explain, self.max_explain_batch)
        budget = self._batch_budget(items)
        snapshot = self._snapshot()
        revision = snapshot.revision
        fields = call_fields()
        fields["items"] = count
        fields["revision"] = revision
        explain = request.explain
        converter = snapshot.converter
        # The fast path; on any failure, the checking path, after the attributes maps' size
        # (service.bounds: a huge map is refused without a violation per key).
        inputs = partial(fast_or_check, converter.fast.inputs,
                         attribute_maps_bounded(converter.checked_inputs))
        evaluate = quoting(snapshot.policy_set, self.state)  # reads stored sums, writes nothing
        log_decisions = self.log_decisions
        shadow = self.shadow
        # A batch goes to the shadow whole or not at all: one draw, one append per item.
        shadowed: list[Sample] | None = [] if shadow is not None and shadow.sampled() else None
        response = BatchResponse(snapshot.encoder)
        add_decision, add_error = response.decision, response.error
        # Rules and policies of every decision, handed to the metrics once at the end.
        fired: list[tuple[str, str]] = []
        applied: list[str] = []
        failed = invalid = 0
        for start in range(0, count, _DEADLINE_STRIDE):
            if start:
                _check_deadline(context)
            chunk = items[start:start + _DEADLINE_STRIDE]
            for item in chunk:
                customer_msg = item.customer
                event_msg = item.event
                cid = item.correlation_id
                try:
                    if len(cid) > MAX_ID:
                        cid = ""  # never echoed: a refusal does not repeat a long input
                        raise _long_correlation_id()
                    customer, event = inputs(customer_msg, event_msg, budget)
                    decision = evaluate(customer, event, explain) if explain else evaluate(customer, event)
                except Exception as exc:
                    failed += 1
                    if isinstance(exc, InvalidArgument):
                        invalid += 1
                    index = start + next(i for i, x in enumerate(chunk) if x is item)
                    add_error(cid, self._item_error(exc, item, index))
                    continue
                fired += decision.fired
                applied += decision.policies
                if log_decisions:
                    _log_decision(decision, customer_msg.id, event_msg)
                if shadowed is not None:
                    shadowed.append((customer, event, customer_msg, event_msg, decision))
                add_decision(cid, decision)
        if shadow is not None and shadowed:
            shadow.offer(snapshot, shadowed)
        fields["failed"] = failed
        if self.metrics is not None:
            self.metrics.count_decisions(count - failed, fired, applied)
            if invalid:
                self.metrics.count_evaluations("invalid_argument", invalid)
            if failed - invalid:
                self.metrics.count_evaluations("policy_failed", failed - invalid)
        return check_reply_size(response.finish(revision, failed), count, explain, self.max_reply_bytes)

    def _batch_budget(self, items: Sequence[pb.BatchItem]) -> ItemBudget:
        """Refuse a batch over the size bound or over the list-element bound in all; the list
        elements the batch's items may still carry beyond their purchase lines."""
        count = len(items)
        if count > self.max_batch:
            raise InvalidArgument(
                [Violation("items", f"a batch holds at most {self.max_batch} items, not {count}")]
            )
        # The request's list elements in all, before any item is decoded: each item's purchase
        # lines here (the fast path reads them), extension lists as the checking path meets them.
        lines = sum([len(item.event.purchase.items) for item in items]) if count else 0
        if lines > MAX_REQUEST_ITEMS:
            raise InvalidArgument([Violation(
                "items", f"the batch carries {lines:,} purchase items in all; "
                         f"a request carries at most {MAX_REQUEST_ITEMS:,} list elements")])
        return ItemBudget(MAX_REQUEST_ITEMS - lines, messages_counted=True)

    @staticmethod
    def _item_error(exc: Exception, item: pb.BatchItem, index: int) -> bytes:
        """A failed batch item's ``google.rpc.Status``, serialised."""
        if isinstance(exc, EvaluationError):
            _log_policy_failure(exc)
        elif isinstance(exc, InvalidArgument):
            try:
                _require_inputs(item)  # a missing customer or event, said plainly
            except InvalidArgument as missing:
                exc = missing
        else:  # a bug: this item fails INTERNAL, the batch goes on
            log.error("batch item failed", index=index, exc_info=exc, **call_fields())
        return status_for(exc).SerializeToString()

    def EvaluateStream(
        self, request_iterator: Iterable[pb.EvaluateStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.EvaluateStreamResponse]:
        """One response per request message, in order, each with the request's correlation id."""
        for raw in self.evaluate_stream_bytes(request_iterator, context):
            yield pb.EvaluateStreamResponse.FromString(raw)

    def evaluate_stream_bytes(
        self, request_iterator: Iterable[pb.EvaluateStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        """:meth:`EvaluateStream`'s responses, serialised (the RPC's handler, built by
        :func:`service.server.method_handlers` and registered by
        :func:`service.server.create_server`, calls this method)."""
        fields = call_fields()
        count = failed = 0
        try:
            for request in request_iterator:
                count += 1
                cid = request.correlation_id
                try:
                    if len(cid) > MAX_ID:
                        cid = ""  # never echoed: a refusal does not repeat a long input
                        raise _long_correlation_id()
                    prepared = self._prepared
                    snapshot = self.store.current
                    if prepared is None or prepared.snapshot is not snapshot:
                        prepared = self._prepare(self._snapshot())
                    decision = self._decide(prepared, request, request.explain, None, None)
                    response = stream_response_bytes(cid, prepared.payload(decision))
                except Exception as exc:  # this message's own error; the stream goes on
                    failed += 1
                    if not isinstance(exc, ServiceError):  # a bug: INTERNAL
                        log.error("stream message failed", message=count, exc_info=exc, **fields)
                    response = stream_response_bytes(cid, None, status_for(exc).SerializeToString())
                yield response
        finally:
            fields["messages"] = count
            fields["failed"] = failed

    def ListPolicies(
        self, request: pb.ListPoliciesRequest, context: grpc.ServicerContext
    ) -> pb.ListPoliciesResponse:
        """The loaded policies, the revision and the store's status; with a shadow, the same of it."""
        snapshot = self.store.current
        response = pb.ListPoliciesResponse()
        if snapshot is not None:
            response.revision = snapshot.revision
            call_fields()["revision"] = snapshot.revision
            _add_policies(response.policies, snapshot)
        _fill_status(response.status, self.store)
        shadow = self.shadow
        if shadow is not None:
            s = response.shadow
            s.directory = str(shadow.directory)
            current = shadow.store.current
            if current is not None:
                s.revision = current.revision
                _add_policies(s.policies, current)
            _fill_status(s.status, shadow.store)
            s.sample_rate = shadow.sample
            s.decisions_compared = shadow.compared
            s.decisions_changed = shadow.changed
            s.decisions_dropped = shadow.dropped
        return response

    # -- helpers -----------------------------------------------------------------------------

    def _snapshot(self) -> Snapshot:
        snapshot = self.store.current
        if snapshot is None:
            error = self.store.status.last_error
            raise Unavailable(
                "no policy set is loaded yet" + (f" (last attempt: {error})" if error else "")
            )
        return snapshot

    def _prepare(self, snapshot: Snapshot) -> _Prepared:
        """What a unary call or a stream message needs of ``snapshot``, derived once per
        snapshot (and kept until the next swap) rather than on every call."""
        prepared = _Prepared(snapshot, snapshot.revision, _bounded_inputs(snapshot.converter),
                             quoting(snapshot.policy_set, self.state), snapshot.encoder.payload)
        self._prepared = prepared  # a race only builds an equal one twice
        return prepared

    def _decide(
        self,
        prepared: _Prepared,
        request: pb.EvaluateRequest | pb.EvaluateStreamRequest,
        explain: bool,
        only: list[str] | None,
        fields: dict[str, Any] | None,
    ) -> Decision:
        """Convert, evaluate and count one (customer, event): Evaluate's and a stream message's."""
        customer_msg = request.customer
        event_msg = request.event
        try:
            customer, event = prepared.inputs(customer_msg, event_msg)
        except InvalidArgument:
            if fields is not None:
                # The ids as sent, cut to the id bound: a refused request is logged, not repeated.
                fields["customer_id"] = customer_msg.id[:MAX_ID]
                fields["event_id"] = event_msg.id[:MAX_ID]
            if self.metrics is not None:
                self.metrics.count_evaluations("invalid_argument")
            _require_inputs(request)  # a missing customer or event, said plainly
            raise
        if fields is not None:
            fields["customer_id"] = customer["id"]
            fields["event_id"] = event["id"]
        try:
            if explain or only:
                decision = prepared.evaluate(customer, event, explain, only)
            else:
                decision = prepared.evaluate(customer, event)
        except EvaluationError as exc:
            _log_policy_failure(exc)
            if self.metrics is not None:
                self.metrics.count_evaluations("policy_failed")
            raise PolicyFailed(exc) from None
        if self.metrics is not None:
            self.metrics.count_decision(decision.fired, decision.policies)
        if self.log_decisions:
            _log_decision(decision, customer["id"], event_msg)
        shadow = self.shadow
        if shadow is not None and not only and shadow.sampled():  # a partial decision compares with nothing
            shadow.offer(prepared.snapshot, [(customer, event, customer_msg, event_msg, decision)])
        return decision


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What :meth:`LoyaltyRulesServicer.evaluate_bytes` and a stream message read of one
    snapshot: its revision, the request decoder, the evaluation (a quote when the set reads
    stored sums) and the decision encoder."""

    snapshot: Snapshot
    revision: str
    #: ``inputs(customer_msg, event_msg)`` -> both prepared records, or InvalidArgument.
    inputs: Callable[[Any, Any], tuple[dict[str, Any], dict[str, Any]]]
    evaluate: Callable[..., Decision]
    payload: Callable[[Decision], bytes]


def _bounded_inputs(converter: Converter) -> Callable[[Any, Any], tuple[dict[str, Any], dict[str, Any]]]:
    """``converter.inputs`` with the attributes maps' size refused first
    (:func:`service.bounds.refuse_oversized_attribute_maps`), as cheaply as the schema allows.

    The fast path takes a map only when the schema declares every key in it, so while the
    schema declares no more fields than a map may hold, a map the fast path takes is within
    the bound, and the size is checked on the checking path alone (as a batch item's is).
    """
    if schema_field_count(converter.schema) <= MAX_ATTRIBUTE_ENTRIES:
        return partial(fast_or_check, converter.fast.inputs,
                       attribute_maps_bounded(converter.checked_inputs))
    inputs = converter.inputs

    def checked(customer: Any, event: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        refuse_oversized_attribute_maps(customer, event)
        return inputs(customer, event)  # type: ignore[no-any-return]

    return checked


def schema_field_count(schema: Schema) -> int:
    """Every field ``schema`` declares (customer, events, common event fields, records): at
    least as many as any one attributes map could hold of declared keys."""
    return (len(schema.customer) + len(schema.event_common)
            + sum(len(fields) for fields in schema.events.values())
            + sum(len(fields) for fields in schema.records.values()))


def _add_policies(policies: RepeatedCompositeFieldContainer[pb.PolicyInfo], snapshot: Snapshot) -> None:
    """Describe every policy of ``snapshot`` into the repeated ``PolicyInfo`` field ``policies``."""
    for compiled in snapshot.policy_set.compiled:
        info = compiled.info
        out = policies.add(
            name=info.name,
            version=info.version,
            effective_from=info.effective_from.isoformat() if info.effective_from else "",
            effective_until=info.effective_until.isoformat() if info.effective_until else "",
            kinds=info.kinds,
            digest=info.digest,
            file=info.file,
            description=info.description,
            rules=info.rules,
        )
        for b in compiled.award_bounds:
            out.award_bounds.add(currency=b.currency, max="" if b.maximum is None else str(b.maximum),
                                 unbounded_reason=b.reason)


def _fill_status(s: pb.PolicyStoreStatus, store: PolicyStore) -> None:
    """Write ``store``'s load status into the ``PolicyStoreStatus`` message ``s``."""
    status = store.status
    if status.loaded_at is not None:
        s.loaded_at.CopyFrom(datetime_to_timestamp(status.loaded_at))
    if status.last_attempt_at is not None:
        s.last_attempt_at.CopyFrom(datetime_to_timestamp(status.last_attempt_at))
    s.last_attempt_failed = status.last_attempt_failed
    s.last_error = status.last_error
    s.reloads_succeeded = status.reloads_succeeded
    s.reloads_failed = status.reloads_failed
    s.instance = instance_name()
    for d in status.diagnostics:
        s.diagnostics.add(**d.to_dict())


#: Unknown ``only_policies`` names reported at most (each one cut to 64 characters): a refusal
#: does not repeat a long input.
_MAX_UNKNOWN_REPORTED = 10


#: The longest language tag a request may name (BCP 47's longest common form, with room).
MAX_LANGUAGE = 35


def _check_language(language: str) -> None:
    """A request's ``language`` is a short tag of letters, digits, ``-`` and ``_``."""
    if len(language) > MAX_LANGUAGE or not all(c.isascii() and (c.isalnum() or c in "-_")
                                               for c in language):
        raise InvalidArgument([Violation(
            "language", f"must be a language tag such as fr or pt-BR, of at most {MAX_LANGUAGE} "
            "letters, digits, - and _")])


def _check_only_policies(snapshot: Snapshot, only: Iterable[str]) -> None:
    """Every name in ``only_policies`` must be a loaded policy: an unknown one would otherwise
    limit the decision to nothing, an empty answer that looks like a real one."""
    names = [p.name for p in snapshot.policy_set.policies]
    known = set(names)
    unknown = [(i, name) for i, name in enumerate(only) if name not in known]
    if not unknown:
        return
    violations = []
    for i, name in unknown[:_MAX_UNKNOWN_REPORTED]:
        hint = did_you_mean(name, names) if len(name) <= 64 else ""
        violations.append(Violation(f"only_policies[{i}]", f'no policy is named "{name[:64]}"'
                                    + (f"; {hint}" if hint else "")))
    if len(unknown) > _MAX_UNKNOWN_REPORTED:
        violations.append(Violation(
            "only_policies", f"{len(unknown) - _MAX_UNKNOWN_REPORTED} more names are not policies"))
    raise InvalidArgument(violations)


def _long_correlation_id() -> InvalidArgument:
    return InvalidArgument([Violation("correlation_id", f"is longer than {MAX_ID} characters")])


def _require_inputs(message: pb.EvaluateRequest | pb.EvaluateStreamRequest | pb.BatchItem) -> None:
    """A request (or batch item) must carry both a customer and an event."""
    missing = [Violation(name, "is required") for name in ("customer", "event") if not message.HasField(name)]
    if missing:
        raise InvalidArgument(missing)


def _check_deadline(context: grpc.ServicerContext) -> None:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise DeadlineExceeded("the deadline passed before the batch was evaluated")
    if not context.is_active():
        raise DeadlineExceeded("the call was cancelled before the batch was evaluated")


def _log_policy_failure(exc: EvaluationError) -> None:
    decision_log.error(
        "policy failed", policy=exc.policy, file=exc.file, line=exc.line, error=exc.message,
        **call_fields(),
    )


def _log_decision(decision: Decision, customer_id: str, event: pb.Event) -> None:
    decision_log.info(
        "decision",
        customer_id=customer_id,
        event_id=event.id,
        kind=event.kind or event.WhichOneof("details"),
        revision=decision.revision,
        awards={k: str(v) for k, v in decision.awards.items()},
        benefits=[b.name for b in decision.benefits],
        tier=decision.tier,
        tags=decision.tags,
        policies=decision.policies,
        fired=[f"{p}.{r}" for p, r in decision.fired],
    )
