"""``loyalty state``: inspect and maintain the customer state store.

- ``show CUSTOMER``: the customer's counters per window (the UTC day, 7 and 30 days rolling,
  month, quarter and year that hold ``--at``, by default the latest entry) and the applied
  events with their decisions, what they counted, and their reversals;
- ``export [FILE]`` and ``import FILE``: JSON lines (``-`` for stdout or stdin); an import
  keeps rows already present, so importing twice adds nothing;
- ``expire [--as-of DATE_OR_INSTANT]``: post the ledger's expiry lines (docs/state.md, "The
  ledger"); running it again posts nothing more;
- ``compact --older-than DURATION_OR_DATE``: delete the entries before a horizon (``400d``,
  ``12w``, ``2025-01-01`` or an instant) that no period reads any more; events and reversals
  stay, so retries still replay.

Every verb takes ``--state`` as ``loyalty serve`` does (default: the data directory's file).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import re
import sys
from collections.abc import Iterable
from typing import Any

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``state`` verb and its sub-verbs."""
    p = subparsers.add_parser(
        "state", help="inspect, export, import and compact the customer state store",
        description="Inspect and maintain the customer state store Apply and Reverse write "
                    "(docs/state.md).")
    verbs = p.add_subparsers(dest="state_verb", metavar="VERB", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--state", metavar="PATH_OR_URL", default=os.environ.get("LOYALTY_STATE"),
                       help="the store: a SQLite file, sqlite:///PATH or postgresql://...; default "
                            "$LOYALTY_DATA_DIR/state.sqlite3, else ./data/state.sqlite3 [LOYALTY_STATE]")

    show = verbs.add_parser("show", help="a customer's counters per window and applied events")
    show.add_argument("customer", metavar="CUSTOMER", help="the customer id")
    show.add_argument("--at", metavar="INSTANT", help="the instant whose windows are shown "
                      "(ISO 8601; default: the customer's latest entry)")
    show.add_argument("--json", action="store_true", help="print one JSON document")
    common(show)
    show.set_defaults(run=run_show)

    export = verbs.add_parser("export", help="write the whole store as JSON lines")
    export.add_argument("file", metavar="FILE", nargs="?", default="-", help="output file (default: stdout)")
    common(export)
    export.set_defaults(run=run_export)

    imp = verbs.add_parser("import", help="read JSON lines an export wrote (rows already present stay)")
    imp.add_argument("file", metavar="FILE", help="input file, - for stdin")
    common(imp)
    imp.set_defaults(run=run_import)

    compact = verbs.add_parser("compact", help="delete the entries no period reads any more")
    compact.add_argument("--older-than", metavar="DURATION_OR_DATE", required=True, type=horizon,
                         help="a duration back from now (400d, 12w, 36h) or a date/instant "
                              "(2025-01-01, 2025-01-01T00:00:00Z); entries before it are deleted")
    common(compact)
    compact.set_defaults(run=run_compact)

    expire = verbs.add_parser("expire", help="post the ledger's expiry lines (idempotent)")
    expire.add_argument("--as-of", metavar="DATE_OR_INSTANT", type=horizon,
                        default=dt.datetime.now(dt.UTC),
                        help="lots expired by this date (its UTC midnight) or instant; default now")
    common(expire)
    expire.set_defaults(run=run_expire)


