"""``loyalty compile FILE``: print the Python that a policy compiles to.

The output is exactly the module the service runs (verified and compiled the
same way), so a person debugging a policy reads the real thing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._load import load


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``compile`` verb."""
    p = subparsers.add_parser(
        "compile", help="print the Python a policy compiles to",
        description="Print the generated Python modules of every policy in FILE (or below a "
                    "directory), exactly as they are compiled: the `evaluate` module (the hot path) "
                    "and the `explain` module (the same decisions with reasons).")
    p.add_argument("path", metavar="FILE", help="a .policy file or a directory")
    p.add_argument("--policy", metavar="NAME", help="only the policy called NAME")
    p.add_argument("--variant", choices=("both", "evaluate", "explain"), default="both",
                   help="which function to print (default both)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the generated source; returns the exit status."""
    policy_set = load(Path(args.path), "compile")
    if isinstance(policy_set, int):
        return policy_set
    chosen = [p for p in policy_set.compiled if args.policy in (None, p.name)]
    if not chosen:
        names = ", ".join(p.name for p in policy_set.compiled) or "none"
        print(f"loyalty compile: no policy called {args.policy} (policies: {names})")
        return 2
    variants = ("evaluate", "explain") if args.variant == "both" else (args.variant,)
    first = True
    for p in chosen:
        for variant in variants:
            if not first:
                print("\n")
            first = False
            print(p.source(variant).rstrip("\n"))
    return 0
