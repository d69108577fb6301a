"""The ledger of lots: every award a lot, every movement of points a line, balances as sums.

A lot is what one applied event awarded in one currency: its amount, when it was earned,
when it becomes spendable (``available_from``) and when it expires (``expires_at``), and the
policy, rule and revision that made it. Lines are append-only movements on a lot, each of one
kind: ``award`` (the lot's amount), ``redeem`` (a spend), ``reverse`` (a reversal of the
event), ``expire`` (what was left when the lot expired) and ``clawback`` (a later award paying
a debt). A lot's remainder is the sum of its lines; a customer's balance is the sum of their
lines; no row holds a number that could drift from them.

A reversal takes from its own lot what is left of it. What was already spent from the lot
becomes a debt: a lot of negative amount that never expires and counts against the available
balance (``[programme] negative_balance = "allowed"``). With ``"claw back from later
awards"``, each later award of the currency pays the oldest debts first (two ``clawback``
lines: out of the new lot, into the debt).

Redemptions spend available lots (``available_from <= at < expires_at``) soonest-expiring
first, and each spend is a line on the lot it draws from; a lot never gives more than it has.
The expiry job posts one ``expire`` line per expired lot with something left, at the lot's
``expires_at``; a unique key (lot, kind, reference) makes running it again post nothing.

Every function here runs inside the store's own transactions (``SqlStore._run``, the customer
locked) or read snapshots, with parameters only. Amounts are stored as integer millionths of
a unit, instants as the backend stores them.

(About 920 lines, one job: the ledger's reads and writes, on both backends. Posting, spending,
expiry, the balance's line index and the export and import of the rows share the lot and line
tables and their invariants, so they stay together.)
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import weakref
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate
from typing import Any, Literal

from dsl.front.texts import LANGUAGE, MAX_TEXTS
from dsl.library.runtime import MAX_TEXT
from dsl.schema.validity import NEVER
from service.state.api import (
    AlreadyApplied,
    Amount,
    InvalidStateInput,
    StateError,
    amount_text,
    check_amount,
    check_id,
    check_instant,
    exact,
    parse_amount,
)

#: Ledger amounts are stored in millionths of a unit: a currency keeps at most 6 decimals.
SCALE = 10**6
#: The most a single ledger amount may be, in units (its millionths fit a 64-bit integer sum).
MAX_LEDGER_AMOUNT = 10**12
#: Longest statement page.
MAX_PAGE = 1000
#: The windows of GetBalance's "expiring in the next N days".
EXPIRING_DAYS = (30, 60, 90)

LineKind = Literal["award", "redeem", "reverse", "expire", "clawback"]
#: A rule's filled-in ``says`` texts as a lot keeps them: (language, text) pairs.
Texts = tuple[tuple[str, str], ...]


class NotEnoughAvailable(StateError):
    """A redemption asks for more than the customer's available balance (FAILED_PRECONDITION)."""

    def __init__(self, currency: str, requested: Amount, available: Amount) -> None:
        super().__init__(f"redeeming {requested} {currency} needs {requested}; "
                         f"the available balance is {available}")
        self.currency = currency
        self.requested = requested
        self.available = available


# -- what an apply or a reversal posts (carried in ``Outcome.ledger``) -----------------------------


@dataclass(frozen=True, slots=True)
class NewLot:
    """A lot an applied event makes: one currency's award, with its dates and its origin."""

    currency: str
    amount: Amount
    earned_at: dt.datetime
    available_from: dt.datetime
    expires_at: dt.datetime
    policy: str
    rule: str
    revision: str
    #: The programme pays debts from later awards (``negative_balance``).
    claw_back: bool = False
    #: The rule's customer-facing texts, filled in: (language, text) pairs as the rule
    #: declares them (``Reason.texts``); empty for a rule that declares none.
    texts: Texts = ()


@dataclass(frozen=True, slots=True)
class Takeback:
    """What a reversal takes back: a positive amount per currency, posted at ``at``."""

    taken: Mapping[str, Amount]
    at: dt.datetime


# -- what the ledger answers ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lot:
    """A stored lot and what is left of it (the sum of its lines)."""

    lot_id: str
    customer_id: str
    currency: str
    amount: Amount
    earned_at: dt.datetime
    available_from: dt.datetime
    expires_at: dt.datetime
    event_id: str
    policy: str
    rule: str
    revision: str
    debt: bool
    remaining: Amount
    #: The rule's texts kept with the lot; None for a lot written before they were kept.
    texts: Texts | None = None


@dataclass(frozen=True, slots=True)
class Line:
    """A stored ledger line, with its lot's origin (so a statement can say why)."""

    seq: int
    customer_id: str
    currency: str
    lot_id: str
    at: dt.datetime
    amount: Amount
    kind: LineKind
    #: The operation's id: the event (award), the reversal, the redemption, the paying or paid
    #: lot (clawback); "" for an expiry.
    ref: str
    event_id: str
    policy: str
    rule: str
    #: The lot's rule's texts (:attr:`Lot.texts`); None for a lot written before they were kept.
    texts: Texts | None = None


@dataclass(frozen=True, slots=True)
class CurrencyBalance:
    """One currency's balance at an instant, every figure a sum of lines up to it.

    ``total`` is every line; ``available`` the lots spendable now (and debts), ``pending``
    the lots not yet spendable; ``expiring`` what of both expires within 30, 60 and 90
    days. ``total - available - pending`` is what expired and the job has not posted yet.
    """

    currency: str
    available: Amount
    pending: Amount
    total: Amount
    expiring: tuple[Amount, Amount, Amount]