def horizon(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """The instant ``--older-than`` names: ``now`` less a duration, or a date (its UTC midnight)
    or an instant (UTC when it names no zone)."""
    match = _DURATION.match(text.strip())
    if match:
        now = now or dt.datetime.now(dt.UTC)
        return now - dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        instant = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (400d, 12w, 36h) nor a date or instant (2025-01-01)") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)


def _open(args: argparse.Namespace) -> Any:
    from service.state import StateError, open_store

    try:
        return open_store(args.state)
    except StateError as exc:
        print(f"loyalty state: cannot open the state store: {exc}", file=sys.stderr)
        return None


def _windows(at: dt.datetime) -> list[tuple[str, dt.datetime, dt.datetime]]:
    day = dt.datetime(at.year, at.month, at.day, tzinfo=dt.UTC)
    month = day.replace(day=1)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    q = (at.month - 1) // 3 * 3 + 1
    quarter = month.replace(month=q)
    next_quarter = (quarter.replace(year=quarter.year + 1, month=1) if q == 10
                    else quarter.replace(month=q + 3))
    year = month.replace(month=1)
    end = at + dt.timedelta(microseconds=1)
    return [
        ("day", day, day + dt.timedelta(days=1)),
        ("7 days", end - dt.timedelta(days=7), end),
        ("30 days", end - dt.timedelta(days=30), end),
        ("month", month, next_month),
        ("quarter", quarter, next_quarter),
        ("year", year, year.replace(year=year.year + 1)),
    ]


def _iso(at: dt.datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _decoded(stored: bytes, message: Any) -> dict[str, Any]:
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError

    from service.apply import stored_response

    try:
        if message.DESCRIPTOR.name == "ApplyResponse":
            raw = stored_response(stored)
        else:
            raw = base64.b64decode(json.loads(stored)["response"])
        return json_format.MessageToDict(message.FromString(raw), preserving_proto_field_name=True)
    except (ValueError, KeyError, TypeError, IndexError, DecodeError):
        return {"stored": stored.decode("utf-8", "replace")}


def describe(store: Any, customer: str, at: dt.datetime | None = None) -> dict[str, Any]:
    """What ``show`` prints, as a JSON-friendly document."""
    from service.apply import amount_text
    from service.gen.loyalty.v1 import loyalty_pb2 as pb
    from service.state import Window

    entries = store.counter_entries(customer)
    events = store.events(customer)
    if at is None:
        at = max((e.at for e in entries), default=dt.datetime.now(dt.UTC))
    counters = sorted({e.counter for e in entries})
    windows = _windows(at)
    table = {}
    for counter in counters:
        sums = store.sums(customer, [Window(counter, start, end) for _, start, end in windows])
        table[counter] = {name: amount_text(s) for (name, _, _), s in zip(windows, sums, strict=True)}
        table[counter]["all"] = amount_text(sum((e.amount for e in entries if e.counter == counter), 0))
    return {
        "customer": customer,
        "at": _iso(at),
        "windows": {name: [_iso(start), _iso(end)] for name, start, end in windows},
        "counters": table,
        "events": [
            {"event_id": e.event_id, "body_digest": e.body_digest,
             **_decoded(e.decision, pb.ApplyResponse),
             "reversals": [{"reversal_id": r.reversal_id, **_decoded(r.decision, pb.ReverseResponse)}
                           for r in e.reversals]}
            for e in events
        ],
    }


def run_show(args: argparse.Namespace) -> int:
    """Print a customer's counters and events; 1 when the customer has none."""
    at = horizon(args.at) if args.at else None
    store = _open(args)
    if store is None:
        return 2
    try:
        doc = describe(store, args.customer, at)
    finally:
        store.close()
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0 if doc["events"] else 1
    if not doc["events"] and not doc["counters"]:
        print(f"customer {args.customer!r}: no applied events")
        return 1
    print(f"customer {args.customer!r} at {doc['at']}")
    names = list(doc["windows"])
    print("  counters (" + ", ".join(names) + ", all):")
    for counter, sums in doc["counters"].items():
        print(f"    {counter}: " + "  ".join(f"{n}={sums[n]}" for n in [*names, "all"]))
    print(f"  applied events ({len(doc['events'])}):")
    for e in doc["events"]:
        awards = e.get("decision", {}).get("awards", {})
        line = f"    {e['event_id']}: awards {_pairs(awards)}; counted {_pairs(e.get('counted', {}))}"
        print(line + f"; {e['body_digest']}")
        for r in e["reversals"]:
            print(f"      reversed by {r['reversal_id']}: {_pairs(r.get('reversed', {}))}; "
                  f"counted {_pairs(r.get('counted', {}))}")
    return 0


def _pairs(values: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(values.items())) or "none"


def run_export(args: argparse.Namespace) -> int:
    """Write every event, reversal and entry as JSON lines."""
    store = _open(args)
    if store is None:
        return 2
    try:
        if args.file == "-":
            count = store.export(sys.stdout)
        else:
            with open(args.file, "w", encoding="utf-8") as out:
                count = store.export(out)
    finally:
        store.close()
    print(f"exported {count} lines", file=sys.stderr)
    return 0


def _lines(path: str) -> Iterable[str]:
    if path == "-":
        return sys.stdin.readlines()
    with open(path, encoding="utf-8") as source:
        return source.readlines()


def run_import(args: argparse.Namespace) -> int:
    """Read an export in one transaction; rows already present stay."""
    from service.state import StateError

    store = _open(args)
    if store is None:
        return 2
    try:
        added = store.import_(_lines(args.file))
    except StateError as exc:
        print(f"loyalty state import: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"imported {added} rows")
    return 0


def run_compact(args: argparse.Namespace) -> int:
    """Delete the entries before the horizon."""
    store = _open(args)
    if store is None:
        return 2
    try:
        deleted = store.compact(args.older_than)
    finally:
        store.close()
    print(f"deleted {deleted} entries before {_iso(args.older_than.astimezone(dt.UTC))}")
    return 0


def run_expire(args: argparse.Namespace) -> int:
    """Post an expiry line for every lot expired by ``--as-of`` with something left."""
    from service.state.ledger import expire

    store = _open(args)
    if store is None:
        return 2
    try:
        report = expire(store, args.as_of)
    finally:
        store.close()
    expired = ", ".join(f"{amount} {currency}" for currency, amount in report.expired.items()) or "nothing"
    print(f"expired {expired}: {report.lines_posted} lines posted, {report.lots_seen} expired lots seen "
          f"as of {_iso(args.as_of.astimezone(dt.UTC))}")
    return 0
