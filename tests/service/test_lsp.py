"""The language server end to end: the real ``loyalty lsp`` process, driven over stdio by
pytest-lsp's client as an editor would, one test per feature, each compared with what the
command line says for the same file where the command line says it."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

REPO = Path(__file__).resolve().parents[2]
LOYALTY = Path(sys.executable).with_name("loyalty")
SERVER = [str(LOYALTY), "lsp"] if LOYALTY.exists() else [sys.executable, "-m", "service.cli", "lsp"]
CLI = [str(LOYALTY)] if LOYALTY.exists() else [sys.executable, "-m", "service.cli"]


@pytest.fixture
def programme(tmp_path: Path) -> Path:
    """A copy of the bundled policies the tests may edit on disk."""
    target = tmp_path / "policies"
    shutil.copytree(REPO / "policies", target)
    return target


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    """A session with the server, as VS Code opens one."""
    refreshes = lsp_client.code_lens_refreshes = []  # type: ignore[attr-defined]
    # Every publication in arrival order (waiting for "the next one" can miss one that came in
    # the same read as another file's); the client's own handler still runs.
    published: list[lsp.PublishDiagnosticsParams] = []
    lsp_client.published, lsp_client.consumed = published, {}  # type: ignore[attr-defined]
    features = lsp_client.protocol.fm.features
    default = features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS]

    def record(params: lsp.PublishDiagnosticsParams) -> None:
        published.append(params)
        default(params)

    features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = record

    @lsp_client.feature(lsp.WORKSPACE_CODE_LENS_REFRESH)
    def code_lens_refresh(params: None) -> None:
        refreshes.append(params)

    await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=REPO.as_uri()))
    yield
    await lsp_client.shutdown_session()


def loyalty(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The command line, run as a user runs it."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, input=stdin, cwd=REPO,
                          timeout=120)


async def open_file(client: LanguageClient, path: Path, text: str | None = None,
                    language: str = "loyalty") -> list[lsp.Diagnostic]:
    """Open ``path`` (with ``text`` standing for its contents) and wait for its diagnostics."""
    uri = path.as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(
        uri, language, 1, text if text is not None else path.read_text(encoding="utf-8"))))
    return await diagnostics_for(client, uri)


async def diagnostics_for(client: LanguageClient, uri: str, version: int | None = None
                          ) -> list[lsp.Diagnostic]:
    """The next diagnostics published for ``uri`` not yet returned (for ``version``, when given)."""
    published: list[lsp.PublishDiagnosticsParams] = client.published  # type: ignore[attr-defined]
    consumed: dict[str, int] = client.consumed  # type: ignore[attr-defined]
    async with asyncio.timeout(30):
        while True:
            for index in range(consumed.get(uri, 0), len(published)):
                params = published[index]
                if params.uri == uri:
                    consumed[uri] = index + 1
                    if version is None or params.version == version:
                        return list(params.diagnostics)
            consumed.setdefault(uri, len(published))
            await asyncio.sleep(0.01)


def position(text: str, needle: str, offset: int = 0) -> lsp.Position:
    """Where ``needle`` first occurs in ``text`` (plus ``offset`` characters)."""
    index = text.index(needle) + offset
    line = text.count("\n", 0, index)
    return lsp.Position(line, index - (text.rfind("\n", 0, index) + 1))


def check_json(path: Path) -> list[dict[str, object]]:
    """``loyalty check --format json``'s diagnostics for one file."""
    out = loyalty("check", "--format", "json", str(path))
    return json.loads(out.stdout)["diagnostics"]


def same_as_check(ours: list[lsp.Diagnostic], theirs: list[dict[str, object]]) -> None:
    """The server's diagnostics carry the command line's codes, ranges, messages and hints."""
    assert [(d.code, d.range.start.line + 1, d.range.start.character + 1, d.range.end.line + 1,
             d.range.end.character + 1, d.message) for d in ours] == [
        (t["code"], t["line"], t["column"], t["end_line"], t["end_column"],
         f"{t['message']}\n= hint: {t['hint']}" if t["hint"] else t["message"]) for t in theirs]


