"""What the language server answers, as plain functions of an :class:`~service.lsp.document.Analysis`.

Each function takes the checked document (and the schema it was checked against) and
returns Language Server Protocol values (``lsprotocol.types``); none of them talks to the
client, so ``service.lsp.server`` stays the only place that knows about the connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lsprotocol import types as lsp

from service.lsp.document import Analysis, Definition, name_nodes
from service.lsp.language import (
    AGGREGATES,
    BASE_SCHEMA_PATH,
    BUILTINS,
    BUILTINS_LIST,
    AwardBound,
    Builtin,
    Diagnostic,
    Field,
    Schema,
    Span,
    award_bounds,
    default_text,
    keywords,
    n,
)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DID_YOU_MEAN = re.compile(r"did you mean `([^`]+)`\?")


# -- positions ---------------------------------------------------------------------------


def to_range(span: Span) -> lsp.Range:
    """A 1-based, end-exclusive span as a 0-based protocol range (a line's start when unknown)."""
    line = max(span.line - 1, 0)
    start = lsp.Position(line, max(span.column - 1, 0))
    if span.end_line <= 0:
        return lsp.Range(start, lsp.Position(line + 1, 0))
    return lsp.Range(start, lsp.Position(span.end_line - 1, max(span.end_column - 1, 0)))


def _contains(span: Span, line: int, column: int) -> bool:
    """Whether the 1-based ``line``/``column`` lies within ``span`` (its end included, so a
    cursor just after a word still counts as on it)."""
    if span.line <= 0 or (line, column) < (span.line, span.column):
        return False
    return (line, column) <= (span.end_line, span.end_column)


def _size(span: Span) -> tuple[int, int]:
    return (span.end_line - span.line, span.end_column - span.column)


def to_diagnostic(d: Diagnostic) -> lsp.Diagnostic:
    """A checker diagnostic as the protocol's: the same code and range; the hint follows the
    message as ``loyalty check`` prints it (``= hint: ...``) and travels in ``data``."""
    message = d.message + (f"\n= hint: {d.hint}" if d.hint else "")
    severity = lsp.DiagnosticSeverity.Error if d.severity == "error" else lsp.DiagnosticSeverity.Warning
    return lsp.Diagnostic(range=to_range(d.span), message=message, severity=severity, code=d.code,
                          source="loyalty", data={"hint": d.hint})


# -- what is under the cursor ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A schema field read by a policy: ``record`` is ``customer``, ``event``, ``customer.lifetime``
    or a ``[records]`` name."""

    record: str
    name: str
    field: Field
    #: Where the field's own name is written in the policy.
    span: Span


def _records(schema: Schema, policy: n.Policy) -> dict[str, dict[str, Field]]:
    return {**schema.records, "customer": schema.customer,
            "event": schema.event_fields(tuple(policy.kinds))}


def field_refs(analysis: Analysis, schema: Schema) -> list[tuple[n.Policy, FieldRef]]:
    """Every schema field every policy of the document reads, with its record."""
    out: list[tuple[n.Policy, FieldRef]] = []
    for policy, check in zip(analysis.policies, analysis.checks, strict=False):
        records = _records(schema, policy)
        for node in n.walk(policy):
            if not isinstance(node, n.Attribute) or node.span.line <= 0:
                continue
            owner = check.type_of(node.value)
            if owner.kind != "record" or owner.name is None:
                continue
            f = records.get(owner.name, {}).get(node.name)
            if f is None:
                continue
            end = node.span.end_column
            span = Span(node.span.end_line, end - len(node.name), node.span.end_line, end)
            out.append((policy, FieldRef(owner.name, node.name, f, span)))
    return out


def _call_at(analysis: Analysis, line: int, column: int) -> n.Call | n.Aggregate | None:
    best: n.Call | n.Aggregate | None = None
    for policy in analysis.policies:
        for node in n.walk(policy):
            if isinstance(node, n.Call | n.Aggregate) and node.span.line == line:
                name_end = node.span.column + len(node.func)
                if node.span.column <= column <= name_end:
                    best = node
    return best


def _definition_at(analysis: Analysis, line: int, column: int) -> Definition | None:
    """The definition whose name is under the cursor, or that a bare name there refers to."""
    definitions = analysis.definitions()
    for d in definitions:
        if _contains(d.name_span, line, column):
            return d
    for policy in analysis.policies:
        for name in name_nodes(policy):
            if _contains(name.span, line, column):
                return next((d for d in definitions if d.policy is policy and d.name == name.name
                             and d.kind in ("let", "table", "decide")), None)
    return None


_SHARED_NAME = re.compile(r"\s*(let|table|decide)\s+([A-Za-z_][A-Za-z0-9_]*)")


def _shared_at(analysis: Analysis, line: int, column: int) -> lsp.Location | None:
    """Where a name taken from shared definitions is written in its block's file: for the
    name on a ``use`` line, or a bare name the policy reads, under the cursor."""
    for policy in analysis.policies:
        wanted: str | None = None
        for m in policy.members:
            if isinstance(m, n.Use):
                wanted = next((name for name, span in zip(m.names, m.name_spans, strict=True)
                               if _contains(span, line, column)), None)
                if wanted is not None:
                    break
        if wanted is None:
            wanted = next((x.name for x in name_nodes(policy) if _contains(x.span, line, column)),
                          None)
        if wanted is None:
            continue
        resolved = analysis.resolved_of(policy)
        imported = resolved.imported.get(wanted)
        if imported is None or not imported.file:
            return None
        member = next(m for m in resolved.members
                      if isinstance(m, n.Let | n.Table | n.Decide) and m.name == wanted)
        lines = imported.source.split("\n")
        at = member.span.line
        found = _SHARED_NAME.match(lines[at - 1], max(member.span.column - 1, 0)) \
            if 0 < at <= len(lines) else None
        column_at = found.start(2) if found else member.span.column - 1
        return lsp.Location(Path(imported.file).resolve().as_uri(),
                            lsp.Range(lsp.Position(at - 1, column_at),
                                      lsp.Position(at - 1, column_at + len(wanted))))
    return None


def _field_at(analysis: Analysis, schema: Schema, line: int, column: int
              ) -> tuple[n.Policy, FieldRef] | None:
    for policy, ref in field_refs(analysis, schema):
        if _contains(ref.span, line, column):
            return policy, ref
    return None


# -- schema files ----------------------------------------------------------------------------


def schema_files(root: Path) -> list[Path]:
    """The schema texts of a programme, its own first: where a field may be declared."""
    own = root / "schema.toml"
    return [p for p in (own, BASE_SCHEMA_PATH) if p.is_file()]


def _tables_for(record: str, name: str, schema: Schema, kinds: list[str]) -> list[str]:
    """The TOML tables that may declare ``name`` of ``record``."""
    if record == "event":
        if name in schema.event_common:
            return ["event"]
        return [f"events.{k}" for k in kinds] + [f"events.{k}" for k in schema.events]
    if record == "customer" or record.startswith("customer."):
        return [record]
    if record.startswith("event."):
        return ["events." + record.removeprefix("event.")]
    return [f"records.{record}"]


def locate_field(root: Path, record: str, name: str, schema: Schema, kinds: list[str],
                 texts: dict[Path, str] | None = None) -> tuple[Path, int, int, str] | None:
    """Where a field is declared: (schema file, 0-based line, column, its comment as doc)."""
    tables = _tables_for(record, name, schema, kinds)
    for path in schema_files(root):
        text = (texts or {}).get(path)
        if text is None:
            text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        current = ""
        for i, line in enumerate(lines):
            header = re.match(r"\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$", line)
            if header:
                current = header[1].replace('"', "").replace(" ", "")
                continue
            key = re.match(rf"(\s*){re.escape(name)}\s*=", line)
            if key and current in tables:
                return path, i, len(key[1]), _comment_above(lines, i)
    return None


def _comment_above(lines: list[str], index: int) -> str:
    """The ``#`` comment lines right above a TOML key, and a comment after it on its line."""
    out: list[str] = []
    i = index - 1
    while i >= 0 and lines[i].lstrip().startswith("#"):
        out.insert(0, lines[i].lstrip()[1:].strip())
        i -= 1
    trailing = re.search(r"#\s*(.*)$", lines[index].split('"')[-1])
    if trailing:
        out.append(trailing[1])
    return " ".join(out)


# -- hover -------------------------------------------------------------------------------------


def builtin_row(b: Builtin) -> str:
    """A builtin's row of docs/language.md's table, as ``dsl.library.builtins.docs_table`` writes it."""
    return f"| {b.usage} | {b.gives} | {b.doc} |"


def describe_field(ref: FieldRef, doc: str) -> str:
    """A field's hover text: its path, type, default, least and most values and the schema's
    comment."""
    f = ref.field
    facts = []
    if f.has_default:
        facts.append(f"default: `{f.default}`")
    if f.minimum is not None:
        facts.append(f"at least: `{f.minimum}`")
    if f.maximum is not None:
        facts.append(f"at most: `{f.maximum}`")
    if f.derived:
        facts.append(f"derived from `{f.derived}`")
    blocks = [f"**{ref.record}.{ref.name}**: `{f.type}`", "  \n".join(facts), doc]
    return "\n\n".join(b for b in blocks if b)


def rule_bounds(analysis: Analysis, schema: Schema, policy: n.Policy, rule: n.Rule) -> list[AwardBound]:
    """The most one event can be awarded by ``rule`` alone, per currency (the bounds pass run
    over the policy's definitions and this one rule; caps of the policy are left out)."""
    checked = analysis.resolved_of(policy)
    keep = [m for m in checked.members if isinstance(m, n.Let | n.Table | n.Decide | n.Round)]
    alone = n.Policy(policy.name, policy.version, policy.effective_from, policy.effective_until,
                     list(policy.kinds), policy.description, [*keep, rule], policy.file, policy.source,
                     dict(policy.header_spans), span=policy.span, imported=checked.imported)
    return award_bounds(schema, alone, analysis.check_of(policy))


def policy_bounds(analysis: Analysis, schema: Schema, policy: n.Policy) -> list[AwardBound]:
    """The bounds ``loyalty check --bounds`` prints for a policy."""
    return award_bounds(schema, analysis.resolved_of(policy), analysis.check_of(policy))


def bounds_text(bounds: list[AwardBound]) -> str:
    """``miles ≤ 2,500`` per currency; ``awards nothing`` when there are none."""
    if not bounds:
        return "awards nothing"
    return ", ".join(f"{b.currency} ≤ {b.maximum:,}" if b.maximum is not None
                     else f"{b.currency} unbounded" for b in bounds)


def hover(analysis: Analysis, schema: Schema, root: Path, line: int, column: int) -> lsp.Hover | None:
    """Hover text at a 1-based position: a field, a builtin, a definition or a name read."""
    text: str | None = None
    span: Span | None = None
    call = _call_at(analysis, line, column)
    if call is not None:
        b = BUILTINS.get(call.func)
        if b is not None:
            text = (f"**{b.name}** (builtin): {b.usage} gives {b.gives}\n\n"
                    f"| Function | Gives | Meaning |\n| --- | --- | --- |\n{builtin_row(b)}")
        elif call.func in AGGREGATES:
            text = f"**{call.func}** (aggregate): `{call.func}(expr for x in list where cond)`"
        span = Span.point(call.span.line, call.span.column, len(call.func))
    found = _field_at(analysis, schema, line, column) if text is None else None
    if found is not None:
        policy, ref = found
        where = locate_field(root, ref.record, ref.name, schema, policy.kinds)
        text = describe_field(ref, where[3] if where else "")
        span = ref.span
    definition = _definition_at(analysis, line, column) if text is None else None
    if definition is not None:
        text = describe_definition(analysis, schema, definition)
        span = None
    if text is None:
        return None
    return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, text),
                     to_range(span) if span is not None else None)


