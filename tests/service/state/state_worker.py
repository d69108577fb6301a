"""A process that applies events to a store, for the multi-process and kill -9 tests.

``python state_worker.py URL apply CUSTOMER ID...`` applies each event id with
:func:`limited_decide` and prints one JSON line per result; ``... hang CUSTOMER ID`` reads the
counters, prints ``deciding`` and sleeps inside decide() until it is killed.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from service.state import NewEntry, Outcome, open_store
from service.state.api import Reader, Window

AT = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
#: "at most 3 bonus awards per day" and "5% on up to $1,500.00 of spend per quarter".
MAX_BONUSES = 3
SPEND_CAP = Decimal("1500.00")
DAY = Window("bonuses", dt.datetime(2026, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
QUARTER = Window("spend", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 4, 1, tzinfo=dt.UTC))


def limited_decide(spend: Decimal = Decimal("100.00")):
    """A decide() with both limits: a bonus while fewer than 3 today, spend up to the cap."""

    def decide(reader: Reader) -> Outcome:
        bonuses, spent = reader.sums([DAY, QUARTER])
        counted = max(Decimal(0), min(spend, SPEND_CAP - spent))
        entries = [NewEntry("spend", AT, counted)]
        bonus = bonuses < MAX_BONUSES
        if bonus:
            entries.append(NewEntry("bonuses", AT, 1))
        return Outcome(json.dumps({"bonus": bonus, "counted": str(counted)}), entries)

    return decide


def main(argv: list[str]) -> None:
    url, mode, customer, *ids = argv
    store = open_store(url)
    if mode == "hang":

        def hang(reader: Reader) -> Outcome:
            reader.sums([DAY, QUARTER])
            print("deciding", flush=True)
            time.sleep(120)
            raise SystemExit("not killed")

        store.apply(customer, ids[0], "digest", hang)
        return
    for event_id in ids:
        result = store.apply(customer, event_id, "digest", limited_decide())
        print(json.dumps({"event_id": event_id, "replayed": result.replayed,
                          "decision": result.decision.decode()}), flush=True)
    store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
