"""How soon ``loyalty lsp`` publishes diagnostics after an edit of a 5,000-line policy:
``python -m tests.service.measure_lsp``.

Not a test (pytest does not collect it). It writes a policy of about 5,000 lines (the
airline policy's lets and table, then its rules repeated under distinct names) beside a
copy of the bundled schema.toml, starts the real server process over stdio, opens the
file, and then makes ``--edits`` edits one at a time, as typing does: each sends
``textDocument/didChange`` and waits for the ``publishDiagnostics`` of that version. The
time from sending the change to receiving its diagnostics is what an author waits for;
it includes the server's debounce and the JSON-RPC round trip. The edits cycle through a
misspelt field (a type-check diagnostic), the fix (a clean check), and a half-typed
condition (a syntax error, found by parsing the edited member alone). Prints JSON: the
lines, the time of the first (whole) check, and the edits' median, p90 and worst, overall
and per kind of edit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import client_capabilities
from pytest_lsp.client import LanguageClient, default_converter

REPO = Path(__file__).resolve().parents[2]
KINDS = ("misspelt", "clean", "syntax")


def big_policy(lines: int) -> str:
    """The airline policy's header, lets and table, then rules with distinct names up to ``lines``."""
    source = (REPO / "policies" / "airline" / "earn_miles.policy").read_text(encoding="utf-8")
    head = source.partition("  rule flown_miles")[0].split("\n")
    body: list[str] = []
    i = 0
    while len(head) + len(body) < lines - 2:
        body += [f"  rule flown_miles_{i} when (event.distance_miles otherwise 0) > {i}:",
                 f"    award {i % 7 + 1}% of base miles", f'    tag "r{i}"', ""]
        i += 1
    return "\n".join([*head, *body, "  rule elite: award elite_bonus of base miles",
                      "  round miles down", ""])


async def measure(lines: int, edits: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "schema.toml").write_text((REPO / "policies" / "schema.toml").read_text("utf-8"), "utf-8")
        path = root / "big.policy"
        text = big_policy(lines)
        path.write_text(text, encoding="utf-8")
        uri = path.as_uri()
        client = LanguageClient(converter_factory=default_converter)  # our diagnostics handler alone
        published: asyncio.Queue[lsp.PublishDiagnosticsParams] = asyncio.Queue()

        @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
            published.put_nowait(params)

        loyalty = Path(sys.executable).with_name("loyalty")
        await client.start_io(str(loyalty), "lsp")
        await client.initialize_session(lsp.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"), root_uri=root.as_uri()))

        async def wait(version: int) -> lsp.PublishDiagnosticsParams:
            while True:
                params = await published.get()
                if params.version == version:
                    return params

        started = time.perf_counter()
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(uri, "loyalty", 1, text)))
        await wait(1)
        first = time.perf_counter() - started
        doc_lines = text.split("\n")
        target = next(i for i in range(len(doc_lines) // 2, len(doc_lines))
                      if doc_lines[i].startswith("  rule flown_miles_"))
        times: list[float] = []
        by_kind: dict[str, list[float]] = {}
        counts: list[int] = []
        for k in range(edits):
            version = k + 2
            kind = KINDS[k % 3]
            condition = {"misspelt": f"customer.lifetime.mils > {k}",
                         "clean": f"customer.lifetime.miles > {k}",
                         "syntax": "customer.lifetime.miles >"}[kind]
            new = f"  rule edited_{k} when {condition}: award 1 miles"
            start = lsp.Position(target, 0)
            change = lsp.TextDocumentContentChangePartial(
                range=lsp.Range(start, lsp.Position(target + 1, 0) if k else start),
                text=new + "\n")
            sent = time.perf_counter()
            client.text_document_did_change(lsp.DidChangeTextDocumentParams(
                lsp.VersionedTextDocumentIdentifier(uri=uri, version=version), [change]))
            params = await wait(version)
            times.append(time.perf_counter() - sent)
            by_kind.setdefault(kind, []).append((time.perf_counter() - sent) * 1000)
            counts.append(len(params.diagnostics))
            await asyncio.sleep(0.05)  # typing, not a paste: the next key comes a little later
        await client.shutdown_session()
        ms = sorted(t * 1000 for t in times)
        return {"lines": len(doc_lines), "first_check_ms": round(first * 1000),
                "edits": edits, "median_ms": round(statistics.median(ms), 1),
                "p90_ms": round(ms[int(len(ms) * 0.9) - 1], 1), "worst_ms": round(ms[-1], 1),
                "diagnostics_per_edit": sorted(set(counts)),
                "median_ms_by_kind": {k: round(statistics.median(v), 1) for k, v in by_kind.items()},
                "worst_ms_by_kind": {k: round(max(v), 1) for k, v in by_kind.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--edits", type=int, default=60)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.lines, args.edits)), indent=2))


if __name__ == "__main__":
    main()
