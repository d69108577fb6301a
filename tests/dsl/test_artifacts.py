"""The compiled-policy disk cache (dsl/artifacts.py): fast, and never trusted blindly.

A corrupt or foreign entry is ignored and rebuilt; concurrent writers leave whole entries;
a cached code object still goes through the bytecode verifier before it runs.
"""

from __future__ import annotations

import marshal
import multiprocessing
import pickle
from pathlib import Path

import pytest

from dsl import artifacts
from dsl.policyset import _CACHE, holds_definitions, load_directory

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("LOYALTY_CACHE_DIR", str(directory))
    _CACHE.clear()  # the in-memory cache would answer before the disk
    yield directory
    _CACHE.clear()


def decisions(policy_set: object) -> list[object]:
    from benchmarks.data import prepare_pairs, raw_edge_pairs

    return [policy_set.evaluate(c, e) for c, e in prepare_pairs(policy_set.schema, raw_edge_pairs())]  # type: ignore[attr-defined]


def entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.entry"))


def test_a_second_load_reads_the_entries_and_decides_the_same(cache: Path) -> None:
    """The first load writes one entry per file; the next (in-memory cache emptied) reads them
    and its policies decide exactly as freshly compiled ones."""
    fresh = load_directory(POLICIES)
    written = entries(cache)
    # One entry per file of policies (a file of shared definitions compiles into its users).
    assert len(written) == len([p for p in POLICIES.rglob("*.policy")
                                if not holds_definitions(p.read_text(encoding="utf-8"))])
    _CACHE.clear()
    cached = load_directory(POLICIES)
    assert cached.revision == fresh.revision
    assert decisions(cached) == decisions(fresh)
    assert [p.source() for p in cached.compiled] == [p.source() for p in fresh.compiled]
    assert [p.award_bounds for p in cached.compiled] == [p.award_bounds for p in fresh.compiled]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign key", "foreign class", "empty"])
def test_a_corrupt_or_foreign_entry_is_ignored_and_rebuilt(cache: Path, damage: str) -> None:
    """Every kind of bad entry is ignored: the load compiles afresh, decides the same, and
    writes a good entry in its place."""
    fresh = load_directory(POLICIES)
    expected = decisions(fresh)
    for path in entries(cache):
        raw = path.read_bytes()
        if damage == "truncated":
            path.write_bytes(raw[: len(raw) // 2])
        elif damage == "garbage":
            path.write_bytes(raw[:80] + b"\x00" * 64 + raw[144:])
        elif damage == "foreign key":
            other = raw.replace(path.stem.encode(), b"0" * 64, 1)
            path.write_bytes(other)
        elif damage == "foreign class":  # a pickle naming a callable: never built
            header = raw[: raw.index(b"\n", raw.index(b"\n") + 1) + 1]
            path.write_bytes(header + pickle.dumps(Path("/etc/passwd")))
        else:
            path.write_bytes(b"")
    _CACHE.clear()
    again = load_directory(POLICIES)
    assert decisions(again) == expected
    _CACHE.clear()
    assert artifacts.load(cache, entries(cache)[0].stem) is not None  # rewritten whole


def test_the_verifier_runs_on_cached_code(cache: Path) -> None:
    """A cached code object that the verifier refuses (here: one that would import os) is
    never run: the policy is compiled afresh from its source and decides as before."""
    fresh = load_directory(POLICIES)
    expected = decisions(fresh)
    hostile = compile("import os\nos.system('echo pwned')\n", "<policy earn_miles_by_distance>", "exec")
    for path in entries(cache):
        key = path.stem
        entry = artifacts.load(cache, key)
        assert entry is not None
        tampered = [(p, c, g, hostile) for p, c, g, _ in entry]
        from dsl.front import nodes as n

        artifacts.store(cache, key, tampered, {id(p): list(n.walk(p)) for p, *_ in tampered})
        assert marshal.dumps(hostile) in path.read_bytes()
    _CACHE.clear()
    again = load_directory(POLICIES)
    assert decisions(again) == expected
    from dsl.backend.compiler import UnsafeCode, verified

    with pytest.raises(UnsafeCode):
        verified(hostile)


def _load_in_worker(directory: str) -> str:
    import os

    os.environ["LOYALTY_CACHE_DIR"] = directory
    return load_directory(POLICIES).revision


def test_concurrent_writers_leave_whole_entries(cache: Path) -> None:
    """Four processes building the same files at once each rename a whole entry into place:
    afterwards every entry loads, and no temporary file is left."""
    cache.mkdir(mode=0o700)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        revisions = pool.map(_load_in_worker, [str(cache)] * 4)
    assert len(set(revisions)) == 1
    assert entries(cache) and not list(cache.glob(".tmp-*"))
    for path in entries(cache):
        assert artifacts.load(cache, path.stem) is not None


def test_an_unsafe_directory_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache directory others can write to is not used (nothing is read from or written to it)."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    monkeypatch.setenv("LOYALTY_CACHE_DIR", str(shared))
    assert artifacts.cache_dir() is None
    monkeypatch.setenv("LOYALTY_CACHE_DIR", "off")
    assert artifacts.cache_dir() is None
