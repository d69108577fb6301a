"""``loyalty lsp``: the policy language's server, on pygls, over stdio.

The connection and the scheduling live here; what is answered is in
:mod:`service.lsp.features`, computed from the compiler's own parser, checker,
formatter, builtins table, schema and bounds (:mod:`service.lsp.language`).

Diagnostics as you type: a change made while no check is running is checked at once;
one made while a check runs waits :data:`DEBOUNCE` for the next keystroke, and every
change cancels the check it was waiting for. Checks run one at a time on a worker thread
(the event loop stays free for hovers and completions), and a result for a version the
editor has already moved past is dropped rather than published. A syntax error found by
a member-only parse of a large file (see :mod:`service.lsp.document`) is confirmed by a
full parse once typing pauses.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from service.lsp import features
from service.lsp.document import Analysis, DocumentChecker, display_name
from service.lsp.language import (
    CoverageReport,
    Diagnostic,
    FormatError,
    PolicyError,
    Report,
    Schema,
    SchemaError,
    Span,
    format_source,
    programme_definitions,
    programme_root,
    run_tests,
    schema_diagnostics,
    schema_from_text,
)

#: How long a change made while a check runs waits for the next one (seconds): typing a
#: word during a check checks once more, not once per letter.
DEBOUNCE = 0.03
#: How long typing must pause before a provisional syntax error is confirmed by a full parse.
CONFIRM_AFTER = 0.6

RUN_TESTS = "loyalty.runTests"

log = logging.getLogger(__name__)


@dataclass
class _Document:
    uri: str
    path: Path
    checker: DocumentChecker
    version: int = 0
    #: The latest analysis, and the latest one that parsed (what navigation answers from).
    analysis: Analysis | None = None
    parsed: Analysis | None = None
    schema: Schema | None = None
    #: The check waiting for its delay to pass (cancelled by the next change), if any.
    pending: asyncio.Task[None] | None = None


@dataclass
class _Tests:
    report: Report
    coverage: CoverageReport | None


class PolicyServer(LanguageServer):
    """The language server, with the state of every open policy."""

    def __init__(self) -> None:
        super().__init__("loyalty-lsp", "0.1.0")
        self.documents: dict[str, _Document] = {}
        #: The sibling tests' last outcome, per policy uri (cleared when a file is saved).
        self.tests: dict[str, _Tests] = {}
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loyalty-check")
        #: The schema of each programme, and the schema.toml text (or file time) it was built from.
        self.schemas: dict[Path, tuple[tuple[str | None, int], Schema]] = {}
        #: Checks on the worker thread now.
        self.checking = 0

    # -- the programme a file belongs to -------------------------------------------------------

    def root_of(self, path: Path) -> Path:
        """The programme directory: the nearest one at or above the file with a schema.toml."""
        return programme_root(path.parent)

    def open_text(self, path: Path) -> str | None:
        """The editor's text of ``path`` when it is open, else None."""
        for doc in self.workspace.text_documents.values():
            if Path(to_fs_path(doc.uri) or "").resolve() == path.resolve():
                return doc.source
        return None

    def schema_for(self, root: Path) -> Schema:
        """The programme's schema, from the editor's buffer of its schema.toml when open; kept
        until that text (or the file on disk) changes."""
        extra = root / "schema.toml"
        text = self.open_text(extra)
        try:
            stamp = extra.stat().st_mtime_ns
        except OSError:
            stamp = 0
        key = (text, stamp)
        kept = self.schemas.get(root)
        if kept is not None and kept[0] == key:
            return kept[1]
        schema = schema_from_text(root, text)
        self.schemas[root] = (key, schema)
        return schema

    # -- checking ---------------------------------------------------------------------------------

    def schedule(self, uri: str, delay: float | None = None, whole: bool = False) -> None:
        """Check ``uri`` after ``delay`` (by default at once when no check is running, else
        after :data:`DEBOUNCE`), replacing a check still waiting for it."""
        doc = self.documents.get(uri)
        if doc is None:
            return
        if delay is None:
            delay = DEBOUNCE if self.checking else 0.0
        if doc.pending is not None and not doc.pending.done():
            doc.pending.cancel()
        doc.pending = asyncio.get_running_loop().create_task(self._check(doc, delay, whole))

    async def _check(self, doc: _Document, delay: float, whole: bool) -> None:
        await asyncio.sleep(delay)
        # Past its delay a check is no longer cancelled: the worker thread cannot be stopped,
        # so it runs to the end and a newer version simply does not publish its result.
        doc.pending = None
        text_doc = self.workspace.get_text_document(doc.uri)
        version, text = text_doc.version, text_doc.source
        loop = asyncio.get_running_loop()
        self.checking += 1
        try:
            analysis, schema, extra = await loop.run_in_executor(self.worker, self._run_check, doc, text,
                                                                 whole)
        finally:
            self.checking -= 1
        if self.workspace.get_text_document(doc.uri).version != version:
            return  # the editor has moved on; its own check is scheduled
        doc.version, doc.analysis, doc.schema = version or 0, analysis, schema
        if analysis is not None and analysis.parsed:
            doc.parsed = analysis
        diagnostics = [features.to_diagnostic(d) for d in (analysis.diagnostics if analysis else extra)]
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(doc.uri, diagnostics, version=version))
        if analysis is not None and analysis.provisional:
            self.schedule(doc.uri, CONFIRM_AFTER, whole=True)

    def _run_check(self, doc: _Document, text: str, whole: bool
                   ) -> tuple[Analysis | None, Schema | None, list[Diagnostic]]:
        root = self.root_of(doc.path)
        try:
            schema = self.schema_for(root)
        except SchemaError as exc:
            message = str(exc).split("\n")[0]
            return None, None, [Diagnostic(str(doc.path), Span(1, 1, 1, 1), "schema_error",
                                           f"the programme's schema does not load: {message}",
                                           "fix schema.toml first")]
        shared = programme_definitions(root, doc.path)
        return doc.checker.check(text, schema, whole=whole, shared=shared), schema, []

    def publish_schema(self, uri: str) -> None:
        """Diagnostics for an open schema.toml, then a new check of the programme's open policies."""
        path = Path(to_fs_path(uri) or "")
        text = self.workspace.get_text_document(uri).source
        found = schema_diagnostics(path.parent, text)
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri, [features.to_diagnostic(d) for d in found]))
        for doc in self.documents.values():
            if self.root_of(doc.path).resolve() == path.parent.resolve():
                self.schedule(doc.uri)

    # -- what the features read ---------------------------------------------------------------------

    def ready(self, uri: str) -> tuple[_Document, Analysis, Schema] | None:
        """The document's latest parsed analysis and its schema, when there is one."""
        doc = self.documents.get(uri)
        if doc is None or doc.parsed is None or doc.schema is None:
            return None
        return doc, doc.parsed, doc.schema

    def test_file(self, doc: _Document) -> Path:
        """The policy's sibling tests: ``earn.policy`` -> ``earn.test.toml``."""
        return doc.path.with_name(doc.path.name.removesuffix(".policy") + ".test.toml")

    def tests_title(self, uri: str) -> str:
        """The code lens' text: the sibling tests' last outcome and coverage."""
        result = self.tests[uri]
        report, coverage = result.report, result.coverage
        if report.diagnostics and not report.results:
            return f"✘ tests: {report.summary()}"
        mark = "✘" if report.failed else "✔"
        parts = [f"{report.passed} passed"] + ([f"{report.failed} failed"] if report.failed else [])
        text = f"{mark} tests: {', '.join(parts)}"
        if coverage is not None:
            text += f" · coverage {coverage.percent:.1f}%"
        return text + " (run again)"


    async def run_tests_for(self, uri: str) -> None:
        """Run the sibling tests of the policy at ``uri`` (on the worker thread) and keep the result."""
        doc = self.documents.get(uri)
        if doc is None:
            return
        tests = self.test_file(doc)
        if not tests.is_file():
            return
        report, coverage = await asyncio.get_running_loop().run_in_executor(self.worker, run_tests, tests)
        self.tests[uri] = _Tests(report, coverage)


