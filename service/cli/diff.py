"""``loyalty diff OLD NEW``: what changing a policy directory from OLD to NEW would do.

Without ``--cases`` it compares the two sets by meaning: policies added, removed and
changed (version, effective window, event kinds, description, rules and other members),
and policies whose text changed but not their meaning (reformatted, comments edited).

With ``--cases FILE.jsonl`` (one ``{"customer": {...}, "event": {...}}`` per line: an
``EvaluateRequest`` body exactly as grpcurl sends it, plus an optional ``"name"``) it also
evaluates every case with both sets and reports how many decisions changed, the total of
each currency before and after, benefits, tiers and tags that changed, the rules whose hit
counts changed, and the first few changed cases (``--show N``) side by side.

Exit status, like ``diff``: 0 when nothing changed, 1 when something changed, 2 on an
error (a path that does not exist, a policy or schema error in either directory, an
unreadable or malformed cases file). "Changed" means: with ``--cases``, some case's
decision changed (awards, benefits, tier, tags, or an evaluation error) -- a structural
change that decides nothing differently exits 0; without ``--cases``, the sets differ in
meaning (text-only changes exit 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

from dsl import PolicyError, PolicySet, SchemaError
from dsl.policyset import build
from dsl.programme import digest_names, sources_for
from dsl.tools.diffing import (
    CaseError,
    Impact,
    Outcome,
    StructureDiff,
    compare_decisions,
    compare_structure,
    describe_window,
    read_cases,
)

SAME, DIFFERENT, TROUBLE = 0, 1, 2


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``diff`` verb."""
    p = subparsers.add_parser(
        "diff", help="show what changing the policies from OLD to NEW would do",
        description="Compare two policy directories by meaning and, with --cases, by the "
                    "decisions they make. Exit status: 0 same, 1 different, 2 error.")
    p.add_argument("old", metavar="OLD", help="the policies as they are (directory or file)")
    p.add_argument("new", metavar="NEW", help="the policies as they would be")
    p.add_argument("--cases", metavar="FILE.jsonl",
                   help='sample cases, one EvaluateRequest body {"customer": ..., "event": ...} '
                        '(as grpcurl sends it, plus an optional "name") a line')
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text for people (default) or json for machines")
    p.add_argument("--show", type=int, default=5, metavar="N",
                   help="how many changed cases to show (default 5)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Compare, print the report, and return the exit status."""
    sets = [_load(Path(args.old)), _load(Path(args.new))]
    if not isinstance(sets[0], PolicySet) or not isinstance(sets[1], PolicySet):
        return TROUBLE
    old, new = sets
    structure = compare_structure(old, new, args.old, args.new)
    impact: Impact | None = None
    if args.cases is not None:
        path = Path(args.cases)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror \
                else "not UTF-8 text"
            print(f"loyalty diff: {args.cases}: cannot read the cases: {reason}",
                  file=sys.stderr)
            return TROUBLE
        try:
            cases = read_cases(text, args.cases, old.schema, new.schema)
        except CaseError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return TROUBLE
        impact = compare_decisions(old, new, cases)
    differs = impact.differs if impact is not None else structure.differs
    show = max(args.show, 0)
    if args.format == "json":
        print(json.dumps({
            "differs": differs,
            "old": {"path": args.old, "revision": old.revision},
            "new": {"path": args.new, "revision": new.revision},
            "structure": structure.to_dict(),
            "decisions": impact.to_dict(show) if impact is not None else None,
        }, indent=2))
    else:
        lines = [f"old {args.old} ({old.revision}), new {args.new} ({new.revision})"]
        lines += render_structure(structure, len(new.compiled))
        if impact is not None:
            lines.append("")
            lines += render_impact(impact, show)
        print("\n".join(lines))
    return DIFFERENT if differs else SAME


def _load(path: Path) -> PolicySet | int:
    """A policy set for ``path``, or the exit status after printing why there is none."""
    if not path.exists():
        print(f"loyalty diff: {path}: no such file or directory", file=sys.stderr)
        return TROUBLE
    try:
        schema, sources = sources_for(path)
        return build(sources, schema, digest_names(path))
    except SchemaError as exc:
        print(f"{exc}\n    = hint: fix the schema file; see docs/language.md, The schema",
              file=sys.stderr)
    except PolicyError as exc:
        print(exc.render(), file=sys.stderr)
        errors = sum(1 for d in exc.diagnostics if d.severity == "error")
        print(f"\n{errors} error{'s' if errors != 1 else ''} in {path}", file=sys.stderr)
    return TROUBLE


# -- text --------------------------------------------------------------------------------------


def render_structure(diff: StructureDiff, total: int) -> list[str]:
    """The structural comparison for people."""
    counts = [f"{len(diff.added)} added", f"{len(diff.removed)} removed",
              f"{len(diff.changed)} changed"]
    if diff.text_only:
        counts.append(f"{len(diff.text_only)} text only")
    counts.append(f"{len(diff.unchanged)} unchanged")
    lines = ["policies: " + ", ".join(counts)]
    if diff.schema_changed:
        lines.append("schema: changed")
    for info in diff.added:
        lines.append(f"+ {info.name} ({info.file}): version {info.version}, "
                     f"on {', '.join(info.kinds) or 'nothing'}, effective {describe_window(info)}, "
                     f"{_count(len(info.rules), 'rule')}")
    for info in diff.removed:
        lines.append(f"- {info.name} ({info.file}): version {info.version}")
    for change in diff.changed:
        lines.append(f"~ {change.name}")
        for key, (old, new) in change.headers.items():
            if key == "description":
                lines.append(f"    description: {json.dumps(old)} -> {json.dumps(new)}")
            else:
                lines.append(f"    {key}: {old or 'none'} -> {new or 'none'}")
        if "version" not in change.headers:
            lines.append("    note: the meaning changed but the version did not")
        for label, names in (
            ("rules added", change.rules_added), ("rules removed", change.rules_removed),
            ("rules changed", change.rules_changed), ("added", change.members_added),
            ("removed", change.members_removed), ("changed", change.members_changed),
        ):
            if names:
                lines.append(f"    {label}: {', '.join(names)}")
        for currency, (old, new) in change.bounds.items():
            lines.append(f"    bound: {currency}: {old} -> {new}")
    for module, names in diff.shared.items():
        lines.append(f"definitions {module}: changed the meaning of "
                     f"{_count(len(names), 'policy', 'policies')}: {', '.join(names)}")
    for change in diff.text_only:
        moved = change.headers.get("file")
        where = f"moved from {moved[0]} to {moved[1]}" if moved else "text only"
        lines.append(f"= {change.name}: {where}, same meaning")
    if not diff.differs and not diff.text_only:
        lines.append(f"no differences in meaning ({_count(total, 'policy', 'policies')})")
    return lines


def render_impact(impact: Impact, show: int) -> list[str]:
    """The decision comparison for people."""
    share = f" ({100 * len(impact.changed) / impact.cases:.1f}%)" if impact.cases else ""
    lines = [f"cases: {impact.cases}, decisions changed: {len(impact.changed)}{share}"]
    if impact.currencies():
        lines.append("awards (total over all cases):")
        for currency in impact.currencies():
            before = impact.awards_before.get(currency, 0)
            after = impact.awards_after.get(currency, 0)
            lines.append(f"  {currency}: {before} -> {after} ({after - before:+})")
    for title, rows in (
        ("benefits (cases granted)",
         impact.counter_changes(impact.benefits_before, impact.benefits_after)),
        ("tags (cases tagged)", impact.counter_changes(impact.tags_before, impact.tags_after)),
        ("rules (cases fired)",
         [(f"{p}.{r}", b, a) for (p, r), b, a in
          impact.counter_changes(impact.fired_before, impact.fired_after)]),
    ):
        if rows:
            lines.append(f"{title}:")
            lines += [f"  {key}: {b} -> {a} ({a - b:+})" for key, b, a in rows]
    if impact.tiers:
        lines.append("tiers (cases moved):")
        lines += [f"  {old or 'none'} -> {new or 'none'}: {count}"
                  for (old, new), count in sorted(impact.tiers.items(), key=str)]
    if impact.errors_before or impact.errors_after:
        lines.append(f"evaluation errors: {impact.errors_before} -> {impact.errors_after}")
    if impact.changed and show:
        shown = impact.changed[:show]
        lines.append(f"changed cases (first {len(shown)} of {len(impact.changed)}):")
        for case in shown:
            lines.append(f"  line {case.line} ({case.label}):")
            lines += [f"    {line}" for line in _outcome_changes(case.before, case.after)]
    return lines


def _outcome_changes(before: Outcome, after: Outcome) -> Iterable[str]:
    if before.error is not None or after.error is not None:
        yield f"error: {before.error or 'none'} -> {after.error or 'none'}"
        return  # a failed evaluation has no awards to compare
    if before.awards != after.awards:
        yield f"awards: {_awards(before)} -> {_awards(after)}"
    if before.benefits != after.benefits:
        yield f"benefits: {_benefits(before)} -> {_benefits(after)}"
    if before.tier != after.tier:
        yield f"tier: {before.tier or 'none'} -> {after.tier or 'none'}"
    if before.tags != after.tags:
        yield f"tags: {', '.join(before.tags) or 'none'} -> {', '.join(after.tags) or 'none'}"


def _awards(outcome: Outcome) -> str:
    return ", ".join(f"{amount} {currency}"
                     for currency, amount in sorted(outcome.awards.items())) or "none"


def _benefits(outcome: Outcome) -> str:
    return ", ".join(f"{name} with {params}" if params else name
                     for name, params in outcome.benefits) or "none"


def _count(number: int, word: str, plural: str = "") -> str:
    return f"{number} {word if number == 1 else plural or word + 's'}"
