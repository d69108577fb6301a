"""``export`` and ``import_`` carry the ledger: lots, lines in the order they were written, and
redemptions, on SQLite and PostgreSQL. A store moved with them answers every balance and
statement as before, replays its redemptions, and a second import adds nothing."""

from __future__ import annotations

import io
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_ledger import at, award, redeem, reverse

from service.state import InvalidStateInput, StateStore, open_store
from service.state import ledger as L

_targets = itertools.count(1)


@pytest.fixture
def target(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[StateStore]:
    """A second fresh store on the same backend, to import into."""
    if backend == "sqlite":
        url = str(tmp_path / "target.sqlite3")
    else:
        server = request.getfixturevalue("postgres")
        schema = f"target{next(_targets)}_{os.getpid()}"
        server.sql(f"CREATE SCHEMA {schema}")
        url = server.url(schema)
    opened = open_store(url)
    try:
        yield opened
    finally:
        opened.close()


def history(store: StateStore) -> None:
    """Two customers: awards (one pending, one short-lived), a redemption drawing two lots, a
    reversal of spent points leaving a debt that a later award claws back, an expiry run."""
    award(store, "c", "e1", 100, 0, lasts=100)
    award(store, "c", "e2", 50, 0, lasts=50)
    award(store, "c", "e3", 30, 0, lasts=300, pending=20)
    redeem(store, "c", "r1", 70, 10)            # e2's 50 and 20 of e1
    reverse(store, "e2", "x1", 50, 12)          # all spent: a debt of 50
    award(store, "c", "e4", 80, 15, claw_back=True)  # pays the debt: 30 left of it
    L.expire(store, at(120))                    # e1's 80 left expire on day 100
    award(store, "d", "f1", 7, 1, lasts=None)


def snapshot(store: StateStore) -> dict[str, object]:
    """Every figure a caller can read of the ledger: balances at several instants, the whole
    statement (lines without their sequence numbers, running balances, opening), the lots."""
    out: dict[str, object] = {}
    for customer in ("c", "d"):
        for day in (5, 11, 13, 16, 21, 101, 130):
            out[f"{customer}@{day}"] = L.balance(store, customer, at(day))
        page = L.statement(store, customer, at(-1), at(400), page_size=L.MAX_PAGE)
        out[f"{customer} lines"] = [
            (line.at, line.currency, line.lot_id, line.amount, line.kind, line.ref, line.event_id,
             line.policy, line.rule, running) for line, running in page.lines]
        out[f"{customer} lots"] = L.lots(store, customer)
    out["c@3"] = L.balance(store, "c", at(3))
    return out


def test_an_export_imported_into_an_empty_store_answers_every_balance_and_statement_the_same(
        store: StateStore, target: StateStore) -> None:
    """Worked by hand: on day 16 c has e3's 30 pending and 110 available (e1's 80 left until day
    100, e4's 80 less the 50 clawed back). Every figure of the copy equals the source's, and
    the import adds exactly the rows the export wrote: lots, lines and the redemption too."""
    history(store)
    assert (L.balance(store, "c", at(16))[0].available, L.balance(store, "c", at(16))[0].pending) == (110, 30)
    out = io.StringIO()
    store.export(out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    kinds = [r["type"] for r in rows if r["type"] in L.EXPORT_TYPES]
    # lots: e1 e2 e3 e4 + the debt, f1; lines: 4 + 1 awards, 2 redeem, 1 reverse + 1 debt,
    # 2 clawback, 1 expire; one redemption.
    assert (kinds.count("lot"), kinds.count("ledger_line"), kinds.count("redemption")) == (6, 12, 1)
    assert {r["amount"] for r in rows if r["type"] == "lot" and r["debt"]} == {"-50"}
    added = target.import_(out.getvalue().splitlines())
    assert added == len(rows)  # every event, entry, reversal, lot, line and redemption
    assert snapshot(target) == snapshot(store)
    assert target.import_(out.getvalue().splitlines()) == 0
    assert snapshot(target) == snapshot(store)
    # The redemption came with it: a retry replays, it does not spend again.
    again = redeem(target, "c", "r1", 70, 10)
    assert again.replayed and again.response == redeem(store, "c", "r1", 70, 10).response
    # The expiry already posted stays posted: a run on the copy posts nothing.
    assert L.expire(target, at(120)).lines_posted == 0
    assert snapshot(target) == snapshot(store)


def test_an_import_into_a_store_that_has_part_of_the_ledger_keeps_what_is_there(
        store: StateStore, target: StateStore) -> None:
    """The first half of a history exported and imported, then the whole: the copy ends equal,
    and the rows already present are not added again."""
    award(store, "c", "e1", 100, 0, lasts=100)
    first = io.StringIO()
    store.export(first)
    target.import_(first.getvalue().splitlines())
    award(store, "c", "e2", 50, 1)
    redeem(store, "c", "r1", 120, 2)
    whole = io.StringIO()
    count = store.export(whole)
    assert target.import_(whole.getvalue().splitlines()) == count - 3  # e1's event, lot, award line
    assert snapshot(target)["c lines"] == snapshot(store)["c lines"]
    assert snapshot(target)["c@3"] == snapshot(store)["c@3"] != []


@pytest.mark.parametrize(("line", "message"), [
    ({"type": "ledger_line", "lot_id": "nowhere", "customer_id": "c", "currency": "points",
      "at": "2026-01-01T00:00:00Z", "amount": "5", "kind": "award", "ref": "e"},
     "line 1.lot_id: lot 'nowhere' is not in the export before this line"),
    ({"type": "redemption", "redemption_id": "r", "customer_id": "c", "body_digest": "d",
      "response_b64": "***"},
     "line 1: not an exported state line: Only base64 data is allowed"),
])
def test_a_ledger_line_that_cannot_be_imported_is_refused_naming_it(
        target: StateStore, line: dict[str, str], message: str) -> None:
    """A line before its lot, a response that is not base64: refused, nothing written."""
    with pytest.raises(InvalidStateInput) as refused:
        target.import_([json.dumps(line)])
    assert str(refused.value) == message
    assert L.balance(target, "c", at(1)) == []
