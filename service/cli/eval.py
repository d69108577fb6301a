"""``loyalty eval``: evaluate one customer and one event against a policy directory.

The input is the request text of the gRPC API, exactly as grpcurl sends it (the
proto3 JSON mapping of ``loyalty.v1``; camelCase or snake_case names), so one
text works everywhere: ``--request FILE`` holds an ``EvaluateRequest`` body
(``{"customer": {...}, "event": {...}, "explain": true, "onlyPolicies": [...]}``);
``--customer FILE`` and ``--event FILE`` hold a ``Customer`` and an ``Event``.
Files are JSON, or TOML when they end in ``.toml`` (TOML's own dates and times are
welcome); attribute values may be written plainly (``"nights": 4``), typed by the schema
(:mod:`dsl.tools.plainvalues`), as in a policy test file. ``--format json`` prints the
decision as the API's JSON form of a ``Decision``, awards as decimal strings.

``--state FILE`` gives the customer's state before the event, as a policy test case writes
it (``state = { quarterly_spend = "1400.00" }``, ``history = [...]``); the decision then
says what it counted.

Exit status 0 with a decision, 1 when a policy fails while evaluating, 2 for
unusable input (each problem printed as ``loyalty eval: FILE:LINE:COLUMN: PATH: REASON``, the
line and column of the path's key when the file writes it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from dsl import EvaluationError, InputError, PolicySet, bounded_toml
from dsl.backend.runner import COMPILED, INTERPRETED
from dsl.decision import Decision, format_params, plain
from dsl.errors import FieldError, did_you_mean
from dsl.tools.plainvalues import type_plain_values
from dsl.tools.stateinput import parse_history, parse_state, state_for
from service.wire import decision_message

from ._load import load

#: The keys of an ``EvaluateRequest`` body besides customer and event, both spellings.
REQUEST_KEYS = ("customer", "event", "explain", "onlyPolicies", "only_policies", "language")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``eval`` verb."""
    p = subparsers.add_parser(
        "eval", help="evaluate a customer and an event against the policies",
        description="Evaluate one (customer, event) against the policies below --policies and "
                    "print the decision. The input is the gRPC API's JSON, as grpcurl sends it: "
                    "an EvaluateRequest body (--request), or a Customer and an Event "
                    "(--customer, --event).")
    p.add_argument("--policies", default="policies", metavar="DIR",
                   help="policy directory (default: policies)")
    p.add_argument("--request", metavar="FILE",
                   help='an EvaluateRequest body: {"customer": ..., "event": ..., "explain": ..., '
                        '"onlyPolicies": [...]} (.json or .toml; - reads JSON from stdin)')
    p.add_argument("--customer", metavar="FILE", help="a Customer message (.json or .toml)")
    p.add_argument("--event", metavar="FILE", help="an Event message (.json or .toml)")
    p.add_argument("--explain", action="store_true", help="show why each rule did or did not fire")
    p.add_argument("--language", metavar="TAG", default="",
                   help="the language of the rules' texts in the reasons (fr, pt-BR); "
                        "default: each rule's first text")
    p.add_argument("--state", metavar="FILE",
                   help="the customer's state before the event (.toml or .json): "
                        "state = { counter = amount } and/or history = [entries or earlier "
                        "events], as a policy test case writes them")
    p.add_argument("--interpreted", action="store_true",
                   help="use the reference interpreter instead of the compiled evaluator")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text for people (default) or json for machines (the API's Decision)")
    p.set_defaults(run=run)


def read_mapping(path: Path, what: str) -> dict[str, Any] | str:
    """The mapping in a JSON or TOML file (``-``: JSON on stdin), or an error message."""
    try:
        if str(path) == "-":
            path = Path("<stdin>")
            text = sys.stdin.buffer.read().decode("utf-8")
        else:
            text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return f"{path}: cannot read the {what} file: {exc.strerror}"
    except UnicodeDecodeError:
        return f"{path}: the {what} file is not UTF-8 text"
    kind = "TOML" if path.suffix == ".toml" else "JSON"
    try:
        # JSON numbers with a point are kept as their text: exact, never a binary float.
        data = bounded_toml.loads(text) if kind == "TOML" else json.loads(text, parse_float=str)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        return f"{path}: the {what} file is not valid {kind}: {exc}"
    except bounded_toml.TomlBoundError as exc:
        return f"{path}:{exc.line}:{exc.column}: the {what} file is too large to be a request: {exc.message}"
    except RecursionError:  # both parsers recurse once per level of nesting
        return f"{path}: the {what} file nests too deeply to be a request"
    if not isinstance(data, dict):
        return f"{path}: the {what} file must hold one object"
    return data


def _fail(path: str, errors: list[FieldError], root: str = "", locate: bool = True) -> int:
    """Print each problem as ``loyalty eval: FILE:LINE:COLUMN: PATH: REASON`` (the place of the
    path's last key when every key of it is found in the file; ``root`` is the message the file
    holds, left out of the path's keys), and return exit status 2."""
    text = None
    if locate and path != "-":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = None
    for e in errors:
        where = _position(text, e.path, root) if text is not None else None
        place = f"{path}:{where[0]}:{where[1]}" if where else path
        print(f"loyalty eval: {place}: {e.path}: {e.reason}", file=sys.stderr)
    return 2


def _position(text: str, path: str, root: str) -> tuple[int, int] | None:
    """(line, column) of the last key of a request ``path`` in a JSON or TOML file, each key
    looked for after the one before it; None when one of them is not written there (a field
    that is required and absent has no place of its own)."""
    keys = [re.sub(r"(\[\d+\])+$", "", part) for part in path.split(".") if part]
    if root and keys[:1] == [root]:
        keys = keys[1:]
    start, found = 0, -1
    for key in keys[:16]:
        k = re.escape(key)
        m = re.compile(rf"\"{k}\"\s*:|(?:(?<![\w\-\"']){k}|\"{k}\")(?=\s*=|\s*\.|\s*\])").search(text, start)
        if m is None:
            return None
        found, start = m.start(), m.end()
    if found < 0:
        return None
    line_start = text.rfind("\n", 0, found) + 1
    return text.count("\n", 0, found) + 1, found - line_start + 1


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the decision; returns the exit status."""
    pair = (args.customer, args.event)
    if (args.request is None and None in pair) or (args.request is not None and pair != (None, None)):
        print("loyalty eval: give --request FILE, or both --customer FILE and --event FILE",
              file=sys.stderr)
        return 2
    if [args.request, *pair].count("-") > 1:
        print("loyalty eval: only one input can come from stdin (-)", file=sys.stderr)
        return 2
    policy_set = load(Path(args.policies), "eval")
    if isinstance(policy_set, int):
        return policy_set
    files = [args.request] if args.request is not None else [args.customer, args.event]
    whats = ["request"] if args.request is not None else ["customer", "event"]
    raw = [read_mapping(Path(f), what) for f, what in zip(files, whats, strict=True)]
    problems = [x for x in raw if isinstance(x, str)]
    if problems:
        for message in problems:
            print(f"loyalty eval: {message}", file=sys.stderr)
        return 2
    decoder = policy_set.decoder
    explain, only, language = args.explain, None, args.language
    if args.request is not None:
        assert isinstance(raw[0], dict)
        errors = _request_errors(raw[0], policy_set)
        for part in ("customer", "event"):  # plain attribute values, typed by the schema
            if part in raw[0]:
                raw[0][part], plain_errors = type_plain_values(decoder.layout, part, raw[0][part])
                errors.extend(plain_errors)
        customer = event = None
        try:
            customer, event = decoder.request(raw[0])
        except InputError as exc:
            errors.extend(exc.errors)
        if errors or customer is None or event is None:
            return _fail(args.request, errors)
        explain = explain or raw[0].get("explain") is True
        only = raw[0].get("onlyPolicies") or raw[0].get("only_policies") or None
        language = args.language or raw[0].get("language") or ""
    else:
        status = 0
        prepared = []
        for i, (part, file, data, read) in enumerate((
                ("customer", args.customer, raw[0], decoder.customer),
                ("event", args.event, raw[1], decoder.event))):
            assert isinstance(data, dict)
            if "customer" in data and "event" in data:  # a grpcurl body given to the wrong flag
                print(f"loyalty eval: {file}: holds a whole request (customer and event): "
                      "give it as --request FILE", file=sys.stderr)
                status = 2
                continue
            # Plain attribute values, typed by the schema (the paths say customer. and event.).
            raw[i], plain_errors = type_plain_values(decoder.layout, part, data)
            if plain_errors:
                status = _fail(file, plain_errors, part)
                continue
            try:
                prepared.append(read(raw[i]))
            except InputError as exc:
                status = _fail(file, exc.errors, part)
        if status:
            return status
        customer, event = prepared
    runner = INTERPRETED if args.interpreted else COMPILED
    try:
        state = None
        if args.state is not None:
            read = _read_state(Path(args.state))
            if isinstance(read, str):
                print(f"loyalty eval: {read}", file=sys.stderr)
                return 2
            history = []
            for i, item in enumerate(read[1]):  # earlier events: plain values as the event's
                if "event" in item:
                    earlier, plain_errors = type_plain_values(decoder.layout, "event", item["event"])
                    if plain_errors:
                        return _fail(args.state, [FieldError(f"history[{i}].{e.path}", e.reason)
                                                  for e in plain_errors])
                    item = {"event": earlier}
                history.append(item)
            read = (read[0], tuple(history))
            raw_customer = raw[0]["customer"] if args.request is not None else raw[0]
            state = state_for(policy_set, raw_customer, customer, event, *read)
        decision = policy_set.evaluate(customer, event, explain=explain, only=only,
                                       runner=runner, state=state)
    except InputError as exc:  # an earlier event of the history: its paths name no item
        return _fail(args.state, exc.errors, locate=False)
    except EvaluationError as exc:
        print(f"{exc.file}:{exc.line}: evaluation_error: policy {exc.policy}: {exc.message}",
              file=sys.stderr)
        return 1
    decision.speak(language)
    if args.format == "json":
        out = decision_json(decision)
        if decision.counted:
            out["counted"] = {k: plain(v) for k, v in sorted(decision.counted.items())}
        print(json.dumps(out, indent=2))
    else:
        print(render(decision))
    return 0


def _read_state(path: Path) -> tuple[dict[str, Any], tuple[dict[str, Any], ...]] | str:
    """(state, history) from a ``--state`` file, or an error message."""
    data = read_mapping(path, "state")
    if isinstance(data, str):
        return data
    unknown = [k for k in data if k not in ("state", "history")]
    if unknown:
        return f"{path}: {unknown[0]}: a state file holds state = {{...}} and history = [...]"
    try:
        return (parse_state(data.get("state", {})),
                parse_history(data.get("history", [])))
    except ValueError as exc:
        return f"{path}: {exc}"


def _request_errors(data: Mapping[str, Any], policy_set: PolicySet) -> list[FieldError]:
    """Problems with an EvaluateRequest body's keys other than customer and event (which the
    decoder reads): unknown keys, ``explain`` not a boolean, ``onlyPolicies`` naming no policy."""
    errors = []
    for key in data:
        if key not in REQUEST_KEYS:
            hint = did_you_mean(str(key), REQUEST_KEYS[:4]) if len(str(key)) <= 64 else ""
            errors.append(FieldError(str(key)[:64], "is not a field of EvaluateRequest"
                                     + (f"; {hint}" if hint else " (fields: customer, event, "
                                                                 "explain, onlyPolicies)")))
    if "onlyPolicies" in data and "only_policies" in data:
        errors.append(FieldError("only_policies", "is given twice (also as onlyPolicies)"))
    explain = data.get("explain")
    if explain is not None and not isinstance(explain, bool):
        errors.append(FieldError("explain", "must be true or false"))
    language = data.get("language")
    if language is not None and not (isinstance(language, str) and len(language) <= 35):
        errors.append(FieldError("language", "must be a language tag such as fr or pt-BR"))
    key = "onlyPolicies" if "onlyPolicies" in data else "only_policies"
    only = data.get(key)
    if only is None:
        return errors
    if not isinstance(only, list) or not all(isinstance(p, str) for p in only):
        errors.append(FieldError(key, "must be a list of policy names"))
        return errors
    names = [p.name for p in policy_set.policies]
    for i, name in enumerate(only):
        # The service quietly evaluates nothing for an unknown name; here a typo is
        # far likelier than intent, so it is refused.
        if name not in names:
            hint = did_you_mean(name, names) if len(name) <= 64 else ""
            errors.append(FieldError(f"{key}[{i}]", f'no policy is named "{name[:64]}"'
                                     + (f"; {hint}" if hint else "")))
    return errors


def decision_json(decision: Decision) -> dict[str, Any]:
    """A decision in the API's JSON form, as a ``loyalty.v1.Decision`` (what grpcurl prints
    for a response's ``decision``): awards as decimal strings, every field present."""
    return json_format.MessageToDict(decision_message(decision),
                                     always_print_fields_with_no_presence=True)


def render(d: Decision) -> str:
    """A decision for people: awards, benefits, tier, tags, then the reasons if any."""
    lines = [f"revision {d.revision}"]
    lines.append("policies: " + (", ".join(d.policies) or "none applied"))
    awards = ", ".join(f"{amount} {currency}" for currency, amount in sorted(d.awards.items()))
    lines.append("awards: " + (awards or "none"))
    for b in d.benefits:
        params = format_params(b.params)
        lines.append(f"benefit: {b.name}" + (f" with {params}" if params else "")
                     + f" ({b.policy}.{b.rule})")
    lines.append(f"tier: {d.tier or 'none'}")
    lines.append("tags: " + (", ".join(d.tags) or "none"))
    if d.counted:
        lines.append("counted: " + ", ".join(f"{amount} toward {counter}"
                                             for counter, amount in sorted(d.counted.items())))
    if d.reasons is not None:
        lines.append("reasons:")
        lines.extend(f"  {r.render()}" for r in d.reasons)
    return "\n".join(lines)
