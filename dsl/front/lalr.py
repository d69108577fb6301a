"""The parser's fast path: Lark's LALR tables driven by our own loop, the AST built as it reduces.

Lark parses in two passes: its loop builds a parse tree (every node's position worked
out from its children's), then a transformer walks that tree to build the AST. For a
well-formed file this module does both at once, over the same tables, with the same
shaping of children that Lark applies (anonymous tokens dropped, ``_rule`` children
spliced into their parent, ``?rule`` with one child replaced by it, ``None`` for an
absent ``[optional]``) and the same positions (``propagate_positions``: a node spans
from the start of its first child's text to the end of its last child's, brackets and
keywords included). The AST builder's methods are called in the order the transformer
would call them, with each node's :class:`~dsl.errors.Span` in place of Lark's meta.

It gives up, raising :class:`Fallback`, on anything that is not a clean parse: a syntax
error, a lexer error, a tree deeper than the parser accepts, or an exception from the
builder. The caller then parses the file again the old way, which produces the same AST
or the same diagnostics as before, so error reporting has a single implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from typing import Any

from lark import Lark, Tree
from lark.parse_tree_builder import maybe_create_child_filter
from lark.parsers.lalr_analysis import Shift
from lark.tree import Meta

from dsl.errors import Span


class Fallback(Exception):
    """The fast path cannot take this file; parse it with Lark instead."""


@dataclass(frozen=True, slots=True)
class _Reduce:
    """One grammar rule, as the loop reduces it."""

    origin: str  # the nonterminal the rule produces (where the goto is looked up)
    size: int  # how many stack entries it pops
    method: str  # the AST builder method (or, missing, a Lark Tree of that name)
    #: ``(index, splice, nones)`` per kept child; None keeps every child, nothing spliced.
    include: tuple[tuple[int, bool, int], ...] | None
    append_none: int  # placeholders after the last kept child
    unit: bool  # a ``?rule``: one kept child stands for the node
    splice: bool  # a ``_rule``: its children go into the parent's
    single: int  # for a ``?rule`` whose kept child is always the same one, its index, else -1
    passthrough: bool  # a ``?rule`` of one symbol, kept: nothing to do but the goto


@dataclass(frozen=True, slots=True)
class Table:
    """Lark's LALR table with reductions as :class:`_Reduce` and shifts as plain states."""

    actions: dict[int, dict[str, int | _Reduce]]
    start: int
    end: int
    #: ``(state below, state, lookahead)`` -> the state after a run of ``?rule`` reductions
    #: of one symbol each (``atom`` up to ``expr``), filled as the parser meets them.
    chains: dict[tuple[int, int, str], int] = field(default_factory=dict)


def build_table(lark: Lark) -> Table | None:
    """The loop's table for ``lark`` (built with ``parser="lalr"``, ``maybe_placeholders`` and
    ``propagate_positions``), or None when its grammar uses a shape the loop does not copy.

    Every rule has at least one symbol, so every node has a place (none is empty).
    """
    parse_table = lark.parser.parser.parser.parse_table
    reduces: dict[Any, _Reduce] = {}
    for rule in lark.rules:
        options = rule.options
        name = rule.alias or options.template_source or rule.origin.name
        unit = bool(options.expand1 and not rule.alias)
        splice = rule.origin.name.startswith("_")
        if not rule.expansion or options.keep_all_tokens or (splice and (unit or rule.alias)):
            return None
        made = maybe_create_child_filter(rule.expansion, False, False, options.empty_indices)
        include: tuple[tuple[int, bool, int], ...] | None = None
        append_none = 0
        if made is not None:  # Lark's own filter, whose arguments say what to keep
            if len(made.args) == 2:  # with placeholders: (index, splice, nones), then nones
                include = tuple(made.args[0])
                append_none = made.args[1]
            else:  # without: (index, splice)
                include = tuple((i, splice, 0) for i, splice in made.args[0])
        kept = include if include is not None else tuple(
            (i, False, 0) for i in range(len(rule.expansion)))
        single = -1
        if unit:
            if any(s or nones for _, s, nones in kept) or append_none:
                return None  # a ?rule whose kept child is spliced or optional
            if len(kept) == 1:
                single = kept[0][0]
        reduces[rule] = _Reduce(rule.origin.name, len(rule.expansion), name, include, append_none,
                                unit, splice, single, unit and len(rule.expansion) == 1 == len(kept))
    actions: dict[int, dict[str, int | _Reduce]] = {}
    for state, row in parse_table.states.items():
        out: dict[str, int | _Reduce] = {}
        for term, (action, arg) in row.items():
            if action is Shift:
                out[term] = arg
            elif arg in reduces:
                out[term] = reduces[arg]
            else:
                return None
        actions[state] = out
    return Table(actions, parse_table.start_states["start"], parse_table.end_states["start"])


