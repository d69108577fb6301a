"""A lot keeps its rule's customer-facing texts, whatever the caller of Apply asked, on SQLite
and PostgreSQL: statements (``GetStatement``'s ``says``, ``loyalty state statement``) read
them in English and French; Apply's response is the one it always was, and a retry returns it
byte for byte; a store from before migration 0005 keeps its lots' words; export and import
carry the texts.

Worked by hand from the bundled airline programme: the business-class JFK-LHR flight of
2026-03-01 earns a GOLD member of 2012 8,949 miles, and the lot names ``flown_miles``, the
first rule that fired (3,442 of them), whose texts are
``"{miles} miles for your flight from {event.origin} to {event.destination}"`` and its
``fr`` twin.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from collections.abc import Iterator

import grpc
import pytest
from serving import LiveServer, stamp

from dsl.policyset import load_source
from service import apply as apply_module
from service.apply import REPLAYED_TRUE, stored_apply, stored_response, text_kinds
from service.cli import main
from service.cli.state import line_texts
from service.client import purchase
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from service.ledger import statement_lines
from service.server import create_server
from service.state import InvalidStateInput, Outcome, StateStore, open_store
from service.state import ledger as L
from service.state.migrate import latest
from service.store import PolicyStore
from tests.service.conftest import POLICIES, gold_customer, jfk_lhr

EARNED = "8949"
SAID = "3442 miles for your flight from JFK to LHR"
SAID_FR = "3442 miles pour votre vol de JFK à LHR"
TEXTS = (("", SAID), ("fr", SAID_FR))
APPLY = "/loyalty.v1.LoyaltyRules/Apply"


class Served(LiveServer):
    """A real server over the bundled policies and a fresh store, and a channel to it."""

    def apply_bytes(self, request: pb.ApplyRequest) -> bytes:
        """Apply's response exactly as the server sent it (no parsing)."""
        assert self.channel is not None
        call = self.channel.unary_unary(APPLY)
        raw: bytes = call(request.SerializeToString(), timeout=10)
        return raw

    def statement(self, language: str = "") -> list[pb.StatementLine]:
        response = self.stub.GetStatement(pb.GetStatementRequest(
            customer_id="c-1", to=stamp("2027-01-01T00:00:00Z"), language=language,
            **{"from": stamp("2026-01-01T00:00:00Z")}))
        return list(response.lines)


@pytest.fixture
def served(store_url: str) -> Iterator[Served]:
    with Served.started(store_url) as server:
        yield server


def test_apply_without_explain_keeps_the_rules_texts_and_statements_read_them(
        served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    """Apply without explain: its decision is Evaluate's (no reasons), yet the lot keeps
    flown_miles' texts filled in; GetStatement says them in the language asked (a regional tag
    reads its language's, none the first) and `loyalty state statement --json` prints them."""
    raw = served.apply_bytes(pb.ApplyRequest(customer=gold_customer(), event=jfk_lhr()))
    applied = pb.ApplyResponse.FromString(raw)
    evaluated = served.stub.Evaluate(pb.EvaluateRequest(customer=gold_customer(), event=jfk_lhr()))
    assert applied.decision.awards["miles"] == EARNED and not applied.decision.reasons
    assert applied.decision.SerializeToString() == evaluated.decision.SerializeToString()
    (event,) = served.state.events("c-1")
    assert stored_response(event.decision) == raw  # what is kept is what was sent
    (lot,) = L.lots(served.state, "c-1")
    assert (lot.rule, lot.texts) == ("flown_miles", TEXTS)

    for language, said in (("", SAID), ("en", SAID), ("fr", SAID_FR), ("fr-CA", SAID_FR)):
        (line,) = served.statement(language)
        assert (line.kind, line.amount, line.rule, line.says) == ("award", EARNED, "flown_miles", said)

    for language, said in (("en", SAID), ("fr", SAID_FR)):
        capsys.readouterr()
        assert main(["state", "statement", "c-1", "--to", "2026-12-31", "--state", served.url, "--json",
                     "--language", language]) == 0
        (line,) = json.loads(capsys.readouterr().out)["lines"]
        assert (line["kind"], line["amount"], line["text"]) == ("award", EARNED, said)


def test_a_retry_returns_the_stored_response_byte_for_byte(served: Served) -> None:
    """The explanation Apply made for the texts is in neither the response nor the store: the
    retry's bytes are the first response's with ``replayed`` appended, and it writes no lot."""
    request = pb.ApplyRequest(customer=gold_customer(), event=jfk_lhr())
    first = served.apply_bytes(request)
    again = served.apply_bytes(request)
    assert again == first + REPLAYED_TRUE
    assert pb.ApplyResponse.FromString(again).replayed
    assert [lot.amount for lot in L.lots(served.state, "c-1")] == [8949]


def test_apply_with_explain_and_apply_batch_keep_the_same_texts(served: Served) -> None:
    """The caller's explain still gets its reasons (flown_miles says its first text), and
    ApplyBatch without explain keeps the texts with each lot too, its results without reasons."""
    explained = served.stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=jfk_lhr(), explain=True))
    assert [r.says for r in explained.decision.reasons if r.rule == "flown_miles"] == [SAID]
    batch = served.stub.ApplyBatch(pb.ApplyBatchRequest(items=[
        pb.BatchItem(correlation_id="b", customer=gold_customer(),
                     event=jfk_lhr("e-2", time="2026-03-02T09:30:00Z"))]))
    (result,) = batch.results
    assert result.applied.decision.awards["miles"] == EARNED and not result.applied.decision.reasons
    assert [lot.texts for lot in L.lots(served.state, "c-1")] == [TEXTS, TEXTS]
    assert [line.says for line in served.statement("fr")] == [SAID_FR, SAID_FR]


