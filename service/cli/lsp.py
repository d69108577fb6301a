"""``loyalty lsp``: the policy language server, for editors, over stdin and stdout.

See docs/editors.md for VS Code, Neovim and Helix.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``lsp`` verb."""
    p = subparsers.add_parser(
        "lsp", help="the language server for editors (Language Server Protocol over stdio)",
        description="Serve one editor over stdin and stdout: diagnostics as you type, hover, "
                    "completion, go to definition, references, symbols, formatting, quick fixes, "
                    "a code lens running the policy's tests and inlay hints for award bounds. "
                    "Editors start it themselves; see docs/editors.md.")
    p.add_argument("--stdio", action="store_true",
                   help="accepted for editors that pass it; stdio is the only transport")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve until the editor sends exit."""
    from service.lsp import serve_stdio  # pygls loads only for this verb

    serve_stdio()
    return 0