@pytest.mark.asyncio
async def test_diagnostics_match_loyalty_check_and_follow_edits(client: LanguageClient,
                                                                programme: Path) -> None:
    """A misspelt field and a type error give the diagnostics `loyalty check` gives for the same
    file (checked against its directory's schema.toml), and fixing them as you type clears them."""
    path = programme / "airline" / "earn_miles.policy"
    good = path.read_text(encoding="utf-8")
    bad = good.replace("tenure >= 10", 'tenure >= "10"').replace("event.partner", "event.partnr")
    path.write_text(bad, encoding="utf-8")
    ours = await open_file(client, path)
    theirs = check_json(path)
    assert {t["code"] for t in theirs} == {"type_error", "unknown_field"}
    same_as_check(ours, theirs)
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(uri=path.as_uri(), version=2),
        [lsp.TextDocumentContentChangeWholeDocument(good)]))
    assert await diagnostics_for(client, path.as_uri(), version=2) == []


@pytest.mark.asyncio
async def test_lints_are_warnings_as_loyalty_check_gives_them(client: LanguageClient,
                                                              programme: Path) -> None:
    """A lint (here `20 of base`, meant as 20%) is published with the warning severity and the
    code, range, message and hint `loyalty check` gives; errors stay errors."""
    path = programme / "airline" / "earn_miles.policy"
    text = path.read_text(encoding="utf-8").replace("award 10% of base miles", "award 10 of base miles")
    path.write_text(text, encoding="utf-8")
    ours = await open_file(client, path)
    theirs = check_json(path)
    assert [t["code"] for t in theirs] == ["whole_number_of"]
    same_as_check(ours, theirs)
    assert [d.severity for d in ours] == [lsp.DiagnosticSeverity.Warning]
    broken = text.replace("event.partner", "event.partnr")
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(uri=path.as_uri(), version=2),
        [lsp.TextDocumentContentChangeWholeDocument(broken)]))
    assert [(d.code, d.severity) for d in await diagnostics_for(client, path.as_uri(), version=2)] == [
        ("unknown_field", lsp.DiagnosticSeverity.Error)]


@pytest.mark.asyncio
async def test_schema_toml_diagnostics_match_loyalty_check(client: LanguageClient, programme: Path) -> None:
    """An unknown type in schema.toml is reported on its line, as `loyalty check` reports it."""
    schema = programme / "schema.toml"
    schema.write_text(schema.read_text(encoding="utf-8").replace('price = "decimal?"', 'price = "decimel?"'),
                      encoding="utf-8")
    ours = await open_file(client, schema, language="toml")
    theirs = json.loads(loyalty("check", "--format", "json", str(programme)).stdout)["diagnostics"]
    assert theirs[0]["code"] == "schema_error"
    same_as_check(ours, theirs)


@pytest.mark.asyncio
async def test_hover_shows_a_builtins_table_row(client: LanguageClient) -> None:
    """Hovering `tenure_years` shows its row of the builtins table (docs/language.md's row)."""
    from dsl.library.builtins import BUILTINS

    path = REPO / "policies" / "airline" / "earn_miles.policy"
    text = path.read_text(encoding="utf-8")
    await open_file(client, path)
    result = await client.text_document_hover_async(lsp.HoverParams(
        lsp.TextDocumentIdentifier(path.as_uri()), position(text, "tenure_years(", 3)))
    assert result is not None
    b = BUILTINS["tenure_years"]
    assert f"| {b.usage} | {b.gives} | {b.doc} |" in result.contents.value


@pytest.mark.asyncio
async def test_hover_shows_a_fields_type_and_schema_comment(client: LanguageClient) -> None:
    """Hovering `event.cabin` gives its type and default from the schema; `customer.stars_today`
    gives the comment above its line in the programme's schema.toml."""
    coffee = REPO / "policies" / "coffee" / "coffee_rewards.policy"
    airline = REPO / "policies" / "airline" / "earn_miles.policy"
    text = airline.read_text(encoding="utf-8")
    await open_file(client, airline)
    result = await client.text_document_hover_async(lsp.HoverParams(
        lsp.TextDocumentIdentifier(airline.as_uri()), position(text, "event.cabin", 7)))
    assert result is not None
    assert "**event.cabin**: `enum(economy, premium_economy, business, first)`" in result.contents.value
    assert "default: `economy`" in result.contents.value
    text = coffee.read_text(encoding="utf-8")
    await open_file(client, coffee)
    result = await client.text_document_hover_async(lsp.HoverParams(
        lsp.TextDocumentIdentifier(coffee.as_uri()), position(text, "15 - customer.stars_today", 15)))
    assert result is not None
    assert "Stars earned so far today in the coffee shop" in result.contents.value


