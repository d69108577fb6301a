"""Parse policy text into :mod:`dsl.front.nodes`, turning every parser failure into a diagnostic.

(About 900 lines, one job: the Lark tree to AST transformer has one method per grammar
rule, and the syntax-error reporting that names mistakes needs the same rules beside it.)

The Lark parser is built once, from ``policy.lark`` beside this file, and shared.
A well-formed file is parsed in one pass, its AST built as Lark's tables reduce
(:mod:`dsl.front.lalr`); anything else (a syntax error, a value out of range, a tree
too deep) is parsed again by Lark, whose tree this module turns into the AST or into
diagnostics, so both paths give the same result. Limits on source size and nesting
depth are enforced here, before any stage recurses over the tree, so no policy can
drive the pipeline into a ``RecursionError``.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache, partial
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.indenter import DedentError

from dsl.errors import NO_SPAN, Diagnostic, PolicyError, Span, did_you_mean
from dsl.front import lalr
from dsl.front import nodes as n
from dsl.front.lexer import PolicyLexer
from dsl.front.mistakes import Match, character_key, recognise
from dsl.front.texts import LANGUAGE, MAX_TEXTS, read_template
from dsl.schema.types import Months

GRAMMAR_PATH = Path(__file__).with_name("policy.lark")

#: The largest policy file accepted, in bytes.
MAX_SOURCE_BYTES = 512 * 1024
#: The deepest nesting of expressions accepted.
MAX_DEPTH = 48
#: The most digits a number literal may have.
MAX_DIGITS = 30

_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
_UNIT_MONTHS = {"month": 1, "quarter": 3, "year": 12}
#: The longest calendar span: from the first month of the calendar to its last.
_MAX_MONTHS = 9999 * 12


@cache
def _lark() -> Lark:
    grammar = GRAMMAR_PATH.read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer=PolicyLexer,
        propagate_positions=True,
        maybe_placeholders=True,
        cache=_cache_file(grammar),
    )


@cache
def _fast() -> tuple[lalr.Table, PolicyLexer] | None:
    """The table and lexer of the one-pass parse, or None when the grammar does not allow it."""
    lark = _lark()
    table = lalr.build_table(lark)
    return None if table is None else (table, PolicyLexer(lark.lexer_conf))


def _cache_file(grammar: str) -> str | bool:
    """Where Lark keeps the built parser tables (building them takes about half a second).

    The cache is a pickle, so it lives only in a directory of our own that no one
    else can write to (``$XDG_CACHE_HOME/loyalty-rules``, mode 0700, owned by us);
    when there is none, nothing is cached.
    """
    import hashlib
    import os

    import lark

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "loyalty-rules"
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = base.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            return False
    except OSError:
        return False
    key = hashlib.sha256(f"{lark.__version__}\0{grammar}".encode()).hexdigest()[:20]
    return str(base / f"grammar-{key}.pickle")


def parse(source: str, file: str = "<policy>") -> list[n.Policy]:
    """Parse ``source`` (the text of one ``.policy`` file) into policies (a file of shared
    definitions has none: :func:`parse_file` gives its blocks).

    Raises :class:`PolicyError` with positioned diagnostics on any syntax error.
    """
    return [b for b in parse_file(source, file) if isinstance(b, n.Policy)]


def parse_file(source: str, file: str = "<policy>") -> list[n.Policy | n.Definitions]:
    """Parse ``source`` into its top-level blocks, policies and definitions, in order.

    Raises :class:`PolicyError` with positioned diagnostics on any syntax error.
    """
    problems = _precheck(source, file)
    if problems:
        raise PolicyError(problems)
    text = source if source.endswith("\n") else source + "\n"
    fast = _fast()
    if fast is not None:  # one pass to the AST (dsl.front.lalr); any trouble: Lark's two passes
        table, lexer = fast
        builder = _AstBuilder(file, source)
        try:
            blocks = lalr.parse(table, partial(lexer.scan, text, table.actions), builder,
                                MAX_DEPTH + _LEVELS_ABOVE_EXPRESSIONS)
        except lalr.Fallback:
            pass
        else:
            if builder.diagnostics:
                raise PolicyError(builder.diagnostics)
            return blocks
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as exc:
        raise PolicyError([_syntax_diagnostic(exc, source, file)]) from None
    except DedentError as exc:
        raise PolicyError([_dedent_diagnostic(exc, source, file)]) from None
    too_deep = _find_too_deep(tree)
    if too_deep is not None:
        span = _meta_span(too_deep)
        raise PolicyError([
            Diagnostic(
                file, span, "too_deep",
                f"this expression nests deeper than {MAX_DEPTH} levels",
                "split it into several `let` bindings",
                source_line=_line(source, span.line),
            )
        ])
    builder = _AstBuilder(file, source)
    try:
        blocks: list[n.Policy | n.Definitions] = builder.transform(tree)
    except (ValueError, OverflowError, ArithmeticError) as exc:  # a literal Python cannot hold
        raise PolicyError([*builder.diagnostics, Diagnostic(
            file, Span(1, 1, 1, 2), "bad_literal", f"a value in this file is out of range ({exc})",
            "use smaller numbers and dates between the years 1 and 9999")]) from None
    if builder.diagnostics:
        raise PolicyError(builder.diagnostics)
    return blocks


# -- before and after Lark ----------------------------------------------------------------


def _precheck(source: str, file: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > MAX_SOURCE_BYTES:
        out.append(Diagnostic(
            file, Span(1, 1, 1, 2), "too_large",
            f"the file is {size} bytes; a policy file may be at most {MAX_SOURCE_BYTES} bytes",
            "split the policy into several files",
        ))
        return out
    # Lines are split at "\n" only; any other character Python or a viewer might treat as
    # a line break (a lone "\r", form feed, U+2028 ...) is refused, so line numbers
    # mean the same thing to the author, the checker and every tool.
    lines = source.split("\n")
    for m in _BAD_CHARACTER.finditer(source):
        number = source.count("\n", 0, m.start()) + 1
        col = m.start() - (source.rfind("\n", 0, m.start()) + 1) + 1
        ch = m.group()
        out.append(Diagnostic(
            file, Span.point(number, col), "bad_character",
            f"control character U+{ord(ch):04X} is not allowed in a policy",
            "delete it; write escapes such as \\n inside strings instead",
            source_line=_printable(lines[number - 1]),
        ))
    for m in _TAB_INDENT.finditer(source):
        number = source.count("\n", 0, m.start()) + 1
        line = lines[number - 1]
        out.append(Diagnostic(
            file, Span.point(number, line.index("\t") + 1), "tab_indent", "indentation uses a tab",
            "indent with spaces only (two per level is the house style)",
            source_line=_printable(line),
        ))
    return out


_BAD_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x85\u2028\u2029]|\r(?!\n)")
_TAB_INDENT = re.compile(r"^[ ]*\t", re.MULTILINE)


def _printable(line: str) -> str:
    return "".join(ch if ch.isprintable() or ch == "\t" else "?" for ch in line.rstrip("\r"))


#: The tree's levels above the expressions (start, policy, member, effect ...), on top of
#: :data:`MAX_DEPTH`.
_LEVELS_ABOVE_EXPRESSIONS = 12


def _find_too_deep(tree: Tree) -> Tree | None:
    stack: list[tuple[Any, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Tree):
            if depth > MAX_DEPTH + _LEVELS_ABOVE_EXPRESSIONS:
                return node
            stack.extend((c, depth + 1) for c in node.children)
    return None


def _meta_span(tree: Tree) -> Span:
    m = tree.meta
    if getattr(m, "empty", True):
        return Span(1, 1, 1, 2)
    return Span(m.line, m.column, m.end_line, m.end_column)


def _tok_span(tok: Token) -> Span:
    return Span(tok.line or 0, tok.column or 0, tok.end_line or 0, tok.end_column or 0)


def _line(source: str, number: int) -> str:
    lines = source.splitlines()
    return lines[number - 1] if 0 < number <= len(lines) else ""


# -- syntax errors -------------------------------------------------------------------------

_TERMINAL_WORDS = {
    "_NL": "a new line", "_INDENT": "an indented block", "_DEDENT": "the end of a block",
    "NAME": "a name", "INT": "a whole number", "DECIMAL": "a decimal number",
    "PERCENT": "a percentage", "STRING": "a quoted string", "DATE": "a date (YYYY-MM-DD)",
    "DATETIME": "a date and time", "COMPARE": "a comparison", "COLON": "`:`",
    "LPAR": "`(`", "RPAR": "`)`", "LSQB": "`[`", "RSQB": "`]`", "COMMA": "`,`",
    "EQUAL": "`=`", "DURATION_UNIT": "a time unit", "CALENDAR_UNIT": "a calendar unit",
    "PLUS": "`+`", "MINUS": "`-`", "TIMES": "`*`", "DIVIDE": "`/`", "IDIV": "`div`", "MOD": "`%`",
    "OF": "`of`", "$END": "the end of the file",
    "__ANON_0": "`->`", "DOT": "`.`", "TIME": "a time of day (HH:MM, such as 09:00)",
}


def _describe_expected(expected: set[str]) -> str:
    words: list[str] = []
    for term in sorted(expected):
        if term in _TERMINAL_WORDS:
            words.append(_TERMINAL_WORDS[term])
        else:
            pattern = _lark().get_terminal(term).pattern
            value = getattr(pattern, "value", term)
            words.append(f"`{value}`" if isinstance(value, str) and value.isprintable() else term)
    unique = sorted(set(words))
    if len(unique) > 8:
        return ", ".join(unique[:8]) + ", ..."
    return ", ".join(unique)


def _describe_token(tok: Token) -> str:
    if tok.type == "_NL":
        return "end of the line"
    if tok.type == "_DEDENT":
        return "end of the block"
    if tok.type == "_INDENT":
        return "an indented line"
    if tok.type == "$END":
        return "end of the file"
    return f"`{tok.value}`"


def _syntax_diagnostic(exc: UnexpectedInput, source: str, file: str) -> Diagnostic:
    line = max(getattr(exc, "line", 1) or 1, 1)
    column = max(getattr(exc, "column", 1) or 1, 1)
    hint = ""
    if isinstance(exc, UnexpectedToken) and exc.token.type == "_INDENT":
        return _over_indent_diagnostic(exc.token, source, file)
    known = recognise(exc, _line(source, line), _lark().parse)
    if known is None or known.mistake.by_kind:
        # A misspelt keyword (`rul`, `awrd`) is likelier than a mistake named by kind alone.
        close = _keyword_suggestion(exc)
        if close:
            tok = exc.token  # type: ignore[attr-defined]
            return Diagnostic(file, _tok_span(tok), "syntax_error", f"unexpected `{tok}`",
                              close, source_line=_line(source, line))
    if known is not None:
        return _mistake_diagnostic(exc, known, source, file)
    if isinstance(exc, UnexpectedCharacters):
        text = _line(source, line)
        ch = text[column - 1] if column - 1 < len(text) else ""
        span = Span.point(line, column)
        if ch == '"':
            message = "this string is not closed"
            hint = 'end the string with " on the same line'
            span = Span(line, column, line, len(text) + 1)
        elif ch == "'":
            message = "strings use double quotes"
            hint = "write \"text\" instead of 'text'"
        elif _non_ascii_digit(ch):
            return _non_ascii_digit_diagnostic(file, text, line, column)
        elif ch == "=" and text[column - 1 : column + 1] != "==":
            message = "unexpected `=`"
            hint = "compare with `==`; `=` only appears in `let name = ...` and grant parameters"
        else:
            message = f"unexpected character `{ch}`" if ch else "unexpected end of line"
            allowed = exc.allowed or set()
            if allowed:
                hint = f"expected {_describe_expected(set(allowed))}"
        return Diagnostic(file, span, "syntax_error", message, hint, source_line=_line(source, line))
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        line, span = _token_place(tok, source, line, column)
        expected = set(exc.expected) - {"_NL"} if tok.type != "_NL" else set(exc.expected)
        message = f"unexpected {_describe_token(tok)}"
        hint = _hint_for(tok, set(exc.expected), source, line)
        if not hint and expected:
            hint = f"expected {_describe_expected(expected)}"
        return Diagnostic(file, span, "syntax_error", message, hint, source_line=_line(source, line))
    if isinstance(exc, UnexpectedEOF):
        line, column = _last_content_line(source, len(source.splitlines()))
        return Diagnostic(file, Span.point(line, column), "syntax_error", "the file ends too early",
                          "finish the last line", source_line=_line(source, line))
    return Diagnostic(file, Span.point(line, column), "syntax_error", str(exc).splitlines()[0],
                      source_line=_line(source, line))


@cache
def _keywords() -> dict[str, str]:
    """Terminal name -> keyword (``RULE`` -> ``rule``), for the grammar's keywords."""
    out: dict[str, str] = {}
    for term in _lark().terminals:
        value = getattr(term.pattern, "value", None)
        if type(term.pattern).__name__ == "PatternStr" and isinstance(value, str) and value.isalpha():
            out[term.name] = value
    return out


