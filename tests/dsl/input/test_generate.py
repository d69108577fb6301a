"""The input compiler's output: one plan per field, readable decoders, and `loyalty compile --decoders`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dsl.input.generate import DecoderSource, MappingAccess, MessageAccess
from dsl.input.layout import RequestLayout
from dsl.input.plans import ATTRIBUTE, CONSTANT, DERIVED, MESSAGE, REQUIRED, event_plans, record_plans
from dsl.schema.schema import Schema

ROOT = Path(__file__).resolve().parents[3]
PROGRAMME = Schema.for_directory(ROOT / "policies")


def _all_plans(schema: Schema) -> list:
    layout = RequestLayout(schema)
    plans = record_plans(schema, layout.customer, "customer", "customer")
    plans += record_plans(schema, layout.record("customer.lifetime"), "customer.lifetime",
                          "customer.lifetime")
    plans += record_plans(schema, layout.record("item"), "item", "item")
    for kind in layout.events:
        plans += event_plans(schema, layout, kind)
    return plans


PLAN_CASES = [
    ("a standard field travels in its message", "flight", "fare",
     ("event.flight.fare", MESSAGE, "string", REQUIRED)),
    ("an optional counter is an optional int64", "flight", "distance_miles",
     ("event.flight.distance_miles", MESSAGE, "optional int64", None)),
    ("the event's own fields are the Event message's", "flight", "time",
     ("event.time", MESSAGE, "timestamp", REQUIRED)),
    ("the kind is a constant", "flight", "kind", ("event.kind", CONSTANT, "", REQUIRED)),
    ("the date is derived from the time", "flight", "date", ("event.date", DERIVED, "", REQUIRED)),
]


@pytest.mark.parametrize(("kind", "name", "expected"), [c[1:] for c in PLAN_CASES],
                         ids=[c[0] for c in PLAN_CASES])
def test_a_fields_plan_follows_from_the_layout(kind, name, expected):
    """Where a field travels, how, and what its absence becomes come from the layout alone."""
    schema = Schema.load()
    plan = next(p for p in event_plans(schema, RequestLayout(schema), kind) if p.name == name)
    assert (plan.path, plan.source, plan.wire, plan.missing) == expected


def test_an_extension_field_travels_in_attributes():
    """A field a directory's schema adds is a typed Value in the attributes of its message."""
    plans = {p.path: p for p in _all_plans(PROGRAMME)}
    extension = [p for p in plans.values() if p.source == ATTRIBUTE]
    assert extension, "the bundled programme extends the schema"
    assert all(".attributes." in p.path for p in extension)


@pytest.mark.parametrize("access", [MappingAccess(), MessageAccess()], ids=["mapping", "message"])
def test_generated_decoders_read_as_code_a_person_wrote(access):
    """A header says what the code is and where it comes from; every field has a comment
    with its request path and plan; locals and constants are named, not numbered."""
    source = DecoderSource(PROGRAMME, access).source()
    assert source.startswith(f"# Input decoders for {access.what},\n# generated for schema ")
    for plan in _all_plans(PROGRAMME):
        if plan.source != CONSTANT:
            assert f"# {plan.describe()}\n" in source, plan.path
    assert not re.search(r"(?<![.\w])(v|K)[0-9]+\b", source)


def test_loyalty_compile_decoders_prints_both_forms():
    """`loyalty compile --decoders DIR` prints the mapping form's decoders, then the message
    form's, each under its header, with a comment per field."""
    result = subprocess.run([sys.executable, "-m", "service", "compile", "--decoders", "policies"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"# Input decoders for {MappingAccess.what},")
    assert f"\n# Input decoders for {MessageAccess.what},\n" in out
    assert out.count("\ndef decode_customer(customer):\n") == 2
    # decode_customer, and each form's request function, with the customer inline
    assert out.count("    # customer.member_since: string field -> date; missing: required\n") == 4
    compile(out, "<printed>", "exec")
