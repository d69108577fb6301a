"""The expression visitor base: ``visit_<Node>`` per expression kind, and no silent default.

Jinja2's ``NodeVisitor`` shape: :meth:`ExprVisitor.visit` dispatches on the node's class
name to ``visit_<Node>``; a node kind without such a method reaches
:meth:`ExprVisitor.generic_visit`, which raises. So a new kind of expression fails loudly
in every walker built on this base (the checker's typing and size pass, the reference
interpreter, the code generator, the formatter) until each says what it means, instead
of type-checking as "any" or evaluating to nothing. tests/dsl/front/test_visitor.py holds every
walker to every node kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, NoReturn, TypeVar

from dsl.front import nodes as n

R = TypeVar("R")


class UnknownNode(TypeError):
    """A walker met an expression kind it has no ``visit_<Node>`` method for."""


class ExprVisitor(Generic[R]):
    """Walks expressions: ``visit(e, *args)`` calls ``visit_<type(e).__name__>(e, *args)``."""

    #: Each walker class's visit function by node class, found on first use (a walk
    #: visits the same few kinds many times: no name building and lookup each time).
    _visitors: ClassVar[dict[type, Callable[..., Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._visitors = {}

    def visit(self, e: n.Node, *args: Any) -> R:
        """The result of the ``visit_<Node>`` method for ``e``'s kind (any node; walkers
        of members, such as the code generator, dispatch through it too)."""
        try:
            method = self._visitors[type(e)]
        except KeyError:
            found = getattr(type(self), "visit_" + type(e).__name__, None)
            if found is None:
                self.generic_visit(e)
            method = self._visitors[type(e)] = found
        return method(self, e, *args)  # type: ignore[no-any-return]

    def generic_visit(self, e: n.Node) -> NoReturn:
        """Called for a node kind with no ``visit_<Node>`` method: always raises."""
        raise UnknownNode(f"{type(self).__name__} has no visit_{type(e).__name__}: "
                          f"every expression kind must be handled explicitly")


def expression_kinds() -> list[type[n.Expr]]:
    """Every concrete expression node class in :mod:`dsl.front.nodes`."""
    found: list[type[n.Expr]] = []
    todo: list[type[n.Expr]] = [n.Expr]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__ == n.__name__:
                found.append(sub)
                todo.append(sub)
    return sorted(found, key=lambda c: c.__name__)
