"""The one-pass parser (dsl.front.lalr) gives what Lark's two passes give, and is the path taken."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import policy_sources

from benchmarks import data
from dsl.errors import PolicyError
from dsl.front import lalr
from dsl.front import parser as p

ROOT = Path(__file__).resolve().parents[3]
BUNDLED = sorted((ROOT / "policies").rglob("*.policy"))


def outcome(source: str, *, fast: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """``parse_file``'s blocks or diagnostics, by one path or the other, as comparable text
    (the nodes' reprs hold every field, spans included)."""
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(p, "_fast", lambda: None)
        try:
            return "blocks", repr(p.parse_file(source, "x.policy"))
        except PolicyError as exc:
            return "diagnostics", repr(exc.diagnostics)


def varied_sources() -> list[str]:
    """The bundled policies and the benchmark's generated ones: every construct of the grammar."""
    return [path.read_text(encoding="utf-8") for path in BUNDLED] + [
        *(data.varied_policy(i) for i in range(60)), *(data.filler_policy(i) for i in range(20)),
        data.rules_policy(50)]


def test_the_one_pass_table_is_built() -> None:
    """The grammar's shapes are all ones the loop copies (else every file would take Lark's path)."""
    assert p._fast() is not None


def test_well_formed_files_take_the_one_pass_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """No well-formed file falls back to Lark: the fast path is not silently lost."""
    calls: list[Any] = []

    def lark_parse(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise AssertionError("Lark parsed a well-formed file")

    monkeypatch.setattr(p, "_lark", lambda: type("L", (), {"parse": lark_parse})())
    for source in varied_sources():
        assert p.parse_file(source, "x.policy")
    assert not calls


def test_both_paths_build_the_same_ast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same nodes, same spans (brackets and keywords included), same diagnostics of the builder."""
    for source in varied_sources():
        fast = outcome(source, fast=True, monkeypatch=monkeypatch)
        assert fast[0] == "blocks"
        assert fast == outcome(source, fast=False, monkeypatch=monkeypatch)


@pytest.mark.parametrize("source", [
    # the builder's own diagnostics (the file parses): one pass, same diagnostics
    "policy p\n  on flight\n  effective 2024-02-30 to 2024-03-01\n  rule r: award 1 miles\n",
    "policy p\n  on flight\n  rule r when event.time between 25:00 and 09:00: award 1 miles\n",
    # a syntax error, a lexer error, a bad indent, a tree too deep: Lark's path reports them
    "policy p\n  on flight\n  rule r when (1 + : award 1 miles\n",
    "policy p\n  on flight\n  rule r: award 1 miles $\n",
    "policy p\n  on flight\n    rule r: award 1 miles\n   rule s: award 2 miles\n",
    "policy p\n  on flight\n  rule r when " + "(1 + " * 70 + "1" + ")" * 70 + " > 0: award 1 miles\n",
    "policy p\n  on flight\n  rule r when " + "not " * 70 + "true: award 1 miles\n",
])
def test_errors_are_reported_alike(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file with a mistake gives the same diagnostics by either path."""
    fast = outcome(source, fast=True, monkeypatch=monkeypatch)
    assert fast[0] == "diagnostics"
    assert fast == outcome(source, fast=False, monkeypatch=monkeypatch)


def test_damaged_files_are_reported_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cuts, deletions and insertions in well-formed files: the same result by either path."""
    rng = random.Random(20)
    sources = varied_sources()
    for _ in range(300):
        source = rng.choice(sources)
        at = rng.randrange(len(source))
        cut = min(len(source), at + rng.randrange(1, 8))
        damaged = rng.choice([
            source[:at] + source[cut:], source[:at],
            source[:at] + rng.choice(["(", ")", "-", " x", "\n", "  ", "rule", '"', "[", "]",
                                      "99999999999999999999999999999999", "2024-02-30"]) + source[at:],
        ])
        assert outcome(damaged, fast=True, monkeypatch=monkeypatch) == \
            outcome(damaged, fast=False, monkeypatch=monkeypatch)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(source=policy_sources("flight"))
def test_generated_policies_parse_alike(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hypothesis-written policies: the same AST by either path."""
    assert outcome(source, fast=True, monkeypatch=monkeypatch) == \
        outcome(source, fast=False, monkeypatch=monkeypatch)


def test_a_deep_tree_falls_back_before_the_builder_recurses() -> None:
    """Height is counted as the loop reduces: a node past the limit stops the one pass (brackets
    are no nodes: 70 of them around one value are not deep)."""
    table, lexer = p._fast()
    shallow = "policy p\n  on flight\n  rule r when " + "(" * 70 + "true" + ")" * 70 + ": award 1 miles\n"
    assert lalr.parse(table, lambda position: lexer.scan(shallow, table.actions, position),
                      p._AstBuilder("x", shallow), p.MAX_DEPTH + p._LEVELS_ABOVE_EXPRESSIONS)
    source = "policy p\n  on flight\n  rule r when " + "not " * 70 + "true: award 1 miles\n"
    with pytest.raises(lalr.Fallback):
        lalr.parse(table, lambda position: lexer.scan(source, table.actions, position),
                   p._AstBuilder("x", source), p.MAX_DEPTH + p._LEVELS_ABOVE_EXPRESSIONS)