def create_server() -> PolicyServer:
    """A server with every feature registered (the CLI starts it over stdio)."""
    server = PolicyServer()

    def is_schema(uri: str) -> bool:
        return uri.endswith("/schema.toml")

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: PolicyServer, params: lsp.DidOpenTextDocumentParams) -> None:
        uri = params.text_document.uri
        if is_schema(uri):
            ls.publish_schema(uri)
            return
        path = Path(to_fs_path(uri) or uri)
        if path.suffix != ".policy":
            return  # an editor may send every TOML file it opens; only schema.toml is ours
        ls.documents[uri] = _Document(uri, path, DocumentChecker(display_name(path)))
        ls.schedule(uri, delay=0)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: PolicyServer, params: lsp.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        if is_schema(uri):
            ls.publish_schema(uri)
        else:
            ls.schedule(uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: PolicyServer, params: lsp.DidSaveTextDocumentParams) -> None:
        ls.tests.clear()  # the tests read the files on disk, which have changed

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: PolicyServer, params: lsp.DidCloseTextDocumentParams) -> None:
        doc = ls.documents.pop(params.text_document.uri, None)
        if doc is not None and doc.pending is not None:
            doc.pending.cancel()
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(params.text_document.uri, []))

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def hover(ls: PolicyServer, params: lsp.HoverParams) -> lsp.Hover | None:
        found = ls.ready(params.text_document.uri)
        if found is None:
            return None
        doc, analysis, schema = found
        p = params.position
        return features.hover(analysis, schema, ls.root_of(doc.path), p.line + 1, p.character + 1)

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=[".", '"']))
    def completion(ls: PolicyServer, params: lsp.CompletionParams) -> lsp.CompletionList:
        uri = params.text_document.uri
        doc = ls.documents.get(uri)
        text = ls.workspace.get_text_document(uri).source
        if doc is None:
            return lsp.CompletionList(False, [])
        try:
            schema = doc.schema or ls.schema_for(ls.root_of(doc.path))
        except SchemaError:
            return lsp.CompletionList(False, [])
        items = features.completion(doc.parsed, schema, text, params.position.line, params.position.character)
        return lsp.CompletionList(False, items)

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: PolicyServer, params: lsp.DefinitionParams) -> lsp.Location | None:
        found = ls.ready(params.text_document.uri)
        if found is None:
            return None
        doc, analysis, schema = found
        root = ls.root_of(doc.path)
        texts = {p: t for p in features.schema_files(root) if (t := ls.open_text(p)) is not None}
        p = params.position
        return features.definition(analysis, schema, root, doc.uri, p.line + 1, p.character + 1, texts)

    @server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
    def references(ls: PolicyServer, params: lsp.ReferenceParams) -> list[lsp.Location]:
        found = ls.ready(params.text_document.uri)
        if found is None:
            return []
        doc, _, schema = found
        root = ls.root_of(doc.path).resolve()
        documents = [(d.uri, d.parsed) for d in ls.documents.values()
                     if d.parsed is not None and ls.root_of(d.path).resolve() == root]
        p = params.position
        return features.references(documents, doc.uri, schema, p.line + 1, p.character + 1,
                                   params.context.include_declaration)

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def document_symbol(ls: PolicyServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        found = ls.ready(params.text_document.uri)
        return features.symbols(found[1]) if found is not None else []

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: PolicyServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
        uri = params.text_document.uri
        text = ls.workspace.get_text_document(uri).source
        doc = ls.documents.get(uri)
        name = doc.checker.file if doc is not None else uri
        try:
            formatted = format_source(text, name)
        except PolicyError as exc:
            first = exc.diagnostics[0] if exc.diagnostics else None
            where = f" (line {first.span.line}: {first.message})" if first is not None else ""
            ls.window_show_message(lsp.ShowMessageParams(
                lsp.MessageType.Warning, f"loyalty fmt: not formatted: the file does not parse{where}"))
            return None
        except FormatError as exc:
            ls.window_show_message(lsp.ShowMessageParams(lsp.MessageType.Error, f"loyalty fmt: {exc}"))
            return None
        if formatted == text:
            return []
        end = lsp.Position(len(text.split("\n")), 0)
        return [lsp.TextEdit(lsp.Range(lsp.Position(0, 0), end), formatted)]

    @server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                    lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
    def code_action(ls: PolicyServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        uri = params.text_document.uri
        text = ls.workspace.get_text_document(uri).source
        return features.quick_fixes(uri, text, list(params.context.diagnostics))

    @server.feature(lsp.TEXT_DOCUMENT_CODE_LENS, lsp.CodeLensOptions(resolve_provider=True))
    def code_lens(ls: PolicyServer, params: lsp.CodeLensParams) -> list[lsp.CodeLens]:
        uri = params.text_document.uri
        found = ls.ready(uri)
        if found is None:
            return []
        doc, analysis, _ = found
        tests = ls.test_file(doc)
        out = []
        for policy in analysis.policies:
            line = policy.span.line - 1
            where = lsp.Range(lsp.Position(line, 0), lsp.Position(line, 0))
            if not tests.is_file():
                out.append(lsp.CodeLens(where, lsp.Command(f"no tests: add {tests.name}", "")))
            elif uri in ls.tests:
                out.append(lsp.CodeLens(where, lsp.Command(ls.tests_title(uri), RUN_TESTS, arguments=[uri])))
            else:
                out.append(lsp.CodeLens(where, data={"uri": uri}))
        return out

    @server.feature(lsp.CODE_LENS_RESOLVE)
    async def code_lens_resolve(ls: PolicyServer, lens: lsp.CodeLens) -> lsp.CodeLens:
        uri = (lens.data or {}).get("uri", "")
        if uri not in ls.tests:
            await ls.run_tests_for(uri)
        title = ls.tests_title(uri) if uri in ls.tests else "run tests"
        lens.command = lsp.Command(title, RUN_TESTS, arguments=[uri])
        return lens

    @server.command(RUN_TESTS)
    async def run_tests_command(ls: PolicyServer, uri: str) -> dict[str, Any]:
        ls.tests.pop(uri, None)
        await ls.run_tests_for(uri)
        result = ls.tests.get(uri)
        workspace = ls.client_capabilities.workspace
        if workspace and workspace.code_lens and workspace.code_lens.refresh_support:
            ls.workspace_code_lens_refresh(None)  # the editor asks for the lenses again
        if result is None:
            return {"title": "no tests"}
        coverage = result.coverage
        return {"title": ls.tests_title(uri), "passed": result.report.passed,
                "failed": result.report.failed,
                "coverage": coverage.percent if coverage is not None else None,
                "summary": result.report.summary()}

    @server.feature(lsp.TEXT_DOCUMENT_INLAY_HINT)
    def inlay_hint(ls: PolicyServer, params: lsp.InlayHintParams) -> list[lsp.InlayHint]:
        found = ls.ready(params.text_document.uri)
        if found is None:
            return []
        _, analysis, schema = found
        return features.inlay_hints(analysis, schema, params.range.start.line, params.range.end.line)

    return server


def serve_stdio() -> None:
    """Serve one editor over stdin and stdout until it says exit."""
    create_server().start_io()