def describe_definition(analysis: Analysis, schema: Schema, d: Definition) -> str:
    """Hover text for a let (its type and value), a table (its rows), a rule (its award bound)
    or a group (the bound of each of its rules)."""
    source = analysis.text.split("\n")
    node = d.node
    lines = source[node.span.line - 1: node.span.end_line]
    if node.span.end_column <= 1 and len(lines) > 1:
        lines = lines[:-1]
    block = "\n".join(line.rstrip() for line in lines)
    check = analysis.check_of(d.policy)
    if isinstance(node, n.Let):
        return f"**let {d.name}**: `{check.type_of(node.value)}`\n\n```loyalty\n{block}\n```"
    if isinstance(node, n.Table | n.Decide):
        rows = len(node.rows)
        return (f"**{d.kind} {d.name}**: {rows} row{'s' if rows != 1 else ''}\n\n"
                f"```loyalty\n{block}\n```")
    if isinstance(node, n.Rule):
        bounds = rule_bounds(analysis, schema, d.policy, node)
        detail = "\n".join(f"- {b.describe()}" for b in bounds) or "- awards nothing"
        says = ", ".join(f"{t.language + ': ' if t.language else ''}{_quoted(t.text)}"
                         for t in node.texts) or f"{_quoted(default_text(node.name))} (from its name)"
        return (f"**rule {d.name}** says {says}\n\n"
                f"The most one event can be awarded by this rule:\n\n{detail}")
    if isinstance(node, n.Group):
        parts = [f"**group {d.name}** takes {node.mode}" + (f" {node.currency}" if node.currency else "")]
        for r in node.rules:
            parts.append(f"- {r.name}: {bounds_text(rule_bounds(analysis, schema, d.policy, r))}")
        return "\n\n".join(parts[:1]) + "\n\n" + "\n".join(parts[1:])
    return f"**{d.kind} {d.name}**"