@pytest.mark.asyncio
async def test_hover_shows_a_tables_rows_and_a_rules_award_bound(client: LanguageClient) -> None:
    """Hovering a table's name shows its rows; hovering a rule's name shows the most it awards."""
    path = REPO / "policies" / "airline" / "earn_miles.policy"
    text = path.read_text(encoding="utf-8")
    await open_file(client, path)
    doc = lsp.TextDocumentIdentifier(path.as_uri())
    table = await client.text_document_hover_async(
        lsp.HoverParams(doc, position(text, "table elite_bonus", 7)))
    assert table is not None
    assert "**table elite_bonus**: 4 rows" in table.contents.value
    assert '"PLATINUM", "75K" -> 125%' in table.contents.value
    rule = await client.text_document_hover_async(lsp.HoverParams(doc, position(text, "rule flown_miles", 6)))
    assert rule is not None
    assert "**rule flown_miles**" in rule.contents.value
    # What it says to the customer, in each language it declares.
    assert ("says `` {miles} miles for your flight from {event.origin} to {event.destination} ``, "
            "fr: `` {miles} miles pour votre vol de {event.origin} à {event.destination} ``"
            ) in rule.contents.value
    # `base` has no maximum in the schema, so the programme's cap_per_event (miles: 100,000,
    # policies/schema.toml) is what bounds this rule on its own.
    assert rule.contents.value.endswith("- miles: at most 100,000")


@pytest.mark.asyncio
async def test_completion_offers_fields_builtins_tiers_and_currencies(client: LanguageClient,
                                                                      programme: Path) -> None:
    """After `customer.lifetime.` the record's fields (and after an aggregate's `item.` its list's);
    in `customer.tier == "` the tiers; after `award 5 ` the currencies; at the start of an
    expression builtins and keywords."""
    path = programme / "airline" / "earn_miles.policy"
    text = path.read_text(encoding="utf-8")
    await open_file(client, path)
    doc = lsp.TextDocumentIdentifier(path.as_uri())

    async def labels(line_text: str) -> list[str]:
        edited = text + line_text
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=doc.uri, version=labels.version),
            [lsp.TextDocumentContentChangeWholeDocument(edited)]))
        labels.version += 1
        at = lsp.Position(edited.count("\n"), len(line_text))
        result = await client.text_document_completion_async(lsp.CompletionParams(doc, at))
        assert isinstance(result, lsp.CompletionList)
        return [i.label for i in result.items]

    labels.version = 2  # type: ignore[attr-defined]
    assert await labels("  rule x when customer.lifetime.") == [
        "appointments", "donation_years", "donations", "flights", "miles", "spend", "visits"]
    assert await labels('  rule x when customer.tier == "') == ["MVP", "GOLD", "PLATINUM", "75K"]
    assert await labels('  rule x when event.cabin == "') == [
        "economy", "premium_economy", "business", "first"]
    assert (await labels("  rule x: award 5 "))[:4] == ["miles", "points", "credit", "stars"]
    general = await labels("  let y = ")
    assert {"tenure_years", "distance_miles", "otherwise", "customer", "base"} <= set(general)
    retail = programme / "retail" / "earn_points.policy"
    line = "  let n = sum(item.amount for item in event.items where item."
    await open_file(client, retail, retail.read_text(encoding="utf-8") + line)
    result = await client.text_document_completion_async(lsp.CompletionParams(
        lsp.TextDocumentIdentifier(retail.as_uri()),
        lsp.Position(retail.read_text(encoding="utf-8").count("\n"), len(line))))
    assert isinstance(result, lsp.CompletionList)
    assert [i.label for i in result.items] == ["amount", "category", "quantity", "sku"]


