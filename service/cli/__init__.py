"""The ``loyalty`` command. One module per verb, each with ``add_parser`` and ``run``.

Every verb returns an exit status; policy problems are printed as diagnostics,
never as Python tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Verb name -> module (below this package) that implements it, in help order.
VERBS = {
    "serve": "serve",
    "check": "check",
    "fmt": "fmt",
    "test": "test",
    "eval": "eval",
    "compile": "compile",
    "diff": "diff",
    "usage": "usage",
    "replay": "replay",
    "lsp": "lsp",
    "state": "state",
}


def version_text() -> str:
    """``loyalty X.Y.Z (Python A.B.C)``: the installed package's version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("loyalty-rules")
    except PackageNotFoundError:  # run from a checkout that was never installed
        number = "unknown (not installed)"
    return f"loyalty {number} (Python {sys.version.split()[0]})"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every verb registered."""
    parser = argparse.ArgumentParser(
        prog="loyalty",
        description="Loyalty rules: write, check, test and serve loyalty policies.",
    )
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    for module_name in VERBS.values():
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as exc:  # a verb still being written; tests pin all seven
            if exc.name != f"{__name__}.{module_name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``loyalty`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
