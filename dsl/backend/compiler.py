"""Compile generated Python source, behind a verifier that is the security boundary.

Generated code is compiled, and before anything runs, :func:`verify` inspects
every code object the compiler produced against allow-lists:

- opcodes: no import, no class or function definitions (bar the list
  comprehensions the generator uses), no ``with``, ``yield``, ``raise``, ``del``;
  no loop outside a list comprehension (which iterates over a given list), and
  only ``+ - * //`` among binary operators (no ``**`` or shifts: bounded work);
- names: every global and attribute name is a runtime export, a generated
  constant (``K1`` ...), one of a few list/dict methods and decision fields, or a
  generated local; nothing anywhere contains ``__``;
- constants: only strings, numbers, booleans, ``None`` and tuples of them.

The code then runs in a namespace holding only :data:`dsl.library.builtins.EXPORTS`, with
empty ``__builtins__``. Even a code generator bug that let policy text through
could not import, reach ``open``, or walk to an object's internals.

Checking bytecode rather than a Python AST is what keeps loading fast: the
verifier sees exactly what will run, and costs a small fraction of ``compile()``.
The explain variant is generated and compiled on first use, since most sets never explain.
"""

from __future__ import annotations

import dis
import re
import threading
from collections.abc import Callable
from types import CodeType
from typing import Any

from dsl.library.builtins import EXPORTS


class UnsafeCode(Exception):
    """Generated code used something outside the allow-list (a code generator bug)."""


_LOCAL = re.compile(r"(?:v_|x_|_t|total_|K\d)[A-Za-z0-9_]*\Z")
_PARAMS = {"c", "e", "d", "r", "aw"}
_FUNCTIONS = {"evaluate", "explain"}
_ATTRIBUTES = {"append", "extend", "get", "awards", "benefits", "tags", "fired", "tier"}
_NAMES = set(EXPORTS) | _ATTRIBUTES | _FUNCTIONS

_OPCODES = {
    "CACHE", "NOP", "RESUME", "POP_TOP", "PUSH_NULL", "COPY", "SWAP", "RETURN_VALUE",
    "LOAD_CONST", "LOAD_NAME", "STORE_NAME", "LOAD_GLOBAL", "LOAD_FAST", "STORE_FAST",
    "LOAD_DEREF", "STORE_DEREF", "LOAD_CLOSURE", "MAKE_CELL", "COPY_FREE_VARS",
    "LOAD_ATTR", "STORE_ATTR", "LOAD_METHOD", "PRECALL", "CALL", "KW_NAMES",
    "BINARY_OP", "BINARY_SUBSCR", "STORE_SUBSCR", "UNARY_NEGATIVE", "UNARY_NOT",
    "UNARY_POSITIVE",  # +x: a Decimal through the evaluation context, before int()
    "COMPARE_OP", "IS_OP", "CONTAINS_OP",
    "BUILD_LIST", "BUILD_TUPLE", "BUILD_MAP", "BUILD_CONST_KEY_MAP", "BUILD_STRING",
    "LIST_APPEND", "LIST_EXTEND", "LIST_TO_TUPLE", "FORMAT_VALUE",
    "GET_ITER", "FOR_ITER", "MAKE_FUNCTION",
    "JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP_IF_TRUE_OR_POP",
    "JUMP_IF_FALSE_OR_POP", "POP_JUMP_FORWARD_IF_FALSE", "POP_JUMP_FORWARD_IF_TRUE",
    "POP_JUMP_BACKWARD_IF_FALSE", "POP_JUMP_BACKWARD_IF_TRUE", "POP_JUMP_FORWARD_IF_NONE",
    "POP_JUMP_FORWARD_IF_NOT_NONE", "POP_JUMP_BACKWARD_IF_NONE",
    "POP_JUMP_BACKWARD_IF_NOT_NONE", "POP_JUMP_IF_FALSE", "POP_JUMP_IF_TRUE",
    "POP_JUMP_IF_NONE", "POP_JUMP_IF_NOT_NONE", "JUMP_IF_FALSE", "JUMP_IF_TRUE",
    "END_FOR", "RETURN_CONST", "BINARY_SLICE", "CALL_INTRINSIC_1", "EXTENDED_ARG",
}
_ALLOWED_OPS = frozenset(dis.opmap[name] for name in _OPCODES if name in dis.opmap)
_CODE_NAMES = {"<module>", "<listcomp>", "evaluate", "explain"}
_BACKWARD_JUMPS = frozenset(dis.opmap[name] for name in (
    "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "POP_JUMP_BACKWARD_IF_FALSE",
    "POP_JUMP_BACKWARD_IF_TRUE", "POP_JUMP_BACKWARD_IF_NONE", "POP_JUMP_BACKWARD_IF_NOT_NONE",
) if name in dis.opmap)
_BINARY_OP = dis.opmap["BINARY_OP"]
# + - * // and their in-place forms: no power, shift or bit operations (unbounded work).
_ALLOWED_BINARY_OPS = frozenset(
    i for i, (name, _) in enumerate(dis._nb_ops)
    if name.replace("NB_INPLACE_", "NB_") in ("NB_ADD", "NB_SUBTRACT", "NB_MULTIPLY", "NB_FLOOR_DIVIDE")
)


