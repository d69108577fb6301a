"""The reload helper (service.reloads) and the parts it sends back (dsl.parts)."""

from __future__ import annotations

import marshal
import shutil
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

import dsl.parts
from dsl.backend.compiler import UnsafeCode, verified
from dsl.errors import PolicyError
from dsl.parts import from_parts, prepare_parts
from dsl.policyset import load_directory
from service.convert import Converter
from service.reloads import ReloadHelper
from tests.service.conftest import POLICIES, gold_customer, jfk_lhr
from tests.service.test_process import AIRLINE, BROKEN


def test_a_set_read_back_from_parts_is_the_set_loaded_in_process():
    """Same revision, policies, explain code, award bounds, and decisions (with reasons) as
    ``load_directory``: the check's types, keyed by node identity, are keyed again on arrival."""
    loaded = load_directory(POLICIES)
    back = from_parts(prepare_parts(POLICIES))
    assert back.revision == loaded.revision
    assert back.policies == loaded.policies
    for a, b in zip(loaded.compiled, back.compiled, strict=True):
        assert b.source("explain") == a.source("explain"), a.name
        assert b.award_bounds == a.award_bounds, a.name
        assert len(b.check.types) == len(a.check.types), a.name
    customer, event = Converter(loaded.schema).inputs(gold_customer(), jfk_lhr())
    assert repr(back.evaluate(customer, event, explain=True)) == \
        repr(loaded.evaluate(customer, event, explain=True))
    # The schema's sentinels are this process's own: its converter reads requests the same.
    assert Converter(back.schema).inputs(gold_customer(), jfk_lhr()) == (customer, event)


def test_code_from_parts_still_passes_the_verifier_in_the_serving_process(monkeypatch):
    """Code that another process compiled is verified where it runs: a module that imports
    (here slipped into the parts in place of the generated code) is refused by the verifier
    and never run; the policy is compiled afresh from its (verified) source instead."""
    bad = compile("import os\ndef evaluate(c, e, d):\n    pass\n", "<policy x>", "exec")
    with pytest.raises(UnsafeCode, match="not allowed in generated code"):
        verified(bad)
    monkeypatch.setattr(dsl.parts, "marshal", SimpleNamespace(
        dumps=lambda _code: marshal.dumps(bad), loads=marshal.loads))
    policy_set = from_parts(prepare_parts(POLICIES))
    codes = [p.module.code for p in policy_set.compiled]
    assert codes and all("os" not in code.co_names for code in codes)
    assert all(code.co_code != bad.co_code for code in codes)


@pytest.fixture(scope="module")
def helper():
    """One ready helper for the tests below."""
    started = ReloadHelper().start()
    assert started.wait_ready(60), "the helper did not start within 60 s"
    yield started
    started.stop()


def test_the_helper_prepares_a_set_and_this_process_only_reads_it_back(helper):
    """A load through a ready helper: the set ``load_directory`` gives, counted as prepared in
    the helper, with the helper's CPU well above this process's."""
    before = helper.prepared_in_helper
    policy_set = helper.load(POLICIES)
    assert policy_set.revision == load_directory(POLICIES).revision
    assert helper.prepared_in_helper == before + 1
    _serving, helper_cpu = helper.last_cpu_s
    assert helper_cpu > 0


def test_a_refused_directory_gives_the_diagnostics_an_in_process_load_gives(helper, tmp_path):
    """A broken policy: the PolicyError raised here carries the same diagnostics, so the store
    logs and shows exactly what it did when it loaded in-process."""
    directory = shutil.copytree(POLICIES, tmp_path / "policies")
    (directory / AIRLINE).write_text(BROKEN)
    with pytest.raises(PolicyError) as in_process:
        load_directory(directory)
    with pytest.raises(PolicyError) as prepared:
        helper.load(directory)
    assert prepared.value.diagnostics == in_process.value.diagnostics
    assert str(prepared.value) == str(in_process.value)


def test_a_stopped_helper_leaves_loads_to_this_process(tmp_path: Path):
    """After stop() a load still succeeds, prepared here (the helper is never waited for)."""
    stopped = ReloadHelper().start()
    stopped.stop()
    assert stopped.pid is None
    assert stopped.load(POLICIES).revision == load_directory(POLICIES).revision
    assert stopped.prepared_in_process == 1 and stopped.prepared_in_helper == 0


SHARED = Path("supermarket") / "supermarket_common.policy"


def _store_spend(policy_set, *categories: str) -> object:
    """What store_spend counts for a purchase of GBP 10 in each of ``categories``."""
    customer, event = policy_set.decoder.request({
        "customer": {"id": "c1", "memberSince": "2024-01-01"},
        "event": {"id": "e1", "time": "2026-05-10T10:00:00Z", "purchase": {
            "amount": str(10 * len(categories)), "currency": "GBP",
            "items": [{"sku": c, "category": c, "amount": "10.00"} for c in categories]}}})
    return policy_set.evaluate(customer, event, only=["store_spend"]).counted


def test_a_changed_shared_file_re_prepares_the_policies_using_it(helper, tmp_path):
    """A shared definitions file is picked up like a policy file: the helper prepares the set
    again, the policy using it decides by the new list, and the revision and its digest move;
    a policy that does not use it is described as before."""
    directory = shutil.copytree(POLICIES, tmp_path / "policies")
    before = helper.load(directory)
    assert _store_spend(before, "groceries", "alcohol") == {"store_spend_this_month": Decimal("20.00")}
    shared = directory / SHARED
    shared.write_text(shared.read_text().replace('"gift-cards"]', '"gift-cards", "alcohol"]'))
    prepared = helper.prepared_in_helper
    after = helper.load(directory)
    assert helper.prepared_in_helper == prepared + 1
    assert after.revision != before.revision
    assert after.revision == load_directory(directory).revision
    assert _store_spend(after, "groceries", "alcohol") == {"store_spend_this_month": Decimal("10.00")}
    # The policy's digest (ListPolicies) covers the definitions it takes.
    assert after.policy("store_spend").info.digest != before.policy("store_spend").info.digest
    assert after.policy("store_spend").source() != before.policy("store_spend").source()
    assert after.policy("earn_miles_by_distance").info == before.policy("earn_miles_by_distance").info
