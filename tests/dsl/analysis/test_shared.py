"""Shared definitions: ``definitions`` blocks checked once, ``use`` lines resolved, compiled
into each policy that uses them, and rebuilt when the block changes.

Each test writes a real programme into a temporary directory and loads it through the
pipeline every ``loyalty`` verb uses (``dsl.load_directory`` / ``build``), so the diagnostics
are the ones authors see.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

import dsl
from dsl import artifacts
from dsl.errors import PolicyError
from dsl.policyset import _CACHE, build
from dsl.programme import digest_names, sources_for

SCHEMA = 'tiers = ["SILVER", "GOLD"]\n'

COMMON = """\
definitions shop_common
  "What the shop's policies share."

  let excluded = ["tobacco", "lottery"]
  let base_rate = 2
  table tier_bonus by customer.tier:
    "GOLD" -> 3
    else -> 1
  let rate = base_rate * tier_bonus
"""

EARN = """\
policy earn
  on purchase
  use excluded, rate from shop_common

  let eligible = sum(item.amount for item in event.items where item.category not in excluded)
  rule base: award eligible * rate points
  round points down
"""

OTHER = """\
policy visits
  on visit
  rule visit: award 5 points
"""


def write(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "schema.toml").write_text(SCHEMA)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def purchase(tier: str, items: list[tuple[str, str]]) -> dict[str, object]:
    return {
        "customer": {"id": "c1", "memberSince": "2020-01-01", "tier": tier},
        "event": {"id": "e1", "time": "2026-05-10T10:00:00Z", "purchase": {
            "amount": "100", "items": [{"sku": c, "category": c, "amount": a} for c, a in items]}},
    }


def award(policy_set: dsl.PolicySet, request: dict[str, object], *, interpreted: bool = False
          ) -> object:
    customer, event = policy_set.decoder.request(request)
    evaluate = policy_set.evaluate_interpreted if interpreted else policy_set.evaluate
    return evaluate(customer, event).awards.get("points")


def diagnostics(root: Path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        dsl.load_directory(root)
    return [f"{Path(d.file).name}:{d.span.line}:{d.span.column}: {d.code}: {d.message}"
            + (f" ({d.hint})" if d.hint else "") for d in caught.value.diagnostics]


def test_a_policy_evaluates_with_the_definitions_it_uses_compiled_and_interpreted(
        tmp_path: Path) -> None:
    """The named definitions, and the ones they read (base_rate, tier_bonus), are the policy's."""
    policy_set = dsl.load_directory(write(tmp_path, {"shop/common.policy": COMMON,
                                                     "shop/earn.policy": EARN}))
    request = purchase("GOLD", [("food", "10"), ("tobacco", "8")])
    assert award(policy_set, request) == 60  # 10 eligible * 2 * 3
    assert award(policy_set, request, interpreted=True) == 60
    assert award(policy_set, purchase("SILVER", [("food", "10")])) == 20
    assert [p.name for p in policy_set.policies] == ["earn"]  # a block is no policy
    assert policy_set.warnings == []


def test_generated_code_names_where_a_shared_definition_comes_from(tmp_path: Path) -> None:
    """Shared definitions are mangled like local ones, with a comment naming their block, and
    their lines point back at the policy's `use` line."""
    policy_set = dsl.load_directory(write(tmp_path, {"shop/common.policy": COMMON,
                                                     "shop/earn.policy": EARN}))
    compiled = policy_set.policy("earn")
    source = compiled.source()
    assert f"    # let excluded: from definitions shop_common ({tmp_path}/shop/common.policy:4)\n" \
           "    v_excluded = ['tobacco', 'lottery']\n" in source
    assert "    v_rate = (v_base_rate * v_tier_bonus)\n" in source
    line = source.splitlines().index("    v_rate = (v_base_rate * v_tier_bonus)") + 1
    assert compiled.generated.line_map[line] == 3  # the use line