def _quoted(text: str) -> str:
    """A rule's text in a hover, as code (so Markdown in it shows as written)."""
    return "`` " + text.replace("`", "'") + " ``"


# -- definition and references ----------------------------------------------------------------


def definition(analysis: Analysis, schema: Schema, root: Path, uri: str, line: int, column: int,
               texts: dict[Path, str] | None = None) -> lsp.Location | None:
    """Where the name under the cursor is defined: in this file, in a file of shared
    definitions, or a field in schema.toml."""
    d = _definition_at(analysis, line, column)
    if d is not None:
        return lsp.Location(uri, to_range(d.name_span))
    shared = _shared_at(analysis, line, column)
    if shared is not None:
        return shared
    found = _field_at(analysis, schema, line, column)
    if found is None:
        return None
    policy, ref = found
    where = locate_field(root, ref.record, ref.name, schema, policy.kinds, texts)
    if where is None:
        return None
    path, at, col, _ = where
    return lsp.Location(path.resolve().as_uri(),
                        lsp.Range(lsp.Position(at, col), lsp.Position(at, col + len(ref.name))))


def references(documents: list[tuple[str, Analysis]], uri: str, schema: Schema, line: int,
               column: int, include_declaration: bool) -> list[lsp.Location]:
    """Every use of the definition or field under the cursor: a definition's within its policy,
    a field's in every open policy of the programme (``documents``: uri and analysis)."""
    analysis = dict(documents)[uri]
    d = _definition_at(analysis, line, column)
    out: list[lsp.Location] = []
    if d is not None:
        if include_declaration:
            out.append(lsp.Location(uri, to_range(d.name_span)))
        if d.kind in ("let", "table", "decide"):
            out.extend(lsp.Location(uri, to_range(x.span)) for x in name_nodes(d.policy)
                       if x.name == d.name and x.span.line > 0)
        return out
    found = _field_at(analysis, schema, line, column)
    if found is None:
        return []
    _, target = found
    for other_uri, other in documents:
        for _, ref in field_refs(other, schema):
            if ref.record == target.record and ref.name == target.name:
                out.append(lsp.Location(other_uri, to_range(ref.span)))
    return out