@dataclass(frozen=True, slots=True)
class Drawn:
    """What a redemption drew from one lot."""

    lot_id: str
    amount: Amount
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class RedeemResult:
    """A redemption's stored response; ``replayed`` when the same id came again."""

    redemption_id: str
    response: bytes
    replayed: bool
    drawn: tuple[Drawn, ...] = ()


@dataclass(frozen=True, slots=True)
class StatementPage:
    """A page of a statement: its lines, each with the currency's running balance after it,
    the balances before the page, and the token of the next page ("" at the end)."""

    lines: tuple[tuple[Line, Amount], ...]
    opening: Mapping[str, Amount]
    next_token: str


# -- amounts -------------------------------------------------------------------------------------


def to_units(field: str, amount: Amount) -> int:
    """``amount`` in stored millionths; InvalidStateInput if it has more than 6 decimals."""
    check_amount(field, amount)
    if abs(amount) >= MAX_LEDGER_AMOUNT:
        raise InvalidStateInput(field, f"must be below 10**12 in magnitude, not {amount}")
    scaled = Decimal(amount) * SCALE
    if scaled != scaled.to_integral_value():
        raise InvalidStateInput(field, "has more than 6 decimal places")
    return int(scaled)


def from_units(units: Any) -> Amount:
    """Stored millionths as an exact amount: an int when whole, else a Decimal."""
    value = int(units or 0)
    if value % SCALE == 0:
        return value // SCALE
    return exact((Decimal(value) / SCALE).normalize())


def texts_json(texts: Texts) -> str:
    """The stored form of a lot's texts: a JSON array of [language, text] pairs."""
    if not texts:
        return "[]"
    return json.dumps([list(t) for t in texts], ensure_ascii=False, separators=(",", ":"))


def texts_of(stored: str | None) -> Texts | None:
    """A lot's texts from their stored form (None stays None: written before they were kept)."""
    if stored is None:
        return None
    if stored == "[]":
        return ()
    return tuple((str(language), str(text)) for language, text in json.loads(stored))


def check_texts(field: str, value: Any) -> Texts | None:
    """Texts read from outside (an import): None, or the pairs a rule can have: at most
    ``MAX_TEXTS`` [language, text] pairs of strings, each language a tag ``says`` takes (or
    empty) and each text at most ``MAX_TEXT`` characters; InvalidStateInput naming the field
    if not."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_TEXTS:
        raise InvalidStateInput(field, f"must be a list of at most {MAX_TEXTS} [language, text] pairs")
    out = []
    for i, pair in enumerate(value):
        if (not isinstance(pair, list) or len(pair) != 2
                or not all(isinstance(part, str) for part in pair)):
            raise InvalidStateInput(f"{field}[{i}]", "must be a [language, text] pair of strings")
        language, text = pair
        if language and not LANGUAGE.match(language):
            raise InvalidStateInput(f"{field}[{i}]", f"{language[:40]!r} is not a language tag such as "
                                                     "\"fr\" or \"pt_BR\"")
        if len(text) > MAX_TEXT:
            raise InvalidStateInput(f"{field}[{i}]", f"a text has at most {MAX_TEXT} characters")
        out.append((language, text))
    return tuple(out)


def lot_key(event_id: str, currency: str) -> str:
    """The id of the lot an event's award of ``currency`` makes (unambiguous for any id)."""
    return f"e{len(event_id)}:{event_id}:{currency}"


def debt_key(reversal_id: str, currency: str) -> str:
    """The id of the debt a reversal leaves in ``currency``."""
    return f"d{len(reversal_id)}:{reversal_id}:{currency}"


# -- statements (``?`` placeholders; PostgreSQL's rewritten once per store class) ------------------

