"""``loyalty check PATH``: every diagnostic for a policy directory or file.

Exit status 0 when there is no error (warnings are allowed unless ``--strict``),
1 when there is one, 2 when PATH or the schema cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dsl import PolicyError, SchemaError
from dsl.analysis.bounds import AwardBound, event_bounds
from dsl.errors import Diagnostic
from dsl.policyset import build
from dsl.programme import digest_names, sources_for


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``check`` verb."""
    p = subparsers.add_parser(
        "check", help="report every problem in policies (exit 1 on errors)",
        description="Parse, type-check and compile every policy below PATH and report every "
                    "diagnostic, sorted by position. Exit status: 0 clean, 1 errors, 2 unusable "
                    "input.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="policy directories or .policy files")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text for people (default) or json for machines")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.add_argument("--bounds", action="store_true",
                   help="also print, per policy and currency, the most one event can be awarded "
                        "(or 'unbounded' and why)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check each path; print diagnostics; return the exit status."""
    diagnostics: list[Diagnostic] = []
    summaries: list[dict[str, object]] = []
    bounds: list[tuple[str, list[AwardBound]]] = []
    kinds: dict[str, dict[str, list[AwardBound]]] = {}
    status = 0
    for raw in args.paths:
        path = Path(raw)
        if not path.exists():
            print(f"loyalty check: {raw}: no such file or directory", file=sys.stderr)
            return 2
        try:
            schema, sources = sources_for(path)
            policy_set = build(sources, schema, digest_names(path))
        except SchemaError as exc:
            if exc.diagnostic is None:
                print(f"loyalty check: {exc}", file=sys.stderr)
                return 2
            diagnostics.append(exc.diagnostic)  # positioned: reported like a policy's
            summaries.append({"path": raw, "files": 0, "policies": 0, "revision": None})
            continue
        except PolicyError as exc:
            diagnostics.extend(exc.diagnostics)
            summaries.append({"path": raw, "files": 0, "policies": 0, "revision": None})
            continue
        diagnostics.extend(policy_set.warnings)
        if args.bounds:
            bounds.extend((p.name, p.award_bounds) for p in policy_set.compiled)
            kinds[raw] = event_bounds(policy_set.schema, [(p.info.kinds, p.award_bounds)
                                                          for p in policy_set.compiled])
        summaries.append({"path": raw, "files": len(sources), "policies": len(policy_set.compiled),
                          "revision": policy_set.revision})
    errors = [d for d in diagnostics if d.severity == "error"]
    warnings = [d for d in diagnostics if d.severity != "error"]
    if errors or (args.strict and warnings):
        status = 1
    if args.format == "json":
        out: dict[str, object] = {"ok": status == 0, "errors": len(errors), "warnings": len(warnings),
                                  "paths": summaries, "diagnostics": [d.to_dict() for d in diagnostics]}
        if args.bounds:
            out["bounds"] = {name: [b.to_dict() for b in bs] for name, bs in bounds}
            out["event_bounds"] = {path: {kind: [b.to_dict() for b in bs] for kind, bs in per.items()}
                                   for path, per in kinds.items()}
        print(json.dumps(out, indent=2))
        return status
    for d in diagnostics:
        print(d.render())
        print()
    if errors or warnings:
        print(f"{len(errors)} error{'s' if len(errors) != 1 else ''}, "
              f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}")
    for s in summaries:
        if s["revision"]:
            print(f"ok: {s['path']}: {s['policies']} policies in {s['files']} files, "
                  f"revision {s['revision']}")
    if args.bounds:
        print_bounds(bounds, kinds)
    return status


def print_bounds(bounds: list[tuple[str, list[AwardBound]]],
                 kinds: dict[str, dict[str, list[AwardBound]]]) -> None:
    """The award bounds, one policy a paragraph, then per event kind over all its policies
    (sound upper bounds: the true most may be lower)."""
    print()
    print("award bounds (the most one event can be awarded; an upper bound, see docs/language.md):")
    for name, bs in bounds:
        if not bs:
            print(f"  {name}: awards nothing")
            continue
        print(f"  {name}:")
        for b in bs:
            print(f"    {b.describe()}")
    for path, per in kinds.items():
        print()
        print(f"one event of each kind, all policies in {path} together:")
        for kind, bs in per.items():
            text = "; ".join(b.describe() if b.maximum is not None else f"{b.currency}: unbounded"
                             for b in bs) or "awards nothing"
            print(f"  {kind}: {text}")