def test_only_events_whose_policies_have_texts_make_apply_explain() -> None:
    """``has_texts`` holds when a rule says something, and ``text_kinds`` names the kinds of
    the policies that do: Apply explains for the lots only for those."""
    plain = load_source("policy p\n  on flight\n  rule base:\n    award 1 miles\n")
    said = load_source('policy p\n  on flight\n  rule base:\n    award 1 miles\n    says "A mile"\n\n'
                       "policy q\n  on purchase\n  rule base:\n    award 1 miles\n")
    assert (plain.has_texts, said.has_texts) == (False, True)
    assert (text_kinds(plain), text_kinds(said)) == (frozenset(), frozenset({"flight"}))


def test_a_lot_from_before_migration_0005_keeps_its_words(store_url: str, backend: str) -> None:
    """A store at version 4 with two lots (one of an Apply that asked explain, its stored
    reasons saying "Old words"; one without) migrates: both lots have no texts (NULL), the
    first reads its stored words, the second its rule's name; a lot written afterwards keeps
    its texts; the export says ``"texts": null`` for the old and carries the new."""
    previous = latest(backend) - 1
    old = open_store(store_url, migrate_to=previous)
    try:
        explained = pb.ApplyResponse()
        explained.decision.reasons.add(policy="earn", rule="base_points", kind="fired", says="Old words")
        for event_id, response in (("e-1", explained), ("e-2", pb.ApplyResponse())):
            stored = stored_apply(response.SerializeToString(), pb.Event())
            old.apply("c-1", event_id, "d-" + event_id, lambda r, s=stored: Outcome(s, ()))
            _old_lot(old, "c-1", event_id, day=int(event_id[-1]))
    finally:
        old.close()
    new = open_store(store_url)
    try:
        assert new.schema_version() == latest(backend)  # type: ignore[attr-defined]
        assert [lot.texts for lot in L.lots(new, "c-1")] == [None, None]
        start, end = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
        lot = L.NewLot("points", 5, _day(3), _day(3), L.NEVER, "earn", "base_points", "r", texts=TEXTS)
        new.apply("c-1", "e-3", "d-e-3", lambda r: Outcome(b"", (), [lot]))
        lines = statement_lines(new, "c-1", start, end)
        assert line_texts(new, "c-1", lines, "fr") == ["Old words", "Base points", SAID_FR]
        policies = PolicyStore(POLICIES)
        assert policies.load()
        server, port = create_server(store=policies, state=new)
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                served = Served(pb_grpc.LoyaltyRulesStub(channel), channel, new, store_url)
                assert [line.says for line in served.statement("fr")] == ["Old words", "Base points", SAID_FR]
        finally:
            server.stop(0).wait(5)
        out = io.StringIO()
        new.export(out)
        rows = [json.loads(row) for row in out.getvalue().splitlines()]
        assert [r["texts"] for r in rows if r["type"] == "lot"] == [None, None, [list(t) for t in TEXTS]]
    finally:
        new.close()


def _day(n: int) -> dt.datetime:
    return dt.datetime(2026, 3, n, tzinfo=dt.UTC)


