"""``redeem_step`` in a currency: redemptions spend whole multiples of it (vouchers of 150
points, money-off in 2p steps); a step the currency cannot hold is a schema error at its key."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dsl.schema.schema import BASE_SCHEMA_PATH, Schema, SchemaError


def schema(extra: str) -> Schema:
    return Schema.from_texts([(str(BASE_SCHEMA_PATH), BASE_SCHEMA_PATH.read_text(encoding="utf-8")),
                              ("p/schema.toml", extra)])


def test_a_step_is_read_exactly_and_a_currency_without_one_redeems_any_amount() -> None:
    """150 whole points; 2p as the decimal 0.02 (a string: exact); none by default."""
    s = schema('[currencies]\npoints = { decimals = 0, redeem_step = 150 }\n'
               'fuel_saving = { decimals = 2, redeem_step = "0.02" }\n')
    assert s.currencies["points"].redeem_step == 150
    assert type(s.currencies["points"].redeem_step) is int
    assert s.currencies["fuel_saving"].redeem_step == Decimal("0.02")
    assert s.currencies["miles"].redeem_step is None


@pytest.mark.parametrize(("extra", "message"), [
    ("[currencies]\npoints = { redeem_step = 0 }\n",
     "p/schema.toml:2:1: currencies.points.redeem_step: must be more than 0 and below 1000000000000, not 0"),
    ("[currencies]\npoints = { redeem_step = -150 }\n",
     "p/schema.toml:2:1: currencies.points.redeem_step: must be more than 0 and below 1000000000000, "
     "not -150"),
    ('[currencies]\npoints = { decimals = 0, redeem_step = "1.5" }\n',
     "p/schema.toml:2:1: currencies.points.redeem_step: 1.5 has more decimal places than the currency's 0"),
    ("[currencies]\ncredit = { decimals = 2, redeem_step = 0.02 }\n",
     'p/schema.toml:2:1: currencies.credit.redeem_step: must be an exact decimal written as a string '
     '(for example "0.02"), not a binary floating-point number'),
    ('[currencies]\npoints = { redeem_step = "lots" }\n',
     "p/schema.toml:2:1: currencies.points.redeem_step: \"lots\" is not a decimal number (write ASCII "
     "digits with an optional minus sign and point, such as \"12.50\")"),
], ids=["zero", "negative", "too-many-decimals", "float", "words"])
def test_a_step_the_currency_cannot_hold_is_named_with_its_key(extra: str, message: str) -> None:
    """The key and what is wrong; the hint says what to write."""
    with pytest.raises(SchemaError) as refused:
        schema(extra)
    assert str(refused.value) == message
    assert refused.value.diagnostic is not None and refused.value.diagnostic.hint
