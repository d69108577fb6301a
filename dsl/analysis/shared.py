"""Shared definitions: each ``definitions`` block checked once, and ``use`` lines resolved.

A programme's files may hold ``definitions NAME`` blocks: bindings, tables and decision
tables written once (``let excluded_products = [...]``). A policy takes some of them by
name, ``use excluded_products from supermarket_common``; so may another block.

Resolution puts the named definitions, and the ones of the same block they read, among the
policy's members where its ``use`` line stands, and records where each came from in
``Policy.imported``. Every later stage (the checker, the code generator, the interpreter,
the bounds, coverage, ``loyalty diff``) then sees them as the policy's own members, so they
go through the same name checks, the same mangling and the same bytecode verifier as
local ones. A block's diagnostics are reported once, against its own file, when the
:class:`Library` is built; the checker of a policy that uses it stays quiet about them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Sequence

from dsl.analysis.checker import STAGES, CheckResult, check_policy
from dsl.errors import Diagnostic, Span, did_you_mean
from dsl.front import nodes as n
from dsl.schema.schema import Schema

__all__ = ["DEFINITION_STAGES", "Library"]

Definition = n.Let | n.Table | n.Decide

#: The checker's stages a definitions block goes through: not the header (a block applies to
#: no event kind) nor unused bindings (a definition is there for the policies to use).
DEFINITION_STAGES = tuple(s for s in STAGES if s.name not in ("header", "unused"))


def _line(source: str, number: int) -> str:
    lines = source.splitlines()
    return lines[number - 1] if 0 < number <= len(lines) else ""


class Library:
    """Every ``definitions`` block of a programme, resolved and checked once against a schema.

    :meth:`resolve` gives a policy with its ``use`` lines replaced by what they name.
    """

    def __init__(self, schema: Schema, blocks: Iterable[n.Definitions] = ()) -> None:
        self.schema = schema
        self.blocks: dict[str, n.Definitions] = {}
        #: Problems of the blocks themselves (duplicates, unknown names, cycles, types).
        self.diagnostics: list[Diagnostic] = []
        #: Each block's members with its own ``use`` lines resolved, in order.
        self._members: dict[str, list[Definition]] = {}
        #: Where each member of a resolved block was written (by id: the library holds them).
        self._origin: dict[int, n.Definitions] = {}
        #: Which blocks each block reads, directly or not (for the cache keys).
        self._needs: dict[str, set[str]] = {}
        self.checks: dict[str, CheckResult] = {}
        for block in blocks:
            first = self.blocks.get(block.name)
            if first is not None:
                self._report(block.file, block.source, block.name_span, "duplicate_definitions",
                             f"definitions {block.name} are already written at "
                             f"{first.file}:{first.name_span.line}",
                             "give every definitions block its own name")
                continue
            self.blocks[block.name] = block
        for name in self.blocks:
            self._resolve_block(name, [])
        for block in self.blocks.values():
            self._check_block(block)

    # -- what the cache and the tools need ---------------------------------------------------

    def needs(self, modules: Iterable[str]) -> set[str]:
        """The blocks ``modules`` name and every block they read in turn (unknown names left out)."""
        out: set[str] = set()
        for m in modules:
            if m in self.blocks:
                out.add(m)
                out |= self._needs.get(m, set())
        return out

    def digest(self, modules: Iterable[str] | None = None) -> str:
        """A digest of the text of the blocks ``modules`` need (every block when None): what a
        cached policy that uses them must be rebuilt for when it changes."""
        names = sorted(self.blocks if modules is None else self.needs(modules))
        h = hashlib.sha256()
        for name in names:
            block = self.blocks[name]
            h.update(f"{name}\0{block.file}\0".encode("utf-8", "surrogatepass"))
            h.update(block.source.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
        return h.hexdigest()[:16]

    def origin(self, member: n.Node) -> n.Definitions | None:
        """The block a resolved member was written in (None for a policy's own member)."""
        return self._origin.get(id(member))

    # -- resolving -----------------------------------------------------------------------------

    def _report(self, file: str, source: str, span: Span, code: str, message: str,
                hint: str) -> None:
        self.diagnostics.append(Diagnostic(file, span, code, message, hint,
                                           source_line=_line(source, span.line)))

    def _resolve_block(self, name: str, stack: list[str]) -> list[Definition]:
        done = self._members.get(name)
        if done is not None:
            return done
        block = self.blocks[name]
        own = {m.name: m for m in block.members if not isinstance(m, n.Use)}
        members: list[Definition] = []
        names: dict[str, Definition] = {}
        needs: set[str] = set()
        for m in block.members:
            if not isinstance(m, n.Use):
                self._origin[id(m)] = block
                members.append(m)
                names[m.name] = m
                continue
            brought = self._bring(m, block.file, block.source, [*stack, name], own, names,
                                  self.diagnostics, None)
            needs.add(m.module)
            needs |= self._needs.get(m.module, set())
            members.extend(brought)
        self._members[name] = members
        self._needs[name] = needs
        return members

    def _bring(self, use: n.Use, file: str, source: str, stack: list[str],
               local: dict[str, n.Node], brought: dict[str, Definition],
               out: list[Diagnostic], imported: dict[str, n.Imported] | None
               ) -> list[Definition]:
        """The members ``use`` brings into a policy or a block (whose own definitions are
        ``local`` and whose members brought so far ``brought``); problems into ``out``."""

        def problem(span: Span, code: str, message: str, hint: str) -> None:
            out.append(Diagnostic(file, span, code, message, hint,
                                  source_line=_line(source, span.line)))

        def unresolved(names: Iterable[tuple[str, Span]]) -> None:
            # Known to the checker as names of any type (its file ""), so that a failed
            # `use` line is reported once, not again at every read of what it names.
            if imported is not None:
                for name, span in names:
                    if name not in local:
                        imported.setdefault(name, n.Imported(use.module, "", "", use.span, span,
                                                             True))

        module = use.module
        if module not in self.blocks:
            unresolved(zip(use.names, use.name_spans, strict=True))
            known = sorted(self.blocks)
            problem(use.module_span, "unknown_definitions",
                    f"no definitions are called `{module}` in this programme",
                    did_you_mean(module, known)
                    or (f"the programme's definitions are: {', '.join(known)}" if known else
                        f"write them in a file of the programme: definitions {module}"))
            return []
        if module in stack:
            unresolved(zip(use.names, use.name_spans, strict=True))
            chain = " -> ".join([*stack[stack.index(module):], module])
            problem(use.module_span, "definitions_cycle",
                    f"definitions take from each other in a circle ({chain})",
                    "move what both need into one of them, or into a third block")
            return []
        members = self._resolve_block(module, stack)
        block = self.blocks[module]
        index = {m.name: i for i, m in enumerate(members)}
        wanted: list[tuple[int, Span]] = []
        for name, span in zip(use.names, use.name_spans, strict=True):
            if name not in block.defined:
                hint = did_you_mean(name, block.defined)
                if not hint and name in index:
                    origin = self._origin.get(id(members[index[name]]))
                    hint = (f"`{name}` comes into {module} from definitions {origin.name}: "
                            f"use {name} from {origin.name}") if origin else ""
                problem(span, "unknown_definition",
                        f"definitions {module} have no `{name}`",
                        hint or f"they define: {', '.join(block.defined) or 'nothing'}")
                unresolved([(name, span)])
                continue
            wanted.append((index[name], span))
        # What the wanted definitions read from their block, in the block's order.
        chosen: dict[int, Span | None] = {i: span for i, span in wanted}
        todo = [i for i, _ in wanted]
        while todo:
            member = members[todo.pop()]
            for node in n.walk(member):
                if isinstance(node, n.Name) and node.name in index:
                    j = index[node.name]
                    if j not in chosen:
                        chosen[j] = None
                        todo.append(j)
        result: list[Definition] = []
        for i in sorted(chosen):
            member, span = members[i], chosen[i]
            name = member.name
            if name in local:
                mine = local[name]
                if span is None:
                    problem(use.span, "name_clash",
                            f"`{name}`, which definitions {module} read, is also defined here "
                            f"(line {mine.span.line})",
                            f"rename this `{name}`: the shared definitions need their own")
                else:
                    problem(span, "name_clash",
                            f"`{name}` is defined here (line {mine.span.line}) and also taken "
                            f"from definitions {module}",
                            f"rename this file's `{name}`, or leave it off the `use` line")
                continue
            already = brought.get(name)
            if already is not None:
                if already is not member:
                    was = self._origin.get(id(already))
                    problem(span or use.span, "name_clash",
                            f"`{name}` is taken from definitions {module} and from definitions "
                            f"{was.name if was else 'another block'}",
                            "take each name from one block")
                elif span is not None and imported is not None and not imported[name].named:
                    imported[name] = dataclasses.replace(imported[name], named=True, at=span)
                continue
            brought[name] = member
            if imported is not None:
                origin = self._origin[id(member)]
                imported[name] = n.Imported(origin.name, origin.file, origin.source, use.span,
                                            span or use.span, span is not None)
            result.append(member)
        return result

    def resolve(self, policy: n.Policy) -> tuple[n.Policy, list[Diagnostic]]:
        """``policy`` with each ``use`` line replaced by what it brings in, and the problems of
        its ``use`` lines (unknown blocks or names, with a suggestion; names clashing with the
        policy's own). The policy itself is not changed."""
        if not any(isinstance(m, n.Use) for m in policy.members):
            return policy, []
        local: dict[str, n.Node] = {m.name: m for m in policy.members
                                    if isinstance(m, n.Let | n.Table | n.Decide)}
        members: list[n.Member] = []
        brought: dict[str, Definition] = {}
        imported: dict[str, n.Imported] = {}
        out: list[Diagnostic] = []
        for m in policy.members:
            if isinstance(m, n.Use):
                members.extend(self._bring(m, policy.file, policy.source, [], local, brought,
                                           out, imported))
            else:
                members.append(m)
        return dataclasses.replace(policy, members=members, imported=imported), out

    # -- checking ---------------------------------------------------------------------------

    def _check_block(self, block: n.Definitions) -> None:
        """Check a block once, as a policy of no event kind made of its resolved members; only
        its own members' problems are reported (a block it takes from reports its own)."""
        members = self._members[block.name]
        imported = {m.name: n.Imported(o.name, o.file, o.source, m.span, m.span, True)
                    for m in members if (o := self._origin[id(m)]) is not block}
        policy = n.Policy(block.name, kinds=[], members=list(members), file=block.file,
                          source=block.source, span=block.span,
                          header_spans={"name": block.name_span}, imported=imported)
        check = check_policy(self.schema, policy, DEFINITION_STAGES)
        self.checks[block.name] = check
        self.diagnostics.extend(check.diagnostics)


def blocks_of(parsed: Sequence[n.Policy | n.Definitions]) -> list[n.Definitions]:
    """The definitions blocks among a file's parsed top-level blocks."""
    return [b for b in parsed if isinstance(b, n.Definitions)]
