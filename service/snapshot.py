"""A snapshot: one loaded policy set and what the service derives from it to answer calls.

The policy store (:mod:`service.store`) swaps snapshots and nothing else; this module
builds them. A snapshot is immutable and complete, so a call that read
:attr:`service.store.PolicyStore.current` once answers from one set throughout, whatever
reloads meanwhile: the set itself (evaluation), the converter it reads requests with (its
schema's), and the encoder that writes its decisions (whose template cache is this set's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dsl.policyset import PolicySet
from service.convert import Converter
from service.wire import DecisionEncoder


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One loaded policy set and what the service derives from it, as one immutable value."""

    policy_set: PolicySet
    #: Reads request messages into the set's prepared input (the set's schema).
    converter: Converter
    #: Writes the set's decisions as response bytes (its template cache is this set's).
    encoder: DecisionEncoder
    revision: str
    loaded_at: datetime


def build_snapshot(policy_set: PolicySet, loaded_at: datetime,
                   previous: Snapshot | None = None) -> Snapshot:
    """``policy_set`` with a converter for its schema and an encoder of its own, ready to serve.

    The converter of ``previous`` is kept when its schema has the same digest (the same
    texts): it depends on nothing else, and generating and verifying its decoders again
    would cost the serving process tens of milliseconds of interpreter lock per reload.
    """
    digest = policy_set.schema.digest  # empty for a schema not read from texts: never shared
    if previous is not None and digest and previous.converter.schema.digest == digest:
        converter = previous.converter
    else:
        converter = Converter(policy_set.schema)
    return Snapshot(policy_set, converter, DecisionEncoder(), str(policy_set.revision), loaded_at)
