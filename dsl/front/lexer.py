"""The policy lexer: one regular expression, indentation, and contextual keywords.

It feeds Lark's LALR parser the terminals that ``policy.lark`` names (the
grammar stays the single definition of the language), but does the scanning
itself: Lark's general-purpose lexer spent most of the parse time matching
every terminal one by one. The behaviour is that of Lark's contextual lexer
with the standard ``Indenter``:

- a word is a keyword only where the parser can accept that keyword, and a name
  everywhere else (``first``, ``best``, ``up`` ... stay usable as names);
- ``15 minutes``, ``30 seconds``, ``3 months``: a time unit (or a calendar unit) is a unit
  only where one can follow, and
  ``15:00`` a time of day only where one can follow (after ``between``);
- newlines (with comments and blank lines) are one ``_NL`` token, ignored inside
  brackets; indentation changes give ``_INDENT`` / ``_DEDENT``;
- numbers, dates and times are ASCII digits only: any other digit is an unexpected
  character, never part of a number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from lark import Token
from lark.common import LexerConf
from lark.exceptions import UnexpectedCharacters
from lark.indenter import DedentError
from lark.lexer import Lexer

_MASTER = re.compile(
    r"""
    (?P<WS>[ \t]+|\\[ \t]*\r?\n)
    |(?P<_NL>(?:\r?\n[ \t]*|\#[^\n]*)+)
    |(?P<DATETIME>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?(?:Z|[+-]\d{2}:\d{2}))
    |(?P<DATE>\d{4}-\d{2}-\d{2})
    |(?P<TIME>\d{2}:\d{2}(?!\d))
    |(?P<PERCENT>\d+(?:\.\d+)?%)
    |(?P<DECIMAL>\d+\.\d+)
    |(?P<INT>\d+(?:_\d+)*)
    |(?P<WORD>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<STRING>"(?:[^"\\\n]|\\["\\nt])*")
    |(?P<COMPARE>==|!=|<=|>=|<|>)
    |(?P<PUNCT>->|[+\-*/%().,:\[\]=])
    """,
    # ASCII: ``\d`` would also read other scripts' digits, so ``1\u09ea`` (a Bengali 4 that looks
    # like an 8) would be the number 14. A non-ASCII digit stops the lexer where it stands,
    # and the parser names it (``non_ascii_digit``).
    re.VERBOSE | re.ASCII,
)
_UNIT = re.compile(r"(second|minute|hour|day|week)s?\Z")
_CALENDAR_UNIT = re.compile(r"(month|quarter|year)s?\Z")
_OPEN = {"LPAR", "LSQB"}
_CLOSE = {"RPAR", "RSQB"}


class PolicyLexer(Lexer):
    """A Lark custom lexer (interface 1: it sees the parser's state, for contextual keywords)."""

    __future_interface__ = 1

    def __init__(self, lexer_conf: LexerConf) -> None:
        self.keywords: dict[str, str] = {}
        self.punctuation: dict[str, str] = {}
        for t in lexer_conf.terminals:
            value = getattr(t.pattern, "value", None)
            if type(t.pattern).__name__ != "PatternStr" or not isinstance(value, str):
                continue
            if value.isalpha():
                self.keywords[value] = t.name
            else:
                self.punctuation[value] = t.name

    def lex(self, lexer_state: Any, parser_state: Any) -> Iterator[Token]:
        text = lexer_state.text
        return self.scan(getattr(text, "text", text), parser_state.parse_conf.parse_table.states,
                         lambda: parser_state.position)

    def scan(self, text: str, states: Any, position: Callable[[], Any]) -> Iterator[Token]:
        """The tokens of ``text``; ``position()`` is the parser's state when a word is read
        (``states[position()]`` its actions), which makes a word a keyword or a name."""
        keywords, punctuation = self.keywords, self.punctuation
        match = _MASTER.match
        new_token = Token._future_new  # Token(...) without its check of deprecated arguments
        pos, line, col, end = 0, 1, 1, len(text)
        indents = [0]
        depth = 0
        while pos < end:
            m = match(text, pos)
            if m is None:
                raise UnexpectedCharacters(text, pos, line, col, allowed=None)
            kind = m.lastgroup
            stop = m.end()
            if kind == "WS" or kind == "_NL":  # the only tokens that may hold a line break
                value = m.group()
                newlines = value.count("\n")
                end_line = line + newlines
                end_col = (len(value) - value.rfind("\n")) if newlines else col + len(value)
                if kind == "_NL" and depth == 0:
                    tok = new_token("_NL", value, pos, line, col, end_line, end_col, stop)
                    yield tok
                    indent = len(value) - value.rfind("\n") - 1 if newlines else indents[-1]
                    if indent > indents[-1]:
                        indents.append(indent)
                        yield Token.new_borrow_pos("_INDENT", " " * indent, tok)
                    else:
                        while indent < indents[-1]:
                            indents.pop()
                            yield Token.new_borrow_pos("_DEDENT", "", tok)
                        if indent != indents[-1]:
                            raise DedentError(f"Unexpected dedent to column {indent}. "
                                              f"Expected dedent to {indents[-1]}")
                pos, line, col = stop, end_line, end_col
                continue
            value = m.group()
            end_col = col + stop - pos
            if kind == "WORD":
                acceptable = states[position()]
                keyword = keywords.get(value)
                if "DURATION_UNIT" in acceptable and _UNIT.match(value):
                    kind = "DURATION_UNIT"
                elif "CALENDAR_UNIT" in acceptable and _CALENDAR_UNIT.match(value):
                    kind = "CALENDAR_UNIT"
                elif keyword is not None and (keyword in acceptable or "NAME" not in acceptable):
                    kind = keyword
                else:
                    kind = "NAME"
            elif kind == "PUNCT":
                kind = punctuation[value]
                if kind in _OPEN:
                    depth += 1
                elif kind in _CLOSE and depth:
                    depth -= 1
            elif kind == "TIME" and "TIME" not in states[position()]:
                # ``15:00`` is a time of day only after ``between`` and its ``and``;
                # elsewhere it is the number 15 (then ``:``), as it always was.
                kind, value = "INT", value[:2]
                stop, end_col = pos + 2, col + 2
            yield new_token(kind, value, pos, line, col, line, end_col, stop)
            pos, col = stop, end_col
        while len(indents) > 1:
            indents.pop()
            yield Token("_DEDENT", "", pos, line, col, line, col, pos)