def _check_const(value: Any) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, tuple | frozenset):
        for v in value:
            _check_const(v)
        return
    if isinstance(value, CodeType):
        return  # checked as a code object of its own
    raise UnsafeCode(f"constant of type {type(value).__name__} is not allowed in generated code")


def _check_code(code: CodeType) -> None:
    if code.co_name not in _CODE_NAMES:
        raise UnsafeCode(f"code object {code.co_name!r} is not allowed in generated code")
    for name in code.co_names:
        if "__" in name or not (name in _NAMES or _LOCAL.match(name)):
            raise UnsafeCode(f"name {name!r} is not allowed in generated code")
    for name in (*code.co_varnames, *code.co_cellvars, *code.co_freevars):
        if "__" in name:
            raise UnsafeCode(f"local {name!r} is not allowed in generated code")
    raw = code.co_code
    loops_allowed = code.co_name == "<listcomp>"  # iterates over a list it was given: bounded
    if not _clean_operations(raw, loops_allowed):
        _refuse_operation(raw, loops_allowed)
    for value in code.co_consts:
        _check_const(value)
        if isinstance(value, CodeType):
            _check_code(value)


def _clean_operations(raw: bytes, loops_allowed: bool) -> bool:
    """Whether every operation of ``raw`` (a code object's ``co_code``) passes the allow-lists,
    tested on the byte string's slices rather than one operation at a time."""
    ops = raw[::2]
    if not _ALLOWED_OPS.issuperset(ops):
        return False
    if not loops_allowed and not _BACKWARD_JUMPS.isdisjoint(ops):
        return False
    i = ops.find(_BINARY_OP)
    while i >= 0:
        if raw[2 * i + 1] not in _ALLOWED_BINARY_OPS:
            return False
        i = ops.find(_BINARY_OP, i + 1)
    return True


def _refuse_operation(raw: bytes, loops_allowed: bool) -> None:
    """Raise :class:`UnsafeCode` naming the first operation of ``raw`` the allow-lists refuse."""
    for i in range(0, len(raw), 2):
        op = raw[i]
        if op not in _ALLOWED_OPS:
            raise UnsafeCode(f"operation {dis.opname[op]} is not allowed in generated code")
        if op in _BACKWARD_JUMPS and not loops_allowed:
            raise UnsafeCode("a loop is not allowed in generated code (evaluation must terminate)")
        if op == _BINARY_OP and raw[i + 1] not in _ALLOWED_BINARY_OPS:
            raise UnsafeCode(f"operator {dis._nb_ops[raw[i + 1]][1]} is not allowed in generated code")
    raise AssertionError("no operation refused")  # pragma: no cover (called only on a refusal)


def verify(source: str, filename: str = "<generated>") -> CodeType:
    """Compile generated source and check every code object against the allow-lists."""
    code = _compile(source, filename)
    _check_code(code)
    return code


def _compile(source: str, filename: str) -> CodeType:
    try:
        return compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        raise UnsafeCode(f"generated code does not compile: {exc}") from None


# -- input decoders ----------------------------------------------------------------------------
#
# The request decoders generated per schema (dsl.input.generate) pass a verifier of their own that
# is at least as strict as the policies': the same opcodes and operators, no loop outside a
# list comprehension, no "__" anywhere, simple constants; every global, attribute and function
# name from an allow-list the decoder's generator gives (the message fields it reads, the
# helpers it put in the namespace); and one more operation, ``raise SLOW`` (give the input to
# the checking path), allowed only with that one global.

_DECODER_CODE = re.compile(r"(?:<module>|<listcomp>|decode_[a-z0-9_]+)\Z")
_DECODER_LOCAL = re.compile(r"[a-z][a-z0-9_]*\Z")  # named after the fields they hold
_RAISE = dis.opmap["RAISE_VARARGS"]
# Decoders also OR int64 counters together to bound them in one comparison (bounded work).
_DECODER_BINARY_OPS = _ALLOWED_BINARY_OPS | frozenset(
    i for i, (name, _) in enumerate(dis._nb_ops) if name == "NB_OR")
# A record of more than 16 fields is a dict display that CPython builds in parts: BUILD_MAP,
# then MAP_ADD per entry or DICT_UPDATE per part (a dict of its own, built just before). A dict
# comprehension would need a <dictcomp> code object, which is refused.
_DECODER_OPS = _ALLOWED_OPS | {dis.opmap["MAP_ADD"], dis.opmap["DICT_UPDATE"]}


def verify_decoder(source: str, filename: str, names: frozenset[str]) -> CodeType:
    """Compile a generated input decoder and check every code object: ``names`` are the
    globals and attributes it may use (each also free of ``__``)."""
    code = _compile(source, filename)
    _check_decoder_code(code, names)
    return code