@pytest.mark.asyncio
async def test_definition_of_a_let_and_of_a_schema_field(client: LanguageClient) -> None:
    """Go to definition on `base` lands on its `let`; on `customer.stars_today` on its line in
    the programme's schema.toml."""
    path = REPO / "policies" / "airline" / "earn_miles.policy"
    text = path.read_text(encoding="utf-8")
    await open_file(client, path)
    result = await client.text_document_definition_async(lsp.DefinitionParams(
        lsp.TextDocumentIdentifier(path.as_uri()), position(text, "award base miles", 6)))
    assert isinstance(result, lsp.Location)
    assert result.range.start == position(text, "let base", 4)
    coffee = REPO / "policies" / "coffee" / "coffee_rewards.policy"
    text = coffee.read_text(encoding="utf-8")
    await open_file(client, coffee)
    result = await client.text_document_definition_async(lsp.DefinitionParams(
        lsp.TextDocumentIdentifier(coffee.as_uri()), position(text, "15 - customer.stars_today", 15)))
    assert isinstance(result, lsp.Location)
    schema = REPO / "policies" / "schema.toml"
    assert result.uri == schema.as_uri()
    assert result.range.start == position(schema.read_text(encoding="utf-8"), "stars_today =")


@pytest.mark.asyncio
async def test_a_shared_definition_is_checked_and_its_definition_is_in_the_shared_file(
        client: LanguageClient, programme: Path) -> None:
    """A policy with a `use` line gets `loyalty check`'s diagnostics (a misspelt name on it,
    with its did-you-mean); go to definition on a name it took, on the `use` line or where
    it is read, lands on the name in the shared file; the shared file itself is checked."""
    path = programme / "supermarket" / "store_spend.policy"
    good = path.read_text(encoding="utf-8")
    path.write_text(good.replace("use excluded_products", "use excluded_produce"), encoding="utf-8")
    ours = await open_file(client, path)
    theirs = check_json(path)
    assert "unknown_definition" in {t["code"] for t in theirs}
    same_as_check(ours, theirs)
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(uri=path.as_uri(), version=2),
        [lsp.TextDocumentContentChangeWholeDocument(good)]))
    assert await diagnostics_for(client, path.as_uri(), version=2) == []
    shared = programme / "supermarket" / "supermarket_common.policy"
    shared_text = shared.read_text(encoding="utf-8")
    target = position(shared_text, "let excluded_products", 4)
    for needle, offset in (("use excluded_products", 4), ("not in excluded_products", 7)):
        result = await client.text_document_definition_async(lsp.DefinitionParams(
            lsp.TextDocumentIdentifier(path.as_uri()), position(good, needle, offset)))
        assert isinstance(result, lsp.Location), needle
        assert (result.uri, result.range.start) == (shared.as_uri(), target), needle
    broken = shared_text.replace('"tobacco", ', '"tobacco", 4, ')
    found = await open_file(client, shared, broken)
    assert [(d.code, d.range.start.line + 1) for d in found] == [("type_error", 8)]


@pytest.mark.asyncio
async def test_references_of_a_let_and_of_a_schema_field(client: LanguageClient) -> None:
    """References to `base` are its definition and each of its uses; references to
    `event.distance_miles` are its reads in the open policy."""
    path = REPO / "policies" / "airline" / "earn_miles.policy"
    text = path.read_text(encoding="utf-8")
    await open_file(client, path)
    doc = lsp.TextDocumentIdentifier(path.as_uri())
    result = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=doc, position=position(text, "let base", 4),
        context=lsp.ReferenceContext(include_declaration=True)))
    uses = [line for line in text.split("\n") if "base" in line and not line.lstrip().startswith("#")]
    assert len(result or []) == sum(line.count("base") for line in uses) == 7
    result = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=doc, position=position(text, "event.distance_miles", 6),
        context=lsp.ReferenceContext(include_declaration=False)))
    assert [r.range.start for r in result or []] == [position(text, "event.distance_miles", 6)]


@pytest.mark.asyncio
async def test_document_symbols(client: LanguageClient) -> None:
    """The outline: the policy, its lets, table, rules and group with its rules, in source order."""
    path = REPO / "policies" / "airline" / "earn_miles.policy"
    await open_file(client, path)
    result = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(
        lsp.TextDocumentIdentifier(path.as_uri())))
    assert result is not None
    [policy] = result
    assert isinstance(policy, lsp.DocumentSymbol)
    assert policy.name == "earn_miles_by_distance"
    assert [(s.name, s.detail) for s in policy.children or []] == [
        ("tenure", "let"), ("flown", "let"), ("base", "let"), ("elite_bonus", "table"),
        ("flown_miles", "rule"), ("cabin_bonus", "group"), ("elite", "rule"),
        ("loyal_for_a_decade", "rule")]
    group = (policy.children or [])[5]
    assert [s.name for s in group.children or []] == ["first_cabin", "business_cabin", "premium_cabin"]