# -- symbols -------------------------------------------------------------------------------------

_SYMBOL_KINDS = {"let": lsp.SymbolKind.Variable, "table": lsp.SymbolKind.Struct,
                 "decide": lsp.SymbolKind.Struct, "rule": lsp.SymbolKind.Function,
                 "group": lsp.SymbolKind.Namespace}


def symbols(analysis: Analysis) -> list[lsp.DocumentSymbol]:
    """Policies, each with its lets, tables, decision tables, groups (with their rules) and rules."""
    by_node = {id(d.node): d for d in analysis.definitions()}
    out: list[lsp.DocumentSymbol] = []

    def symbol(node: n.Node) -> lsp.DocumentSymbol | None:
        d = by_node.get(id(node))
        if d is None:
            return None
        children = [s for r in node.rules if (s := symbol(r))] if isinstance(node, n.Group) else None
        return lsp.DocumentSymbol(d.name, _SYMBOL_KINDS[d.kind], to_range(node.span),
                                  to_range(d.name_span), detail=d.kind, children=children)

    for policy in analysis.policies:
        name_span = policy.header_spans.get("name", policy.span)
        members = [s for m in policy.members if (s := symbol(m))]
        out.append(lsp.DocumentSymbol(policy.name, lsp.SymbolKind.Module, to_range(policy.span),
                                      to_range(name_span), detail=", ".join(policy.kinds),
                                      children=members))
    return out


