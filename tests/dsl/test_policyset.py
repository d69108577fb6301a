"""The policy set: loading, indexing by kind and date, combining, errors, and the fast path."""

from __future__ import annotations

import dis
from pathlib import Path

import pytest

import dsl
from dsl.errors import EvaluationError, PolicyError
from tests.dsl.input.reference import prepare_customer, prepare_event

SCHEMA = dsl.Schema.for_directory("policies")


def customer(**fields: object) -> dict[str, object]:
    return prepare_customer(SCHEMA, {"id": "c1", "member_since": "2015-06-01", **fields})


def flight(time: str = "2026-03-01T10:00:00Z", **fields: object) -> dict[str, object]:
    raw = {"id": "e1", "kind": "flight", "time": time, "origin": "JFK", "destination": "BOS",
           "fare": "100.00", "distance_miles": 1000, **fields}
    return prepare_event(SCHEMA, raw)


def purchase(**fields: object) -> dict[str, object]:
    raw = {"id": "e2", "kind": "purchase", "time": "2026-03-01T10:00:00Z", "amount": "10.00",
           **fields}
    return prepare_event(SCHEMA, raw)


WINDOWED = """
policy spring
  effective 2026-03-01 to 2026-05-31
  on flight
  rule bonus: award 100 miles

policy always
  on flight
  rule base: award 1 miles

policy shop
  on purchase
  rule points: award 5 points
"""


def test_only_policies_for_the_events_kind_and_date_apply() -> None:
    """An event runs exactly the policies of its kind whose window contains its date (in the
    bundled programme's zone, Europe/London: 31 May ends at 23:00 UTC, in BST)."""
    ps = dsl.load_source(WINDOWED, schema=SCHEMA)
    inside = ps.evaluate(customer(), flight("2026-05-31T22:59:00Z"))
    assert inside.policies == ["always", "spring"]
    assert inside.awards == {"miles": 101}
    after = ps.evaluate(customer(), flight("2026-05-31T23:00:00Z"))
    assert after.policies == ["always"]
    assert after.awards == {"miles": 1}
    assert ps.evaluate(customer(), purchase()).awards == {"points": 5}


def test_only_restricts_evaluation_to_named_policies() -> None:
    """`only` evaluates just the named policies (policy tests use it)."""
    ps = dsl.load_source(WINDOWED, schema=SCHEMA)
    d = ps.evaluate(customer(), flight(), only=["spring"])
    assert d.policies == ["spring"]
    assert d.awards == {"miles": 100}


def test_revision_changes_with_any_policy_text() -> None:
    """The revision digest names the exact policy texts; a one-character change moves it."""
    a = dsl.load_source(WINDOWED, schema=SCHEMA).revision
    b = dsl.load_source(WINDOWED.replace("100 miles", "101 miles"), schema=SCHEMA).revision
    assert a != b
    assert a == dsl.load_source(WINDOWED, schema=SCHEMA).revision
    assert a.startswith("r") and len(a) == 13


def test_every_decision_names_the_revision() -> None:
    """Decisions carry the revision of the set that made them, even when nothing applied."""
    ps = dsl.load_source(WINDOWED, schema=SCHEMA)
    assert ps.evaluate(customer(), flight("2020-01-01T00:00:00Z")).revision == ps.revision


COMBINE = """
policy a
  on flight
  rule gold: qualify for "GOLD"
  rule t: tag "zeta"
  rule grace: grant "late-arrival-grace" with grace = 15 minutes

policy b
  on flight
  rule platinum: qualify for "PLATINUM"
  rule t: tag "alpha"
  rule t2: tag "zeta"
  rule grace: grant "late-arrival-grace" with grace = 30 minutes
"""


def test_policies_combine_into_one_decision() -> None:
    """Highest tier wins, tags are sorted and unique, and the first grant of a benefit wins."""
    ps = dsl.load_source(COMBINE, schema=SCHEMA)
    d = ps.evaluate(customer(), flight())
    assert d.tier == "PLATINUM"
    assert d.tags == ["alpha", "zeta"]
    assert [(b.name, b.policy) for b in d.benefits] == [("late-arrival-grace", "a")]
    assert d.benefits[0].params["grace"].total_seconds() == 900


def test_set_cap_per_event_applies_across_policies() -> None:
    """The schema's cap_per_event (100000 miles here) caps the sum of every policy's award."""
    text = "\n".join(f"policy p{i}\n  on flight\n  rule r: award 60000 miles\n" for i in range(2))
    d = dsl.load_source(text, schema=SCHEMA).evaluate(customer(), flight(), explain=True)
    assert d.awards == {"miles": 100000}
    assert d.reasons is not None
    assert d.reasons[-1].kind == "capped"
    assert d.reasons[-1].detail == "cap_per_event for miles: 120000 -> 100000"


def test_evaluation_error_names_policy_and_line() -> None:
    """A division by zero at run time is an EvaluationError at the policy's line, not a crash."""
    text = "policy risky\n  on flight\n  let per = 100 / (event.distance_miles otherwise 1)\n" \
           "  round miles down\n  rule r: award per miles\n"
    ps = dsl.load_source(text, file="risky.policy", schema=SCHEMA)
    for evaluate in (ps.evaluate, ps.evaluate_interpreted):
        with pytest.raises(EvaluationError) as info:
            evaluate(customer(), flight(distance_miles=0))
        assert (info.value.policy, info.value.file, info.value.line) == ("risky", "risky.policy", 3)
        assert info.value.message == "division by zero"


