"""TOML read within bounds: every TOML file the language reads (schema, policy tests, coverage
explanations) is measured before ``tomllib`` sees it.

CPython's ``tomllib`` spends memory quadratic in the parts of a dotted key (8,000 parts: 265 MB)
and recurses once per level of nested arrays and inline tables, so a 25 KB file can take
gigabytes or end in ``RecursionError``. :func:`measure` walks the text once, in linear time and
constant memory beyond the text, with a small lexer that knows TOML's four string forms and
comments (so brackets and dots inside strings do not count), and refuses the first bound it
crosses with the line and column where it crossed it. Only then does :func:`loads` call
``tomllib``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

#: The bounds, generous for any file a person writes (the bundled ones use a small fraction).
MAX_BYTES = 4 * 1024 * 1024
MAX_KEY_PARTS = 32
MAX_NESTING = 32
MAX_TABLES = 100_000


class TomlBoundError(Exception):
    """A TOML text past one of the bounds: where (1-based line and column), and which."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"{line}:{column}: {message}")
        self.line = line
        self.column = column
        self.message = message


@dataclass(slots=True)
class Limits:
    """The bounds one reader applies (the module's defaults unless a reader needs tighter)."""

    max_bytes: int = MAX_BYTES
    max_key_parts: int = MAX_KEY_PARTS
    max_nesting: int = MAX_NESTING
    max_tables: int = MAX_TABLES


def loads(text: str, limits: Limits | None = None) -> dict[str, Any]:
    """``tomllib.loads(text)`` after :func:`measure`; raises :class:`TomlBoundError` first,
    ``tomllib.TOMLDecodeError`` for text within the bounds that is not TOML."""
    measure(text, limits or Limits())
    return tomllib.loads(text)


def measure(text: str, limits: Limits) -> None:
    """Raise :class:`TomlBoundError` at the first bound ``text`` crosses; return if none."""
    if len(text) > limits.max_bytes or len(text.encode("utf-8", "surrogatepass")) > limits.max_bytes:
        raise TomlBoundError(1, 1, f"the file is larger than {limits.max_bytes:,} bytes")
    _Scanner(text, limits).run()


class _Scanner:
    """One pass over the text: counts key parts, nesting and table headers outside strings.

    It is a measure, not a parser: text it cannot make sense of is left to ``tomllib``, which
    reports it; what it must get right is never to count inside a string or a comment.
    """

    def __init__(self, text: str, limits: Limits) -> None:
        self.text = text
        self.limits = limits
        self.pos = 0
        self.line = 1
        self.line_start = 0
        self.depth = 0  # open [ and { of values
        self.tables = 0
        self.parts = 1  # parts of the key being read
        self.expect_key = True  # at the start of a line, or after , inside an inline table
        self.inline: list[str] = []  # the open brackets of values, innermost last

    def fail(self, message: str, at: int | None = None) -> None:
        at = self.pos if at is None else at
        raise TomlBoundError(self.line, at - self.line_start + 1, message)

    def run(self) -> None:
        text, n = self.text, len(self.text)
        while self.pos < n:
            ch = text[self.pos]
            if ch == "\n":
                self._newline()
                if not self.inline:
                    self.expect_key, self.parts = True, 1
                self.pos += 1
            elif ch == "#":
                end = text.find("\n", self.pos)
                self.pos = n if end < 0 else end
            elif ch in "\"'":
                self._string(ch)
            elif ch == "[" and self.expect_key and not self.inline:
                self._header()
            elif ch in "[{":
                self.inline.append(ch)
                if len(self.inline) > self.limits.max_nesting:
                    self.fail(f"values nest more than {self.limits.max_nesting} levels deep")
                self.expect_key = ch == "{"
                self.parts = 1
                self.pos += 1
            elif ch in "]}":
                if self.inline:
                    self.inline.pop()
                self.expect_key = False
                self.pos += 1
            elif ch == ",":
                self.expect_key = bool(self.inline) and self.inline[-1] == "{"
                self.parts = 1
                self.pos += 1
            elif ch == "=":
                self.expect_key = False
                self.pos += 1
            elif ch == "." and self.expect_key:
                self._part()
                self.pos += 1
            else:
                self.pos += 1

    def _newline(self) -> None:
        self.line += 1
        self.line_start = self.pos + 1

    def _part(self) -> None:
        self.parts += 1
        if self.parts > self.limits.max_key_parts:
            self.fail(f"a dotted key has more than {self.limits.max_key_parts} parts")

    def _header(self) -> None:
        """A ``[table]`` or ``[[array.of.tables]]`` line: one table, its dotted parts counted."""
        self.tables += 1
        if self.tables > self.limits.max_tables:
            self.fail(f"more than {self.limits.max_tables:,} tables")
        text, n = self.text, len(self.text)
        self.pos += 2 if text.startswith("[[", self.pos) else 1
        self.parts = 1
        while self.pos < n and text[self.pos] not in "]\n":
            ch = text[self.pos]
            if ch in "\"'":
                self._string(ch)
                continue
            if ch == ".":
                self._part()
            self.pos += 1
        while self.pos < n and text[self.pos] == "]":
            self.pos += 1
        self.expect_key, self.parts = False, 1

    def _string(self, quote: str) -> None:
        """Skip a basic, literal or multi-line string (escapes only in basic strings)."""
        text, n = self.text, len(self.text)
        triple = text.startswith(quote * 3, self.pos)
        self.pos += 3 if triple else 1
        while self.pos < n:
            ch = text[self.pos]
            if ch == "\\" and quote == '"':
                self.pos += 2
                continue
            if ch == "\n":
                if not triple:
                    return  # an unterminated string: tomllib says so
                self._newline()
            elif ch == quote and (not triple or text.startswith(quote * 3, self.pos)):
                self.pos += 3 if triple else 1
                while triple and self.pos < n and text[self.pos] == quote:
                    self.pos += 1  # up to two quotes may end a multi-line string's content
                return
            self.pos += 1
