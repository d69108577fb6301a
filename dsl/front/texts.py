"""Customer-facing rule texts: the ``{name}`` placeholders of a ``says`` line, read by hand.

A text is literal characters and placeholders, nothing else. ``{miles}`` or
``{customer.tier}`` names a value; ``{{`` and ``}}`` are a brace. There is no format
specification, no index and no call: this reader accepts exactly that and never hands policy
text to ``str.format`` (whose ``{0.__class__}`` would reach into Python objects), and the
runtime fills a text by joining its literal parts with the checked placeholders' values
(:func:`dsl.library.runtime.render_texts`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A placeholder's body: a name, or a name and fields (``customer.tier``).
_PLACEHOLDER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
#: The escapes a policy string may hold (``policy.lark``'s STRING), decoded.
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
#: The most placeholders one text may hold.
MAX_PLACEHOLDERS = 32
#: The most texts (languages) one rule may have.
MAX_TEXTS = 8
#: A language tag as ``says`` takes it: ``en``, ``fr``, ``pt_BR``.
LANGUAGE = re.compile(r"[a-z]{2,3}(?:_[A-Z]{2})?\Z")


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One ``{name}`` of a text: its name and where it stands in the string token (the
    opening brace's offset from the token's first character, the quote, and its width)."""

    name: str
    offset: int
    width: int


@dataclass(frozen=True, slots=True)
class TextProblem:
    """A text that is not literal characters and placeholders: what, a hint, and where."""

    message: str
    hint: str
    offset: int
    width: int


@dataclass(frozen=True, slots=True)
class Template:
    """A text read into parts: ``parts[0]``, ``parts[2]``, ... are literal text, and
    ``parts[1]``, ``parts[3]``, ... the placeholders' names between them (so there is always
    one more literal part than placeholders, possibly empty)."""

    parts: tuple[str, ...]
    placeholders: tuple[Placeholder, ...]
    problems: tuple[TextProblem, ...]


def read_template(token: str) -> Template:
    """Read a string token as written (quotes and escapes included) into a :class:`Template`."""
    parts: list[str] = []
    placeholders: list[Placeholder] = []
    problems: list[TextProblem] = []
    literal: list[str] = []
    i, end = 1, len(token) - 1
    while i < end:
        ch = token[i]
        if ch == "\\" and i + 1 < end:
            literal.append(_ESCAPES.get(token[i + 1], token[i + 1]))
            i += 2
        elif ch == "{" and token.startswith("{", i + 1):
            literal.append("{")
            i += 2
        elif ch == "}" and token.startswith("}", i + 1):
            literal.append("}")
            i += 2
        elif ch == "}":
            problems.append(TextProblem("a `}` closes no placeholder",
                                        "write `}}` for a brace, or open the placeholder with `{`",
                                        i, 1))
            i += 1
        elif ch == "{":
            close = token.find("}", i + 1, end)
            opened = token.find("{", i + 1, end)
            if close < 0 or 0 <= opened < close:
                problems.append(TextProblem("a `{` opens a placeholder that is never closed",
                                            "close it, as in `{miles}`, or write `{{` for a brace",
                                            i, 1))
                i += 1
                continue
            body = token[i + 1:close]
            if not _PLACEHOLDER.match(body):
                problems.append(TextProblem(
                    f"`{{{body}}}` is not a placeholder",
                    "a placeholder is a name or a field and nothing else, such as {miles} or "
                    "{customer.tier}", i, close + 1 - i))
            elif len(placeholders) >= MAX_PLACEHOLDERS:
                problems.append(TextProblem(
                    f"a text may hold at most {MAX_PLACEHOLDERS} placeholders",
                    "split the text, or say less", i, close + 1 - i))
            else:
                parts.append("".join(literal))
                literal = []
                parts.append(body)
                placeholders.append(Placeholder(body, i, close + 1 - i))
            i = close + 1
        else:
            literal.append(ch)
            i += 1
    parts.append("".join(literal))
    return Template(tuple(parts), tuple(placeholders), tuple(problems))

