"""The generated request decoders: their verifier is a security boundary, and the mapping
form's fast path takes only what its checking path would take, unchanged."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from dsl.backend.compiler import UnsafeCode, load_decoder, verify_decoder
from dsl.errors import InputError
from dsl.input.decoders import Slow
from dsl.input.generate import DecoderSource, MappingAccess, MessageAccess
from dsl.input.request import MappingDecoder
from dsl.schema.schema import BASE_SCHEMA_PATH, Schema

POLICIES_DIR = Path(__file__).resolve().parents[3] / "policies"

SCHEMA = Schema.for_directory(POLICIES_DIR)
DECODER = MappingDecoder(SCHEMA)
NAMES = frozenset({"SLOW", "LEN", "get", "K1"})

#: (id, source): each uses something a decoder may never use.
UNSAFE = [
    ("an import", "import os\ndef decode_x(d):\n    return os"),
    ("a builtin by name", "def decode_x(d):\n    return open('x')"),
    ("a dunder attribute", "def decode_x(d):\n    return d.__class__"),
    ("an attribute outside the allow-list", "def decode_x(d):\n    return d.keys()"),
    ("raising anything but SLOW", "def decode_x(d):\n    raise K1"),
    ("a bare raise", "def decode_x(d):\n    raise"),
    ("a while loop", "def decode_x(d):\n    while d: d = d.get('x')\n    return d"),
    ("a power", "def decode_x(d):\n    return d.get('a') ** d.get('b')"),
    ("a shift", "def decode_x(d):\n    return d.get('a') << 100000"),
    ("a function of another name", "def helper(d):\n    return d"),
    ("a class", "class decode_x:\n    pass"),
    ("a lambda", "def decode_x(d):\n    return (lambda: d)()"),
    ("a float constant", "def decode_x(d):\n    return 1.5"),
    ("a local of another shape", "def decode_x(d):\n    value = d\n    return value"),
    ("a with block", "def decode_x(d):\n    with d:\n        return 1"),
    ("a try block",
     "def decode_x(d):\n    try:\n        return d.get('x')\n    except SLOW:\n        return 1"),
]


@pytest.mark.parametrize("source", [s for _, s in UNSAFE], ids=[i for i, _ in UNSAFE])
def test_the_decoder_verifier_refuses_unsafe_code(source):
    """Generated decoder source that reaches outside its allow-lists never runs."""
    with pytest.raises(UnsafeCode):
        verify_decoder(source, "<test>", NAMES)


def test_the_decoder_verifier_takes_the_generators_own_shapes():
    """Straight-line reads, comprehensions, `raise SLOW` and one OR of counters are allowed."""
    source = ("def decode_x(d):\n"
              "    v1 = d.get('a')\n"
              "    if v1 is None: raise SLOW\n"
              "    v2 = [x for x in v1]\n"
              "    if not 0 <= (LEN(v2) | 1) < 10: raise SLOW\n"
              "    return {'a': v2}\n")
    scope = load_decoder(source, "<test>", {"SLOW": Slow, "LEN": len}, frozenset({"get", "decode_x"}))
    assert scope["decode_x"]({"a": [1, 2]}) == {"a": [1, 2]}
    with pytest.raises(Slow):
        scope["decode_x"]({})
    assert scope["__builtins__"] == {}


@pytest.mark.parametrize("access", [MappingAccess(), MessageAccess()], ids=["mapping", "message"])
def test_schema_names_reach_the_source_only_as_quoted_keys_and_locals(access):
    """An extension field's name from a schema file is read as a string literal key, held in
    a local of its name, never read as an attribute nor called (comments aside)."""
    schema = Schema.from_texts([
        ("base.toml", BASE_SCHEMA_PATH.read_text()),
        ("ext.toml", '[customer]\nos_system = "string?"\n'),
    ])
    code = "\n".join(line for line in DecoderSource(schema, access).source().splitlines()
                     if not line.lstrip().startswith("#"))
    assert "'os_system'" in code
    assert "os_system(" not in code and ".os_system" not in code


REQUEST = {
    "customer": {"id": "c-1001", "memberSince": "2012-02-29", "tier": "GOLD",
                 "lifetime": {"miles": "120000", "spend": "10.50"},
                 "attributes": {"home_store": {"stringValue": "S1"}}},
    "event": {"id": "e-1", "time": "2026-03-01T09:30:00Z",
              "flight": {"origin": "JFK", "destination": "LHR", "fare": "420.00", "cabin": "business",
                         "distanceMiles": "3451"}},
}


def _request(**changes: object) -> dict:
    """REQUEST with dotted paths replaced (a value of ... deletes the key)."""
    import copy

    out = copy.deepcopy(REQUEST)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = value
    return out


#: Odd but valid requests, and requests the schema refuses: the fast path must give up on
#: (or agree with) every one.
CASES = [
    ("well formed", _request()),
    ("snake_case names", _request(customer__memberSince=..., customer__member_since="2012-02-29")),
    ("lower-case airport", _request(event__flight__origin="jfk")),
    ("kind beside the details", _request(event__kind="flight")),
    ("both spellings of one field", _request(customer__member_since="2012-02-28")),
    ("a number for an int64", _request(event__flight__distanceMiles=3451)),
    ("a 19-digit int64", _request(event__flight__distanceMiles="1000000000000000000")),
    ("a float for an int64", _request(event__flight__distanceMiles=3451.0)),
    ("a boolean for an int64", _request(event__flight__distanceMiles=True)),
    ("a decimal exponent past the bound", _request(event__flight__fare="1E+999999")),
    ("a decimal with 19 places", _request(event__flight__fare="0.0000000000000000001")),
    ("a decimal as a number", _request(event__flight__fare=420)),
    ("Arabic-Indic digits", _request(event__flight__fare="١٢٣")),
    ("an underscore", _request(event__flight__fare="1_000")),
    ("a leading space", _request(event__flight__fare=" 1")),
    ("a week date", _request(customer__memberSince="2012-W01-1")),
    ("a date that does not exist", _request(customer__memberSince="2012-02-30")),
    ("an id past 128 characters", _request(customer__id="c" * 129)),
    ("an id of 128 characters", _request(customer__id="c" * 128)),
    ("a list for a string", _request(customer__id=["c"])),
    ("an unknown field", _request(customer__nickname="x")),
    ("an unknown attribute", _request(customer__attributes={"nickname": {"stringValue": "x"}})),
    ("an attribute of the wrong kind", _request(customer__attributes={"home_store": {"intValue": "5"}})),
    ("an attribute in snake_case", _request(customer__attributes={"home_store": {"string_value": "S1"}})),
    ("a negative counter", _request(customer__lifetime__miles=-1)),
    ("a counter past the bound", _request(customer__lifetime__miles=10**18)),
    ("a timestamp with nanoseconds", _request(event__time="2026-03-01T09:30:00.123456789Z")),
    ("a timestamp without a zone", _request(event__time="2026-03-01T09:30:00")),
    ("another kind's details", _request(event__kind="purchase")),
    ("two kinds of details", _request(event__purchase={"amount": "1"})),
    ("null for an optional field", _request(customer__tier=None)),
    ("an empty tier", _request(customer__tier="")),
]


@pytest.mark.parametrize("request_", [c for _, c in CASES], ids=[i for i, _ in CASES])
def test_the_mapping_fast_path_agrees_with_its_checking_path(request_):
    """Where the fast path returns, the checking path accepts the same request with the same
    values (decimals compared as text: 1.0 and 1.00 are different inputs)."""
    try:
        checked = DECODER.request(request_, budget=_budget())  # a budget forces the checking path
    except InputError:
        checked = None
    try:
        fast = DECODER.fast_request(request_)
    except Exception:
        return  # gave up: the checking path judges it, as request() does
    assert checked is not None, "the fast path accepted what the checking path refuses"
    assert _exact(fast) == _exact(checked)


def test_well_formed_requests_take_the_fast_path():
    """The usual request never needs the checking path."""
    customer, event = DECODER.fast_request(REQUEST)
    assert event["distance_miles"] == 3451 and event["fare"] == Decimal("420.00")
    assert customer["home_store"] == "S1" and customer["lifetime"]["miles"] == 120000


def _budget():
    from dsl.input.request import ItemBudget

    return ItemBudget()


def _exact(value: object) -> object:
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact(v) for v in value]
    return (type(value).__name__, str(value))