def _keyword_suggestion(exc: UnexpectedInput) -> str:
    """"did you mean `rule`?" for a name where a keyword close to it was expected, else ""."""
    if not isinstance(exc, UnexpectedToken) or exc.token.type != "NAME":
        return ""
    words = _keywords()
    keywords = [words[term] for term in exc.expected if term in words]
    word = str(exc.token)
    folded = {k.casefold(): k for k in keywords}
    # Closer than did_you_mean's names: a keyword is short, and a name that is no keyword
    # (`bonus = 1`) is likelier one of the table's mistakes than a misspelling.
    close = folded.get(word.casefold()) or next(iter(difflib.get_close_matches(word, keywords, 1, 0.75)), "")
    return f"did you mean `{close}`?" if close else ""


def _token_place(tok: Token, source: str, line: int, column: int) -> tuple[int, Span]:
    """The line and span of an unexpected token; a line break, dedent or end of input points at
    the end of the line the parser was reading, not the next one."""
    layout = ("_NL", "_DEDENT", "$END", "_INDENT")
    if tok.type in ("_NL", "_DEDENT", "$END"):
        line, column = _last_content_line(source, line)
    return line, Span.point(line, column, 1 if tok.type in layout else len(str(tok.value)))


def _mistake_diagnostic(exc: UnexpectedInput, known: Match, source: str, file: str) -> Diagnostic:
    """The diagnostic of a recognised mistake (:mod:`dsl.front.mistakes`), placed as any syntax error."""
    line = max(getattr(exc, "line", 1) or 1, 1)
    column = max(getattr(exc, "column", 1) or 1, 1)
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        line, span = _token_place(tok, source, line, column)
        message = known.mistake.describe(_describe_token(tok))
    else:
        text = _line(source, line)
        run = character_key(text, column)
        span = Span.point(line, column, len(run))
        message = known.mistake.describe(f"character `{run[:1]}`")
    if known.column:
        span = Span.point(line, known.column, known.width)
    message = known.message or message
    return Diagnostic(file, span, known.mistake.code, message, known.hint,
                      source_line=_line(source, line))


