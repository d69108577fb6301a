"""``loyalty state``: show, export, import and compact on a store the real server wrote."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from test_apply_rpcs import Served, basket, served  # noqa: F401  # the fixture

from service.cli import main
from service.cli.state import horizon
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.state import open_store


def test_show_export_import_and_compact(served: Served, store_url: str, tmp_path: Path,  # noqa: F811
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """show lists counters per window, ledger balances and events with reversals; an export
    imported into an empty store shows the same; importing twice adds nothing; compact deletes
    old entries only."""
    served.apply(basket())
    served.apply(basket("p-2", "2026-03-01T11:00:00Z", "200.00"))
    served.reverse("p-1", "r-1", pb.ReturnedItem(sku="B"))
    assert main(["state", "show", "c-1", "--state", store_url, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["at"] == "2026-03-01T11:00:00Z"
    assert doc["counters"]["quarter_spend"]["quarter"] == "1100.00"  # 1400 + 100 - 400
    assert doc["counters"]["daily_bonus"]["day"] == "1"
    assert [e["event_id"] for e in doc["events"]] == ["p-1", "p-2"]
    assert doc["events"][0]["reversals"][0]["reversed"]["cashback"] == "20.00"  # 70.00 x 400/1400
    # The ledger, as of now: the bonus 100 less 28 (100 x 400/1400 rounded toward zero); the
    # cashback 70.00 + 5.00 (the quarter's cap) less 20.00.
    assert doc["balances"]["bonus"] == {"available": "72", "pending": "0"}
    assert doc["balances"]["cashback"] == {"available": "55", "pending": "0"}
    assert main(["state", "show", "c-1", "--state", store_url]) == 0
    text = capsys.readouterr().out
    assert "quarter_spend: day=1100.00" in text and "reversed by r-1" in text
    assert "    cashback: available 55, pending 0\n" in text
    exported = tmp_path / "state.jsonl"
    assert main(["state", "export", str(exported), "--state", store_url]) == 0
    copy = str(tmp_path / "copy.sqlite3")
    assert main(["state", "import", str(exported), "--state", copy]) == 0
    assert main(["state", "import", str(exported), "--state", copy]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "imported 0 rows"
    assert main(["state", "show", "c-1", "--state", copy, "--json"]) == 0
    moved = json.loads(capsys.readouterr().out)
    del moved["balances_at"], doc["balances_at"]  # the clock's now, read twice
    assert moved == doc
    assert main(["state", "compact", "--older-than", "2026-03-01T10:30:00Z", "--state", copy]) == 0
    assert capsys.readouterr().out.startswith("deleted 3 entries before 2026-03-01T10:30:00Z")
    store = open_store(copy)
    try:
        assert {e.event_id for e in store.counter_entries("c-1")} == {"p-2"}
        assert len(store.events("c-1")) == 2  # events stay: retries still replay
    finally:
        store.close()


def test_horizon_reads_durations_dates_and_instants() -> None:
    """400d back from now, a date's UTC midnight, an instant with or without a zone."""
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert horizon("400d", now) == now - dt.timedelta(days=400)
    assert horizon("36h", now) == now - dt.timedelta(hours=36)
    assert horizon("2025-01-01") == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert horizon("2025-01-01T06:00:00+01:00") == dt.datetime(2025, 1, 1, 5, tzinfo=dt.UTC)