class _End:
    """The end of the input, as the loop's last lookahead."""

    type = "$END"


_END = _End()


def parse(table: Table, tokens: Callable[[Callable[[], int]], Iterable[Any]], builder: Any,
          max_height: int) -> Any:
    """Parse the tokens ``tokens(position)`` gives into what the builder's ``start`` returns.

    ``position()`` is the parser's state, for the lexer's contextual keywords. A node with
    more than ``max_height`` levels of nodes below it raises :class:`Fallback`, as does any
    error.
    """
    actions, chains, end = table.actions, table.chains, table.end
    stack = [table.start]
    values: list[Any] = []
    # Per entry, the place of its text (line, column, end line, end column: a node's runs
    # from its first child's start to its last child's end) and its height, the levels of
    # nodes below it (-1 for a token, which is no node).
    places: list[tuple[int, int, int, int]] = []
    heights: list[int] = []
    methods: dict[str, Any] = {}
    builder_type = type(builder)
    try:
        for tok in chain(tokens(partial(stack.__getitem__, -1)), (_END,)):
            kind = tok.type
            while True:
                state = stack[-1]
                act = actions[state][kind]
                if act.__class__ is int:
                    if tok is _END:
                        raise Fallback
                    stack.append(act)
                    values.append(tok)
                    places.append((tok.line, tok.column, tok.end_line, tok.end_column))
                    heights.append(-1)
                    break
                if act.passthrough:
                    # ``?sum: product`` and its like: the child stands for the node, in place,
                    # and so on up the run of such rules; one look-up for the whole run.
                    key = (stack[-2], state, kind)
                    target = chains.get(key)
                    if target is None:
                        target = chains[key] = _run(actions, key)
                    stack[-1] = target
                    continue
                size = act.size
                raw = values[-size:]
                where = places[-size:]
                below = heights[-size:]
                del values[-size:], places[-size:], heights[-size:], stack[-size:]
                first, last = where[0], where[-1]
                place = (first[0], first[1], last[2], last[3])
                height = max(below) + 1
                include = act.include
                if include is None:
                    children = raw
                else:
                    children = []
                    for i, splice, nones in include:
                        if nones:
                            children += [None] * nones
                        if splice:
                            children += raw[i]
                        else:
                            children.append(raw[i])
                if act.append_none:
                    children += [None] * act.append_none
                if act.unit and len(children) == 1:
                    value = children[0]
                    height = below[act.single]
                    if height < 0:  # a token stands for the rule: its own place, as in Lark
                        place = where[act.single]
                elif act.splice:
                    value = children
                    height -= 1  # its children become the parent's
                else:
                    if height > max_height:
                        raise Fallback
                    method = methods.get(act.method)
                    if method is None:
                        method = getattr(builder_type, act.method, None) or _default
                        methods[act.method] = method
                    if method is _default:
                        value = _default(act.method, children, place)
                    else:
                        value = method(builder, Span(*place), children)
                stack.append(actions[stack[-1]][act.origin])
                values.append(value)
                places.append(place)
                heights.append(height)
                if tok is _END and stack[-1] == end:
                    return values[-1]
    except Fallback:
        raise
    except Exception as exc:  # any failure: Lark's path reports it
        raise Fallback from exc
    raise Fallback  # pragma: no cover (the end is reached or refused above)


def _run(actions: dict[int, dict[str, Any]], key: tuple[int, int, str]) -> int:
    """Where a run of one-symbol ``?rule`` reductions ends: ``key`` is the state below the
    run's symbol, the state on top, and the lookahead."""
    below, state, kind = key
    act = actions[state][kind]
    while act.__class__ is not int and act.passthrough:
        state = actions[below][act.origin]
        act = actions[state][kind]
    return state


def _default(data: str, children: list[Any], place: tuple[int, int, int, int]) -> Tree:
    """What Lark's transformer gives for a rule without a builder method: a tree."""
    meta = Meta()
    meta.line, meta.column, meta.end_line, meta.end_column = place
    meta.empty = False
    return Tree(data, children, meta)
