"""The explain RPC carries each fired rule's customer-facing text, in the language asked for,
against a real in-process server on 127.0.0.1."""

from __future__ import annotations

import grpc
import pytest

from service.client import field_violations
from tests.service.conftest import request


def says(decision) -> dict[str, str]:
    return {r.rule: r.says for r in decision.reasons if r.kind == "fired"}


def test_explain_gives_each_fired_rule_its_text(stub):
    """A fired reason's `says` is the rule's first text filled in, or its name in words; other
    lines say nothing."""
    d = stub.Evaluate(request(explain=True), timeout=5).decision
    assert says(d) == {
        "flown_miles": "3442 miles for your flight from JFK to LHR",
        "business_cabin": "Business cabin",
        "elite": "Elite",
        "loyal_for_a_decade": "+344 miles for 13 years with us",
    }
    assert all(not r.says for r in d.reasons if r.kind != "fired")


@pytest.mark.parametrize(("language", "expected"), [
    pytest.param("fr", "+344 miles pour 13 ans avec nous", id="french"),
    pytest.param("fr-CA", "+344 miles pour 13 ans avec nous", id="french_in_canada"),
    pytest.param("de", "+344 miles for 13 years with us", id="undeclared_falls_back"),
])
def test_language_picks_the_text(stub, language: str, expected: str):
    """EvaluateRequest.language picks each rule's text in that language, else its first."""
    d = stub.Evaluate(request(explain=True, language=language), timeout=5).decision
    assert says(d)["loyal_for_a_decade"] == expected
    assert says(d)["elite"] == "Elite"


@pytest.mark.parametrize("language", ["x" * 36, "fr<script>", "fr fr"])
def test_a_language_that_is_not_a_tag_is_invalid_argument(stub, language: str):
    """A language that is too long or holds other characters is refused, naming the field."""
    with pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(request(explain=True, language=language), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in field_violations(info.value)] == ["language"]
