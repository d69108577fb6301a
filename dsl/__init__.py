"""The loyalty policy language: parse, check, compile and evaluate loyalty policies.

Prepare once, evaluate many::

    import dsl

    policy_set = dsl.load_directory("policies/")
    customer = policy_set.schema.prepare_customer({...})
    event = policy_set.schema.prepare_event({...})
    decision = policy_set.evaluate(customer, event, explain=True)

See ``docs/architecture.md`` for the API and ``docs/language.md`` for the language.
"""

from .decision import Benefit, Decision, Reason
from .errors import Diagnostic, EvaluationError, FieldError, InputError, PolicyError, Span
from .policyset import (
    CompiledPolicy,
    PolicyInfo,
    PolicySet,
    check_directory,
    load_directory,
    load_source,
)
from .schema import Schema, SchemaError

__all__ = [
    "Benefit",
    "CompiledPolicy",
    "Decision",
    "Diagnostic",
    "EvaluationError",
    "FieldError",
    "InputError",
    "PolicyError",
    "PolicyInfo",
    "PolicySet",
    "Reason",
    "Schema",
    "SchemaError",
    "Span",
    "check_directory",
    "load_directory",
    "load_source",
]