@pytest.mark.asyncio
async def test_formatting_matches_loyalty_fmt_and_refuses_a_file_that_does_not_parse(
        client: LanguageClient, programme: Path) -> None:
    """Formatting gives `loyalty fmt`'s text; a file with a syntax error gets no edit."""
    path = programme / "airline" / "earn_miles.policy"
    messy = path.read_text(encoding="utf-8").replace("  let base = if", "  let   base =   if")
    await open_file(client, path, messy)
    doc = lsp.TextDocumentIdentifier(path.as_uri())
    options = lsp.FormattingOptions(tab_size=2, insert_spaces=True)
    edits = await client.text_document_formatting_async(lsp.DocumentFormattingParams(doc, options))
    expected = loyalty("fmt", "-", stdin=messy).stdout
    assert edits is not None and len(edits) == 1
    assert edits[0].new_text == expected and edits[0].range.start == lsp.Position(0, 0)
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(uri=doc.uri, version=2),
        [lsp.TextDocumentContentChangeWholeDocument(messy.replace("award base miles", "award base"))]))
    assert await client.text_document_formatting_async(lsp.DocumentFormattingParams(doc, options)) is None


@pytest.mark.asyncio
async def test_quick_fix_applies_the_did_you_mean_hint(client: LanguageClient, programme: Path) -> None:
    """`event.partnr` ("did you mean `partner`?") gets a preferred quick fix writing `partner`."""
    path = programme / "airline" / "earn_miles.policy"
    text = path.read_text(encoding="utf-8").replace("event.partner", "event.partnr")
    [diagnostic] = await open_file(client, path, text)
    assert diagnostic.code == "unknown_field"
    actions = await client.text_document_code_action_async(lsp.CodeActionParams(
        lsp.TextDocumentIdentifier(path.as_uri()), diagnostic.range,
        lsp.CodeActionContext([diagnostic])))
    assert actions is not None
    [action] = actions
    assert isinstance(action, lsp.CodeAction) and action.is_preferred
    assert action.title == "Replace `partnr` with `partner`"
    [edit] = (action.edit.changes or {})[path.as_uri()]  # type: ignore[union-attr]
    start = position(text, "partnr")
    assert edit.range == lsp.Range(start, lsp.Position(start.line, start.character + 6))
    assert edit.new_text == "partner"


@pytest.mark.asyncio
async def test_code_lens_runs_the_sibling_tests_with_coverage(client: LanguageClient) -> None:
    """The lens above the policy runs earn_miles.test.toml and shows what `loyalty test --coverage`
    reports for it: the cases passed and the coverage."""
    path = REPO / "policies" / "airline" / "earn_miles.policy"
    await open_file(client, path)
    lenses = await client.text_document_code_lens_async(lsp.CodeLensParams(
        lsp.TextDocumentIdentifier(path.as_uri())))
    assert lenses is not None and len(lenses) == 1
    resolved = await client.code_lens_resolve_async(lenses[0])
    expected = json.loads(loyalty("test", "--coverage", "--format", "json",
                                  str(path.with_name("earn_miles.test.toml"))).stdout)
    assert resolved.command is not None
    assert resolved.command.title == (f"✔ tests: {expected['passed']} passed · coverage "
                                      f"{expected['coverage']['percent']:.1f}% (run again)")
    assert resolved.command.command == "loyalty.runTests"
    result = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
        command="loyalty.runTests", arguments=[path.as_uri()]))
    assert result["passed"] == expected["passed"] and result["failed"] == 0
    assert result["coverage"] == expected["coverage"]["percent"]
    async with asyncio.timeout(10):
        while not client.code_lens_refreshes:  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_inlay_hints_show_award_bounds(client: LanguageClient) -> None:
    """The policy line shows `loyalty check --bounds`'s figure; each rule line its own bound."""
    path = REPO / "policies" / "airline" / "earn_miles.policy"
    text = path.read_text(encoding="utf-8")
    await open_file(client, path)
    lines = text.split("\n")
    hints = await client.text_document_inlay_hint_async(lsp.InlayHintParams(
        lsp.TextDocumentIdentifier(path.as_uri()),
        lsp.Range(lsp.Position(0, 0), lsp.Position(len(lines), 0))))
    bounds = json.loads(loyalty("check", "--bounds", "--format", "json", str(path)).stdout)["bounds"]
    assert bounds["earn_miles_by_distance"] == [{"currency": "miles", "max": "25000", "unbounded_reason": ""}]
    by_line = {h.position.line: h.label for h in hints or []}
    assert by_line[position(text, "policy earn").line] == "  miles ≤ 25,000 per event"
    assert by_line[position(text, "rule first_cabin").line] == "  miles ≤ 100,000"
    assert len(by_line) == 1 + 6


