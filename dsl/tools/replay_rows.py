"""A history chunk's rows as request mappings: JSON lines read, Arrow columns rebuilt.

Each row is (position in the chunk, customer cache key, customer, event, only, reparse),
ready for :func:`dsl.tools.replay.replay_chunk`. A Parquet or CSV chunk's columns are
turned into Python values a slice at a time and rebuilt into the nested mappings of the
request's mapping form (:class:`~dsl.input.request.RequestLayout` says which columns are
booleans, decimals or lists); anything unusual is left for the checking path to judge.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from typing import Any

from dsl.errors import FieldError, InputError
from dsl.input.request import RequestLayout
from dsl.policyset import PolicySet
from dsl.schema.schema import MAX_LIST
from dsl.schema.types import Type
from dsl.tools.history import MAX_LINE_BYTES, Chunk

__all__ = ["Row", "column_rows", "failing", "json_rows"]

# Each row: (position in the chunk, customer cache key, customer, event, only, reparse) where
# ``reparse`` (or None) gives the request again for the checking path (JSON-lines: parsed
# by the standard library with exact decimals, as loyalty diff reads a case).
Row = tuple[int, Any, Any, Any, "tuple[str, ...] | None", Any]

_REQUEST_KEYS = frozenset(("customer", "event", "explain", "onlyPolicies", "only_policies", "name"))


def json_rows(chunk: Chunk) -> Iterator[Row]:
    """The rows of a JSON-lines chunk (orjson for speed; the standard library on reparse)."""
    import orjson

    assert chunk.lines is not None
    oversized = dict(chunk.oversized)
    for offset, line in enumerate(chunk.lines):
        if offset in oversized:
            yield offset, None, None, None, None, failing(
                f"line: {oversized[offset]:,} bytes, longer than a request may be "
                f"({MAX_LINE_BYTES:,} bytes); not read")
            continue
        if not line.strip():
            continue
        try:
            raw = orjson.loads(line)
        except orjson.JSONDecodeError:
            raw = None
        if not isinstance(raw, dict) or not raw.keys() <= _REQUEST_KEYS or \
                not isinstance(raw.get("customer"), dict) or not isinstance(raw.get("event"), dict):
            # Unusual: let the checking path's reading (and its words) decide.
            yield offset, None, None, None, None, _reparser(line)
            continue
        customer = raw["customer"]
        only = raw.get("onlyPolicies", raw.get("only_policies"))
        if only is not None:
            if not isinstance(only, list) or not all(isinstance(p, str) for p in only):
                yield offset, None, None, None, None, _reparser(line)
                continue
            only = tuple(only) or None
        try:
            key: Any = orjson.dumps(customer)
        except TypeError:
            key = None
        yield offset, key, partial(_given, customer), raw["event"], only, _reparser(line)


def _given(value: Any) -> Any:
    return value


def _reparser(line: bytes) -> Any:
    def reparse() -> dict[str, Any] | InputError:
        try:
            raw = json.loads(line, parse_float=str)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            reason = f"not valid JSON: {exc.msg} (column {exc.colno})" \
                if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
            return InputError([FieldError("line", reason)])
        except RecursionError:
            return InputError([FieldError("line", "nests too deeply to be a request")])
        if not isinstance(raw, dict):
            return InputError([FieldError("line", 'a request is a JSON object with "customer" '
                                                  'and "event"')])
        unknown = [k for k in raw if k not in _REQUEST_KEYS]
        if unknown:
            return InputError([FieldError(str(k)[:64], 'unknown key (a request is an EvaluateRequest '
                                          'body: "customer", "event", "explain", "onlyPolicies", '
                                          'and an optional "name")') for k in unknown])
        only = raw.get("onlyPolicies", raw.get("only_policies"))
        if only is not None and (not isinstance(only, list)
                                 or not all(isinstance(p, str) for p in only)):
            return InputError([FieldError("onlyPolicies", "must be a list of policy names")])
        return raw

    return reparse


# -- columnar rows ---------------------------------------------------------------------------------


#: Rows of a columnar chunk turned into Python values at a time: the chunk's columns as
#: Python objects would be most of a worker's memory (about 2 KB a row), while the chunk's
#: customer cache still spans the whole chunk.
SLICE_ROWS = 2_000


def column_rows(chunk: Chunk, policy_set: PolicySet) -> Iterator[Row]:
    """The rows of a columnar (Parquet, CSV) chunk, :data:`SLICE_ROWS` at a time.

    A row with a list longer than an input may hold (MAX_LIST) is refused from its Arrow
    lengths, before anything of it becomes Python values: one row of a 10,000,000-item list
    once took 4.3 GiB and 111 s before the decoder said "more than 10000 items".
    """
    for start in range(0, chunk.batch.num_rows, SLICE_ROWS):
        piece = chunk.batch.slice(start, SLICE_ROWS)
        long = _long_lists(piece)
        if not long:
            for i, *rest in _slice_rows(piece, chunk.form, policy_set):
                yield (start + i, *rest)  # type: ignore[misc]
            continue
        kept = [i for i in range(piece.num_rows) if i not in long]
        rows = _slice_rows(piece.take(kept), chunk.form, policy_set) if kept else iter(())
        for i in range(piece.num_rows):
            if i in long:
                yield start + i, None, None, None, None, failing(long[i])
            else:
                _, *rest = next(rows)
                yield (start + i, *rest)  # type: ignore[misc]


def _long_lists(batch: Any) -> dict[int, str]:
    """Rows of ``batch`` holding a list of more than MAX_LIST items, at any depth, with why."""
    out: dict[int, str] = {}
    for column, name in zip(batch.columns, batch.schema.names, strict=True):
        _find_long(column, name, None, out)
    return out


def _find_long(array: Any, path: str, rows: Any, out: dict[int, str]) -> None:
    """Record in ``out`` the rows (``rows[i]`` is the row of ``array[i]``; None: the same)
    where ``array`` or a list inside it is longer than MAX_LIST. Arrow lengths only."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_struct(kind):
        # flatten(): the fields as arrays of the struct's own rows (its offset applied).
        for k, child in enumerate(array.flatten()):
            _find_long(child, f"{path}.{kind.field(k).name}", rows, out)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        lengths = pc.list_value_length(array)
        for i in pc.indices_nonzero(pc.fill_null(pc.greater(lengths, MAX_LIST), False)).to_pylist():
            row = i if rows is None else rows[i].as_py()
            out.setdefault(row, f"{path}: {lengths[i].as_py():,} items, more than an input "
                                f"list may hold ({MAX_LIST:,}); the row was not read")
        if pa.types.is_fixed_size_list(kind):
            return
        parents = pc.list_parent_indices(array)
        owners = parents if rows is None else pc.take(rows, parents)
        values = array.flatten()
        if pa.types.is_nested(values.type):
            _find_long(values, path, owners, out)


