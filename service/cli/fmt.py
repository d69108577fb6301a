"""``loyalty fmt``: rewrite policy files in the canonical layout (see :mod:`dsl.tools.formatter`).

``loyalty fmt PATH...`` rewrites each ``.policy`` file (directories are searched
recursively) in place and names every file it changed. ``--check`` changes nothing and
names the files that would change; ``--diff`` changes nothing and prints a unified diff.
``-`` reads a policy from standard input and writes the formatted text (or, with
``--check``/``--diff``, the verdict or the diff) to standard output.

Exit status: 0 when every file is (or now is) formatted; 1 when ``--check`` or
``--diff`` found a file that would change, or when a file could not be formatted (its
diagnostics are printed and the file is left alone); 2 when a path does not exist.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from pathlib import Path

from dsl.errors import PolicyError
from dsl.programme import policy_files
from dsl.tools.formatter import FormatError, format_source

STDIN = "-"


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``fmt`` and its options."""
    p = subparsers.add_parser(
        "fmt",
        help="rewrite policy files in the canonical layout",
        description="Rewrite policy files in the canonical layout. Directories are searched "
                    "for *.policy files; - reads standard input and writes standard output.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="a .policy file, a directory, or -")
    p.add_argument("--check", action="store_true",
                   help="change nothing; list the files that would change and exit 1 if any")
    p.add_argument("--diff", action="store_true",
                   help="change nothing; print what would change as a unified diff")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Format every file named by ``args.paths``; returns the exit status."""
    files: list[str] = []
    for raw in args.paths:
        if raw == STDIN:
            files.append(STDIN)
            continue
        path = Path(raw)
        if path.is_dir():
            found = sorted(str(p) for p in policy_files(path))
            if not found:
                print(f"loyalty fmt: no .policy files under {raw}", file=sys.stderr)
            files.extend(found)
        elif path.exists():
            files.append(raw)
        else:
            print(f"loyalty fmt: {raw}: no such file or directory", file=sys.stderr)
            return 2
    status = 0
    for name in files:
        status = max(status, _format_one(name, check=args.check, diff=args.diff))
    return status


def _format_one(name: str, *, check: bool, diff: bool) -> int:
    """Format one file (or standard input); returns 0, or 1 for a change found or a failure."""
    shown = "<stdin>" if name == STDIN else name
    try:
        source = sys.stdin.read() if name == STDIN else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"loyalty fmt: {shown}: cannot read: {_reason(exc)}", file=sys.stderr)
        return 1
    try:
        formatted = format_source(source, shown)
    except PolicyError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    except FormatError as exc:
        print(f"loyalty fmt: {exc} (a formatter bug: the file was left as it was)",
              file=sys.stderr)
        return 1
    changed = formatted != source
    if diff:
        if changed:
            sys.stdout.writelines(difflib.unified_diff(
                source.splitlines(keepends=True), formatted.splitlines(keepends=True),
                f"{shown} (original)", f"{shown} (formatted)"))
        return 1 if changed else 0
    if check:
        if changed:
            print(f"would reformat {shown}")
        return 1 if changed else 0
    if name == STDIN:
        sys.stdout.write(formatted)
        return 0
    if changed:
        try:
            _write_atomically(Path(name), formatted)
        except OSError as exc:
            print(f"loyalty fmt: {shown}: cannot write: {_reason(exc)}", file=sys.stderr)
            return 1
        print(f"reformatted {shown}")
    return 0


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    return str(exc)