@pytest.mark.asyncio
async def test_a_5000_line_policy_edited_member_by_member_matches_loyalty_check(
        client: LanguageClient, programme: Path) -> None:
    """In a 5,000-line policy only the edited members are reparsed; the diagnostics after
    edits (a misspelt field, then a syntax error, then the fix) are still `loyalty check`'s
    for the same text. (The time they take is measured by tests/service/measure_lsp.py.)"""
    from tests.service.measure_lsp import big_policy

    path = programme / "airline" / "big.policy"
    text = big_policy(5000)
    path.write_text(text, encoding="utf-8")
    same_as_check(await open_file(client, path), check_json(path))  # `tenure` is unused there
    lines = text.split("\n")
    at = next(i for i in range(2500, len(lines)) if lines[i].startswith("  rule flown_miles_"))
    for version, new in enumerate(["  rule edited when customer.lifetime.mils > 3: award 1 miles",
                                   "  rule edited when customer.lifetime.miles > : award 1 miles",
                                   "  rule edited when customer.lifetime.miles > 3: award 1 miles"], 2):
        edited = "\n".join([*lines[:at], new, *lines[at:]])
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=path.as_uri(), version=version),
            [lsp.TextDocumentContentChangeWholeDocument(edited)]))
        ours = await diagnostics_for(client, path.as_uri(), version)
        path.write_text(edited, encoding="utf-8")
        same_as_check(ours, check_json(path))


def test_loyalty_help_lists_lsp_and_only_the_lsp_verb_loads_pygls() -> None:
    """`loyalty --help` names the `lsp` verb; building the parser does not import pygls, so
    the other verbs start as fast as before."""
    assert "    lsp " in loyalty("--help").stdout
    code = "import sys; from service.cli import build_parser; build_parser(); print('pygls' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            timeout=120, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, "False"), result.stderr


@pytest.mark.asyncio
async def test_other_toml_files_get_no_diagnostics(client: LanguageClient, programme: Path) -> None:
    """An editor attaching the server to every TOML file gets nothing for a test file, and
    its policies are still checked."""
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(
        (programme / "airline" / "earn_miles.test.toml").as_uri(), "toml", 1, "not = [policy")))
    path = programme / "airline" / "earn_miles.policy"
    assert await open_file(client, path) == []
    assert (programme / "airline" / "earn_miles.test.toml").as_uri() not in client.diagnostics


@pytest.mark.asyncio
async def test_policies_are_checked_against_the_unsaved_schema(client: LanguageClient,
                                                               programme: Path) -> None:
    """A field added to schema.toml in the editor, not yet saved, is known to the open policies
    of that programme at once; taking it out again brings the diagnostic back."""
    schema = programme / "schema.toml"
    saved = schema.read_text(encoding="utf-8")
    path = programme / "airline" / "earn_miles.policy"
    text = (path.read_text(encoding="utf-8").replace("tenure >= 10", "customer.lifetime.upgrades >= 10")
            .replace("{tenure}", "ten"))  # the decade rule's texts read it too
    codes = [d.code for d in await open_file(client, path, text)]
    assert codes == ["unused_binding", "unknown_field"]  # `tenure` is no longer read
    added = saved.replace("[customer]\n", "[customer]\nlifetime.upgrades = \"int\"\n", 1)
    assert added != saved
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(
        schema.as_uri(), "toml", 1, added)))
    codes = [d.code for d in await diagnostics_for(client, path.as_uri())]
    assert codes == ["unused_binding"]
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(uri=schema.as_uri(), version=2),
        [lsp.TextDocumentContentChangeWholeDocument(saved)]))
    codes = [d.code for d in await diagnostics_for(client, path.as_uri())]
    assert codes == ["unused_binding", "unknown_field"]
