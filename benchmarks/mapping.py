"""The in-process mapping path: a request mapping in, the policy set's :class:`~dsl.Decision` out.

This is what a Python caller of the engine does with a request it holds as the
proto3 JSON mapping (see :func:`benchmarks.data.request_mapping`): decode it into
the prepared (customer, event) dicts, then :meth:`PolicySet.evaluate`. The
headline gate sets it against :func:`benchmarks.plain.earn_miles`.

:func:`decode_request` is the mapping decoder (``policy_set.decoder``: the
schema-generated fast path, falling back to the checking path). :func:`flat_decode`,
the flat reference (renaming to the schema's flat form, then the tests' reference ``prepare_*``),
is kept for comparison in the stage figures; it is not on the path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from benchmarks.data import DETAILS_KINDS
from dsl import Decision, PolicySet, Schema
from tests.dsl.input.reference import prepare_customer, prepare_event

Prepared = tuple[dict[str, Any], dict[str, Any]]


def decode_request(policy_set: PolicySet, request: Mapping[str, Any]) -> Prepared:
    """The request mapping as prepared (customer, event) dicts, by the mapping decoder.

    Raises :class:`dsl.InputError` for a bad field.
    """
    return policy_set.decoder.request(request)


def decider(policy_set: PolicySet) -> Callable[[Mapping[str, Any]], Decision]:
    """The whole in-process path for ``policy_set``: request mapping in, ``Decision`` out."""
    evaluate = policy_set.evaluate
    decode = policy_set.decoder.request

    def decide(request: Mapping[str, Any]) -> Decision:
        customer, event = decode(request)
        return evaluate(customer, event)

    return decide


# -- the flat reference, for comparison ------------------------------------------------------------


def flat_decode(schema: Schema, request: Mapping[str, Any]) -> Prepared:
    """The flat reference: proto3 JSON names to the flat form, then the reference ``prepare_*``."""
    customer, event = flatten(request)
    return prepare_customer(schema, customer), prepare_event(schema, event)


def flatten(request: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A request mapping in the flat form the reference ``prepare_*`` read (snake_case, one event dict).

    Covers the standard schema's fields (camelCase or original names, 64-bit
    integers as strings or numbers, the kind from the details object or from
    ``kind``); extension ``attributes`` are not supported and raise ``ValueError``.
    """
    customer = request["customer"]
    event = request["event"]
    if "attributes" in customer or "attributes" in event:
        raise ValueError("the stand-in decoder does not read attributes")
    flat: dict[str, Any] = {}
    for key, value in event.items():
        if key in DETAILS_KINDS:
            flat["kind"] = key
            flat.update(_snake_keys(value))
        else:
            flat[_snake(key)] = value
    return _snake_keys(customer), flat


class _SnakeNames(dict[str, str]):
    """camelCase -> snake_case, computed once per name (original names map to themselves)."""

    def __missing__(self, name: str) -> str:
        snake = self[name] = "".join(f"_{ch.lower()}" if ch.isupper() else ch for ch in name)
        return snake


_SNAKE = _SnakeNames()


def _snake(name: str) -> str:
    return _SNAKE[name]


def _snake_keys(value: dict[str, Any]) -> dict[str, Any]:
    snake = _SNAKE
    return {snake[k]: (v if type(v) is not dict and type(v) is not list else _nested(v))
            for k, v in value.items()}


def _nested(value: Any) -> Any:
    if isinstance(value, dict):
        return _snake_keys(value)
    return [_nested(v) for v in value] if isinstance(value, list) else value