@pytest.mark.parametrize(("files", "expected"), [
    pytest.param({"earn.policy": EARN.replace("from shop_common", "from shop_comon")},
                 ["earn.policy:3:27: unknown_definitions: no definitions are called `shop_comon` "
                  "in this programme (did you mean `shop_common`?)"],
                 id="unknown block, with a suggestion"),
    pytest.param({"earn.policy": EARN.replace("use excluded,", "use exclude,")},
                 ["earn.policy:3:7: unknown_definition: definitions shop_common have no `exclude` "
                  "(did you mean `excluded`?)",
                  "earn.policy:5:85: unknown_name: unknown name `excluded` (did you mean "
                  "`exclude`?)"],
                 id="unknown name, with a suggestion"),
    pytest.param({"earn.policy": EARN.replace("  let eligible", "  let rate = 1\n  let eligible")},
                 ["earn.policy:3:17: name_clash: `rate` is defined here (line 5) and also taken "
                  "from definitions shop_common (rename this file's `rate`, or leave it off "
                  "the `use` line)"],
                 id="a name also defined in the policy"),
    pytest.param({"earn.policy": EARN.replace("  let eligible", "  let base_rate = 1\n  let eligible")},
                 ["earn.policy:3:3: name_clash: `base_rate`, which definitions shop_common read, "
                  "is also defined here (line 5) (rename this `base_rate`: the shared "
                  "definitions need their own)",
                  "earn.policy:5:3: unused_binding: `base_rate` is defined but never used "
                  "(use it or delete it)"],
                 id="a name a shared definition reads, also defined in the policy"),
    pytest.param({"earn.policy": EARN.replace("use excluded, rate from shop_common",
                                              "use excluded, rate from shop_common\n"
                                              "  use excluded from more"),
                  "more.policy": "definitions more\n  let excluded = [\"wine\"]\n"},
                 ["earn.policy:4:7: name_clash: `excluded` is taken from definitions more and "
                  "from definitions shop_common (take each name from one block)"],
                 id="one name from two blocks"),
    pytest.param({"earn.policy": EARN,
                  "cycle.policy": "definitions a\n  use y from b\n  let x = 1\n\n"
                                  "definitions b\n  use x from a\n  let y = x\n"},
                 ["cycle.policy:6:14: definitions_cycle: definitions take from each other in a "
                  "circle (a -> b -> a) (move what both need into one of them, or into a third "
                  "block)",
                  "cycle.policy:7:11: unknown_name: unknown name `x` (define it with `let` "
                  "first, or read a field such as event.date)"],
                 id="a circle of blocks"),
    pytest.param({"earn.policy": EARN, "zz_again.policy": "definitions shop_common\n  let x = 1\n"},
                 ["zz_again.policy:1:13: duplicate_definitions: definitions shop_common are already "
                  "written at {root}/common.policy:1 (give every definitions block its own name)"],
                 id="two blocks of one name"),
    pytest.param({"earn.policy": EARN, "mixed.policy": OTHER + "\ndefinitions extra\n  let x = 1\n"},
                 ["mixed.policy:5:13: mixed_definitions: definitions extra share a file with "
                  "policies (move the definitions to a file of their own, so that every policy "
                  "file of the programme can find them)"],
                 id="definitions beside a policy"),
])
def test_problems_with_use_lines_and_blocks(tmp_path: Path, files: dict[str, str],
                                            expected: list[str]) -> None:
    """Each problem is one diagnostic with file, line, column and a hint that says what to do."""
    root = write(tmp_path, {"common.policy": COMMON, **files})
    assert sorted(diagnostics(root)) == sorted(e.replace("{root}", str(root)) for e in expected)


def test_a_mistake_in_a_block_is_reported_once_against_its_file(tmp_path: Path) -> None:
    """Checked once with the schema: two policies using a broken definition give one diagnostic,
    at the definitions file, and none in the policies."""
    broken = COMMON.replace("let base_rate = 2", "let base_rate = customer.tire")
    second = EARN.replace("policy earn", "policy earn_again")
    found = diagnostics(write(tmp_path, {"common.policy": broken, "earn.policy": EARN,
                                         "again.policy": second}))
    assert found == ["common.policy:5:19: unknown_field: customer has no field `tire` "
                     "(did you mean `tier`?)"]


def test_a_block_reads_only_fields_every_event_has(tmp_path: Path) -> None:
    """A block applies to no event kind: a field of one kind is refused there, with the reason."""
    broken = COMMON.replace("let base_rate = 2", "let base_rate = event.amount")
    found = diagnostics(write(tmp_path, {"common.policy": broken, "earn.policy": EARN}))
    assert found == ["common.policy:5:19: unknown_field: event.amount exists only for donation, "
                     "purchase events, and this policy is on no kind (apply the policy to "
                     "donation events, or read a field every listed kind has)"]


def test_shared_names_are_validated_like_local_ones(tmp_path: Path) -> None:
    """The code generator's names go through the same checks: a reserved name is refused."""
    broken = COMMON + "  let __class__ = 1\n"
    found = diagnostics(write(tmp_path, {"common.policy": broken, "earn.policy": EARN}))
    assert found == ["common.policy:10:3: reserved_name: `__class__` is not allowed as a "
                     "binding name: names may not start with _ or contain __ (rename it with "
                     "letters, digits and single underscores)"]


