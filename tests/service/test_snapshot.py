"""Snapshots: a loaded policy set with its own converter and encoder, built once per load."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

import dsl
from service.convert import Converter
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.snapshot import Snapshot, build_snapshot
from service.store import PolicyStore
from service.wire import DecisionEncoder, decision_message
from tests.service.conftest import POLICIES, gold_customer, jfk_lhr

LOADED_AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def policy_set() -> dsl.PolicySet:
    return dsl.load_directory(POLICIES)


def test_a_snapshot_holds_the_set_its_revision_and_what_serves_it(policy_set):
    """build_snapshot gives the set, its revision and load time, a converter for its schema and
    an encoder of its own."""
    snapshot = build_snapshot(policy_set, LOADED_AT)
    assert snapshot.policy_set is policy_set
    assert snapshot.revision == policy_set.revision
    assert snapshot.loaded_at == LOADED_AT
    assert isinstance(snapshot.converter, Converter)
    assert isinstance(snapshot.encoder, DecisionEncoder)


def test_each_snapshot_has_its_own_encoder(policy_set):
    """Two snapshots never share an encoder: a template cache belongs to one set."""
    assert build_snapshot(policy_set, LOADED_AT).encoder is not build_snapshot(policy_set, LOADED_AT).encoder


def test_a_snapshot_answers_a_request_from_end_to_end(policy_set):
    """Its converter reads a request for its set, and its encoder writes the set's decision as
    protobuf would."""
    snapshot = build_snapshot(policy_set, LOADED_AT)
    customer, event = snapshot.converter.inputs(gold_customer(), jfk_lhr())
    decision = snapshot.policy_set.evaluate(customer, event)
    assert decision.awards
    assert snapshot.encoder.message(decision) == decision_message(decision)
    assert pb.Decision.FromString(snapshot.encoder.serialize(decision)).revision == snapshot.revision


def test_a_snapshot_is_immutable(policy_set):
    """A call keeps one snapshot throughout: nothing in it can be replaced under the call."""
    snapshot = build_snapshot(policy_set, LOADED_AT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.revision = "r0"  # type: ignore[misc]


def test_the_store_serves_built_snapshots():
    """The store swaps in what build_snapshot builds, and keeps the one it has when the
    revision did not change."""
    store = PolicyStore(POLICIES)
    assert store.load()
    first = store.current
    assert isinstance(first, Snapshot)
    assert first.revision == first.policy_set.revision
    assert store.load()
    assert store.current is first
