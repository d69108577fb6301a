"""``loyalty compile FILE``: print the Python that a policy compiles to;
``loyalty compile --decoders [DIR]``: print the input decoders generated for DIR's schema.

The output is exactly the module the service runs (verified and compiled the
same way), so a person debugging a policy, or a request the service refuses, reads the
real thing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dsl import PolicyError, SchemaError
from dsl.input.generate import DecoderSource, MappingAccess, MessageAccess

from ._load import load, sources_for


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``compile`` verb."""
    p = subparsers.add_parser(
        "compile", help="print the Python a policy compiles to",
        description="Print the generated Python modules of every policy in FILE (or below a "
                    "directory), exactly as they are compiled: the `evaluate` module (the hot path) "
                    "and the `explain` module (the same decisions with reasons).")
    p.add_argument("path", metavar="FILE", nargs="?", help="a .policy file or a directory")
    p.add_argument("--decoders", metavar="DIR", nargs="?", const="",
                   help="print the input decoders generated for the schema of DIR (default: FILE, "
                        "or the current directory): the mapping form's, then the message form's")
    p.add_argument("--policy", metavar="NAME", help="only the policy called NAME")
    p.add_argument("--variant", choices=("both", "evaluate", "explain"), default="both",
                   help="which function to print (default both)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the generated source; returns the exit status."""
    if args.decoders is not None:
        return print_decoders(Path(args.decoders or args.path or "."))
    if args.path is None:
        print("loyalty compile: give a FILE (or --decoders [DIR])", file=sys.stderr)
        return 2
    policy_set = load(Path(args.path), "compile")
    if isinstance(policy_set, int):
        return policy_set
    chosen = [p for p in policy_set.compiled if args.policy in (None, p.name)]
    if not chosen and not policy_set.compiled:
        print(f"loyalty compile: {args.path} holds no policy (a file of shared definitions "
              "compiles into each policy that uses it: compile one of those)")
        return 2
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


def print_decoders(path: Path) -> int:
    """Print both request forms' generated decoders for the schema of ``path``'s programme."""
    if not path.exists():
        print(f"loyalty compile: {path}: no such file or directory", file=sys.stderr)
        return 2
    try:
        schema, _sources = sources_for(path)
    except (SchemaError, PolicyError) as exc:
        print(exc.render() if isinstance(exc, PolicyError) else str(exc), file=sys.stderr)
        return 2
    print(DecoderSource(schema, MappingAccess()).source())
    print(DecoderSource(schema, MessageAccess()).source().rstrip("\n"))
    return 0
