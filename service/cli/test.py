"""``loyalty test DIR``: run the policy tests (``*.test.toml``) kept beside the policies.

Exit status: 0 when every case passed, 1 when a case failed, 2 when a policy or
a test file could not be used (its diagnostics are printed, positioned in the
file) or no case was run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dsl.testing import Report, run_directory


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``test`` verb."""
    p = subparsers.add_parser(
        "test",
        help="run the policy tests (*.test.toml) in a directory",
        description=(
            "Run every [[case]] of every *.test.toml file below DIR against the policies of "
            "DIR's programme (the nearest directory at or above DIR with a schema.toml). "
            "Exit status: 0 all passed, 1 a case failed, 2 a policy or test file has errors."
        ),
    )
    p.add_argument("directory", metavar="DIR", help="a policy directory, or one test file")
    p.add_argument("-k", dest="keyword", metavar="NAME",
                   help="run only the cases whose name contains NAME (ignoring case)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text for people (default) or json for machines")
    p.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the tests and print the report; returns the exit status."""
    target = Path(args.directory)
    if not target.exists():
        print(f"loyalty test: {args.directory}: no such file or directory", file=sys.stderr)
        return 2
    try:
        report = run_directory(target, keyword=args.keyword)
    except Exception as exc:  # a bug in the pipeline must still not print a traceback
        print(f"loyalty test: internal error: {type(exc).__name__}: {exc} "
              "(this is a bug in loyalty, not in your policies; please report it)",
              file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(render(report, verbose=args.verbose))
    return report.exit_status


def render(report: Report, *, verbose: bool = False) -> str:
    """The human form of a report: diagnostics, failures (and passes if verbose), a summary."""
    blocks = [d.render() for d in (*report.warnings, *report.diagnostics)]
    passes = [r.render() for r in report.results if r.passed]
    if verbose and passes:
        blocks.append("\n".join(passes))
    blocks.extend(r.render() for r in report.results if not r.passed)
    blocks.append(report.summary())
    return "\n\n".join(blocks)