def _slice_rows(batch: Any, form: str, policy_set: PolicySet) -> Iterator[Row]:
    import pyarrow as pa

    layout = policy_set.decoder.layout
    paths = [tuple(name.split(".")) for name in batch.schema.names]
    text = form == "csv"
    nested = {path for col, path in zip(batch.columns, paths, strict=True) if pa.types.is_nested(col.type)}
    values = [_column_values(col, path, layout, text)
              for col, path in zip(batch.columns, paths, strict=True)]
    plans = {}
    for side in ("customer", "event"):
        columns = [(path[1:], vals) for path, vals in zip(paths, values, strict=True) if path[0] == side]
        # The common case (scalar columns, no numbered list elements) takes a straight plan.
        simple = all(p and not any(step.isdigit() for step in p) and (side, *p) not in nested
                     for p, _ in columns)
        plans[side] = (columns, [(p[:-1], p[-1], vals) for p, vals in columns] if simple else None)
    customer_values = [vals for _, vals in plans["customer"][0]]
    for i in range(batch.num_rows):
        key: Any = tuple([vals[i] for vals in customer_values])
        try:
            hash(key)
        except TypeError:  # nested (struct) columns: no cache
            key = None
        event = _build(plans["event"], i)
        if isinstance(event, str):
            yield i, None, None, None, None, failing(event)
            continue
        # Built only when the customer is not in the chunk's cache already.
        yield i, key, partial(_build, plans["customer"], i), event, None, None


