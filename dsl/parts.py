"""A loaded policy set as one byte string, so that another process can do the expensive work.

:func:`prepare_parts` runs in a helper process (``service.reloads``): the whole pipeline
(:func:`~dsl.policyset.load_directory`: parse, check, generate, compile, verify), then writes
what a :class:`~dsl.policyset.PolicySet` is rebuilt from: the schema, the revision, the
warnings, and per policy its AST, check result, generated source and compiled module code.
:func:`from_parts` rebuilds the set in the serving process without parsing, checking,
generating or calling ``compile()``: it reads the ASTs back record by record (calling
``pause`` between records, so request threads get the interpreter lock), loads the code with
:mod:`marshal` and runs the bytecode verifier on it there, where it will run.

Three things do not survive pickling as they are and are carried explicitly:

- module-level sentinels and singletons of the dsl modules (``schema._MISSING = object()``,
  compared with ``is``): written as references to their module and name (:class:`_Writer`),
  so that the set read back holds this process's own;

- :attr:`CheckResult.types` and :attr:`CheckResult.ranked` are keyed by ``id()`` of AST
  nodes, which changes in another process: they travel as (node, value) pairs in the same
  pickle stream as the AST (the stream's memo keeps node identity) and are keyed again on
  arrival;
- a compiled module's functions: the module's code object travels as :func:`marshal` bytes.

One stream, written by one :class:`pickle.Pickler` and read by one :class:`pickle.Unpickler`,
so an object written in one record is a reference in every later one. Nothing here is read
from anywhere but the helper this process started: the code is verified all the same.
"""

from __future__ import annotations

import importlib
import io
import marshal
import pickle
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from dsl.analysis.result import CheckResult
from dsl.backend.codegen import Generated, generate
from dsl.backend.compiler import compile_module, verify
from dsl.backend.interpreter import Interpreter, interpret
from dsl.front import nodes as n
from dsl.policyset import CompiledPolicy, PolicyInfo, PolicySet, load_directory

__all__ = ["from_parts", "prepare_parts"]

#: Rules per record: reading one back takes well under a millisecond, so ``pause`` comes often.
RULES_PER_RECORD = 25
#: (node, type) pairs per record, for the same reason.
TYPES_PER_RECORD = 1000
_PROTOCOL = 5

T = TypeVar("T")


def _singletons() -> dict[int, tuple[str, str]]:
    """``id`` -> (module, name) of every module-level sentinel (a bare ``object()``) and
    instance of a dsl class in the dsl modules imported now."""
    out: dict[int, tuple[str, str]] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "dsl" or name.startswith("dsl.")):
            continue
        for attr, value in list(vars(module).items()):
            kind = type(value)
            if kind is object or (kind.__module__.startswith("dsl.") and not isinstance(value, type)
                                  and not isinstance(value, Enum)):
                out.setdefault(id(value), (name, attr))
    return out


class _Writer(pickle.Pickler):
    """A pickler that writes the dsl's sentinels and singletons as references (module, name)."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=_PROTOCOL)
        self._known = _singletons()

    def persistent_id(self, obj: Any) -> tuple[str, str] | None:
        return self._known.get(id(obj))


class _Reader(pickle.Unpickler):
    """Reads what :class:`_Writer` wrote: a reference is this process's own object."""

    def persistent_load(self, pid: Any) -> Any:
        module, name = pid
        if not (module == "dsl" or module.startswith("dsl.")):
            raise pickle.UnpicklingError(f"not a dsl object: {module}.{name}")
        return getattr(importlib.import_module(module), name)


def _slices(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def prepare_parts(directory: Path | str) -> bytes:
    """Load ``directory`` (raising what :func:`~dsl.policyset.load_directory` raises) and write
    the set as one pickle stream for :func:`from_parts`."""
    policy_set = load_directory(directory)
    out = io.BytesIO()
    writer = _Writer(out)
    writer.dump((policy_set.schema, policy_set.revision, policy_set.warnings,
                 len(policy_set.compiled)))
    for compiled in policy_set.compiled:
        policy, check = compiled.ast, compiled.check
        by_id = {id(node): node for node in n.walk(policy)}
        pairs = [(by_id[key], t) for key, t in check.types.items() if key in by_id]
        rules = policy.rules
        writer.dump((-(-len(rules) // RULES_PER_RECORD), -(-len(pairs) // TYPES_PER_RECORD)))
        for part in _slices(rules, RULES_PER_RECORD):
            writer.dump(list(part))
        writer.dump(policy)  # its rules are references by now
        for part in _slices(pairs, TYPES_PER_RECORD):
            writer.dump(list(part))
        code = verify(compiled.generated.source, compiled.module.filename)
        ranked = [(by_id[key], values) for key, values in check.ranked.items() if key in by_id]
        writer.dump((compiled.info, replace(check, types={}, ranked={}), ranked, compiled.generated,
                     compiled.module.filename, marshal.dumps(code)))
    return out.getvalue()


def from_parts(stream: bytes, pause: Callable[[], None] = lambda: None) -> PolicySet:
    """The :class:`PolicySet` :func:`prepare_parts` wrote, rebuilt here; ``pause()`` is called
    between records (the serving process yields the interpreter lock there). Raises
    :class:`~dsl.backend.compiler.UnsafeCode` if the code fails the verifier."""
    reader = _Reader(io.BytesIO(stream))

    def record() -> Any:
        value = reader.load()
        pause()
        return value

    schema, revision, warnings, count = record()
    compiled: list[CompiledPolicy] = []
    for _ in range(count):
        rule_records, type_records = record()
        for _ in range(rule_records):
            record()
        policy: n.Policy = record()
        types: dict[int, Any] = {}
        for _ in range(type_records):
            types.update((id(node), t) for node, t in record())
        info, check, ranked, generated, filename, code = record()
        check = replace(check, types=types, ranked={id(node): values for node, values in ranked})
        compiled.append(_assemble(policy, check, generated, info, filename, marshal.loads(code),
                                  schema))
        pause()
    return PolicySet(schema, compiled, revision, warnings=warnings)


def _assemble(policy: n.Policy, check: CheckResult, generated: Generated, info: PolicyInfo,
              filename: str, code: Any, schema: Any) -> CompiledPolicy:
    """What :func:`~dsl.policyset.compile_policy` builds, from code compiled elsewhere."""

    def explain_source() -> tuple[str, dict[int, int]]:
        g = generate(policy, check, schema, "explain")
        return g.source, g.line_map

    module = compile_module(generated.source, filename, generated.line_map, explain_source, code)
    interp = interpret(Interpreter(policy, schema, check.rounding, check.ranked))
    return CompiledPolicy(info, policy, check, generated, module, interp, schema)
