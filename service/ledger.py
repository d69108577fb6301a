"""Redeem, GetBalance and GetStatement, and what the ledger needs from Apply and Reverse.

The ledger itself (lots, lines, balances as sums) is :mod:`service.state.ledger`, inside the
state store's transactions. Here: the lots an applied decision makes (:func:`award_lots`,
with the currency's validity and pending period from the schema), what a reversal takes back
(:func:`with_takeback`), the three RPCs mixed into the servicer (:class:`LedgerRpcs`), and
:func:`statement_lines`, the plain rows a customer-facing statement is rendered from.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

import grpc
import structlog
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2

from dsl.decision import Decision, default_text, text_in
from dsl.schema.validity import NEVER
from service.errors import InvalidArgument, ServiceError, Violation, _pack, service_error
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.logs import call_fields
from service.state import ledger, tiers
from service.state.api import MAX_ID_CHARS, Amount, Outcome, StateError, StateStore, amount_text
from service.state.tiers import TierCheck

log = structlog.get_logger("loyalty.ledger")

#: The prefix of a redemption's body digest.
DIGEST_PREFIX = "sha256:"
#: Statement lines per page when the request does not say.
DEFAULT_PAGE = 100
#: The longest language tag a request may name (as ``EvaluateRequest.language``).
MAX_LANGUAGE = 35


class InsufficientBalance(ServiceError):
    """A redemption asks for more than is available (FAILED_PRECONDITION, the balance attached)."""

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, error: ledger.NotEnoughAvailable, step: Amount | None = None) -> None:
        #: The most the customer can redeem now: the available balance, rounded down to the
        #: currency's redemption step (never below 0).
        self.redeemable = redeemable(error.available, step)
        most = (f"; the most redeemable in steps of {amount_text(step)} is {amount_text(self.redeemable)}"
                if step is not None else "")
        super().__init__(f"amount: {error.requested} {error.currency} asked; the available balance is "
                         f"{amount_text(error.available)}{most} (nothing was written)")
        self.error = error
        self.step = step

    def details(self) -> list[Any]:
        """A ``google.rpc.ErrorInfo``: reason INSUFFICIENT_BALANCE, the available balance and the
        most that can be redeemed (and the step, when the currency has one)."""
        metadata = {"field": "amount", "currency": self.error.currency,
                    "available": amount_text(self.error.available),
                    "requested": amount_text(self.error.requested),
                    "redeemable": amount_text(self.redeemable)}
        if self.step is not None:
            metadata["redeem_step"] = amount_text(self.step)
        return [_pack(error_details_pb2.ErrorInfo(reason="INSUFFICIENT_BALANCE", domain="loyalty.v1",
                                                  metadata=metadata))]


def redeemable(available: Amount, step: Amount | None) -> Amount:
    """The most a redemption can spend of ``available``: all of it, or with a ``step`` the
    largest whole multiple of it; 0 when the balance is not positive."""
    if available <= 0:
        return 0
    if step is None:
        return available
    most = Decimal(available) // Decimal(step) * Decimal(step)
    return int(most) if most == most.to_integral_value() else most


def _off_step(value: Decimal, step: Amount, currency: Any) -> str:
    """Why an amount off the currency's redemption step is refused, with the nearest valid
    amounts, each written with the currency's decimals."""
    unit = Decimal(1).scaleb(-currency.decimals)
    below = value // Decimal(step) * Decimal(step)
    above = below + Decimal(step)

    def text(amount: Decimal | Amount) -> str:
        return format(Decimal(amount).quantize(unit), "f")

    nearest = (f"the nearest valid amounts are {text(below)} and {text(above)}" if below > 0
               else f"the least is {text(step)}")
    return (f"{text(value)} is not a multiple of the {currency.name} redemption step {text(step)}: "
            f"{nearest}")


# -- what Apply and Reverse post -------------------------------------------------------------------