def _check_decoder_code(code: CodeType, names: frozenset[str]) -> None:
    if not _DECODER_CODE.match(code.co_name):
        raise UnsafeCode(f"code object {code.co_name!r} is not allowed in a decoder")
    for name in code.co_names:
        if "__" in name or name not in names:
            raise UnsafeCode(f"name {name!r} is not allowed in a decoder")
    for name in (*code.co_varnames, *code.co_cellvars, *code.co_freevars):
        if "__" in name or not (_DECODER_LOCAL.match(name) or name == ".0"):
            raise UnsafeCode(f"local {name!r} is not allowed in a decoder")
    loops_allowed = code.co_name == "<listcomp>"
    previous: dis.Instruction | None = None
    for ins in dis.get_instructions(code):
        op = ins.opcode
        if op == _RAISE:
            if ins.arg != 1 or previous is None or previous.opname != "LOAD_GLOBAL" \
                    or previous.argval != "SLOW":
                raise UnsafeCode("a decoder may only raise SLOW")
        elif op not in _DECODER_OPS:
            raise UnsafeCode(f"operation {ins.opname} is not allowed in a decoder")
        if op in _BACKWARD_JUMPS and not loops_allowed:
            raise UnsafeCode("a loop is not allowed in a decoder")
        if op == _BINARY_OP and ins.arg not in _DECODER_BINARY_OPS:
            raise UnsafeCode(f"operator {ins.argrepr} is not allowed in a decoder")
        previous = ins
    for value in code.co_consts:
        _check_const(value)
        if isinstance(value, CodeType):
            _check_decoder_code(value, names)


def load_decoder(source: str, filename: str, namespace: dict[str, Any],
                 names: frozenset[str]) -> dict[str, Any]:
    """Verify a generated decoder, then run it in a namespace of ``namespace`` (its helpers and
    constants) with empty ``__builtins__``. It may name the namespace's keys and ``names``
    (the message fields it reads and the functions it defines), nothing else."""
    code = verify_decoder(source, filename, frozenset(namespace) | names)
    scope: dict[str, Any] = {"__builtins__": {}}
    scope.update(namespace)
    exec(code, scope)
    return scope


class CompiledModule:
    """A compiled policy's entry points: ``evaluate`` now, ``explain`` on first use.

    ``explain_source`` produces the explain module's (source, line map) when first
    needed; ``line_maps`` maps each compiled module's file name to its
    generated-line -> policy-line map, for positioned run-time errors.
    """

    def __init__(self, source: str, filename: str, line_map: dict[int, int],
                 explain_source: Callable[[], tuple[str, dict[int, int]]],
                 code: CodeType | None = None) -> None:
        self.filename = filename
        self.line_maps: dict[str, dict[int, int]] = {filename: line_map}
        #: The evaluate module's code object, verified (kept for the disk cache).
        self.code = verify(source, filename) if code is None else _cached_or_fresh(code, source,
                                                                                     filename)
        self.evaluate: Callable[..., None] = _run(self.code)["evaluate"]
        self._explain_source = explain_source
        self._explain: Callable[..., None] | None = None
        self._lock = threading.Lock()

    @property
    def explain(self) -> Callable[..., None]:
        """The explain variant (generated, verified and compiled the first time it is asked for)."""
        fn = self._explain
        if fn is None:
            with self._lock:
                if self._explain is None:
                    source, line_map = self._explain_source()
                    name = self.filename[:-1] + " explain>"
                    self._explain = _load(source, name)["explain"]
                    self.line_maps[name] = line_map
                fn = self._explain
        return fn


def verified(code: Any) -> CodeType:
    """A code object from elsewhere (the disk cache), checked against the same allow-lists as
    freshly compiled code: never run unverified."""
    if not isinstance(code, CodeType):
        raise UnsafeCode("not a code object")
    _check_code(code)
    return code


def _cached_or_fresh(code: Any, source: str, filename: str) -> CodeType:
    """A cached code object if the verifier passes it, else the source compiled afresh."""
    try:
        return verified(code)
    except UnsafeCode:
        return verify(source, filename)


def _load(source: str, filename: str) -> dict[str, Any]:
    return _run(verify(source, filename))


def _run(code: CodeType) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__builtins__": {}}
    namespace.update(EXPORTS)
    exec(code, namespace)
    return namespace


def compile_module(source: str, filename: str, line_map: dict[int, int] | None = None,
                   explain_source: Callable[[], tuple[str, dict[int, int]]] | None = None,
                   code: CodeType | None = None) -> CompiledModule:
    """Verify, compile and run generated source in the runtime's namespace.

    ``code``, when given, is ``source`` already compiled (from the disk cache, or by the reload
    helper process, service.reloads): it is verified here, where it will run, instead of
    compiled again (``compile()`` holds the interpreter lock for its whole run; the verifier
    costs a small fraction of it); a code object the verifier refuses is compiled afresh from
    the source, which is verified in turn.
    """
    def no_explain() -> tuple[str, dict[int, int]]:
        raise UnsafeCode("this module was compiled without an explain variant")

    return CompiledModule(source, filename, line_map or {}, explain_source or no_explain, code)
