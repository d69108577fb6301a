"""``loyalty test DIR``: run the policy tests (``*.test.toml``) kept beside the policies.

Exit status: 0 when every case passed, 1 when a case failed, 2 when a policy or
a test file could not be used (its diagnostics are printed, positioned in the
file) or no case was run, 3 when every case passed but ``--coverage`` fell
below ``--fail-under``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dsl.tools.coverage import CoverageReport, run_with_coverage
from dsl.tools.testing import Report, run_directory

#: The exit status when the tests pass but coverage is below ``--fail-under``.
EXIT_COVERAGE = 3


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``test`` verb."""
    p = subparsers.add_parser(
        "test",
        help="run the policy tests (*.test.toml) in a directory",
        description=(
            "Run every [[case]] of every *.test.toml file below DIR against the policies of "
            "DIR's programme (the nearest directory at or above DIR with a schema.toml). "
            "Exit status: 0 all passed, 1 a case failed, 2 a policy or test file has errors, "
            "3 all passed but coverage is below --fail-under."
        ),
    )
    p.add_argument("directory", metavar="DIR", help="a policy directory, or one test file")
    p.add_argument("-k", dest="keyword", metavar="NAME",
                   help="run only the cases whose name contains NAME (ignoring case)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text for people (default) or json for machines")
    p.add_argument("--json", dest="format", action="store_const", const="json",
                   help="the same as --format json")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="list passing cases too (and, with --coverage, the explained gaps)")
    p.add_argument("--coverage", action="store_true",
                   help="report which rules, table and decide rows, group members and "
                        "branches of the policies below DIR no case reaches, and why")
    p.add_argument("--fail-under", type=_percentage, metavar="N",
                   help="with --coverage (implied): exit 3 when coverage is below N percent")
    p.set_defaults(run=run)


def _percentage(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number: write a percentage "
                                         "such as 90") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage from 0 to 100")
    return value


def run(args: argparse.Namespace) -> int:
    """Run the tests and print the report; returns the exit status."""
    target = Path(args.directory)
    if not target.exists():
        print(f"loyalty test: {args.directory}: no such file or directory", file=sys.stderr)
        return 2
    fail_under: float | None = getattr(args, "fail_under", None)
    wants_coverage = getattr(args, "coverage", False) or fail_under is not None
    coverage: CoverageReport | None = None
    try:
        if wants_coverage:
            report, coverage = run_with_coverage(target, keyword=args.keyword)
        else:
            report = run_directory(target, keyword=args.keyword)
    except Exception as exc:  # a bug in the pipeline must still not print a traceback
        print(f"loyalty test: internal error: {type(exc).__name__}: {exc} "
              "(this is a bug in loyalty, not in your policies; please report it)",
              file=sys.stderr)
        return 2
    status = report.exit_status
    if coverage is not None and coverage.diagnostics and status == 0:
        status = 2
    below = coverage is not None and fail_under is not None and coverage.below(fail_under)
    if below and status == 0:
        status = EXIT_COVERAGE
    if args.format == "json":
        out = report.to_dict()
        if coverage is not None:
            out["coverage"] = coverage.to_dict(fail_under)
        print(json.dumps(out, indent=2))
    else:
        text = render(report, verbose=args.verbose)
        if coverage is not None:
            text += "\n\n" + render_coverage(coverage, verbose=args.verbose)
        print(text)
    if below and coverage is not None:
        print(f"loyalty test: coverage {coverage.percent:.1f}% is below --fail-under "
              f"{fail_under:g}%: add cases for the gaps listed, or explain deliberate ones "
              "in [coverage.explained]", file=sys.stderr)
    return status


def render(report: Report, *, verbose: bool = False) -> str:
    """The human form of a report: diagnostics, failures (and passes if verbose), a summary."""
    blocks = [d.render() for d in (*report.warnings, *report.diagnostics)]
    passes = [r.render() for r in report.results if r.passed]
    if verbose and passes:
        blocks.append("\n".join(passes))
    blocks.extend(r.render() for r in report.results if not r.passed)
    blocks.append(report.summary())
    return "\n\n".join(blocks)


def render_coverage(coverage: CoverageReport, *, verbose: bool = False) -> str:
    """The human form of a coverage report: its diagnostics, then the table and gaps."""
    blocks = [d.render() for d in (*coverage.warnings, *coverage.diagnostics)]
    blocks.append(coverage.render(verbose=verbose))
    return "\n\n".join(blocks)
