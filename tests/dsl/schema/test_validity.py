"""A currency's validity and pending period, and the programme's negative balance, as the schema
declares them: the words accepted, the instants they give, the mistakes named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dsl.schema.schema import BASE_SCHEMA_PATH, Schema, SchemaError
from dsl.schema.validity import NEVER, parse_validity

LONDON = ZoneInfo("Europe/London")
EARNED = datetime(2026, 1, 31, 12, tzinfo=UTC)


@pytest.mark.parametrize(("words", "expires"), [
    ("never", NEVER),
    ("24 months", datetime(2028, 1, 31, 12, tzinfo=UTC)),
    ("1 month", datetime(2026, 2, 28, 12, tzinfo=UTC)),  # 31 January + 1 month: clamped
    ("90 days", datetime(2026, 5, 1, 11, tzinfo=UTC)),  # calendar days: noon in London, BST by May
    ("to the end of the month", datetime(2026, 2, 1, tzinfo=UTC)),
    ("12 months to the end of the month", datetime(2027, 2, 1, tzinfo=UTC)),
    ("10 days to the end of the quarter", datetime(2026, 3, 31, 23, tzinfo=UTC)),  # London's midnight, BST
    ("to the end of the year", datetime(2027, 1, 1, tzinfo=UTC)),
], ids=lambda v: str(v))
def test_validity_words_give_the_expiry_instant(words: str, expires: datetime) -> None:
    """Each accepted form, from an award earned at noon UTC on 31 January 2026 in London."""
    assert parse_validity(words).expires_at(EARNED, LONDON) == expires


def test_a_pending_period_delays_availability() -> None:
    """"available after 14 days", "2 weeks" and "" (at once)."""
    fortnight = EARNED + timedelta(days=14)
    assert parse_validity("never", "available after 14 days").available_from(EARNED) == fortnight
    assert parse_validity("never", "2 weeks").available_from(EARNED) == fortnight
    assert parse_validity().available_from(EARNED) == EARNED


def schema(extra: str) -> Schema:
    return Schema.from_texts([(str(BASE_SCHEMA_PATH), BASE_SCHEMA_PATH.read_text(encoding="utf-8")),
                              ("p/schema.toml", extra)])


def test_the_schema_reads_validity_pending_and_negative_balance() -> None:
    """Declared in [currencies] and [programme]; a currency without them never expires."""
    s = schema('[programme]\nnegative_balance = "claw back from later awards"\n[currencies]\n'
               'points = { decimals = 0, validity = "24 months", pending = "14 days" }\n')
    assert s.negative_balance == "claw back from later awards"
    assert (s.currencies["points"].validity.text, s.currencies["points"].validity.pending) == (
        "24 months", timedelta(days=14))
    assert s.currencies["miles"].validity.never
    assert schema("").negative_balance == "allowed"


@pytest.mark.parametrize(("extra", "message"), [
    ('[currencies]\npoints = { validity = "forever" }\n',
     'p/schema.toml:2:1: currencies.points.validity: validity \'forever\': write "never", "24 months", '
     '"to the end of the month" or "12 months to the end of the month"'),
    ('[currencies]\npoints = { validity = "0 days" }\n',
     "p/schema.toml:2:1: currencies.points.validity: validity '0 days': the count must be from 1 to 36600"),
    ('[currencies]\npoints = { pending = "a fortnight" }\n',
     "p/schema.toml:2:1: currencies.points.pending: pending 'a fortnight': write \"14 days\" or \"2 weeks\" "
     "(empty: spendable at once)"),
    ('[programme]\nnegative_balance = "forbidden"\n',
     "p/schema.toml:2:1: programme.negative_balance: 'forbidden' is not a choice"),
], ids=["validity", "zero", "pending", "negative-balance"])
def test_a_mistake_is_named_with_its_key(extra: str, message: str) -> None:
    """The key, the words and what to write instead."""
    with pytest.raises(SchemaError) as refused:
        schema(extra)
    assert str(refused.value) == message