# -- completion ----------------------------------------------------------------------------------


def _fields_of(schema: Schema, kinds: list[str], path: list[str], line: str = "") -> dict[str, Field] | None:
    """The fields of the record a dotted path names (``["customer", "lifetime"]``), or None.

    A path may start at an aggregate's variable (``item`` in ``sum(item.amount for item in
    event.items)``, found on ``line``): its fields are those of the list's records.
    """
    if not path:
        return None
    if path[0] in ("customer", "event"):
        fields = schema.customer if path[0] == "customer" else schema.event_fields(tuple(kinds))
        if path[0] == "event" and not kinds:
            fields = {**schema.event_common, **{k: f for fs in schema.events.values() for k, f in fs.items()}}
    else:
        source = re.search(rf"\bfor\s+{re.escape(path[0])}\s+in\s+([A-Za-z_][A-Za-z0-9_.]*)", line)
        if source is None:
            return None
        parts = source[1].split(".")
        owner = _fields_of(schema, kinds, parts[:-1]) if len(parts) > 1 else None
        f = (owner or {}).get(parts[-1])
        elem = f.type.elem if f is not None and f.type.kind == "list" else None
        if elem is None or elem.kind != "record":
            return None
        fields = schema.records.get(str(elem.name), {})
    for part in path[1:]:
        f = fields.get(part)
        if f is None or f.type.kind != "record":
            return None
        fields = schema.records.get(str(f.type.name), {})
    return fields


def _kinds_at(analysis: Analysis, line: int) -> list[str]:
    for policy in analysis.policies:
        if policy.span.line <= line <= max(policy.span.end_line, policy.span.line):
            return list(policy.kinds)
    return list(analysis.policies[0].kinds) if analysis.policies else []


def _enum_values(t: object) -> tuple[str, ...]:
    values = getattr(t, "values", None)
    return tuple(values) if getattr(t, "kind", "") == "enum" and values else ()