_SQL = {
    "insert_lot": (
        "INSERT INTO ledger_lots (lot_id, customer_id, currency, amount, earned_at, available_from, "
        "expires_at, event_id, policy, rule, revision, debt, texts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "insert_line": (
        "INSERT INTO ledger_lines (customer_id, currency, lot_id, at, amount, kind, ref, available_from, "
        "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    ),
    "lot_remaining": (
        "SELECT l.available_from, l.expires_at, COALESCE(SUM(x.amount), 0), l.policy, l.rule, l.texts "
        "FROM ledger_lots l LEFT JOIN ledger_lines x ON x.lot_id = l.lot_id WHERE l.lot_id = ? "
        "GROUP BY l.lot_id, l.available_from, l.expires_at, l.policy, l.rule, l.texts"
    ),
    "lot_spent": (
        "SELECT COALESCE(SUM(amount), 0) FROM ledger_lines "
        "WHERE lot_id = ? AND kind IN ('redeem', 'clawback')"
    ),
    "event_debts": (
        "SELECT COALESCE(SUM(amount), 0) FROM ledger_lots WHERE debt = 1 AND event_id = ? AND currency = ?"
    ),
    "debts": (
        "SELECT l.lot_id, l.available_from, l.expires_at, SUM(x.amount) FROM ledger_lots l "
        "JOIN ledger_lines x ON x.lot_id = l.lot_id "
        "WHERE l.customer_id = ? AND l.currency = ? AND l.debt = 1 "
        "GROUP BY l.lot_id, l.available_from, l.expires_at, l.earned_at HAVING SUM(x.amount) < 0 "
        "ORDER BY l.earned_at, l.lot_id"
    ),
    "spendable": (
        "SELECT l.lot_id, l.available_from, l.expires_at, SUM(x.amount) FROM ledger_lots l "
        "JOIN ledger_lines x ON x.lot_id = l.lot_id "
        "WHERE l.customer_id = ? AND l.currency = ? AND l.debt = 0 "
        "AND l.available_from <= ? AND l.expires_at > ? "
        "GROUP BY l.lot_id, l.available_from, l.expires_at, l.earned_at HAVING SUM(x.amount) > 0 "
        "ORDER BY l.expires_at, l.earned_at, l.lot_id"
    ),
    "redemption": "SELECT customer_id, body_digest, response FROM redemptions WHERE redemption_id = ?",
    "insert_redemption": (
        "INSERT INTO redemptions (redemption_id, customer_id, body_digest, response) VALUES (?, ?, ?, ?)"
    ),
    "redemption_lines": (
        "SELECT x.lot_id, x.amount, x.expires_at FROM ledger_lines x WHERE x.kind = 'redeem' AND x.ref = ? "
        "ORDER BY x.seq"
    ),
    "balance": (
        "SELECT currency, "
        "SUM(CASE WHEN available_from <= ? AND expires_at > ? THEN amount ELSE 0 END), "
        "SUM(CASE WHEN available_from > ? THEN amount ELSE 0 END), "
        "SUM(amount), "
        "SUM(CASE WHEN expires_at > ? AND expires_at <= ? THEN amount ELSE 0 END), "
        "SUM(CASE WHEN expires_at > ? AND expires_at <= ? THEN amount ELSE 0 END), "
        "SUM(CASE WHEN expires_at > ? AND expires_at <= ? THEN amount ELSE 0 END) "
        "FROM ledger_lines WHERE customer_id = ? AND at <= ? GROUP BY currency ORDER BY currency"
    ),
    "last_line": "SELECT MAX(seq) FROM ledger_lines WHERE customer_id = ?",
    "lines_count": "SELECT COUNT(*) FROM (SELECT 1 FROM ledger_lines WHERE customer_id = ? LIMIT ?) AS c",
    "lines_after": (
        "SELECT seq, currency, available_from, expires_at, amount, at FROM ledger_lines "
        "WHERE customer_id = ? AND seq > ? AND seq <= ? ORDER BY seq"
    ),
    "lots": (
        "SELECT l.lot_id, l.customer_id, l.currency, l.amount, l.earned_at, l.available_from, l.expires_at, "
        "l.event_id, l.policy, l.rule, l.revision, l.debt, COALESCE(SUM(x.amount), 0), l.texts "
        "FROM ledger_lots l LEFT JOIN ledger_lines x ON x.lot_id = l.lot_id WHERE l.customer_id = ? "
        "GROUP BY l.lot_id, l.customer_id, l.currency, l.amount, l.earned_at, l.available_from, "
        "l.expires_at, l.event_id, l.policy, l.rule, l.revision, l.debt, l.texts "
        "ORDER BY l.earned_at, l.lot_id"
    ),
    "opening": (
        "SELECT currency, SUM(amount) FROM ledger_lines WHERE customer_id = ? "
        "AND (at < ? OR (at = ? AND seq <= ?)) GROUP BY currency"
    ),
    "statement": (
        "SELECT x.seq, x.customer_id, x.currency, x.lot_id, x.at, x.amount, x.kind, x.ref, l.event_id, "
        "l.policy, l.rule, l.texts FROM ledger_lines x JOIN ledger_lots l ON l.lot_id = x.lot_id "
        "WHERE x.customer_id = ? AND x.at < ? AND (x.at > ? OR (x.at = ? AND x.seq > ?)) "
        "ORDER BY x.at, x.seq LIMIT ?"
    ),
    "export_lots": (
        "SELECT lot_id, customer_id, currency, amount, earned_at, available_from, expires_at, event_id, "
        "policy, rule, revision, debt, expiry_posted, texts FROM ledger_lots WHERE customer_id = ? "
        "ORDER BY earned_at, lot_id"
    ),
    "export_lines": (
        "SELECT lot_id, customer_id, currency, at, amount, kind, ref FROM ledger_lines WHERE customer_id = ? "
        "ORDER BY seq"
    ),
    "export_redemptions": (
        "SELECT redemption_id, customer_id, body_digest, response FROM redemptions WHERE customer_id = ? "
        "ORDER BY redemption_id"
    ),
    "import_lot": (
        "INSERT INTO ledger_lots (lot_id, customer_id, currency, amount, earned_at, available_from, "
        "expires_at, event_id, policy, rule, revision, debt, expiry_posted, texts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    ),
    # A line takes its customer, currency and dates from its lot as stored (the lot's own row
    # stays if it was there before the import), so a line never disagrees with its lot.
    "import_line": (
        "INSERT INTO ledger_lines (customer_id, currency, lot_id, at, amount, kind, ref, available_from, "
        "expires_at) SELECT customer_id, currency, lot_id, ?, ?, ?, ?, available_from, expires_at "
        "FROM ledger_lots WHERE lot_id = ? ON CONFLICT DO NOTHING"
    ),
    "import_redemption": (
        "INSERT INTO redemptions (redemption_id, customer_id, body_digest, response) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING"
    ),
    "expired_page": (
        "SELECT lot_id, customer_id, currency, available_from, expires_at FROM ledger_lots "
        "WHERE expiry_posted = 0 AND debt = 0 AND expires_at <= ? ORDER BY expires_at, lot_id LIMIT ?"
    ),
}
_DIALECT = {
    "sqlite": {
        "page_sums": (
            "SELECT lot_id, SUM(amount) FROM ledger_lines WHERE lot_id IN (SELECT value FROM json_each(?)) "
            "GROUP BY lot_id"
        ),
        "mark_expired": (
            "UPDATE ledger_lots SET expiry_posted = 1 WHERE lot_id IN (SELECT value FROM json_each(?))"
        ),
    },
    "postgresql": {
        "page_sums": "SELECT lot_id, SUM(amount) FROM ledger_lines WHERE lot_id = ANY(%s) GROUP BY lot_id",
        "mark_expired": "UPDATE ledger_lots SET expiry_posted = 1 WHERE lot_id = ANY(%s)",
    },
}
_PG = {name: text.replace("?", "%s") for name, text in _SQL.items()}


def _sql(store: Any, name: str) -> str:
    dialect = _DIALECT[store.backend]
    if name in dialect:
        return dialect[name]
    return _PG[name] if store.backend == "postgresql" else _SQL[name]


# -- posting inside an apply or a reversal ----------------------------------------------------------


def post(store: Any, db: Any, customer_id: str, event_id: str, reversal_id: str,
         postings: Sequence[object]) -> None:
    """Write an outcome's ledger postings in the caller's transaction (the customer locked)."""
    for posting in postings:
        if isinstance(posting, NewLot):
            _post_lot(store, db, customer_id, event_id, posting)
        elif isinstance(posting, Takeback):
            _post_takeback(store, db, customer_id, event_id, reversal_id, posting)
        elif hasattr(posting, "post_in"):  # a posting that reads the ledger (service.state.tiers.TierCheck)
            posting.post_in(store, db, customer_id)
        else:
            raise InvalidStateInput("outcome.ledger", f"cannot post {type(posting).__name__}")


def post_many(store: Any, db: Any, postings: Sequence[tuple[str, str, Sequence[object]]]) -> None:
    """Write the ledger postings of a batch of applied events (customer, event id, postings) in
    the caller's transaction: plain awards with one ``executemany`` each for lots and lines;
    an award that claws back a debt, in order, one by one (it reads the debts)."""
    at = store._at_param
    lots: list[tuple[Any, ...]] = []
    lines: list[tuple[Any, ...]] = []
    after: list[tuple[str, str, object]] = []  # tier checks read the lots: once they are written
    for customer_id, event_id, items in postings:
        for posting in items:
            if hasattr(posting, "post_in"):
                after.append((customer_id, event_id, posting))
                continue
            if not isinstance(posting, NewLot) or posting.claw_back:
                post(store, db, customer_id, event_id, "", [posting])
                continue
            units = to_units(f"ledger.{posting.currency}", posting.amount)
            if units <= 0:
                continue
            earned = at(check_instant("earned_at", posting.earned_at))
            available = at(posting.available_from)
            expires = at(max(posting.expires_at, posting.available_from))
            lot_id = lot_key(event_id, posting.currency)
            lots.append((lot_id, customer_id, posting.currency, units, earned, available, expires, event_id,
                         posting.policy, posting.rule, posting.revision, 0, texts_json(posting.texts)))
            lines.append((customer_id, posting.currency, lot_id, earned, units, "award", event_id, available,
                          expires))
    if lots:
        db.executemany(_sql(store, "insert_lot"), lots)
        db.executemany(_sql(store, "insert_line"), lines)
    # A batch's checks of one kind together (``post_many_in``: service.state.tiers.TierCheck
    # reads each customer's ledger once for all of them), in order.
    kinds: dict[type, list[tuple[str, Any]]] = {}
    for customer_id, event_id, posting in after:
        if hasattr(posting, "post_many_in"):
            kinds.setdefault(type(posting), []).append((customer_id, posting))
        else:
            post(store, db, customer_id, event_id, "", [posting])
    for kind, checks in kinds.items():
        kind.post_many_in(store, db, checks)  # type: ignore[attr-defined]


def _line(store: Any, db: Any, customer_id: str, currency: str, lot_id: str, at: dt.datetime,
          units: int, kind: LineKind, ref: str, available_from: Any, expires_at: Any) -> None:
    db.execute(_sql(store, "insert_line"), (customer_id, currency, lot_id, store._at_param(at), units, kind,
                                            ref, available_from, expires_at))


def _post_lot(store: Any, db: Any, customer_id: str, event_id: str, lot: NewLot) -> None:
    units = to_units(f"ledger.{lot.currency}", lot.amount)
    if units <= 0:
        return
    earned = check_instant("earned_at", lot.earned_at)
    at = store._at_param
    lot_id = lot_key(event_id, lot.currency)
    # A lot never expires before it becomes available (a pending period longer than the
    # validity): the balance's sums rely on it.
    available, expires = at(lot.available_from), at(max(lot.expires_at, lot.available_from))
    db.execute(_sql(store, "insert_lot"), (lot_id, customer_id, lot.currency, units, at(earned), available,
                                           expires, event_id, lot.policy, lot.rule, lot.revision, 0,
                                           texts_json(lot.texts)))
    _line(store, db, customer_id, lot.currency, lot_id, earned, units, "award", event_id, available, expires)
    if not lot.claw_back:
        return
    left = units
    db.execute(_sql(store, "debts"), (customer_id, lot.currency))
    for debt_id, debt_from, debt_expires, owed in db.fetchall():
        pay = min(left, -int(owed))
        if pay <= 0:
            break
        _line(store, db, customer_id, lot.currency, lot_id, earned, -pay, "clawback", debt_id, available,
              expires)
        _line(store, db, customer_id, lot.currency, debt_id, earned, pay, "clawback", lot_id, debt_from,
              debt_expires)
        left -= pay


def _post_takeback(store: Any, db: Any, customer_id: str, event_id: str, reversal_id: str,
                   takeback: Takeback) -> None:
    at = check_instant("reversal time", takeback.at)
    for currency, amount in takeback.taken.items():
        wanted = to_units(f"ledger.{currency}", amount)
        lot_id = lot_key(event_id, currency)
        db.execute(_sql(store, "lot_remaining"), (lot_id,))
        row = db.fetchone()
        if wanted <= 0 or row is None:
            continue  # an event applied before the ledger existed has no lot to take from
        available, expires, remaining, policy, rule, texts = row
        take = max(min(wanted, int(remaining)), 0)
        if take:
            _line(store, db, customer_id, currency, lot_id, at, -take, "reverse", reversal_id, available,
                  expires)
        # What was spent from the lot (and not already owed) is owed now; what expired is not.
        db.execute(_sql(store, "lot_spent"), (lot_id,))
        spent = -int(db.fetchone()[0])
        db.execute(_sql(store, "event_debts"), (event_id, currency))
        owed_before = -int(db.fetchone()[0])
        owed = min(wanted - take, spent - owed_before)
        if owed <= 0:
            continue
        debt_id = debt_key(reversal_id, currency)
        when = store._at_param(at)
        never = store._at_param(_never())
        db.execute(_sql(store, "insert_lot"), (debt_id, customer_id, currency, -owed, when, when, never,
                                               event_id, policy, rule, "", 1, texts))
        _line(store, db, customer_id, currency, debt_id, at, -owed, "reverse", reversal_id, when, never)


def _never() -> dt.datetime:
    return NEVER


# -- redemptions --------------------------------------------------------------------------------------


def redeem(store: Any, customer_id: str, redemption_id: str, body_digest: str, currency: str,
           amount: Amount, at: dt.datetime,
           respond: Callable[[Sequence[Drawn], Amount], bytes]) -> RedeemResult:
    """Spend ``amount`` of ``currency`` at ``at`` exactly once by ``redemption_id``.

    The customer's available lots are drawn soonest-expiring first; ``respond(drawn,
    available_after)`` makes the response to store and return. The same id with the same
    digest returns the stored response (``replayed``); with another digest AlreadyApplied;
    more than the available balance NotEnoughAvailable, nothing written.
    """
    check_id("customer_id", customer_id)
    check_id("redemption_id", redemption_id)
    check_id("currency", currency)
    when = check_instant("time", at)
    wanted = to_units("amount", amount)
    if wanted <= 0:
        raise InvalidStateInput("amount", "must be more than zero")

    def body(db: Any) -> RedeemResult:
        store._lock_customers(db, [customer_id])
        db.execute(_sql(store, "redemption"), (redemption_id,))
        before = db.fetchone()
        if before is not None:
            if before[1] != body_digest:
                raise AlreadyApplied(redemption_id, before[1], body_digest, what="redemption")
            db.execute(_sql(store, "redemption_lines"), (redemption_id,))
            drawn = tuple(Drawn(r[0], from_units(-int(r[1])), store._at_value(r[2])) for r in db.fetchall())
            return RedeemResult(redemption_id, bytes(before[2]), True, drawn)
        t = store._at_param(when)
        db.execute(_sql(store, "spendable"), (customer_id, currency, t, t))
        lots = db.fetchall()
        db.execute(_sql(store, "debts"), (customer_id, currency))
        owed = sum(int(r[3]) for r in db.fetchall())
        available = sum(int(r[3]) for r in lots) + owed
        if wanted > available:
            raise NotEnoughAvailable(currency, amount, from_units(max(available, 0)) if available >= 0
                                     else from_units(available))
        left = wanted
        drawn: list[Drawn] = []
        for lot_id, available_from, expires_at, remaining in lots:
            take = min(left, int(remaining))
            _line(store, db, customer_id, currency, lot_id, when, -take, "redeem", redemption_id,
                  available_from, expires_at)
            drawn.append(Drawn(lot_id, from_units(take), store._at_value(expires_at)))
            left -= take
            if not left:
                break
        response = respond(drawn, from_units(available - wanted))
        db.execute(_sql(store, "insert_redemption"), (redemption_id, customer_id, body_digest, response))
        return RedeemResult(redemption_id, response, False, tuple(drawn))

    result: RedeemResult = store._run("redeem", body)
    return result


# -- export and import (``loyalty state export`` / ``import``) ---------------------------------------

#: The JSON line types the ledger adds to an export (docs/state.md, "Export format").
EXPORT_TYPES = ("lot", "ledger_line", "redemption")
_LINE_KINDS = ("award", "redeem", "reverse", "expire", "clawback")


def _iso(at: dt.datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def export_rows(store: Any, db: Any, customer_id: str) -> list[dict[str, Any]]:
    """The customer's lots, then their lines in the order they were written, then their
    redemptions, as export lines (amounts as exact decimal text, instants in RFC 3339 UTC)."""
    value = store._at_value
    out: list[dict[str, Any]] = []
    db.execute(_sql(store, "export_lots"), (customer_id,))
    for r in db.fetchall():
        out.append({"type": "lot", "lot_id": r[0], "customer_id": r[1], "currency": r[2],
                    "amount": amount_text(from_units(r[3])), "earned_at": _iso(value(r[4])),
                    "available_from": _iso(value(r[5])), "expires_at": _iso(value(r[6])),
                    "event_id": r[7], "policy": r[8], "rule": r[9], "revision": r[10],
                    "debt": bool(r[11]), "expiry_posted": bool(r[12]),
                    "texts": None if r[13] is None else [list(t) for t in texts_of(r[13]) or ()]})
    db.execute(_sql(store, "export_lines"), (customer_id,))
    for r in db.fetchall():
        out.append({"type": "ledger_line", "lot_id": r[0], "customer_id": r[1], "currency": r[2],
                    "at": _iso(value(r[3])), "amount": amount_text(from_units(r[4])), "kind": r[5],
                    "ref": r[6]})
    db.execute(_sql(store, "export_redemptions"), (customer_id,))
    for r in db.fetchall():
        out.append({"type": "redemption", "redemption_id": r[0], "customer_id": r[1], "body_digest": r[2],
                    "response_b64": base64.b64encode(bytes(r[3])).decode("ascii")})
    return out


def parse_export_line(where: str, obj: Mapping[str, Any],
                      lots: dict[str, tuple[str, str]]) -> tuple[Any, ...]:
    """One ledger export line's values, checked (``lots``: the lot ids read so far in the file,
    with their customer and currency; a line must follow its lot)."""
    kind = obj["type"]
    if kind == "lot":
        lot_id = check_id(f"{where}.lot_id", obj["lot_id"])
        customer = check_id(f"{where}.customer_id", obj["customer_id"])
        currency = check_id(f"{where}.currency", obj["currency"])
        lots[lot_id] = (customer, currency)
        instants = [check_instant(f"{where}.{name}", dt.datetime.fromisoformat(obj[name]))
                    for name in ("earned_at", "available_from", "expires_at")]
        return (lot_id, customer, currency, to_units(f"{where}.amount", parse_amount(obj["amount"])),
                *instants, check_id(f"{where}.event_id", obj["event_id"]), str(obj["policy"]),
                str(obj["rule"]), str(obj["revision"]), int(bool(obj["debt"])),
                int(bool(obj.get("expiry_posted", False))), _texts_param(f"{where}.texts", obj.get("texts")))
    if kind == "ledger_line":
        lot_id = check_id(f"{where}.lot_id", obj["lot_id"])
        if lot_id not in lots:
            raise InvalidStateInput(f"{where}.lot_id",
                                    f"lot {lot_id!r} is not in the export before this line")
        if lots[lot_id] != (obj["customer_id"], obj["currency"]):
            raise InvalidStateInput(where, f"customer and currency differ from lot {lot_id!r}'s")
        if obj["kind"] not in _LINE_KINDS:
            raise InvalidStateInput(f"{where}.kind", f"must be one of {', '.join(_LINE_KINDS)}")
        at = check_instant(f"{where}.at", dt.datetime.fromisoformat(obj["at"]))
        return (at, to_units(f"{where}.amount", parse_amount(obj["amount"])), obj["kind"], str(obj["ref"]),
                lot_id)
    if kind == "redemption":
        return (check_id(f"{where}.redemption_id", obj["redemption_id"]),
                check_id(f"{where}.customer_id", obj["customer_id"]),
                check_id(f"{where}.body_digest", obj["body_digest"]),
                base64.b64decode(obj["response_b64"], validate=True))
    raise InvalidStateInput(f"{where}.type", f"unknown line type {kind!r}")


def _texts_param(field: str, value: Any) -> str | None:
    texts = check_texts(field, value)
    return None if texts is None else texts_json(texts)


def import_row(store: Any, db: Any, kind: str, values: tuple[Any, ...]) -> int:
    """Write one parsed ledger export line in the import's transaction; rows already present
    stay (the row count added: 0 or 1)."""
    at = store._at_param
    if kind == "lot":
        params = (*values[:4], at(values[4]), at(values[5]), at(values[6]), *values[7:])
        db.execute(_sql(store, "import_lot"), params)
    elif kind == "ledger_line":
        db.execute(_sql(store, "import_line"), (at(values[0]), *values[1:]))
    else:
        db.execute(_sql(store, "import_redemption"), values)
    return max(int(db.rowcount), 0)


# -- expiry ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpiryReport:
    """What one run of the expiry job did: lots looked at, lines posted, units expired per currency."""

    lots_seen: int
    lines_posted: int
    expired: Mapping[str, Amount]


def expire(store: Any, as_of: dt.datetime, *, page: int = 10_000) -> ExpiryReport:
    """Post an ``expire`` line for every lot expired by ``as_of`` with something left.

    Idempotent: a lot's expiry line is unique, and a lot with nothing left gets none, so a
    second run (or two running together) posts nothing more. A lot handled is marked
    (``expiry_posted``: nothing can add to an expired lot, so it never needs another look),
    and a run reads only the unmarked: a second run reads nothing. Lots are read a page at a
    time, each page one transaction with its customers locked, so memory stays bounded by
    ``page``.
    """
    horizon = check_instant("as_of", as_of)
    at = store._at_param
    seen = posted = 0
    expired: dict[str, int] = {}

    def one_page(db: Any) -> int:
        nonlocal posted
        db.execute(_sql(store, "expired_page"), (at(horizon), page))
        rows = db.fetchall()
        if not rows:
            return 0
        store._lock_customers(db, sorted({r[1] for r in rows}))
        # Summed after the lock: what a redemption or reversal committed meanwhile is in.
        ids = store._ids_param([r[0] for r in rows])
        db.execute(_sql(store, "page_sums"), (ids,))
        remaining = {lot_id: int(units) for lot_id, units in db.fetchall()}
        lines = []
        for lot_id, customer_id, currency, available_from, expires_at in rows:
            left = remaining.get(lot_id, 0)
            if left > 0:
                lines.append((customer_id, currency, lot_id, expires_at, -left, "expire", "", available_from,
                              expires_at))
                expired[currency] = expired.get(currency, 0) + left
        if lines:
            db.executemany(_sql(store, "insert_line"), lines)
            posted += len(lines)
        db.execute(_sql(store, "mark_expired"), (ids,))
        return len(rows)

    while True:
        count = store._run("expire", one_page)
        seen += count
        if count < page:
            break
    return ExpiryReport(seen, posted, {c: from_units(u) for c, u in sorted(expired.items())})


# -- reading -------------------------------------------------------------------------------------


def balance(store: Any, customer_id: str, as_of: dt.datetime, *,
            use_index: bool = True) -> list[CurrencyBalance]:
    """The customer's balance per currency at ``as_of``, from the lines up to it (a read).

    A customer with many lines asked at or after their last line is answered from a
    :class:`_LineIndex` of their lines, brought up to date (by the lines after the last one it
    read) in the same read snapshot, so it is the same sum of the same lines; otherwise one SQL
    aggregate over the lines up to ``as_of`` (always, with ``use_index`` False: the tests hold
    the two to the same answers).
    """
    result: list[CurrencyBalance] = store._reading("balance", balance_body(store, customer_id, as_of,
                                                                          use_index=use_index))
    return result


def balance_body(store: Any, customer_id: str, as_of: dt.datetime, *,
                 use_index: bool = True) -> Callable[[Any], list[CurrencyBalance]]:
    """:func:`balance`'s read, checked, as a function of an open read (for a caller that
    reads more in the same snapshot: :func:`service.state.tiers.balance_and_status`)."""
    check_id("customer_id", customer_id)
    when = check_instant("as_of", as_of)
    t = store._at_param(when)
    ends = [store._at_param(when + dt.timedelta(days=days)) for days in EXPIRING_DAYS]
    indexes = _indexes(store)

    def body(db: Any) -> list[CurrencyBalance]:
        db.execute(_sql(store, "last_line"), (customer_id,))
        last = db.fetchone()[0]
        if last is None:
            return []
        index = indexes.get(customer_id) if use_index else None
        if use_index and (index is not None or _worth_indexing(store, db, customer_id)):
            if index is None:
                index = indexes.put(customer_id, _LineIndex())
            with index.lock:
                if index.seq > int(last):  # brought up to a newer snapshot than this read's
                    index, grown = _LineIndex(), 0
                    index.catch_up(store, db, customer_id, int(last))
                else:
                    grown = index.catch_up(store, db, customer_id, int(last))
                # The index holds every line up to ``last``: it answers for any instant at or
                # after the latest of them; an earlier one is the SQL aggregate's.
                answer = index.balance(t, ends) if index.latest <= t else None
            indexes.grew(grown)
            if answer is not None:
                return answer
        db.execute(_sql(store, "balance"), (t, t, t, t, ends[0], t, ends[1], t, ends[2], customer_id, t))
        return [CurrencyBalance(r[0], from_units(r[1]), from_units(r[2]), from_units(r[3]),
                                (from_units(r[4]), from_units(r[5]), from_units(r[6])))
                for r in db.fetchall()]

    return body


#: Customers with at least this many lines get a line index (fewer are summed in SQL at once).
INDEX_FROM_LINES = 500
#: The most lines the indexes of one store hold together (least recently used dropped first):
#: about 340 bytes a line, so about 34 MB.
INDEX_MAX_LINES = 100_000


def _worth_indexing(store: Any, db: Any, customer_id: str) -> bool:
    db.execute(_sql(store, "lines_count"), (customer_id, INDEX_FROM_LINES))
    return int(db.fetchone()[0]) >= INDEX_FROM_LINES


class _CurrencyLines:
    """One currency's lines as two sorted columns with prefix sums: by ``available_from`` and
    by ``expires_at`` (a lot never expires before it is available, so one sum each answers)."""

    __slots__ = ("_sums", "available", "expires", "total")

    def __init__(self) -> None:
        self.available: list[tuple[Any, int]] = []
        self.expires: list[tuple[Any, int]] = []
        self.total = 0
        self._sums: tuple[list[Any], list[int], list[Any], list[int]] | None = None

    def add(self, available_from: Any, expires_at: Any, units: int) -> None:
        self.available.append((available_from, units))
        self.expires.append((expires_at, units))
        self.total += units
        self._sums = None

    def sums(self) -> tuple[list[Any], list[int], list[Any], list[int]]:
        if self._sums is None:
            self.available.sort(key=_first)
            self.expires.sort(key=_first)
            self._sums = ([k for k, _ in self.available], [0, *accumulate(u for _, u in self.available)],
                          [k for k, _ in self.expires], [0, *accumulate(u for _, u in self.expires)])
        return self._sums

    def balance(self, currency: str, t: Any, ends: Sequence[Any]) -> CurrencyBalance:
        available_keys, available_sums, expiry_keys, expiry_sums = self.sums()
        became_available = available_sums[bisect_right(available_keys, t)]
        expired = expiry_sums[bisect_right(expiry_keys, t)]
        expiring = tuple(from_units(expiry_sums[bisect_right(expiry_keys, end)] - expired) for end in ends)
        return CurrencyBalance(currency, from_units(became_available - expired),
                               from_units(self.total - became_available), from_units(self.total),
                               expiring)  # type: ignore[arg-type]


def _first(pair: tuple[Any, int]) -> Any:
    return pair[0]


class _LineIndex:
    """A customer's lines up to ``seq``, by currency: derived from the lines, never stored.

    Lines are appended under the customer's lock, so a customer's sequence numbers commit in
    order and the lines after the last one read are exactly the ones to add.
    """

    __slots__ = ("currencies", "latest", "lock", "seq", "size")

    def __init__(self) -> None:
        self.seq = 0
        #: The latest instant of the lines read (None before any).
        self.latest: Any = None
        self.currencies: dict[str, _CurrencyLines] = {}
        self.size = 0
        self.lock = threading.Lock()

    def catch_up(self, store: Any, db: Any, customer_id: str, last: int) -> int:
        """Add the lines after ``seq`` up to ``last``; returns how many were added."""
        if last <= self.seq:
            return 0
        db.execute(_sql(store, "lines_after"), (customer_id, self.seq, last))
        added = 0
        for seq, currency, available_from, expires_at, units, at in db.fetchall():
            if self.latest is None or at > self.latest:
                self.latest = at
            lines = self.currencies.get(currency)
            if lines is None:
                lines = self.currencies[currency] = _CurrencyLines()
            lines.add(available_from, expires_at, int(units))
            self.seq = max(self.seq, int(seq))
            added += 1
        self.size += added
        return added

    def balance(self, t: Any, ends: Sequence[Any]) -> list[CurrencyBalance]:
        return [self.currencies[c].balance(c, t, ends) for c in sorted(self.currencies)]


class _Indexes:
    """The line indexes of one store, least recently used dropped past ``INDEX_MAX_LINES``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_customer: OrderedDict[str, _LineIndex] = OrderedDict()
        self._lines = 0

    def get(self, customer_id: str) -> _LineIndex | None:
        with self._lock:
            index = self._by_customer.get(customer_id)
            if index is not None:
                self._by_customer.move_to_end(customer_id)
            return index

    def put(self, customer_id: str, index: _LineIndex) -> _LineIndex:
        with self._lock:
            found = self._by_customer.setdefault(customer_id, index)
            self._by_customer.move_to_end(customer_id)
            return found

    def grew(self, lines: int) -> None:
        """Count lines added to an index; drop the least recently used past the bound."""
        with self._lock:
            self._lines += lines
            while self._lines > INDEX_MAX_LINES and len(self._by_customer) > 1:
                _, dropped = self._by_customer.popitem(last=False)
                self._lines -= dropped.size


_STORE_INDEXES: weakref.WeakKeyDictionary[Any, _Indexes] = weakref.WeakKeyDictionary()
_STORE_INDEXES_LOCK = threading.Lock()


def _indexes(store: Any) -> _Indexes:
    with _STORE_INDEXES_LOCK:
        found = _STORE_INDEXES.get(store)
        if found is None:
            found = _STORE_INDEXES[store] = _Indexes()
        return found


def lots(store: Any, customer_id: str) -> list[Lot]:
    """The customer's lots, oldest first, each with what is left of it (all lines)."""
    check_id("customer_id", customer_id)
    value = store._at_value

    def body(db: Any) -> list[Lot]:
        db.execute(_sql(store, "lots"), (customer_id,))
        return [Lot(r[0], r[1], r[2], from_units(r[3]), value(r[4]), value(r[5]), value(r[6]), r[7], r[8],
                    r[9], r[10], bool(r[11]), from_units(r[12]), texts_of(r[13])) for r in db.fetchall()]

    result: list[Lot] = store._reading("lots", body)
    return result


def statement(store: Any, customer_id: str, start: dt.datetime, end: dt.datetime, *,
              page_size: int = 100, page_token: str = "") -> StatementPage:
    """The customer's lines with ``start <= at < end`` in order, a page at a time, each with the
    running balance of its currency (every line before it included, from the first ever)."""
    check_id("customer_id", customer_id)
    lo = check_instant("from", start)
    hi = check_instant("to", end)
    if not 1 <= page_size <= MAX_PAGE:
        raise InvalidStateInput("page_size", f"must be from 1 to {MAX_PAGE}")
    if page_token:
        try:
            micros, seq = (int(p) for p in page_token.split(":"))
            cursor_at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
        except (ValueError, OverflowError):
            raise InvalidStateInput("page_token", "is not a token this service returned") from None
    else:
        cursor_at, seq = lo - dt.timedelta(microseconds=1), 2**62
    value = store._at_value

    def body(db: Any) -> StatementPage:
        c = store._at_param(cursor_at)
        db.execute(_sql(store, "opening"), (customer_id, c, c, seq))
        opening = {r[0]: int(r[1]) for r in db.fetchall()}
        db.execute(_sql(store, "statement"), (customer_id, store._at_param(hi), c, c, seq, page_size + 1))
        rows = db.fetchall()
        more = len(rows) > page_size
        running = dict(opening)
        out = []
        read: dict[str, Texts | None] = {}  # a lot's lines share its texts: read each once
        for r in rows[:page_size]:
            units = int(r[5])
            running[r[2]] = running.get(r[2], 0) + units
            stored = r[11]
            if stored is None:
                texts = None
            else:
                texts = read.get(stored)
                if texts is None:
                    texts = read[stored] = texts_of(stored)
            line = Line(int(r[0]), r[1], r[2], r[3], value(r[4]), from_units(units), r[6], r[7], r[8], r[9],
                        r[10], texts)
            out.append((line, from_units(running[r[2]])))
        token = ""
        if more:
            last = out[-1][0]
            micros = (last.at - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
            token = f"{micros}:{last.seq}"
        return StatementPage(tuple(out), {k: from_units(v) for k, v in opening.items()}, token)

    result: StatementPage = store._reading("statement", body)
    return result