def _over_indent_diagnostic(tok: Token, source: str, file: str) -> Diagnostic:
    """An indented line where no block opens: the caret on that line, at its first character."""
    # The _INDENT token stands at the line break before the line; the line is where it ends.
    line = tok.end_line or tok.line or 1
    text = _line(source, line)
    column = len(text) - len(text.lstrip(" ")) + 1
    return Diagnostic(
        file, Span.point(line, column), "bad_indent",
        "this line is indented more than the line above it, which opens no block",
        "line it up with the line above; only a line ending in `:` (rule, group, table, "
        "decide) opens an indented block", source_line=text,
    )


def _non_ascii_digit(ch: str) -> bool:
    """A digit, or a character read as a number, outside ASCII (a Bengali or fullwidth digit,
    a superscript)."""
    return bool(ch) and not ch.isascii() and (ch.isnumeric() or unicodedata.category(ch) == "Nd")


def _digit_like(ch: str) -> bool:
    return ch in "0123456789" or _non_ascii_digit(ch)


def _non_ascii_digit_diagnostic(file: str, text: str, line: int, column: int) -> Diagnostic:
    """The whole run of digits around the first non-ASCII one, named with what it is."""
    start = column - 1
    while start > 0 and _digit_like(text[start - 1]):
        start -= 1
    end = column - 1
    while end < len(text) and _digit_like(text[end]):
        end += 1
    ch = text[column - 1]
    name = unicodedata.name(ch, f"U+{ord(ch):04X}")
    value = unicodedata.digit(ch, None)
    meaning = f"the digit {value}" if value is not None else "not a digit 0-9"
    return Diagnostic(
        file, Span(line, start + 1, line, end + 1), "non_ascii_digit",
        f"`{ch}` is not an ASCII digit: it is {name} (U+{ord(ch):04X}), {meaning}",
        "write numbers with the ASCII digits 0-9; a digit from another script is never read "
        "as a number", source_line=text)