def test_an_imported_name_the_policy_never_reads_is_a_warning_at_the_use_line(
        tmp_path: Path) -> None:
    """A name the policy's own code never reads is unused, even if a shared one it takes reads
    it; one only a shared definition reads (base_rate here) is not."""
    policy = EARN.replace("use excluded, rate", "use excluded, rate, spare")
    policy_set = dsl.load_directory(write(tmp_path, {"common.policy": COMMON + "  let spare = 1\n",
                                                     "earn.policy": policy}))
    assert [(d.span.line, d.span.column, d.code, d.message) for d in policy_set.warnings] == [
        (3, 23, "unused_binding", "`spare` is defined but never used")]


def test_a_changed_block_rebuilds_the_policies_using_it_and_only_those(tmp_path: Path) -> None:
    """The file cache keys a policy with `use` lines by the blocks it needs."""
    root = write(tmp_path, {"common.policy": COMMON, "earn.policy": EARN, "visits.policy": OTHER})
    before = dsl.load_directory(root)
    (root / "common.policy").write_text(COMMON.replace("let base_rate = 2", "let base_rate = 5"))
    after = dsl.load_directory(root)
    assert award(before, purchase("SILVER", [("food", "10")])) == 20
    assert award(after, purchase("SILVER", [("food", "10")])) == 50
    assert after.policy("earn") is not before.policy("earn")
    assert after.policy("visits") is before.policy("visits")  # from the cache
    assert after.revision != before.revision


def test_checking_one_file_finds_the_programmes_definitions(tmp_path: Path) -> None:
    """`loyalty check FILE` (sources_for) reads the programme's definitions files too."""
    root = write(tmp_path, {"shared/common.policy": COMMON, "shop/earn.policy": EARN,
                            "shop/visits.policy": OTHER})
    path = root / "shop" / "earn.policy"
    schema, sources = sources_for(path)
    assert [Path(f).name for f, _ in sources] == ["earn.policy", "common.policy"]
    policy_set = build(sources, schema, digest_names(path))
    assert [p.name for p in policy_set.policies] == ["earn"]
    folder = root / "shop"
    schema, sources = sources_for(folder)
    assert [Path(f).name for f, _ in sources] == ["earn.policy", "visits.policy", "common.policy"]
    assert [p.name for p in build(sources, schema, digest_names(folder)).policies] == [
        "earn", "visits"]


def test_a_block_may_take_from_another(tmp_path: Path) -> None:
    base = "definitions base\n  let base_rate = 4\n"
    common = COMMON.replace("  let base_rate = 2\n", "  use base_rate from base\n")
    policy_set = dsl.load_directory(write(tmp_path, {"base.policy": base, "common.policy": common,
                                                     "earn.policy": EARN}))
    assert award(policy_set, purchase("SILVER", [("food", "10")])) == 40
    imported = policy_set.policy("earn").ast.imported
    assert {name: (i.module, i.named) for name, i in imported.items()} == {
        "excluded": ("shop_common", True), "base_rate": ("base", False),
        "tier_bonus": ("shop_common", False), "rate": ("shop_common", True)}
    assert award(policy_set, purchase("GOLD", [("food", "1.5")])) == Decimal(18)


def test_the_disk_cache_keeps_what_a_policy_took_and_is_keyed_by_the_block(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy read back from the disk cache (dsl.artifacts) still knows where its shared
    members come from and decides the same; after the block changes, the entry written for
    the old block is not read: the policy decides by the new one."""
    monkeypatch.setenv("LOYALTY_CACHE_DIR", str(tmp_path / "cache"))
    root = write(tmp_path / "programme", {"common.policy": COMMON, "earn.policy": EARN})
    _CACHE.clear()
    first = dsl.load_directory(root)
    _CACHE.clear()
    again = dsl.load_directory(root)
    [entry] = (tmp_path / "cache").glob("*.entry")
    assert artifacts.load(tmp_path / "cache", entry.stem) is not None  # readable, not rebuilt
    assert again.policy("earn").ast.imported == first.policy("earn").ast.imported
    assert award(again, purchase("GOLD", [("food", "10")])) == 60
    (root / "common.policy").write_text(COMMON.replace('"tobacco", ', ""))
    _CACHE.clear()
    changed = dsl.load_directory(root)
    assert award(changed, purchase("GOLD", [("food", "10"), ("tobacco", "10")])) == 120
    assert len(list((tmp_path / "cache").glob("*.entry"))) == 2
    _CACHE.clear()


def test_a_failed_use_line_leaves_the_policys_own_names_alone(tmp_path: Path) -> None:
    """A name on a `use` line naming no block is reported there once; the policy's own binding
    of that name is still checked as its own (here its type error is reported)."""
    policy = EARN.replace("use excluded, rate from shop_common", "use rate from nowhere") \
        .replace("  let eligible", '  let excluded = ["x"]\n  let rate = "2" + 1\n  let eligible')
    found = diagnostics(write(tmp_path, {"common.policy": COMMON, "earn.policy": policy}))
    assert [d.split(": ")[1] for d in found] == ["unknown_definitions", "type_error"]
