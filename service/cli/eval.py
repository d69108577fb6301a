"""``loyalty eval``: evaluate one customer and one event against a policy directory.

Customer and event files are JSON (``.json``) or TOML (``.toml``) with the
schema's fields; decimals are written as strings. Exit status 0 with a
decision, 1 when a policy fails while evaluating, 2 for unusable input.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from dsl import EvaluationError, InputError
from dsl.decision import Decision, format_duration

from ._load import load


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``eval`` verb."""
    p = subparsers.add_parser(
        "eval", help="evaluate a customer and an event against the policies",
        description="Evaluate one (customer, event) against the policies below --policies and "
                    "print the decision.")
    p.add_argument("--policies", default="policies", metavar="DIR",
                   help="policy directory (default: policies)")
    p.add_argument("--customer", required=True, metavar="FILE", help="customer (.json or .toml)")
    p.add_argument("--event", required=True, metavar="FILE", help="event (.json or .toml)")
    p.add_argument("--explain", action="store_true", help="show why each rule did or did not fire")
    p.add_argument("--interpreted", action="store_true",
                   help="use the reference interpreter instead of the compiled evaluator")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text for people (default) or json for machines")
    p.set_defaults(run=run)


def read_mapping(path: Path, what: str) -> dict[str, Any] | str:
    """The mapping in a JSON or TOML file, or an error message."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return f"{path}: cannot read the {what} file: {exc.strerror}"
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text, parse_float=str)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        return f"{path}: the {what} file is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}"
    if not isinstance(data, dict):
        return f"{path}: the {what} file must hold one object"
    return data


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the decision; returns the exit status."""
    policy_set = load(Path(args.policies), "eval")
    if isinstance(policy_set, int):
        return policy_set
    raw_customer = read_mapping(Path(args.customer), "customer")
    raw_event = read_mapping(Path(args.event), "event")
    problems = [x for x in (raw_customer, raw_event) if isinstance(x, str)]
    if problems:
        for message in problems:
            print(f"loyalty eval: {message}", file=sys.stderr)
        return 2
    assert isinstance(raw_customer, dict) and isinstance(raw_event, dict)
    errors = []
    customer = event = None
    try:
        customer = policy_set.schema.prepare_customer(raw_customer)
    except InputError as exc:
        errors.extend(exc.errors)
    try:
        event = policy_set.schema.prepare_event(raw_event)
    except InputError as exc:
        errors.extend(exc.errors)
    if errors or customer is None or event is None:
        for e in errors:
            print(f"loyalty eval: {e.path}: {e.reason}", file=sys.stderr)
        return 2
    evaluate = policy_set.evaluate_interpreted if args.interpreted else policy_set.evaluate
    try:
        decision = evaluate(customer, event, explain=args.explain)
    except EvaluationError as exc:
        print(f"{exc.file}:{exc.line}: evaluation_error: policy {exc.policy}: {exc.message}",
              file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(decision.to_dict(), indent=2))
    else:
        print(render(decision))
    return 0


def render(d: Decision) -> str:
    """A decision for people: awards, benefits, tier, tags, then the reasons if any."""
    lines = [f"revision {d.revision}"]
    lines.append("policies: " + (", ".join(d.policies) or "none applied"))
    awards = ", ".join(f"{amount} {currency}" for currency, amount in sorted(d.awards.items()))
    lines.append("awards: " + (awards or "none"))
    for b in d.benefits:
        params = ", ".join(f"{k} = {show(v)}" for k, v in sorted(b.params.items()))
        lines.append(f"benefit: {b.name}" + (f" with {params}" if params else "")
                     + f" ({b.policy}.{b.rule})")
    lines.append(f"tier: {d.tier or 'none'}")
    lines.append("tags: " + (", ".join(d.tags) or "none"))
    if d.reasons is not None:
        lines.append("reasons:")
        lines.extend(f"  {r.render()}" for r in d.reasons)
    return "\n".join(lines)


def show(value: Any) -> str:
    """A parameter value as the policy language writes it."""
    from datetime import timedelta

    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)