def _last_content_line(source: str, upto: int) -> tuple[int, int]:
    lines = source.splitlines()
    i = min(upto, len(lines))
    while i > 1 and (not lines[i - 1].strip() or lines[i - 1].lstrip().startswith("#")):
        i -= 1
    text = lines[i - 1] if lines else ""
    body = text.split("#", 1)[0].rstrip() if '"' not in text else text.rstrip()
    return i, len(body) + 1


def _hint_for(tok: Token, expected: set[str], source: str, line: int) -> str:
    text = _line(source, line).strip()
    value = str(tok.value)
    if tok.type == "_NL" and "COLON" in expected:
        return "add `:` at the end of the line"
    if tok.type == "NAME" and value in ("years", "year", "months", "month"):
        return ("durations are seconds, minutes, hours, days or weeks, and calendar spans whole "
                "months, quarters or years after a whole number (3 months); count years of "
                "membership with tenure_years(...)")
    if re.search(r"\baward\s+[A-Za-z_]\w*\s+[\d.]+%?\s*$", text):
        return "write the amount before the currency: award 500 miles"
    if "TIME" in expected:
        return "write a time of day with two digits for the hour and two for the minutes: 09:00"
    if tok.type == "EQUAL":
        return "compare with `==`"
    if tok.type == "_NL" and text.startswith("award") and "NAME" in expected:
        return "name the currency after the amount: award 500 miles"
    if tok.type in ("_DEDENT", "$END") and "_INDENT" in expected:
        return "indent the lines that belong to this block"
    return ""


def _dedent_diagnostic(exc: DedentError, source: str, file: str) -> Diagnostic:
    m = re.search(r"(\d+)", str(exc))
    line = 1
    lines = source.splitlines()
    # Find the first line whose indentation matches no enclosing block.
    levels = [0]
    for i, text in enumerate(lines, 1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        ind = len(text) - len(text.lstrip(" "))
        if ind > levels[-1]:
            levels.append(ind)
        else:
            enclosing = list(levels)
            while ind < levels[-1]:
                levels.pop()
            if ind != levels[-1]:
                line = i
                levels = enclosing
                break
    del m
    text = _line(source, line)
    # Name the columns it could mean: the innermost blocks' (a policy's own lines are at 2).
    columns = " or ".join(str(level) for level in levels[1:][-2:]) or "0"
    return Diagnostic(
        file, Span.point(line, 1, len(text) - len(text.lstrip(" ")) or 1), "bad_indent",
        "this line's indentation matches no enclosing block",
        f"line it up with the block it belongs to: indent it by {columns} spaces",
        source_line=text,
    )


# -- parse tree -> AST -------------------------------------------------------------------


def _string_value(tok: Token) -> str:
    body = str(tok)[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), body)


