"""``loyalty state``: inspect and maintain the customer state store.

- ``show CUSTOMER``: the customer's counters per window (the UTC day, 7 and 30 days rolling,
  month, quarter and year that hold ``--at``, by default the latest entry), their ledger
  balances per currency (available and pending, as of ``--at``, by default now), and the
  applied events with their decisions, what they counted, and their reversals;
- ``export [FILE]`` and ``import FILE``: JSON lines (``-`` for stdout or stdin), the ledger's
  lots, lines and redemptions included; an import keeps rows already present, so importing
  twice adds nothing;
- ``expire [--as-of DATE_OR_INSTANT]``: post the ledger's expiry lines (docs/state.md, "The
  ledger"); running it again posts nothing more;
- ``statement CUSTOMER [--from DATE] [--to DATE] [--html FILE] [--language fr] [--json]``: the
  customer's ledger lines with running balances and the words a customer reads about each
  (docs/state.md, "Statements"), as text, JSON, or a page (service/statement_html.py);
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
from collections.abc import Iterable, Sequence
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
    show.add_argument("--at", metavar="INSTANT", help="the instant whose windows and balances are "
                      "shown (ISO 8601; default: the customer's latest entry for the windows, now "
                      "for the balances)")
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
    expire.add_argument("--policies", metavar="DIR",
                        help="the policy directory whose schema.toml [qualification] the tier job "
                             "follows (tiers kept until this date are judged); without it, expiry only")
    common(expire)
    expire.set_defaults(run=run_expire)

    statement = verbs.add_parser("statement", help="a customer's ledger lines with the words they read")
    statement.add_argument("customer", metavar="CUSTOMER", help="the customer id")
    statement.add_argument("--from", dest="start", metavar="DATE_OR_INSTANT", type=moment,
                           help="the first line's earliest date (its UTC midnight) or instant; "
                                "default: the first line")
    statement.add_argument("--to", dest="end", metavar="DATE_OR_INSTANT", type=day_end,
                           help="the last date included (to its end, UTC) or the instant lines "
                                "are before; default: now")
    statement.add_argument("--html", metavar="FILE", help="write the statement as one HTML page")
    statement.add_argument("--language", default="en", metavar="LANG",
                           help="the page's and the plain lines' words: en or fr (default en); a "
                                "rule's stored text stays as Apply gave it (docs/state.md)")
    statement.add_argument("--json", action="store_true", help="print the lines as one JSON document")
    common(statement)
    statement.set_defaults(run=run_statement)


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


def moment(text: str, end_of_day: bool = False) -> dt.datetime:
    """A date (its UTC midnight; with ``end_of_day``, the next day's) or an instant (UTC when it
    names no zone), as ``--from`` and ``--to`` read them."""
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text) + dt.timedelta(days=1 if end_of_day else 0)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        instant = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (2026-03-01) or an instant (2026-03-01T09:30:00Z)") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)


def day_end(text: str) -> dt.datetime:
    """``--to``: a date to its end (the next UTC midnight), or an instant."""
    return moment(text, end_of_day=True)


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


def describe(store: Any, customer: str, at: dt.datetime | None = None,
             now: dt.datetime | None = None) -> dict[str, Any]:
    """What ``show`` prints, as a JSON-friendly document. The ledger's balances are as of
    ``at`` when it is given, else as of ``now`` (the clock), as GetBalance answers."""
    from service.apply import amount_text
    from service.gen.loyalty.v1 import loyalty_pb2 as pb
    from service.state import Window
    from service.state.ledger import balance

    balances_at = at or now or dt.datetime.now(dt.UTC)
    balances = balance(store, customer, balances_at)
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
        "balances_at": _iso(balances_at),
        "balances": {b.currency: {"available": amount_text(b.available), "pending": amount_text(b.pending)}
                     for b in balances},
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
    print(f"  balances at {doc['balances_at']} (available, pending):")
    for currency, figures in doc["balances"].items():
        print(f"    {currency}: available {figures['available']}, pending {figures['pending']}")
    if not doc["balances"]:
        print("    none (no ledger lines)")
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
    schema = _tier_schema(args)
    if schema is False:
        store.close()
        return 2
    try:
        report = expire(store, args.as_of)
        settled = None
        if schema is not None and schema.qualification is not None:
            from service.state.tiers import settle

            settled = settle(store, schema.qualification, schema.timezone, args.as_of)
    finally:
        store.close()
    expired = ", ".join(f"{amount} {currency}" for currency, amount in report.expired.items()) or "nothing"
    print(f"expired {expired}: {report.lines_posted} lines posted, {report.lots_seen} expired lots seen "
          f"as of {_iso(args.as_of.astimezone(dt.UTC))}")
    if settled is not None:
        print(f"tiers: {settled.seen} due, {settled.lowered} lowered ({settled.removed} to no tier)")
    return 0


def _tier_schema(args: argparse.Namespace) -> Any:
    """The schema of ``--policies`` (its [qualification] drives the tier job), None without it,
    False when it cannot be read (the reason printed)."""
    directory = getattr(args, "policies", None)
    if directory is None:
        return None
    from dsl.schema.schema import Schema, SchemaError

    try:
        return Schema.for_directory(directory)
    except (SchemaError, OSError) as exc:
        print(f"loyalty state expire: cannot read the schema of {directory}: {exc}", file=sys.stderr)
        return False


#: The plain words of the lines no rule made, per language (a language not here reads English).
_PLAIN: dict[str, dict[str, str]] = {
    "en": {"award": "Earned", "redeem": "Redeemed", "reverse": "Returned: event {event}",
           "expire": "Expired", "clawback_out": "Kept back to repay a returned event",
           "clawback_in": "Repaid from a later award"},
    "fr": {"award": "Gagné", "redeem": "Utilisé", "reverse": "Annulé : événement {event}",
           "expire": "Expiré", "clawback_out": "Retenu pour rembourser un événement annulé",
           "clawback_in": "Remboursé par un gain ultérieur"},
}


def line_texts(store: Any, customer: str, lines: Sequence[Any], language: str = "en") -> list[str]:
    """What the customer reads about each of ``lines`` (:class:`service.ledger.StatementLine`):
    an award, its lot's rule's text in ``language`` (:func:`service.ledger.award_says`: the
    texts kept with the lot, else the rule's name in words); anything else, plain words in
    ``language``."""
    from service.apply import explained_texts
    from service.ledger import award_says

    words = _PLAIN.get(language.replace("-", "_").split("_")[0], _PLAIN["en"])
    said = award_says(store, customer, lines, language, explained_texts)
    out = []
    for line, says in zip(lines, said, strict=True):
        if line.kind == "award":
            text = says or words["award"]
        elif line.kind == "clawback":
            text = words["clawback_out" if line.amount < 0 else "clawback_in"]
        else:
            text = words[line.kind].format(event=line.event_id)
        out.append(text)
    return out


def run_statement(args: argparse.Namespace) -> int:
    """Print (or write as a page) a customer's ledger lines; 1 when there are none."""
    from service.apply import amount_text
    from service.ledger import statement_lines
    from service.state import StateError

    start = args.start or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    end = args.end or dt.datetime.now(dt.UTC)
    if end <= start:
        print(f"loyalty state statement: --to ({_iso(end)}) must be after --from ({_iso(start)})",
              file=sys.stderr)
        return 2
    store = _open(args)
    if store is None:
        return 2
    try:
        lines = statement_lines(store, args.customer, start, end)
        texts = line_texts(store, args.customer, lines, args.language)
    except StateError as exc:
        print(f"loyalty state statement: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    if not lines:
        print(f"customer {args.customer!r}: no ledger lines from {_iso(start)} to {_iso(end)}",
              file=sys.stderr)
        return 1
    if args.html:
        from service.statement_html import render_statement

        page = render_statement(args.customer, lines, texts, language=args.language)
        try:
            with open(args.html, "w", encoding="utf-8") as out:
                out.write(page)
        except OSError as exc:
            print(f"loyalty state statement: cannot write {args.html}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
        print(f"wrote {args.html}: {len(lines)} lines")
        return 0
    if args.json:
        print(json.dumps({"customer": args.customer, "from": _iso(start), "to": _iso(end), "lines": [
            {"at": _iso(line.at), "kind": line.kind, "currency": line.currency,
             "amount": amount_text(line.amount), "running_balance": amount_text(line.running_balance),
             "event_id": line.event_id, "reference": line.reference, "policy": line.policy,
             "rule": line.rule, "lot_id": line.lot_id, "text": text}
            for line, text in zip(lines, texts, strict=True)]}, indent=2, ensure_ascii=False))
        return 0
    print(f"customer {args.customer!r}: {len(lines)} lines from {_iso(start)} to {_iso(end)}")
    for line, text in zip(lines, texts, strict=True):
        amount = amount_text(line.amount)
        signed = amount if amount.startswith("-") else "+" + amount
        day = line.at.astimezone(dt.UTC).date().isoformat()
        print(f"  {day}  {line.kind:<8} {signed:>12} {line.currency:<8} "
              f"{amount_text(line.running_balance):>12}  {text}")
    return 0
