"""TOML read within bounds (dsl.bounded_toml): hostile files are refused before tomllib, with
a position; every real file reads exactly as tomllib reads it."""

from __future__ import annotations

import resource
import tomllib
from pathlib import Path

import pytest

from dsl.bounded_toml import Limits, TomlBoundError, loads, measure

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted(ROOT.glob("policies/**/*.toml")) + sorted(ROOT.glob("dsl/**/*.toml")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_bundled_toml_file_reads_as_tomllib_reads_it(path: Path) -> None:
    """The bounds are far above any file a person writes: each bundled file passes unchanged."""
    text = path.read_text(encoding="utf-8")
    assert loads(text) == tomllib.loads(text)


PARTS = "a dotted key has more than 32 parts"
DEEP = "values nest more than 32 levels deep"
HOSTILE = {
    "dotted-key": ("a" + ".a" * 8_000 + " = 1\n", 1, 64, PARTS),
    "dotted-header": ("x = 1\n[" + ".".join(["t"] * 40) + "]\n", 2, 65, PARTS),
    "nested-arrays": ("v = " + "[" * 100_000 + "]" * 100_000 + "\n", 1, 37, DEEP),
    "nested-inline-tables": ("v = " + "{a = " * 1_000 + "1" + "}" * 1_000 + "\n", 1, 5 + 5 * 32, DEEP),
    "many-tables": ("[[case]]\nname = 'x'\n" * 100_001, 200_001, 1, "more than 100,000 tables"),
    "large": ("# " + "x" * (4 * 1024 * 1024) + "\n", 1, 1, "the file is larger than 4,194,304 bytes"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_are_refused_at_the_place_they_cross_a_bound(name: str) -> None:
    """Each hostile shape is refused with the line, column and bound, before tomllib runs."""
    text, line, column, message = HOSTILE[name]
    with pytest.raises(TomlBoundError) as refused:
        loads(text)
    assert (refused.value.line, refused.value.column, refused.value.message) == (line, column, message)


def test_brackets_dots_and_hashes_inside_strings_do_not_count() -> None:
    """Strings of every form and comments may hold anything: only structure counts."""
    text = (
        'a = "' + "[" * 50 + '.' * 50 + '"\n'
        "b = '" + "{" * 50 + "'\n"
        'c = """\n' + "[" * 50 + '\n"""\n'
        "d = '''\n" + "." * 50 + "\n'''\n"
        "# " + "[" * 50 + "\n"
        '"quoted.key.with.dots" = 1\n'
        'e = "escaped \\" [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["\n'
        "f = 1.5\n"
    )
    assert loads(text) == tomllib.loads(text)


def test_limits_can_be_tightened_for_one_reader() -> None:
    """A reader may ask for tighter bounds than the defaults."""
    with pytest.raises(TomlBoundError, match="more than 2 parts"):
        measure("a.b.c = 1\n", Limits(max_key_parts=2))
    measure("a.b = 1\n", Limits(max_key_parts=2))


def test_the_dotted_key_bomb_costs_little_memory() -> None:
    """The 8,000-part key that made tomllib take 265 MB is refused without growing the heap."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TomlBoundError):
        loads("a" + ".a" * 8_000 + " = 1\n")
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 20_000