def _build(plan: tuple[list[Any], list[Any] | None], i: int) -> dict[str, Any] | str:
    columns, simple = plan
    if simple is None:
        return _unflatten(columns, i)
    root: dict[str, Any] = {}
    for parents, leaf, vals in simple:
        value = vals[i]
        if value is None:
            continue
        node = root
        for step in parents:
            nxt = node.get(step)
            if nxt is None:
                nxt = node[step] = {}
            node = nxt
        node[leaf] = value
    return root


def failing(reason: str) -> Any:

    def fail() -> InputError:
        path, _, why = reason.partition(": ")
        return InputError([FieldError(path, why)])

    return fail


def _unflatten(columns: list[tuple[tuple[str, ...], list[Any]]], i: int) -> dict[str, Any] | str:
    """Row ``i`` of dotted columns as a nested mapping; a string says what is wrong."""
    out: dict[str, Any] = {}
    numbered = False
    for path, vals in columns:
        value = vals[i]
        if value is None:
            continue
        if not path:  # a whole struct column
            if not isinstance(value, dict):
                return "customer: a struct column must hold objects"
            out.update(_drop_nulls(value))
            continue
        node = out
        for step in path[:-1]:
            nxt = node.get(step)
            if nxt is None:
                nxt = node[step] = {}
            elif not isinstance(nxt, dict):
                return f"{'.'.join(path)}: given twice (as a value and as a path)"
            node = nxt
            numbered = numbered or step.isdigit()
        node[path[-1]] = _drop_nulls(value) if isinstance(value, dict | list) else value
        numbered = numbered or path[-1].isdigit()
    if numbered:
        fixed = _lists(out, "")
        if isinstance(fixed, str):
            return fixed
    return out


def _lists(node: dict[str, Any], where: str) -> Any:
    """Objects keyed 0, 1, 2... turned into lists (in place); a gap is a problem."""
    for k, v in list(node.items()):
        if isinstance(v, dict):
            inner = _lists(v, f"{where}{k}.")
            if isinstance(inner, str):
                return inner
            if v and all(s.isdigit() for s in v):
                order = sorted(v, key=int)
                if [int(s) for s in order] != list(range(len(order))):
                    missing = next(n for n in range(len(order)) if str(n) not in v)
                    return (f"{where}{k}.{missing}: is empty while a later element is given "
                            f"(number a list's elements from 0 without gaps)")
                node[k] = [v[s] for s in order]
    return node


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _column_values(column: Any, path: tuple[str, ...], layout: RequestLayout, text: bool) -> list[Any]:
    """A column as Python values in the proto3 JSON mapping's types."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if text:
        values = column.to_pylist()
        if _is_bool(layout, path):
            spelled = {"true": True, "false": False}
            return [spelled.get(v, v) if v is not None else None for v in values]
        return values
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            column = pc.assume_timezone(column, "UTC")
        return [None if v is None else v.isoformat().replace("+00:00", "Z") for v in column.to_pylist()]
    if pa.types.is_date(kind) or pa.types.is_decimal(kind):
        return [None if v is None else str(v) for v in column.to_pylist()]
    return column.to_pylist()


def _is_bool(layout: RequestLayout, path: tuple[str, ...]) -> bool:
    """Whether the request path names a bool field (so CSV's "true"/"false" are booleans)."""
    if path[-1] in ("boolValue", "bool_value"):
        return True
    rest = list(path[1:])
    if path[0] == "customer":
        message = layout.customer
    else:
        if not rest:
            return False
        kind = rest[0]
        found = layout.events.get(kind)
        if found is None or found[1] is None:
            return False
        message, rest = found[1], rest[1:]
    while rest:
        slot = message.by_wire_name.get(rest.pop(0))
        if slot is None:
            return False
        t: Type = slot.field.type
        if t.kind == "list" and t.elem is not None:
            if rest and rest[0].isdigit():
                rest.pop(0)
            t = t.elem
        if t.kind == "record":
            message = layout.record(t.name)
            continue
        return t.kind == "bool" and not rest
    return False
