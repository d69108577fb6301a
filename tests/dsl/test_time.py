"""Durations, date arithmetic and local time: `30 seconds`, `local(t, zone)`, `hour()`,
`minute()`, local `date()` and `weekday()`, `t between 15:00 and 18:00`, and the two days a
year when a zone's clocks jump (the missing hour and the repeated hour)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

import dsl
from dsl.analysis.checker import check_policy
from dsl.backend.codegen import CodeGenerator
from dsl.backend.compiler import UnsafeCode, verify
from dsl.backend.interpreter import Interpreter
from dsl.errors import PolicyError
from dsl.front import nodes as n
from dsl.front.parser import parse
from dsl.input.request import MappingDecoder
from dsl.library import runtime as rt
from dsl.library.builtins import EXPORTS
from dsl.schema.schema import BASE_SCHEMA_PATH
from dsl.tools.formatter import format_source, structure
from tests.dsl.input.reference import prepare_customer, prepare_event

SCHEMA = dsl.Schema.for_directory("policies")


def value_of(expr: str) -> Any:
    """``expr`` (literals only) computed by the interpreter and by the generated code, which
    must agree, value and type."""
    source = f"policy p\n  on visit\n  let v = {expr}\n  rule r: award 1 points\n"
    dsl.load_source(source, file="p.policy", schema=SCHEMA)  # raises on any diagnostic
    policy = parse(source, "p.policy")[0]
    check = check_policy(SCHEMA, policy)
    value = next(m for m in policy.members if isinstance(m, n.Let)).value
    interpreted = rt.in_evaluation_context(Interpreter(policy, SCHEMA, {}).eval, value, {})
    gen = CodeGenerator(policy, check, SCHEMA)
    compiled = rt.in_evaluation_context(eval, gen.expr(value), {**EXPORTS, **gen.constants})
    assert interpreted == compiled
    assert type(interpreted) is type(compiled)
    return compiled


def diagnostics(members: str) -> list[str]:
    """The rendered diagnostics of a visit policy with ``members`` (one per line)."""
    source = "policy p\n  on visit\n" + "".join(f"  {m}\n" for m in members.splitlines())
    with pytest.raises(PolicyError) as info:
        dsl.load_source(source, file="p.policy", schema=SCHEMA)
    return [d.render() if hasattr(d, "render") else str(d) for d in info.value.diagnostics]


def codes(members: str) -> list[str]:
    source = "policy p\n  on visit\n" + "".join(f"  {m}\n" for m in members.splitlines())
    with pytest.raises(PolicyError) as info:
        dsl.load_source(source, file="p.policy", schema=SCHEMA)
    return [d.code for d in info.value.diagnostics if d.severity == "error"]


# -- durations and date arithmetic ----------------------------------------------------------


@pytest.mark.parametrize(("expr", "expected"), [
    pytest.param("30 seconds", timedelta(seconds=30), id="seconds"),
    pytest.param("1 second", timedelta(seconds=1), id="one-second"),
    pytest.param("5 minutes", timedelta(minutes=5), id="minutes"),
    pytest.param("1 minute", timedelta(minutes=1), id="one-minute"),
    pytest.param("2 hours", timedelta(hours=2), id="hours"),
    pytest.param("90 days", timedelta(days=90), id="days"),
    pytest.param("1 week", timedelta(days=7), id="one-week"),
    pytest.param("2026-03-01 - 90 days", date(2025, 12, 1), id="date-minus-days"),
    pytest.param("2026-03-01 + 36 hours", date(2026, 3, 2), id="date-plus-hours-whole-days"),
    pytest.param("90 days + 2026-03-01", date(2026, 5, 30), id="duration-plus-date"),
    pytest.param("2026-03-01T10:00Z + 30 seconds", datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC),
                 id="datetime-plus-seconds"),
    pytest.param("2026-03-01T10:00Z - 2026-03-01T09:59:30Z", timedelta(seconds=30),
                 id="datetime-minus-datetime"),
    pytest.param("2026-03-01 - 2026-02-01", timedelta(days=28), id="date-minus-date"),
    pytest.param("minutes(90 seconds)", 1, id="minutes-toward-zero"),
    pytest.param("2 * 45 seconds", timedelta(seconds=90), id="int-times-duration"),
])
def test_duration_literals_and_date_arithmetic(expr: str, expected: Any) -> None:
    """Duration units run from seconds to weeks, singular or plural; dates and datetimes move
    by durations, and two of them subtract to a duration."""
    assert value_of(expr) == expected


@pytest.mark.parametrize("expr", [
    pytest.param("2026-03-01 + 5", id="date-plus-int"),
    pytest.param("2026-03-01 - 2026-03-01T10:00Z", id="date-minus-datetime"),
    pytest.param("2026-03-01T10:00Z + 2026-03-01T10:00Z", id="datetime-plus-datetime"),
    pytest.param("30 seconds - 2026-03-01", id="duration-minus-date"),
])
def test_date_arithmetic_type_errors(expr: str) -> None:
    """Adding a number to a date, mixing dates with datetimes, adding two instants: type_error."""
    assert codes(f"let v = {expr}\nrule r: award 1 points") == ["type_error"]


def test_a_bare_number_added_to_a_date_gets_a_hint() -> None:
    """The hint names the fix: a duration, not a number."""
    text = next(t for t in diagnostics("let v = event.date + 5\nrule r: award 1 points")
                if "type_error" in t)
    assert "add a duration such as 30 days, or a calendar span such as 3 months, not a bare number" in text


# -- local time --------------------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "expected"), [
    pytest.param('hour(local(2026-07-01T14:30Z, "Europe/London"))', 15, id="london-summer"),
    pytest.param('hour(local(2026-01-01T14:30Z, "Europe/London"))', 14, id="london-winter"),
    pytest.param('minute(local(2026-03-01T14:30Z, "Asia/Kolkata"))', 0, id="half-hour-offset"),
    pytest.param("hour(2026-03-01T23:30-05:00)", 4, id="without-local-utc"),
    pytest.param('date(local(2026-03-07T01:30Z, "America/Los_Angeles"))', date(2026, 3, 6),
                 id="local-date-the-day-before"),
    pytest.param("date(2026-03-07T01:30Z)", date(2026, 3, 7), id="utc-date"),
    pytest.param('weekday(local(2026-03-07T01:30Z, "America/Los_Angeles"))', 5, id="local-friday"),
    pytest.param("weekday(2026-03-07T01:30Z)", 6, id="utc-saturday"),
    pytest.param('date(local(2026-03-01T11:30Z, "Pacific/Auckland"))', date(2026, 3, 2),
                 id="auckland-the-day-after"),
    pytest.param('local(2026-07-01T14:30Z, "Europe/London") == 2026-07-01T14:30Z', True,
                 id="same-instant"),
    pytest.param('local(2026-07-01T14:30Z, "Europe/London") - 2026-07-01T14:00Z',
                 timedelta(minutes=30), id="difference-of-instants"),
])
def test_local_time(expr: str, expected: Any) -> None:
    """local() moves an instant onto a zone's clock; hour, minute, date and weekday read that
    clock; without local() they read UTC. The instant itself does not change."""
    assert value_of(expr) == expected


NEW_YORK = "America/New_York"


def _local(iso: str, zone: str = NEW_YORK) -> datetime:
    return rt.local(datetime.fromisoformat(iso), zone)


def test_the_missing_hour_never_shows_on_the_clock() -> None:
    """New York, 8 March 2026: at 02:00 EST the clocks go to 03:00 EDT. 06:59Z is 01:59 and the
    next minute, 07:00Z, is 03:00; over that whole UTC day no minute reads 02:xx, so
    `between 02:00 and 03:00` never holds, and a minute of time is a minute between instants."""
    before, after = _local("2026-03-08T06:59:00+00:00"), _local("2026-03-08T07:00:00+00:00")
    assert (rt.hour(before), rt.minute(before)) == (1, 59)
    assert (rt.hour(after), rt.minute(after)) == (3, 0)
    assert after - before == timedelta(minutes=1)
    start = datetime(2026, 3, 8, tzinfo=UTC)
    hours = {rt.hour(rt.local(start + timedelta(minutes=m), NEW_YORK)) for m in range(24 * 60)}
    assert 2 not in hours and hours >= {1, 3}
    assert not any(rt.time_between(rt.local(start + timedelta(minutes=m), NEW_YORK), 120, 180)
                   for m in range(24 * 60))
    # local() reads the clock at one instant: to read it a minute earlier, move the instant
    # first. Arithmetic on the local datetime keeps the offset it had (EDT here).
    assert value_of(f'hour(local(2026-03-08T07:00Z - 1 minute, "{NEW_YORK}"))') == 1
    assert value_of(f'hour(local(2026-03-08T07:00Z, "{NEW_YORK}") - 1 minute)') == 2


def test_the_repeated_hour_is_two_hours_of_instants() -> None:
    """New York, 1 November 2026: at 02:00 EDT the clocks go back to 01:00 EST. 05:30Z and
    06:30Z both read 01:30 and both are in `between 01:00 and 02:00`, yet they stay an hour
    apart, ordered, and unequal (Python would compare them by wall clock in one ZoneInfo)."""
    first, second = _local("2026-11-01T05:30:00+00:00"), _local("2026-11-01T06:30:00+00:00")
    assert (rt.hour(first), rt.minute(first)) == (rt.hour(second), rt.minute(second)) == (1, 30)
    assert rt.time_between(first, 60, 120) and rt.time_between(second, 60, 120)
    assert second - first == timedelta(hours=1)
    assert first < second and first != second
    later = f'local(2026-11-01T06:30Z, "{NEW_YORK}")'
    earlier = f'local(2026-11-01T05:30Z, "{NEW_YORK}")'
    assert value_of(f"{later} - {earlier}") == timedelta(hours=1)
    assert value_of(f"{later} > {earlier}") is True
    assert value_of(f"{later} between 01:00 and 02:00 and {earlier} between 01:00 and 02:00") is True


def test_london_jumps_too() -> None:
    """Europe/London: 29 March 2026 01:00Z is 02:00 BST (01:xx never shows); 25 October 2026
    00:30Z and 01:30Z are both 01:30, BST then GMT."""
    assert rt.hour(_local("2026-03-29T00:59:00+00:00", "Europe/London")) == 0
    assert rt.hour(_local("2026-03-29T01:00:00+00:00", "Europe/London")) == 2
    a = _local("2026-10-25T00:30:00+00:00", "Europe/London")
    b = _local("2026-10-25T01:30:00+00:00", "Europe/London")
    assert (a.hour, a.minute) == (b.hour, b.minute) == (1, 30)
    assert b - a == timedelta(hours=1)


def test_an_unknown_zone_at_run_time_is_a_policy_fault_not_a_file_read() -> None:
    """local() takes only names from the IANA list: a path never reaches zoneinfo."""
    for name in ("Mars/Olympus", "../../../etc/passwd", "/etc/localtime", "localtime", "Factory",
                 "europe/london", ""):
        with pytest.raises(rt.PolicyFault, match="unknown time zone"):
            rt.local(datetime(2026, 1, 1, tzinfo=UTC), name)


# -- between ------------------------------------------------------------------------------------


HAPPY = """policy p
  on order
  rule late_night when event.time between 22:00 and 02:00: tag "late-night"
  rule happy when local(event.time, event.store_zone) between 15:00 and 18:00: tag "happy"
