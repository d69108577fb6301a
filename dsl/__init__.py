"""The loyalty policy language: parse, check, compile and evaluate loyalty policies.

Prepare once, evaluate many::

    import dsl

    policy_set = dsl.load_directory("policies/")
    # A request as grpcurl sends it (the proto3 JSON mapping of loyalty.v1.EvaluateRequest):
    customer, event = policy_set.decoder.request({"customer": {...}, "event": {...}})
    decision = policy_set.evaluate(customer, event, explain=True)

With counters (docs/language.md, "Periods and counters"), the caller sums the windows the
event reads and passes them in; the decision says what to append::

    windows = policy_set.windows(customer, event)            # [dsl.Window, ...]
    decision = policy_set.evaluate(customer, event, state=store.sums(customer_id, windows))
    decision.counted                                          # {"quarterly_spend": Decimal("100.00")}

``policy_set.decoder`` (:class:`MappingDecoder`) reads requests into prepared input; the
service's ``Converter`` does the same for ``loyalty.v1`` messages.

See ``docs/architecture.md`` for the API and ``docs/language.md`` for the language.
"""

from dsl.decision import Benefit, Decision, Reason
from dsl.errors import Diagnostic, EvaluationError, FieldError, InputError, PolicyError, Span
from dsl.input.request import MappingDecoder, RequestLayout
from dsl.periods import MemoryStore, Window
from dsl.policyset import (
    CompiledPolicy,
    PolicyInfo,
    PolicySet,
    check_directory,
    load_directory,
    load_source,
)
from dsl.schema.schema import Schema, SchemaError

__all__ = [
    "Benefit",
    "CompiledPolicy",
    "Decision",
    "Diagnostic",
    "EvaluationError",
    "FieldError",
    "InputError",
    "MappingDecoder",
    "MemoryStore",
    "PolicyError",
    "PolicyInfo",
    "PolicySet",
    "Reason",
    "RequestLayout",
    "Schema",
    "SchemaError",
    "Span",
    "Window",
    "check_directory",
    "load_directory",
    "load_source",
]