class _AstBuilder(Transformer):
    """Lark tree -> AST. Every method takes ``(meta, children)``."""

    def __init__(self, file: str, source: str) -> None:
        super().__init__()
        self.file = file
        self.source = source
        self.diagnostics: list[Diagnostic] = []

    def _call_userfunc(self, tree: Tree, new_children: list[Any] | None = None) -> Any:
        # Lark's v_args(meta=True) wraps every method again on every call; passing the
        # meta directly does the same at a fraction of the cost.
        children = new_children if new_children is not None else tree.children
        f = getattr(self, tree.data, None)
        if f is None:
            return self.__default__(tree.data, children, tree.meta)
        return f(tree.meta, children)

    def _span(self, meta: Any) -> Span:
        if meta.__class__ is Span:  # the one-pass parse gives the span itself
            return meta  # type: ignore[no-any-return]
        if getattr(meta, "empty", True):
            return Span(0, 0, 0, 0)
        return Span(meta.line, meta.column, meta.end_line, meta.end_column)

    def _error(self, span: Span, code: str, message: str, hint: str = "") -> None:
        self.diagnostics.append(Diagnostic(self.file, span, code, message, hint,
                                           source_line=_line(self.source, span.line)))

    # top level
    def start(self, meta: Any, children: list[Any]) -> list[n.Policy | n.Definitions]:
        return [c for c in children if isinstance(c, n.Policy | n.Definitions)]

    def definitions(self, meta: Any, children: list[Any]) -> n.Definitions:
        name_tok = children[0]
        d = n.Definitions(str(name_tok), file=self.file, source=self.source,
                          span=self._span(meta), name_span=_tok_span(name_tok))
        for item in children[1:]:
            if isinstance(item, Token):
                d.description = _string_value(item)
                d.description_span = _tok_span(item)
            elif item is not None:
                d.members.append(item)
        return d

    def use(self, meta: Any, c: list[Any]) -> n.Use:
        *names, module = c
        return n.Use([str(t) for t in names], str(module), [_tok_span(t) for t in names],
                     _tok_span(module), span=self._span(meta))

    def policy(self, meta: Any, children: list[Any]) -> n.Policy:
        name_tok = children[0]
        p = n.Policy(str(name_tok), span=self._span(meta), file=self.file, source=self.source)
        p.header_spans["name"] = _tok_span(name_tok)
        seen: dict[str, Span] = {}
        for item in children[1:]:
            if isinstance(item, tuple):
                key, value, span = item
                if key in seen:
                    self._error(span, "duplicate_header", f"the policy already has a `{key}` line",
                                "keep one and delete the other")
                    continue
                seen[key] = span
                p.header_spans[key] = span
                if key == "version":
                    p.version = value
                elif key == "effective":
                    p.effective_from, p.effective_until = value
                elif key == "on":
                    p.kinds = value
                elif key == "description":
                    p.description = value
            else:
                p.members.append(item)
        return p

    def version(self, meta: Any, c: list[Any]) -> tuple[str, int, Span]:
        return ("version", int(self._digits(c[0])), self._span(meta))

    def _date(self, tok: Token) -> date | None:
        try:
            return date.fromisoformat(str(tok))
        except ValueError:
            self._error(_tok_span(tok), "bad_date", f"{tok} is not a date that exists",
                        "check the month and the day")
            return None

    def effective_between(self, meta: Any, c: list[Any]) -> tuple[str, Any, Span]:
        return ("effective", (self._date(c[0]), self._date(c[1])), self._span(meta))

    def effective_from(self, meta: Any, c: list[Any]) -> tuple[str, Any, Span]:
        return ("effective", (self._date(c[0]), None), self._span(meta))

    def effective_until(self, meta: Any, c: list[Any]) -> tuple[str, Any, Span]:
        return ("effective", (None, self._date(c[0])), self._span(meta))

    def applies_to(self, meta: Any, c: list[Any]) -> tuple[str, Any, Span]:
        return ("on", [str(t) for t in c], self._span(meta))

    def description(self, meta: Any, c: list[Any]) -> tuple[str, Any, Span]:
        return ("description", _string_value(c[0]), self._span(meta))

    # members
    def let(self, meta: Any, c: list[Any]) -> n.Let:
        return n.Let(str(c[0]), c[1], span=self._span(meta))

    def table(self, meta: Any, c: list[Any]) -> n.Table:
        rows = [n.TableRow([], r[1], span=r[2]) if isinstance(r, tuple) else r for r in c[2:]]
        return n.Table(str(c[0]), c[1], rows, span=self._span(meta))

    def table_row(self, meta: Any, c: list[Any]) -> n.TableRow:
        return n.TableRow(list(c[:-1]), c[-1], span=self._span(meta))

    def else_row(self, meta: Any, c: list[Any]) -> tuple[str, Any, Span]:
        return ("else", c[0], self._span(meta))

    def decide(self, meta: Any, c: list[Any]) -> n.Decide:
        rows = [n.DecideRow(None, r[1], span=r[2]) if isinstance(r, tuple) else r for r in c[2:]]
        return n.Decide(str(c[0]), c[1], rows, span=self._span(meta))

    def hit_first(self, meta: Any, c: list[Any]) -> str:
        return "first"

    def hit_collect(self, meta: Any, c: list[Any]) -> str:
        return "collect"

    def decide_row(self, meta: Any, c: list[Any]) -> n.DecideRow:
        return n.DecideRow(c[0], c[1], span=self._span(meta))

    def rule(self, meta: Any, c: list[Any]) -> n.Rule:
        name, cond, items = c
        effects = [e for e in items if not isinstance(e, n.RuleText)]
        texts = [e for e in items if isinstance(e, n.RuleText)]
        span = self._span(meta)
        if not effects:
            self._error(span, "no_effect", f"rule {name} says something but does nothing",
                        "give it an effect, such as `award 100 points`, above its text")
        if len(texts) > MAX_TEXTS:
            self._error(texts[MAX_TEXTS].span, "too_large",
                        f"rule {name} has {len(texts)} texts; the limit is {MAX_TEXTS}",
                        "keep the languages your customers read")
        seen: dict[str, n.RuleText] = {}
        for t in texts:
            if t.language in seen:
                which = f"a `{t.language}` text" if t.language else "a text without a language"
                self._error(t.span, "duplicate_text",
                            f"rule {name} already has {which} (line {seen[t.language].span.line})",
                            "keep one text per language")
            seen.setdefault(t.language, t)
        return n.Rule(str(name), cond, effects, span=span, name_span=_tok_span(name), texts=texts)

    def says(self, meta: Any, c: list[Any]) -> n.RuleText:
        language, tok = c
        line, column = tok.line or 0, tok.column or 0
        template = read_template(str(tok))
        for problem in template.problems:
            self._error(Span.point(line, column + problem.offset, problem.width), "bad_text",
                        problem.message, problem.hint)
        placeholders: list[n.Expr] = []
        for ph in template.placeholders:
            start = column + ph.offset + 1
            names = ph.name.split(".")
            expr: n.Expr = n.Name(names[0], span=Span.point(line, start, len(names[0])))
            width = len(names[0])
            for field_name in names[1:]:
                width += 1 + len(field_name)
                expr = n.Attribute(expr, field_name, span=Span.point(line, start, width))
            placeholders.append(expr)
        lang = "" if language is None else str(language)
        if language is not None and not LANGUAGE.match(lang):
            self._error(_tok_span(language), "bad_language", f"`{lang}` is not a language tag",
                        "write a language as two or three lower-case letters, with a region "
                        "after an underscore if needed: en, fr, pt_BR")
        return n.RuleText(lang, _string_value(tok), template.parts, placeholders,
                          span=self._span(meta),
                          language_span=_tok_span(language) if language is not None else NO_SPAN)

    def effects(self, meta: Any, c: list[Any]) -> list[n.Effect]:
        return list(c)

    def award(self, meta: Any, c: list[Any]) -> n.Award:
        amount, currency, limit = c
        return n.Award(amount, str(currency), limit, span=self._span(meta),
                       currency_span=_tok_span(currency))

    def count(self, meta: Any, c: list[Any]) -> n.Count:
        amount, counter, limit = c
        return n.Count(amount, str(counter), limit, span=self._span(meta),
                       counter_span=_tok_span(counter))

    def counter(self, meta: Any, c: list[Any]) -> n.Counter:
        name, kind, period = c
        return n.Counter(str(name), kind, period, span=self._span(meta), name_span=_tok_span(name))

    def counter_count(self, meta: Any, c: list[Any]) -> str:
        return "count"

    def counter_sum(self, meta: Any, c: list[Any]) -> str:
        return "sum"

    def calendar_period(self, meta: Any, c: list[Any]) -> n.Period:
        unit = str(c[0])
        span = self._span(meta)
        if unit not in n.CALENDAR_UNITS:
            hint = did_you_mean(unit, n.CALENDAR_UNITS)
            self._error(_tok_span(c[0]), "bad_period", f"`{unit}` is not a calendar period",
                        hint or "write per day, week, month, quarter or year, or per rolling 7 days")
        # The text keeps the author's choice of `per quarter` or `per calendar quarter`.
        written = n.source_text(self.source, span).split()
        word = "per calendar" if "calendar" in written[:-1] else "per"
        return n.Period("calendar", unit, text=f"{word} {unit}", span=span)

    def rolling_period(self, meta: Any, c: list[Any]) -> n.Period:
        number = int(self._digits(c[0]))
        unit = str(c[1]).rstrip("s")
        span = self._span(meta)
        if unit not in ("hour", "day", "week") or not 1 <= number <= 3660 * 24:
            self._error(span, "bad_period", f"a rolling period of {c[0]} {c[1]} is not supported",
                        "write a rolling period of whole hours, days or weeks, up to 10 years")
            number, unit = 1, "day"
        length = timedelta(seconds=number * _UNIT_SECONDS[unit])
        if length > timedelta(days=3660):
            self._error(span, "bad_period", f"a rolling period of {c[0]} {c[1]} is not supported",
                        "write a rolling period of up to 10 years (3660 days)")
            length = timedelta(days=1)
        text = f"per rolling {number} {unit}{'' if number == 1 else 's'}"
        return n.Period("rolling", unit, length, text, span=span)

    def ever_period(self, meta: Any, c: list[Any]) -> n.Period:
        return n.Period("ever", text="ever", span=self._span(meta))

    def grant(self, meta: Any, c: list[Any]) -> n.Grant:
        params = [p for p in c[1:] if p is not None]
        return n.Grant(_string_value(c[0]), params, span=self._span(meta))

    def param(self, meta: Any, c: list[Any]) -> tuple[str, n.Expr, Span]:
        return (str(c[0]), c[1], self._span(meta))

    def qualify(self, meta: Any, c: list[Any]) -> n.Qualify:
        return n.Qualify(_string_value(c[0]), span=self._span(meta))

    def tag(self, meta: Any, c: list[Any]) -> n.Tag:
        return n.Tag(_string_value(c[0]), span=self._span(meta))

    def group(self, meta: Any, c: list[Any]) -> n.Group:
        mode, currency = c[1]
        return n.Group(str(c[0]), mode, currency, list(c[2:]), span=self._span(meta))

    def mode_first(self, meta: Any, c: list[Any]) -> tuple[str, str]:
        return ("first", "")

    def mode_best(self, meta: Any, c: list[Any]) -> tuple[str, str]:
        return ("best", str(c[0]))

    def cap(self, meta: Any, c: list[Any]) -> n.Cap:
        return n.Cap(str(c[0]), c[1], span=self._span(meta))

    def round(self, meta: Any, c: list[Any]) -> n.Round:
        return n.Round(str(c[0]), c[1], per_award=len(c) > 2, span=self._span(meta))

    def each_award(self, meta: Any, c: list[Any]) -> bool:
        return True

    def round_down(self, meta: Any, c: list[Any]) -> str:
        return "down"

    def round_up(self, meta: Any, c: list[Any]) -> str:
        return "up"

    def round_half_even(self, meta: Any, c: list[Any]) -> str:
        return "half even"

    def round_half_up(self, meta: Any, c: list[Any]) -> str:
        return "half up"

    # expressions
    def if_expr(self, meta: Any, c: list[Any]) -> n.IfExpr:
        return n.IfExpr(c[0], c[1], c[2], span=self._span(meta))

    def otherwise(self, meta: Any, c: list[Any]) -> n.Binary:
        return n.Binary("otherwise", c[0], c[1], span=self._span(meta))

    def or_expr(self, meta: Any, c: list[Any]) -> n.Binary:
        return n.Binary("or", c[0], c[1], span=self._span(meta))

    def and_expr(self, meta: Any, c: list[Any]) -> n.Binary:
        return n.Binary("and", c[0], c[1], span=self._span(meta))

    def not_expr(self, meta: Any, c: list[Any]) -> n.Unary:
        return n.Unary("not", c[0], span=self._span(meta))

    def compare(self, meta: Any, c: list[Any]) -> n.Binary:
        return n.Binary(str(c[1]), c[0], c[2], span=self._span(meta))

    def in_expr(self, meta: Any, c: list[Any]) -> n.Binary:
        return n.Binary("in", c[0], c[1], span=self._span(meta))

    def not_in_expr(self, meta: Any, c: list[Any]) -> n.Binary:
        return n.Binary("not in", c[0], c[1], span=self._span(meta))

    def is_missing(self, meta: Any, c: list[Any]) -> n.Presence:
        return n.Presence(c[0], False, span=self._span(meta))

    def is_present(self, meta: Any, c: list[Any]) -> n.Presence:
        return n.Presence(c[0], True, span=self._span(meta))

    def between(self, meta: Any, c: list[Any]) -> n.Between:
        return n.Between(c[0], self._time(c[1]), self._time(c[2]), span=self._span(meta))

    def _time(self, tok: Token) -> time:
        hours, minutes = int(tok[:2]), int(tok[3:])
        if hours > 23 or minutes > 59:
            self._error(_tok_span(tok), "bad_time", f"{tok} is not a time of day",
                        "write a time from 00:00 to 23:59; for a range to midnight, "
                        "end it at 00:00")
            return time(0, 0)
        return time(hours, minutes)

    def arith(self, meta: Any, c: list[Any]) -> n.Binary:
        return n.Binary(str(c[1]), c[0], c[2], span=self._span(meta))

    def negate(self, meta: Any, c: list[Any]) -> n.Expr:
        operand = c[0]
        if isinstance(operand, n.Literal) and isinstance(operand.value, int | Decimal) \
                and not isinstance(operand.value, bool):
            return n.Literal(-operand.value, "-" + operand.text, span=self._span(meta))
        return n.Unary("neg", operand, span=self._span(meta))

    def attribute(self, meta: Any, c: list[Any]) -> n.Attribute:
        return n.Attribute(c[0], str(c[1]), span=self._span(meta))

    def call(self, meta: Any, c: list[Any]) -> n.Call:
        args = [a for a in c[1:] if a is not None]
        return n.Call(str(c[0]), args, span=self._span(meta))

    def aggregate(self, meta: Any, c: list[Any]) -> n.Aggregate:
        func, body, var, source, where = c
        return n.Aggregate(str(func), body, str(var), source, where, span=self._span(meta))

    def name(self, meta: Any, c: list[Any]) -> n.Name:
        return n.Name(str(c[0]), span=self._span(meta))

    def list_lit(self, meta: Any, c: list[Any]) -> n.ListExpr:
        return n.ListExpr([x for x in c if x is not None], span=self._span(meta))

    def _digits(self, tok: Token) -> str:
        """The digits of a number literal, refusing more than :data:`MAX_DIGITS` of them."""
        digits = str(tok).replace("_", "").rstrip("%")
        if sum(ch.isdigit() for ch in digits) > MAX_DIGITS:
            self._error(_tok_span(tok), "number_too_large",
                        f"this number has more than {MAX_DIGITS} digits",
                        "loyalty amounts fit in far fewer digits; check the number")
            return "0"
        return digits

    def int_lit(self, meta: Any, c: list[Any]) -> n.Literal:
        return n.Literal(int(self._digits(c[0])), str(c[0]), span=self._span(meta))

    def neg_int_lit(self, meta: Any, c: list[Any]) -> n.Literal:
        return n.Literal(-int(self._digits(c[0])), "-" + str(c[0]), span=self._span(meta))

    def decimal_lit(self, meta: Any, c: list[Any]) -> n.Literal:
        return n.Literal(Decimal(self._digits(c[0])), str(c[0]), span=self._span(meta))

    def neg_decimal_lit(self, meta: Any, c: list[Any]) -> n.Literal:
        return n.Literal(-Decimal(self._digits(c[0])), "-" + str(c[0]), span=self._span(meta))

    def percent_lit(self, meta: Any, c: list[Any]) -> n.Literal:
        text = str(c[0])
        return n.Literal(Decimal(self._digits(c[0])) / 100, text, span=self._span(meta))

    def string_lit(self, meta: Any, c: list[Any]) -> n.Literal:
        return n.Literal(_string_value(c[0]), str(c[0]), span=self._span(meta))

    def date_lit(self, meta: Any, c: list[Any]) -> n.Literal:
        d = self._date(c[0])
        return n.Literal(d if d is not None else date(1970, 1, 1), str(c[0]), span=self._span(meta))

    def datetime_lit(self, meta: Any, c: list[Any]) -> n.Literal:
        text = str(c[0])
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
        except (ValueError, OverflowError):
            self._error(self._span(meta), "bad_date", f"{text} is not a date and time that exists",
                        "check the month, the day and the time")
            value = datetime(1970, 1, 1, tzinfo=UTC)
        return n.Literal(value, text, span=self._span(meta))

    def duration_lit(self, meta: Any, c: list[Any]) -> n.Literal:
        count = int(self._digits(c[0]))
        unit = str(c[1]).rstrip("s")
        try:
            value = timedelta(seconds=count * _UNIT_SECONDS[unit])
        except OverflowError:
            self._error(self._span(meta), "number_too_large", "this duration is longer than a "
                        "computer calendar can hold", "write a duration of less than a million days")
            value = timedelta(0)
        return n.Literal(value, f"{c[0]} {c[1]}", span=self._span(meta))

    def months_lit(self, meta: Any, c: list[Any]) -> n.Literal:
        count = int(self._digits(c[0]))
        unit = str(c[1]).rstrip("s")
        months = count * _UNIT_MONTHS[unit]
        if months > _MAX_MONTHS:
            self._error(self._span(meta), "number_too_large", "this calendar span is longer than "
                        "the calendar (years 1 to 9999)", "write a span of less than 10,000 years")
            months = 0
        return n.Literal(Months(months), f"{c[0]} {c[1]}", span=self._span(meta))

    def true_lit(self, meta: Any, c: list[Any]) -> n.Literal:
        return n.Literal(True, "true", span=self._span(meta))

    def false_lit(self, meta: Any, c: list[Any]) -> n.Literal:
        return n.Literal(False, "false", span=self._span(meta))