def _old_lot(store: StateStore, customer: str, event_id: str, day: int) -> None:
    """A lot and its award line as version 4 wrote them (no texts column), parameterised."""
    lot_id = L.lot_key(event_id, "points")
    at = store._at_param  # type: ignore[attr-defined]
    earned, never = at(_day(day)), at(L.NEVER)
    lot_sql = ("INSERT INTO ledger_lots (lot_id, customer_id, currency, amount, earned_at, "
               "available_from, expires_at, event_id, policy, rule, revision, debt) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    line_sql = ("INSERT INTO ledger_lines (customer_id, currency, lot_id, at, amount, kind, ref, "
                "available_from, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
    if store.backend == "postgresql":  # type: ignore[attr-defined]
        lot_sql, line_sql = lot_sql.replace("?", "%s"), line_sql.replace("?", "%s")

    def body(db: object) -> None:
        db.execute(lot_sql, (lot_id, customer, "points", 10 * L.SCALE, earned, earned, never, event_id,  # type: ignore[attr-defined]
                             "earn", "base_points", "r", 0))
        db.execute(line_sql, (customer, "points", lot_id, earned, 10 * L.SCALE, "award", event_id,  # type: ignore[attr-defined]
                              earned, never))

    store._run("test", body)  # type: ignore[attr-defined]


def test_export_and_import_carry_a_lots_texts(store: StateStore, store_url: str, backend: str,
                                              request: pytest.FixtureRequest) -> None:
    """A lot with texts and one without, exported and imported into a fresh store on the same
    backend: the copy's lots keep them (and an empty list stays empty)."""
    with_texts = L.NewLot("points", 5, _day(1), _day(1), L.NEVER, "earn", "base_points", "r", texts=TEXTS)
    without = L.NewLot("points", 7, _day(2), _day(2), L.NEVER, "earn", "quiet", "r")
    store.apply("c-1", "e-1", "d-1", lambda r: Outcome(b"", (), [with_texts]))
    store.apply("c-1", "e-2", "d-2", lambda r: Outcome(b"", (), [without]))
    out = io.StringIO()
    store.export(out)
    target = _fresh(request, backend, store_url)
    try:
        assert target.import_(out.getvalue().splitlines()) > 0
        assert [lot.texts for lot in L.lots(target, "c-1")] == [TEXTS, ()]
        assert L.lots(target, "c-1") == L.lots(store, "c-1")
    finally:
        target.close()


@pytest.mark.parametrize(("texts", "message"), [
    ("words", "line 2.texts: must be a list of at most 8 [language, text] pairs"),
    ([["fr"]], "line 2.texts[0]: must be a [language, text] pair of strings"),
    ([["fr;", "x"]], "line 2.texts[0]: 'fr;' is not a language tag such as \"fr\" or \"pt_BR\""),
    ([["", "x" * 501]], "line 2.texts[0]: a text has at most 500 characters"),
])
def test_an_import_refuses_texts_a_rule_cannot_have(store: StateStore, texts: object, message: str) -> None:
    """Texts that are not (language, text) pairs within the language's bounds: refused naming
    the line and the pair, nothing written."""
    lot = {"type": "lot", "lot_id": "e3:e-1:points", "customer_id": "c-1", "currency": "points",
           "amount": "5", "earned_at": "2026-03-01T00:00:00Z", "available_from": "2026-03-01T00:00:00Z",
           "expires_at": "9999-12-31T00:00:00Z", "event_id": "e-1", "policy": "earn", "rule": "base",
           "revision": "r", "debt": False, "expiry_posted": False, "texts": texts}
    event = {"type": "event", "event_id": "e-1", "customer_id": "c-1", "body_digest": "d", "decision": ""}
    with pytest.raises(InvalidStateInput) as refused:
        store.import_([json.dumps(event), json.dumps(lot)])
    assert str(refused.value) == message
    assert L.lots(store, "c-1") == []


_copies = iter(range(1, 10**6))


def _fresh(request: pytest.FixtureRequest, backend: str, store_url: str) -> StateStore:
    """A second fresh store on the same backend."""
    if backend == "sqlite":
        return open_store(store_url + f".copy{next(_copies)}")
    server = request.getfixturevalue("postgres")
    schema = f"texts{next(_copies)}_{os.getpid()}"
    server.sql(f"CREATE SCHEMA {schema}")
    return open_store(server.url(schema))


def test_apply_explains_only_the_events_whose_policies_have_texts(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the bundled set only the airline's rules say something: a purchase is evaluated as
    before (no explain), a flight explained for its lot's texts, in Apply and in ApplyBatch."""
    asked: list[tuple[str, bool]] = []
    real = apply_module.reads_and_counts

    def spy(policy_set: object, customer: dict[str, object], event: dict[str, object], state: object,
            **kwargs: bool) -> object:
        asked.append((str(event["kind"]), kwargs.get("explain", False)))
        return real(policy_set, customer, event, state, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(apply_module, "reads_and_counts", spy)
    shop = purchase("p-1", time="2026-03-01T12:00:00Z", amount="25.00")
    served.stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=shop))
    served.stub.Apply(pb.ApplyRequest(customer=gold_customer(), event=jfk_lhr()))
    served.stub.ApplyBatch(pb.ApplyBatchRequest(items=[
        pb.BatchItem(customer=gold_customer(), event=purchase("p-2", time="2026-03-02T12:00:00Z",
                                                              amount="25.00")),
        pb.BatchItem(customer=gold_customer(), event=jfk_lhr("e-2", time="2026-03-02T09:30:00Z"))]))
    assert asked == [("purchase", False), ("flight", True), ("purchase", False), ("flight", True)]


def test_get_statement_refuses_a_language_that_is_not_a_tag(served: Served) -> None:
    """A language of other characters, or longer than 35, is INVALID_ARGUMENT naming it."""
    for language in ("fr;drop", "x" * 36):
        with pytest.raises(grpc.RpcError) as refused:
            served.statement(language)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details().startswith(
            "language: must be a language tag such as fr or pt-BR, of at most 35 letters")