def award_lots(policy_set: Any, decision: Decision,
               earned_at: dt.datetime) -> tuple[ledger.NewLot | TierCheck, ...]:
    """The lots ``decision``'s positive awards make, one per currency, dated by the currency's
    validity and pending period in the programme's zone. A lot names the first rule that fired
    (the decision does not split a currency's award by rule) and keeps that rule's texts,
    filled in, from the decision's reasons (:func:`lot_texts`)."""
    if not decision.awards:
        return ()
    schema = policy_set.schema
    zone = policy_set.zone
    claw_back = getattr(schema, "negative_balance", "allowed") == "claw back from later awards"
    policy, rule = decision.fired[0] if decision.fired else ("", "")
    texts = lot_texts(decision, policy, rule)
    lots: list[ledger.NewLot | TierCheck] = []
    for currency, amount in decision.awards.items():
        if amount <= 0:
            continue
        declared = schema.currencies.get(currency)
        validity = declared.validity if declared is not None else None
        expires = validity.expires_at(earned_at, zone) if validity is not None else NEVER
        available = validity.available_from(earned_at) if validity is not None else earned_at
        lots.append(ledger.NewLot(currency, amount, earned_at, available, expires, policy, rule,
                                  decision.revision, claw_back, texts))
    qualification = getattr(schema, "qualification", None)
    if qualification is not None and decision.awards.get(qualification.measure, 0) > 0:
        lots.append(TierCheck(qualification, schema.timezone, earned_at))
    return tuple(lots)


def lot_texts(decision: Decision, policy: str, rule: str) -> ledger.Texts:
    """The filled-in texts of ``policy``'s ``rule`` as it fired in ``decision``: its fired
    reason's (language, text) pairs; empty when the decision has no reasons (evaluated without
    explain: Apply explains when the policy set has texts, see ``service.apply``) or the rule
    declares none."""
    reasons = decision.reasons
    if not reasons:
        return ()
    for reason in reasons:
        if reason.kind == "fired" and reason.rule == rule and reason.policy == policy:
            return reason.texts
    return ()


def with_takeback(outcome: Outcome, at: dt.datetime) -> Outcome:
    """A reversal's outcome with what it takes back from the ledger (its ``reversed`` awards)."""
    record = json.loads(outcome.decision)
    response = pb.ReverseResponse.FromString(base64.b64decode(record["response"]))
    taken = {currency: _parse(text) for currency, text in response.reversed.items()}
    if not taken:
        return outcome
    return replace(outcome, ledger=(ledger.Takeback(taken, at),))


def _parse(text: str) -> Amount:
    return int(text) if "." not in text else Decimal(text)