"""


@pytest.mark.parametrize(("time", "zone", "tags"), [
    pytest.param("2026-03-04T15:00:00Z", "UTC", ["happy"], id="start-included"),
    pytest.param("2026-03-04T17:59:59Z", "UTC", ["happy"], id="last-second"),
    pytest.param("2026-03-04T18:00:00Z", "UTC", [], id="end-excluded"),
    pytest.param("2026-03-04T14:59:59Z", "UTC", [], id="before-start"),
    pytest.param("2026-03-04T22:00:00Z", "UTC", ["late-night"], id="across-midnight-start"),
    pytest.param("2026-03-04T23:59:00Z", "UTC", ["late-night"], id="before-midnight"),
    pytest.param("2026-03-05T00:00:00Z", "UTC", ["late-night"], id="midnight"),
    pytest.param("2026-03-05T01:59:00Z", "UTC", ["late-night"], id="after-midnight"),
    pytest.param("2026-03-05T02:00:00Z", "UTC", [], id="across-midnight-end-excluded"),
    pytest.param("2026-03-04T21:59:00Z", "UTC", [], id="before-across-midnight"),
    pytest.param("2026-03-04T22:30:00Z", "Asia/Tokyo", ["late-night"], id="utc-without-local"),
    pytest.param("2026-03-04T07:30:00Z", "Asia/Tokyo", ["happy"], id="tokyo-1630"),
    pytest.param("2026-03-04T20:30:00Z", NEW_YORK, ["happy"], id="new-york-1530"),
])
def test_between_includes_its_start_and_excludes_its_end(time: str, zone: str, tags: list[str]) -> None:
    """`between A and B` holds from A up to but not including B, on the datetime's own clock
    (UTC unless local() moved it); an end before the start runs across midnight."""
    policy_set = dsl.load_source(HAPPY, file="p.policy", schema=SCHEMA)
    customer = prepare_customer(SCHEMA, {"id": "c", "member_since": "2020-01-01"})
    event = prepare_event(SCHEMA, {"id": "e", "kind": "order", "time": time, "store_zone": zone})
    for evaluate in (policy_set.evaluate, policy_set.evaluate_interpreted):
        assert evaluate(customer, event).tags == tags


@pytest.mark.parametrize(("members", "expected"), [
    pytest.param('rule r when local(event.time, "Europe/Londn") between 15:00 and 18:00: tag "t"', [
        'p.policy:3:33: unknown_time_zone: "Europe/Londn" is not an IANA time zone name\n'
        '    |   rule r when local(event.time, "Europe/Londn") between 15:00 and 18:00: tag "t"\n'
        '    |                                 ^^^^^^^^^^^^^^\n'
        '    = hint: did you mean `Europe/London`?'], id="misspelt-zone"),
    pytest.param('rule r when event.date between 15:00 and 18:00: tag "t"', [
        "p.policy:3:15: type_error: `between` compares times of day, but event.date is a date\n"
        '    |   rule r when event.date between 15:00 and 18:00: tag "t"\n'
        "    |               ^^^^^^^^^^\n"
        "    = hint: use a date and time such as event.time, or local(event.time, ZONE) for the "
        "time in a time zone"], id="between-on-a-date"),
    pytest.param('rule r when event.time between 15:00 and 15:00: tag "t"', [
        "p.policy:3:15: empty_window: `between 15:00 and 15:00` is never true: the range includes "
        "its start and excludes its end\n"
        '    |   rule r when event.time between 15:00 and 15:00: tag "t"\n'
        "    |               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        "    = hint: give two different times; a range across midnight such as `between 22:00 and "
        "02:00` is fine"], id="empty-range"),
    pytest.param('rule r when event.time between 24:00 and 02:00: tag "t"', [
        "p.policy:3:34: bad_time: 24:00 is not a time of day\n"
        '    |   rule r when event.time between 24:00 and 02:00: tag "t"\n'
        "    |                                  ^^^^^\n"
        "    = hint: write a time from 00:00 to 23:59; for a range to midnight, end it at 00:00"],
        id="no-such-time"),
    pytest.param('rule r when event.time between 9:00 and 12:00: tag "t"', [
        "p.policy:3:34: syntax_error: unexpected `9`\n"
        '    |   rule r when event.time between 9:00 and 12:00: tag "t"\n'
        "    |                                  ^\n"
        "    = hint: write a time of day with two digits for the hour and two for the minutes: 09:00"],
        id="one-digit-hour"),
    pytest.param('rule r when hour(event.date) >= 15: tag "t"', [
        "p.policy:3:20: type_error: hour() needs a date and time, but event.date is date\n"
        '    |   rule r when hour(event.date) >= 15: tag "t"\n'
        "    |                    ^^^^^^^^^^\n"
        "    = hint: a date has no time of day: use a date and time such as event.time"],
        id="hour-of-a-date"),
    pytest.param('rule r when hour(local(event.time, event.store)) >= 15: tag "t"', [
        "p.policy:3:38: optional_value: event.store may be missing, and this use needs a value\n"
        '    |   rule r when hour(local(event.time, event.store)) >= 15: tag "t"\n'
        "    |                                      ^^^^^^^^^^^\n"
        '    = hint: give a default: `event.store otherwise ""`, or check it first: '
        "`event.store is present and ...`"], id="zone-from-an-optional-string"),
    pytest.param('rule r when hour(local(event.time, event.drinks)) >= 15: tag "t"', [
        "p.policy:3:38: type_error: local() needs a time zone (a field of type timezone), but "
        "event.drinks is int\n"
        '    |   rule r when hour(local(event.time, event.drinks)) >= 15: tag "t"\n'
        "    |                                      ^^^^^^^^^^^^\n"
        '    = hint: write a zone name such as "Europe/London", or read a field of type timezone'],
        id="zone-from-a-number"),
])
def test_time_diagnostics(members: str, expected: list[str]) -> None:
    """Misuses of local time are positioned diagnostics that say what to write instead."""
    source = "policy p\n  on order\n" + "".join(f"  {m}\n" for m in members.splitlines())
    with pytest.raises(PolicyError) as info:
        dsl.load_source(source, file="p.policy", schema=SCHEMA)
    assert [d.render() for d in info.value.diagnostics] == expected


def test_a_time_outside_between_is_still_a_number_and_a_colon() -> None:
    """`15:00` is a time of day only after `between`: elsewhere the lexer reads what it always
    did, and a stray time is a syntax error, not a crash."""
    with pytest.raises(PolicyError) as info:
        dsl.load_source('policy p\n  on order\n  rule r when hour(event.time) == 15:00: tag "t"\n',
                        file="p.policy", schema=SCHEMA)
    assert [d.code for d in info.value.diagnostics] == ["syntax_error"]
    dsl.load_source('policy p\n  on order\n  rule r when hour(event.time) == 15: tag "t"\n',
                    file="p.policy", schema=SCHEMA)


# -- formatting, structure, generated code ------------------------------------------------------


@pytest.mark.parametrize(("source", "canonical"), [
    pytest.param("event.time   between 15:00   and 18:00", "event.time between 15:00 and 18:00",
                 id="spacing"),
    pytest.param("(event.time between 15:00 and 18:00) and x", "event.time between 15:00 and 18:00 and x",
                 id="and-needs-no-parens"),
    pytest.param("not event.time between 22:00 and 02:00", "not event.time between 22:00 and 02:00",
                 id="not"),
    pytest.param("(event.time + 30 seconds) between 08:00 and 09:30",
                 "event.time + 30 seconds between 08:00 and 09:30", id="sum-operand"),
    pytest.param("(event.time otherwise event.time) between 08:00 and 09:30",
                 "event.time otherwise event.time between 08:00 and 09:30", id="otherwise-operand"),
])
def test_between_formats_idempotently(source: str, canonical: str) -> None:
    """The formatter writes `between` as a comparison, keeps the parentheses that matter,
    and formatting twice changes nothing; the meaning (the AST's structure) is kept."""
    text = f"policy p\n  on order\n  let x = true\n  rule r when {source}: tag \"t\"\n"
    out = format_source(text)
    assert f"  rule r when {canonical}: tag \"t\"\n" in out
    assert format_source(out) == out
    assert structure(parse(out, "p.policy")) == structure(parse(text, "p.policy"))


def test_structure_tells_different_ranges_and_units_apart() -> None:
    """`loyalty diff` compares structures: another end, another unit is another meaning."""
    def shape(expr: str) -> Any:
        return structure(parse(f"policy p\n  on order\n  rule r when {expr}: tag \"t\"\n", "p.policy"))

    assert shape("event.time between 15:00 and 18:00") != shape("event.time between 15:00 and 19:00")
    assert shape("event.time between 15:00 and 18:00") != shape("event.time between 14:00 and 18:00")
    assert shape("event.time + 60 seconds > event.time") == shape("event.time + 1 minute > event.time")
    assert shape("event.time + 30 seconds > event.time") != shape("event.time + 30 minutes > event.time")


def test_generated_code_reaches_local_time_only_through_the_runtime() -> None:
    """A policy using local() and between compiles to calls of fn_local and time_between,
    both exported by the runtime and accepted by the verifier; a module that names zoneinfo,
    the timezones module or datetime's timezone instead is refused."""
    policy_set = dsl.load_source(HAPPY, file="p.policy", schema=SCHEMA)
    [p] = policy_set.compiled
    assert "fn_local(" in p.source() and "time_between(" in p.source()
    assert EXPORTS["time_between"] is rt.time_between
    for name in ("zoneinfo", "timezones", "timezone", "ZoneInfo"):
        with pytest.raises(UnsafeCode):
            verify(f"def evaluate(c, e, d):\n    return {name}\n")


def test_a_zone_field_is_checked_at_the_input_boundary() -> None:
    """A timezone field takes IANA names only, on the mapping decoder's fast and checking paths
    alike, and a wrong one is refused naming the field, with a "did you mean"."""
    decoder = MappingDecoder(SCHEMA)
    customer = {"id": "c", "memberSince": "2020-01-01"}

    def event(zone: str) -> dict[str, Any]:
        return {"id": "e", "kind": "order", "time": "2026-03-04T20:30:00Z",
                "attributes": {"store_zone": {"stringValue": zone}}}

    ok = decoder.request({"customer": customer, "event": event("Europe/London")})
    assert ok[1]["store_zone"] == "Europe/London"
    assert decoder.check({"customer": customer, "event": event("Europe/London")}) == ok
    default = decoder.request({"customer": customer, "event": {**event(""), "attributes": {}}})
    assert default[1]["store_zone"] == NEW_YORK
    for bad, reason in [
        ("europe/london", '"europe/london" is not an IANA time zone name (such as Europe/London); '
                          "did you mean `Europe/London`?"),
        ("../../etc/passwd", '"../../etc/passwd" is not an IANA time zone name (such as Europe/London)'),
        ("EST5EDT ", '"EST5EDT " is not an IANA time zone name (such as Europe/London); '
                     "did you mean `EST5EDT`?"),
    ]:
        for read in (decoder.request, decoder.check):
            with pytest.raises(dsl.InputError) as info:
                read({"customer": customer, "event": event(bad)})
            assert [(e.path, e.reason) for e in info.value.errors] == [
                ("event.attributes.store_zone", reason)]


def test_an_optional_zone_with_a_literal_default() -> None:
    """`customer.zone otherwise "Europe/London"` is a zone either way (the literal is checked):
    the programme's zone for customers who have none."""
    schema = dsl.Schema.from_texts([
        ("dsl/schema/schema.toml", BASE_SCHEMA_PATH.read_text(encoding="utf-8")),
        ("extra.toml", '[customer]\nzone = "timezone?"\n')])
    source = ('policy p\n  on visit\n  rule r when local(event.time, customer.zone otherwise '
              '"{zone}") between 15:00 and 18:00: tag "t"\n')
    policy_set = dsl.load_source(source.format(zone="Europe/London"), file="p.policy", schema=schema)
    event = prepare_event(schema, {"id": "e", "kind": "visit", "time": "2026-07-01T14:30:00Z"})
    for zone, tags in ((None, ["t"]), ("Asia/Tokyo", [])):
        customer = prepare_customer(schema, {"id": "c", "member_since": "2020-01-01", "zone": zone})
        for evaluate in (policy_set.evaluate, policy_set.evaluate_interpreted):
            assert evaluate(customer, event).tags == tags
    with pytest.raises(PolicyError) as info:
        dsl.load_source(source.format(zone="Europe/Londn"), file="p.policy", schema=schema)
    assert [d.code for d in info.value.diagnostics] == ["unknown_time_zone"]


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 seconds"), (1, "1 second"), (30, "30 seconds"), (90, "90 seconds"), (60, "1 minute"),
    (-1, "-1 second"), (-120, "-2 minutes"), (7200, "2 hours"), (7776000, "90 days"),
    (604800, "1 week"),
])
def test_durations_are_shown_in_the_languages_words(seconds: int, text: str) -> None:
    """Decisions, `loyalty eval` and `loyalty diff` show a duration as it would be written, in
    the largest whole unit, singular for one."""
    from dsl.decision import format_duration

    assert format_duration(timedelta(seconds=seconds)) == text
    assert value_of(text.replace("-", "- ") if text.startswith("-") else text) == timedelta(seconds=seconds)