def completion(analysis: Analysis | None, schema: Schema, text: str, line: int, character: int
               ) -> list[lsp.CompletionItem]:
    """Completions at a 0-based position, from what the line says before the cursor."""
    lines = text.split("\n")
    before = lines[line][:character] if line < len(lines) else ""
    kinds = _kinds_at(analysis, line + 1) if analysis else []
    item = lsp.CompletionItem
    path = re.search(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\.([A-Za-z0-9_]*)$", before)
    if path:
        fields = _fields_of(schema, kinds, path[1].split("."), lines[line] if line < len(lines) else "")
        if fields is None:
            return []
        return [item(name, kind=lsp.CompletionItemKind.Field, detail=str(f.type))
                for name, f in sorted(fields.items())]
    if before.count('"') % 2 == 1:  # inside a string
        if re.search(r'qualify\s+for\s+"[^"]*$', before):
            return [item(t, kind=lsp.CompletionItemKind.EnumMember, detail="tier") for t in schema.tiers]
        if re.search(r'grant\s+"[^"]*$', before):
            return [item(b, kind=lsp.CompletionItemKind.Constant, detail="benefit") for b in schema.benefits]
        values: list[tuple[str, str]] = []
        compared = re.search(r"([A-Za-z_][A-Za-z0-9_.]*)\s*(?:==|!=|not in|in)\s*\[?[^\]]*\"[^\"]*$", before)
        if compared and "." in compared[1]:
            parts = compared[1].split(".")
            fields = _fields_of(schema, kinds, parts[:-1])
            f = (fields or {}).get(parts[-1])
            if f is not None:
                values = [(v, str(f.type)) for v in _enum_values(f.type)]
        if not values:
            values = [(t, "tier") for t in schema.tiers]
        return [item(v, kind=lsp.CompletionItemKind.EnumMember, detail=d) for v, d in values]
    if re.search(r"^\s*on\s+([A-Za-z_][A-Za-z0-9_]*\s*,\s*)*[A-Za-z_]*$", before):
        return [item(k, kind=lsp.CompletionItemKind.Enum, detail="event kind") for k in sorted(schema.events)]
    out: list[lsp.CompletionItem] = []
    if re.search(r"(\baward\b.*\s|^\s*cap\s+|^\s*round\s+|takes\s+best\s+)[A-Za-z_]*$", before):
        out += [item(c, kind=lsp.CompletionItemKind.Unit, detail="currency", sort_text="0" + c)
                for c in schema.currencies]
    out += [item(b.name, kind=lsp.CompletionItemKind.Function, detail=b.usage.replace("`", ""),
                 documentation=lsp.MarkupContent(lsp.MarkupKind.Markdown, f"{b.doc}\n\n{builtin_row(b)}"))
            for b in BUILTINS_LIST]
    out += [item(k, kind=lsp.CompletionItemKind.Keyword) for k in keywords()]
    out += [item(r, kind=lsp.CompletionItemKind.Module, detail="record") for r in ("customer", "event")]
    if analysis is not None:
        out += [item(d.name, kind=lsp.CompletionItemKind.Variable, detail=d.kind)
                for d in analysis.definitions() if d.kind in ("let", "table", "decide")]
    return out


# -- code actions and inlay hints -------------------------------------------------------------------


def quick_fixes(uri: str, text: str, diagnostics: list[lsp.Diagnostic]) -> list[lsp.CodeAction]:
    """A quick fix per diagnostic whose hint says "did you mean `X`?": the misspelt name (the
    last name in the diagnostic's range) replaced by ``X``."""
    lines = text.split("\n")
    out: list[lsp.CodeAction] = []
    for d in diagnostics:
        hint = (d.data or {}).get("hint", "") if isinstance(d.data, dict) else ""
        match = _DID_YOU_MEAN.search(hint or str(d.message))
        r = d.range
        if match is None or r.start.line != r.end.line or r.start.line >= len(lines):
            continue
        covered = lines[r.start.line][r.start.character:r.end.character]
        names = list(_IDENT.finditer(covered))
        if not names:
            continue
        last = names[-1]
        start = r.start.character + last.start()
        edit = lsp.TextEdit(lsp.Range(lsp.Position(r.start.line, start),
                                      lsp.Position(r.start.line, start + len(last[0]))), match[1])
        out.append(lsp.CodeAction(f"Replace `{last[0]}` with `{match[1]}`", kind=lsp.CodeActionKind.QuickFix,
                                  diagnostics=[d], is_preferred=True,
                                  edit=lsp.WorkspaceEdit(changes={uri: [edit]})))
    return out


def inlay_hints(analysis: Analysis, schema: Schema, first: int, last: int) -> list[lsp.InlayHint]:
    """The award bound of every rule whose first line is in the 0-based lines ``first``..``last``,
    written after that line; a policy's total bound after its name."""
    lines = analysis.text.split("\n")
    out: list[lsp.InlayHint] = []
    for policy in analysis.policies:
        header = policy.span.line - 1
        if first <= header <= last:
            hint = bounds_text(policy_bounds(analysis, schema, policy))
            out.append(lsp.InlayHint(lsp.Position(header, len(lines[header])), f"  {hint} per event",
                                     kind=lsp.InlayHintKind.Type, padding_left=True))
        for rule in policy.rules:
            at = rule.span.line - 1
            if not first <= at <= last:
                continue
            hint = bounds_text(rule_bounds(analysis, schema, policy, rule))
            out.append(lsp.InlayHint(lsp.Position(at, len(lines[at])), f"  {hint}",
                                     kind=lsp.InlayHintKind.Type, padding_left=True))
    return out