def request_time(message: Any, field: str) -> dt.datetime:
    """A request's Timestamp field as an aware UTC instant (INVALID_ARGUMENT if out of range)."""
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    try:
        return stamp.ToDatetime(tzinfo=dt.UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument([Violation(field, "is outside the years 1 to 9999")]) from None


def _stamp(at: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(at)
    return stamp


def _check_id(violations: list[Violation], field: str, value: str) -> None:
    if not value:
        violations.append(Violation(field, "is required"))
    elif len(value) > MAX_ID_CHARS:
        violations.append(Violation(field, f"is {len(value)} characters; at most {MAX_ID_CHARS} are allowed"))


def redemption_digest(request: pb.RedeemRequest) -> str:
    """The digest of a Redeem body: sha256 over its deterministic serialisation."""
    return DIGEST_PREFIX + hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


# -- statements as plain rows ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One statement line in plain values: what a rendered statement shows and why.

    ``policy`` and ``rule`` name the rule behind the lot, ``texts`` that rule's filled-in
    customer-facing texts as the lot keeps them (None for a lot written before lots kept
    them; see :func:`award_says`); ``reference`` is the operation's id.
    """

    at: dt.datetime
    currency: str
    amount: Amount
    kind: str
    reference: str
    event_id: str
    policy: str
    rule: str
    running_balance: Amount
    lot_id: str
    texts: ledger.Texts | None = None


def statement_lines(store: StateStore, customer: str, start: dt.datetime,
                    end: dt.datetime) -> list[StatementLine]:
    """Every ledger line of ``customer`` with ``start <= at < end``, oldest first, each with the
    running balance of its currency (all earlier lines included)."""
    out: list[StatementLine] = []
    token = ""
    while True:
        page = ledger.statement(store, customer, start, end, page_size=ledger.MAX_PAGE, page_token=token)
        out += [StatementLine(line.at, line.currency, line.amount, line.kind, line.ref, line.event_id,
                              line.policy, line.rule, running, line.lot_id, line.texts)
                for line, running in page.lines]
        token = page.next_token
        if not token:
            return out


#: Reads what each fired rule of each stored Apply of a customer said, by (event, policy,
#: rule): :func:`service.apply.explained_texts` (the stored response's form is Apply's).
ExplainedTexts = Callable[[StateStore, str], Mapping[tuple[str, str, str], str]]


def award_says(store: StateStore, customer: str, lines: Sequence[Any], language: str = "",
               explained: ExplainedTexts | None = None) -> list[str]:
    """What the customer reads about each of ``lines`` (a :class:`StatementLine` or a
    :class:`service.state.ledger.Line`) that is an award: its lot's rule's text in
    ``language`` (else the rule's first; :func:`dsl.decision.text_in`), or the rule's name in
    words for a rule without texts; "" for any other line (and an award no rule made).

    A lot written before lots kept their texts (migration 0005) has none: its text is what
    ``explained`` reads from the stored ``ApplyResponse``'s fired reasons (there only if that
    Apply asked for explain; read once, only for such a lot), else the rule's name in words."""
    said: Mapping[tuple[str, str, str], str] | None = None
    out = []
    for line in lines:
        if line.kind != "award":
            out.append("")
        elif line.texts is not None:
            out.append(text_in(line.texts, line.rule, language))
        else:
            if said is None:
                said = explained(store, customer) if explained is not None else {}
            out.append(said.get((line.event_id, line.policy, line.rule)) or default_text(line.rule))
    return out


# -- the RPCs ---------------------------------------------------------------------------------------


class LedgerRpcs:
    """``Redeem``, ``GetBalance`` and ``GetStatement``, mixed into the servicer, which supplies
    ``state`` (the store, or None), ``_snapshot()``, ``_state_store()`` and
    ``_explained_texts`` (:data:`ExplainedTexts`)."""

    state: StateStore | None
    _snapshot: Callable[[], Any]
    _state_store: Callable[[], StateStore]
    _explained_texts: ExplainedTexts

    def Redeem(self, request: pb.RedeemRequest, context: grpc.ServicerContext) -> pb.RedeemResponse:
        """Spend points, soonest-expiring lots first, exactly once by the redemption id."""
        store = self._state_store()
        fields = call_fields()
        fields["customer_id"] = request.customer_id[:MAX_ID_CHARS]
        fields["redemption_id"] = request.redemption_id[:MAX_ID_CHARS]
        violations: list[Violation] = []
        _check_id(violations, "customer_id", request.customer_id)
        _check_id(violations, "redemption_id", request.redemption_id)
        currencies = self._snapshot().policy_set.schema.currencies
        currency = currencies.get(request.currency)
        if not request.currency:
            violations.append(Violation("currency", "is required"))
        elif currency is None:
            violations.append(Violation("currency", f"{request.currency[:MAX_ID_CHARS]!r} is not a currency "
                                        f"the schema declares ({', '.join(sorted(currencies))})"))
        amount: Amount = 0
        try:
            value = Decimal(request.amount) if len(request.amount) <= 40 else Decimal("nan")
            if not value.is_finite() or value <= 0:
                raise InvalidOperation
            decimals = currency.decimals if currency is not None else 6
            if value != value.quantize(Decimal(1).scaleb(-decimals)):
                violations.append(Violation("amount", f"has more than {decimals} decimal places"))
            amount = int(value) if value == value.to_integral_value() else value
            step = currency.redeem_step if currency is not None else None
            if step is not None and value % step:
                violations.append(Violation("amount", _off_step(value, step, currency)))
        except (InvalidOperation, ValueError):
            violations.append(Violation("amount", "must be a positive decimal number such as \"150\""))
        if not request.HasField("time"):
            violations.append(Violation("time", "is required"))
        if violations:
            raise InvalidArgument(violations)
        at = request_time(request, "time")
        digest = redemption_digest(request)

        def respond(drawn: Sequence[ledger.Drawn], after: Amount) -> bytes:
            return _redeem_response(request.redemption_id, drawn, after, digest).SerializeToString()

        try:
            result = ledger.redeem(store, request.customer_id, request.redemption_id, digest,
                                   request.currency, amount, at, respond)
        except ledger.NotEnoughAvailable as exc:
            raise InsufficientBalance(exc, currency.redeem_step if currency is not None else None) from None
        except StateError as exc:
            error = service_error(exc)
            if getattr(error, "field", None) == "event.id":
                error.field = "redemption_id"  # type: ignore[attr-defined]
            raise error from None
        response = pb.RedeemResponse.FromString(result.response)
        if result.replayed:
            fields["replayed"] = True
            response.replayed = True
        return response

    def GetBalance(self, request: pb.GetBalanceRequest,
                   context: grpc.ServicerContext) -> pb.GetBalanceResponse:
        """The customer's balance per currency at ``as_of`` (the server's clock when unset)."""
        store = self._state_store()
        violations: list[Violation] = []
        _check_id(violations, "customer_id", request.customer_id)
        if violations:
            raise InvalidArgument(violations)
        at = request_time(request, "as_of") if request.HasField("as_of") else dt.datetime.now(dt.UTC)
        schema = self._snapshot().policy_set.schema
        q = getattr(schema, "qualification", None)
        try:
            balances, st = tiers.balance_and_status(store, request.customer_id, at, q, schema.timezone)
        except StateError as exc:
            raise service_error(exc) from None
        out = pb.GetBalanceResponse(customer_id=request.customer_id, as_of=_stamp(at))
        for b in balances:
            out.balances.append(pb.CurrencyBalance(
                currency=b.currency, available=amount_text(b.available), pending=amount_text(b.pending),
                expiring_30_days=amount_text(b.expiring[0]), expiring_60_days=amount_text(b.expiring[1]),
                expiring_90_days=amount_text(b.expiring[2]), total=amount_text(b.total)))
        if st is not None:
            progress = out.tier
            progress.tier, progress.window = st.tier, st.window
            progress.measure = schema.qualification.measure
            progress.window_start.CopyFrom(_stamp(st.window_start))
            progress.window_end.CopyFrom(_stamp(st.window_end))
            progress.earned = amount_text(st.earned)
            progress.to_keep = "" if st.to_keep == "" else amount_text(st.to_keep)
            progress.next_tier = st.next_tier
            progress.to_next = "" if st.to_next == "" else amount_text(st.to_next)
            if st.since is not None and st.kept_until is not None:
                progress.since.CopyFrom(_stamp(st.since))
                progress.kept_until.CopyFrom(_stamp(st.kept_until))
        return out

    def GetStatement(self, request: pb.GetStatementRequest,
                     context: grpc.ServicerContext) -> pb.GetStatementResponse:
        """A page of the customer's ledger lines between ``from`` and ``to``."""
        store = self._state_store()
        violations: list[Violation] = []
        _check_id(violations, "customer_id", request.customer_id)
        for name in ("from", "to"):
            if not request.HasField(name):
                violations.append(Violation(name, "is required"))
        if not 0 <= request.page_size <= ledger.MAX_PAGE:
            violations.append(Violation("page_size",
                                        f"must be from 1 to {ledger.MAX_PAGE} (0: {DEFAULT_PAGE})"))
        if len(request.page_token) > 64:
            violations.append(Violation("page_token", "is not a token this service returned"))
        language = request.language
        if len(language) > MAX_LANGUAGE or not all(c.isascii() and (c.isalnum() or c in "-_")
                                                   for c in language):
            violations.append(Violation("language", "must be a language tag such as fr or pt-BR, of at most "
                                                    f"{MAX_LANGUAGE} letters, digits, - and _"))
        if violations:
            raise InvalidArgument(violations)
        start, end = request_time(request, "from"), request_time(request, "to")
        try:
            page = ledger.statement(store, request.customer_id, start, end,
                                    page_size=request.page_size or DEFAULT_PAGE,
                                    page_token=request.page_token)
        except StateError as exc:
            raise service_error(exc) from None
        out = pb.GetStatementResponse(next_page_token=page.next_token)
        for currency, amount in page.opening.items():
            out.opening[currency] = amount_text(amount)
        try:
            says = award_says(store, request.customer_id, [line for line, _ in page.lines], language,
                              self._explained_texts)
        except StateError as exc:
            raise service_error(exc) from None
        for (line, running), text in zip(page.lines, says, strict=True):
            out.lines.append(pb.StatementLine(
                time=_stamp(line.at), currency=line.currency, amount=amount_text(line.amount), kind=line.kind,
                reference=line.ref, event_id=line.event_id, policy=line.policy, rule=line.rule,
                running_balance=amount_text(running), lot_id=line.lot_id, says=text))
        return out


def _redeem_response(redemption_id: str, drawn: Sequence[ledger.Drawn], after: Amount,
                     digest: str) -> pb.RedeemResponse:
    out = pb.RedeemResponse(redemption_id=redemption_id, available_after=amount_text(after),
                            body_digest=digest)
    for d in drawn:
        lot = pb.DrawnLot(lot_id=d.lot_id, amount=amount_text(d.amount))
        if d.expires_at < NEVER:
            lot.expires_at.CopyFrom(_stamp(d.expires_at))
        out.drawn.append(lot)
    return out


# -- the expiry job on a timer -------------------------------------------------------------------


class ExpiryTimer:
    """Runs the expiry job (:func:`service.state.ledger.expire`, as of the clock) every
    ``interval_s`` seconds on its own thread, off the request path; the first run comes one
    interval after the start. The job is idempotent, so several workers or replicas running it
    post each line once. A failed run is logged and the next one tries again."""

    def __init__(self, store: StateStore, interval_s: float,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 schema: Callable[[], Any] = lambda: None) -> None:
        self.store = store
        #: The programme's schema now (its ``[qualification]``: the tier job runs after expiry).
        self.schema = schema
        self.interval_s = interval_s
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: The last run's report (None before the first), and how many runs finished.
        self.last: ledger.ExpiryReport | None = None
        self.runs = 0

    def start(self) -> ExpiryTimer:
        """Start the thread (nothing when the interval is 0: the timer is off)."""
        if self.interval_s > 0:
            self._thread = threading.Thread(target=self._loop, name="ledger-expiry", daemon=True)
            self._thread.start()
        return self

    def run_once(self) -> ledger.ExpiryReport:
        """One run of the job as of the clock, logged."""
        as_of = self.clock()
        started = time.perf_counter()
        report = ledger.expire(self.store, as_of)
        log.info("ledger expiry", as_of=as_of.isoformat(), lots_seen=report.lots_seen,
                 lines_posted=report.lines_posted, seconds=round(time.perf_counter() - started, 3))
        schema = self.schema()
        if getattr(schema, "qualification", None) is not None:
            settled = tiers.settle(self.store, schema.qualification, schema.timezone, as_of)
            log.info("tier job", as_of=as_of.isoformat(), seen=settled.seen, lowered=settled.lowered,
                     removed=settled.removed)
        self.last = report
        self.runs += 1
        return report

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except Exception as exc:  # logged; the next run tries again
                log.error("ledger expiry failed", error=str(exc))

    def stop(self) -> None:
        """Stop the thread, waiting for a run under way."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
