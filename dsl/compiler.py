"""Compile generated Python source, behind a verifier that is the security boundary.

Before ``compile()`` sees generated code, :func:`verify` parses it with Python's
own :mod:`ast` and refuses anything outside a small allow-list: no imports, no
attribute access beyond a few named methods and decision fields, no name that
is not a parameter, a generated local or a runtime export, no dunder anywhere.
The code then runs in a namespace holding only :data:`dsl.runtime.EXPORTS`, with
empty ``__builtins__``. Even a bug in the code generator that let policy text
through could not reach ``open``, ``__import__`` or an object's internals.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .runtime import EXPORTS


class UnsafeCode(Exception):
    """Generated code used something outside the allow-list (a code generator bug)."""


_LOCAL = re.compile(r"(?:v_|x_|_t|total_|K)[A-Za-z0-9_]*\Z")
_PARAMS = {"c", "e", "d", "r", "aw"}
_FUNCTIONS = {"evaluate", "explain"}
_ATTRIBUTES = {"append", "extend", "get", "awards", "benefits", "tags", "fired", "tier"}
_KEYWORDS = {"seconds"}

_ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.Module, ast.FunctionDef, ast.arguments, ast.arg, ast.Assign, ast.AugAssign, ast.If,
    ast.Expr, ast.Name, ast.Constant, ast.Attribute, ast.Subscript, ast.Call, ast.keyword,
    ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.ListComp,
    ast.comprehension, ast.List, ast.Tuple, ast.Dict, ast.NamedExpr, ast.JoinedStr,
    ast.FormattedValue, ast.Load, ast.Store, ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Not, ast.USub,
    ast.And, ast.Or, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn,
    ast.Is, ast.IsNot,
)


def verify(source: str) -> ast.Module:
    """Parse generated source and check every node against the allow-list."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise UnsafeCode(f"{type(node).__name__} is not allowed in generated code")
        if isinstance(node, ast.Name):
            ident = node.id
            if "__" in ident or not (ident in EXPORTS or ident in _PARAMS or _LOCAL.match(ident)):
                raise UnsafeCode(f"name {ident!r} is not allowed in generated code")
        elif isinstance(node, ast.Attribute):
            if node.attr not in _ATTRIBUTES:
                raise UnsafeCode(f"attribute {node.attr!r} is not allowed in generated code")
        elif isinstance(node, ast.FunctionDef):
            if node.name not in _FUNCTIONS or node.decorator_list:
                raise UnsafeCode(f"function {node.name!r} is not allowed in generated code")
        elif isinstance(node, ast.arg):
            if node.arg not in _PARAMS or node.annotation is not None:
                raise UnsafeCode(f"parameter {node.arg!r} is not allowed in generated code")
        elif isinstance(node, ast.arguments):
            if node.defaults or node.kw_defaults or node.vararg or node.kwarg:
                raise UnsafeCode("default or variadic parameters are not allowed")
        elif isinstance(node, ast.keyword):
            if node.arg not in _KEYWORDS:
                raise UnsafeCode(f"keyword {node.arg!r} is not allowed in generated code")
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, str | int | bool | type(None)):
                raise UnsafeCode(f"constant {type(node.value).__name__} is not allowed")
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                if f.id not in EXPORTS:
                    raise UnsafeCode(f"call of {f.id!r} is not allowed in generated code")
            elif not (isinstance(f, ast.Attribute) and f.attr in ("append", "extend", "get")):
                raise UnsafeCode("only runtime helpers and list/dict methods may be called")
    return tree


@dataclass
class CompiledModule:
    """The two entry points of a compiled policy."""

    evaluate: Callable[..., None]
    explain: Callable[..., None]
    filename: str


def compile_module(source: str, filename: str) -> CompiledModule:
    """Verify, compile and run generated source in the runtime's namespace."""
    tree = verify(source)
    code = compile(tree, filename, "exec")
    namespace: dict[str, Any] = {"__builtins__": {}}
    namespace.update(EXPORTS)
    exec(code, namespace)
    return CompiledModule(namespace["evaluate"], namespace["explain"], filename)
