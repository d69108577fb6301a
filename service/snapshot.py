"""A snapshot: one loaded policy set and what the service derives from it to answer calls.

The policy store (:mod:`service.store`) swaps snapshots and nothing else; this module
builds them. A snapshot is immutable and complete, so a call that read
:attr:`service.store.PolicyStore.current` once answers from one set throughout, whatever
reloads meanwhile: the set itself (evaluation), the converter it reads requests with (its
schema's), and the encoder that writes its decisions (whose template cache is this set's).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from dsl.policyset import PolicySet
from dsl.schema.schema import Schema
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


#: Converters of the schemas served lately, by schema digest (a few: the serving set's, a
#: shadow's, and one each may have just replaced).
_CONVERTERS: OrderedDict[str, Converter] = OrderedDict()
_CONVERTERS_KEPT = 4
_converters_lock = threading.Lock()


def converter_for(schema: Schema) -> Converter:
    """A converter for ``schema``: the one built for a schema of the same digest (the same
    texts) if there is one, since it depends on nothing else, and generating and verifying
    its decoders again would cost the serving process tens of milliseconds of interpreter
    lock per reload."""
    digest = schema.digest  # empty for a schema not read from texts: never shared
    with _converters_lock:
        converter = _CONVERTERS.get(digest) if digest else None
        if converter is not None:
            _CONVERTERS.move_to_end(digest)
            return converter
    converter = Converter(schema)
    if digest:
        with _converters_lock:
            _CONVERTERS[digest] = converter
            while len(_CONVERTERS) > _CONVERTERS_KEPT:
                _CONVERTERS.popitem(last=False)
    return converter


def build_snapshot(policy_set: PolicySet, loaded_at: datetime) -> Snapshot:
    """``policy_set`` with a converter for its schema (:func:`converter_for`) and an encoder of
    its own, ready to serve."""
    return Snapshot(policy_set, converter_for(policy_set.schema), DecisionEncoder(),
                    str(policy_set.revision), loaded_at)