def test_duplicate_policy_names_across_files_are_refused(tmp_path: Path) -> None:
    """Two files defining one policy name get a diagnostic naming the first definition."""
    (tmp_path / "a.policy").write_text("policy same\n  on flight\n  rule r: award 1 miles\n")
    (tmp_path / "b.policy").write_text("policy same\n  on flight\n  rule r: award 2 miles\n")
    with pytest.raises(PolicyError) as info:
        dsl.load_directory(tmp_path, schema=SCHEMA)
    [d] = info.value.diagnostics
    assert d.code == "duplicate_policy"
    assert d.message.startswith("policy same is already defined at ")
    assert d.message.endswith("a.policy:1")


def test_errors_in_several_files_are_all_reported_in_order(tmp_path: Path) -> None:
    """Every file's diagnostics are collected and sorted, not only the first file's first error."""
    (tmp_path / "b.policy").write_text("policy b\n  on flight\n  rule r: award 1 mils\n")
    (tmp_path / "a.policy").write_text("policy a\n  on flihgt\n  rule r: award x miles\n")
    with pytest.raises(PolicyError) as info:
        dsl.load_directory(tmp_path, schema=SCHEMA)
    got = [(Path(d.file).name, d.line, d.code) for d in info.value.diagnostics]
    assert got == [("a.policy", 2, "unknown_event_kind"), ("a.policy", 3, "unknown_name"),
                   ("b.policy", 3, "unknown_currency")]


def test_the_fast_path_contains_no_explanation_code() -> None:
    """Explain is a separately compiled variant: the evaluate function never builds a Reason."""
    ps = dsl.load_directory("policies")
    for p in ps.compiled:
        names = {i.argval for i in dis.get_instructions(p.module.evaluate) if i.opname.startswith("LOAD")}
        assert "Reason" not in names, p.name
        explain = {i.argval for i in dis.get_instructions(p.module.explain) if i.opname.startswith("LOAD")}
        assert "Reason" in explain or not p.info.rules, p.name


def test_bundled_policies_check_clean() -> None:
    """The bundled policies load with no errors and no warnings."""
    ps = dsl.load_directory("policies")
    assert ps.warnings == []
    assert len(ps.compiled) >= 5


NARROWED = """
policy p
  on flight
  let bonus = if event.distance_miles is present then event.distance_miles else 7
  rule long when event.distance_miles is present and event.distance_miles > 500: award 10 miles
  rule short when event.distance_miles is missing or event.distance_miles <= 500: award bonus miles
"""


@pytest.mark.parametrize(("distance", "miles"), [(1000, 10), (300, 300), (None, 7)])
def test_presence_checks_narrow_optional_fields(distance: int | None, miles: int) -> None:
    """After `x is present and` (or `x is missing or`), x may be used without a default."""
    ps = dsl.load_source(NARROWED, schema=SCHEMA)
    event = flight(distance_miles=distance) if distance is not None else flight()
    if distance is None:
        event["distance_miles"] = None
    assert ps.evaluate(customer(), event).awards == {"miles": miles}
    assert ps.evaluate_interpreted(customer(), event).awards == {"miles": miles}


def test_the_compile_cache_is_bounded_by_size_and_keeps_the_latest_sets_files() -> None:
    """Building many distinct versions keeps the latest set's files (rebuilt from the cache: the
    same compiled policies) and at most the byte budget of older ones, however many versions."""
    from dsl import policyset

    cache = policyset._FileCache(budget_bytes=200 * policyset.COMPILED_BYTES_PER_SOURCE_BYTE * 10)
    saved, policyset._CACHE = policyset._CACHE, cache
    try:
        text = ("policy grows\n  version 1\n  on flight\n  rule flown: award {n} miles\n"
                + "  # a comment of some length, so the text counts against the budget\n" * 2)
        for n in range(30):
            latest = dsl.load_source(text.format(n=n), file="grows.policy")
        # Each text is about 200 bytes: the budget holds about 10 older versions, the latest is kept.
        assert cache.spare_bytes <= cache.budget_bytes
        assert 2 <= len(cache.entries) <= 12
        again = dsl.load_source(text.format(n=29), file="grows.policy")
        assert again.policies[0] is latest.policies[0]
        oldest = policyset._cache_key("grows.policy", text.format(n=0), latest.schema)
        assert cache.get(oldest) is None  # long evicted
    finally:
        policyset._CACHE = saved


SOURCE_ONE = "policy gc_pause\n  on flight\n  rule r: award 1 miles\n"


def test_a_build_pauses_the_garbage_collector_and_restores_it(monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """Python's cyclic collector is off while a set is built (its passes over the growing
    heap were 40% of preparing 1,000 policies from the disk cache), and as it was afterwards:
    on after a build that succeeded or failed, still off when the caller had turned it off."""
    import gc

    import dsl.policyset as ps

    during: list[bool] = []
    check = ps.check_policy

    def recording(*args: object, **kwargs: object) -> object:
        during.append(gc.isenabled())
        return check(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ps, "check_policy", recording)
    assert gc.isenabled()
    dsl.load_source(SOURCE_ONE, file="gc_pause_a.policy", schema=SCHEMA)
    assert during == [False] and gc.isenabled()
    with pytest.raises(PolicyError):
        dsl.load_source("policy broken\n  on flight\n  rule r: award nope miles\n",
                        file="gc_pause_b.policy", schema=SCHEMA)
    assert during == [False, False] and gc.isenabled()
    gc.disable()
    try:
        dsl.load_source(SOURCE_ONE, file="gc_pause_c.policy", schema=SCHEMA)
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert during == [False, False, False]

