"""Checked and generated policies kept on disk, so a restart or a new worker skips the parser.

One entry per policy file, keyed by the digest of the compiler's own version (the source of
the ``dsl`` stages, the grammar, Python's and Lark's versions), the schema, the file's name
and its text: any change to any of them is another key. An entry holds each policy's AST,
its check result, its generated Python source and that source's code object (marshal):
loading an entry runs the bytecode verifier on the code object
(:func:`dsl.backend.compiler.verified`) before anything runs, exactly as for freshly
compiled code, so nothing unverified ever runs.

Safety:

- The directory is ``$LOYALTY_CACHE_DIR`` or ``$XDG_CACHE_HOME/loyalty-rules/compiled``
  (``~/.cache``...), mode 0700 and ours; if it is not, nothing is cached.
  ``LOYALTY_CACHE_DIR=off`` turns the cache off.
- Entries are written to a temporary file and renamed into place (atomic on POSIX), so
  worker processes that build the same file at once each write a whole entry, and a
  reader sees a whole entry or none.
- The code object is only ever read from this directory (ours, 0700): marshal is not
  meant for data others can write.
- Reading is an allow-listed unpickler (only the AST, check-result, type, span and value
  classes: no callable a crafted file could name), behind a header naming the format and
  the full key; a corrupt, truncated or foreign entry is ignored (and rebuilt).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import marshal
import os
import pickle
import sys
import tempfile
from functools import cache
from pathlib import Path
from types import CodeType
from typing import Any

from dsl.analysis.result import CheckResult
from dsl.backend.codegen import Generated
from dsl.front import nodes as n

__all__ = ["Entry", "cache_dir", "compiler_version", "entry_key", "load", "store"]

FORMAT = b"loyalty-compiled-2"

#: (policy, check result, generated evaluate module, its code object) per policy of a file.
Entry = list[tuple[n.Policy, CheckResult, Generated, CodeType | None]]

#: The stages whose source decides what an entry holds.
_STAGES = ("front", "analysis", "backend", "schema", "library")


@cache
def compiler_version() -> str:
    """A digest of everything that shapes an entry: the stages' source, the grammar, versions."""
    import lark

    root = Path(__file__).resolve().parent
    digest = hashlib.sha256(FORMAT)
    digest.update(f"{sys.version}\0{lark.__version__}\0".encode())
    for stage in _STAGES:
        for path in sorted((root / stage).glob("*")):
            if path.suffix in (".py", ".lark", ".toml"):
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for path in ("errors.py", "artifacts.py"):
        digest.update((root / path).read_bytes())
    return digest.hexdigest()


def entry_key(schema_digest: str, file: str, text: str) -> str:
    """The key of a file's entry."""
    digest = hashlib.sha256(compiler_version().encode())
    for part in (schema_digest, file, text):
        digest.update(b"\0" + part.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def cache_dir() -> Path | None:
    """The entries' directory (created 0700), or None when caching is off or unsafe."""
    chosen = os.environ.get("LOYALTY_CACHE_DIR")
    if chosen in ("off", "0", "no"):
        return None
    if chosen:
        base = Path(chosen)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "loyalty-rules" / "compiled"
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = base.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            return None
    except OSError:
        return None
    return base


# -- writing ---------------------------------------------------------------------------------------


def _portable(check: CheckResult) -> tuple[Any, ...]:
    """``check`` with its per-expression types as (node, type) pairs rather than keyed by
    id(): pickling keeps the nodes' identity, so the pairs point into the pickled AST."""
    return (check.diagnostics, list(check.types.items()), check.rounding, check.per_award,
            check.bound, check.stages, list(check.ranked.items()))


def store(directory: Path, key: str, entry: Entry, nodes: dict[int, list[Any]]) -> None:
    """Write an entry atomically (a temporary file renamed into place); errors are ignored.

    ``nodes`` maps id(policy) to the nodes whose ids its check result's types are keyed by
    (every node of the AST, from :func:`dsl.front.nodes.walk`).
    """
    payload = []
    for policy, check, g, code in entry:
        by_id = {id(x): x for x in nodes[id(policy)]}
        diagnostics, types, rounding, per_award, bound, stages, ranked = _portable(check)
        pairs = [(by_id[k], t) for k, t in types if k in by_id]
        ranks = [(by_id[k], values) for k, values in ranked if k in by_id]
        payload.append((policy, (diagnostics, pairs, rounding, per_award, bound, stages, ranks),
                        Generated(g.source, g.constants, g.line_map),
                        marshal.dumps(code) if code is not None else None))
    try:
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, ValueError, RecursionError):
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".entry")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(FORMAT + b"\n" + key.encode() + b"\n" + data)
        os.replace(tmp, directory / f"{key}.entry")
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


# -- reading ---------------------------------------------------------------------------------------

_ALLOWED: dict[str, frozenset[str]] = {
    # The nodes, and where a member a `use` line brought in comes from (strings and spans).
    "dsl.front.nodes": frozenset(name for name, value in vars(n).items()
                                 if isinstance(value, type) and issubclass(value, n.Node))
    | {"Imported"},
    "dsl.analysis.result": frozenset({"CheckResult", "CostBound"}),
    "dsl.schema.types": frozenset({"Type", "Months"}),
    "dsl.errors": frozenset({"Span", "Diagnostic"}),
    "dsl.backend.codegen": frozenset({"Generated", "_Table"}),
    "decimal": frozenset({"Decimal"}),
    "datetime": frozenset({"date", "datetime", "time", "timedelta", "timezone"}),
    "builtins": frozenset({"set", "frozenset", "list", "dict", "tuple", "bytes"}),
}


class _Unpickler(pickle.Unpickler):
    """Builds only the classes an entry holds; anything else is a foreign entry."""

    def find_class(self, module: str, name: str) -> Any:
        if name in _ALLOWED.get(module, ()):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a compiled entry")


def load(directory: Path, key: str) -> Entry | None:
    """The entry under ``key``, or None when there is none or it is corrupt or foreign."""
    path = directory / f"{key}.entry"
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    header = FORMAT + b"\n" + key.encode() + b"\n"
    if not raw.startswith(header):
        return None
    try:
        payload = _Unpickler(io.BytesIO(raw[len(header):])).load()
        entry: Entry = []
        for policy, (diagnostics, pairs, rounding, per_award, bound, stages, ranks), generated, code \
                in payload:
            if not (isinstance(policy, n.Policy) and isinstance(generated, Generated)
                    and isinstance(generated.source, str) and isinstance(code, bytes | None)):
                return None
            check = CheckResult(diagnostics, {id(node): t for node, t in pairs}, rounding,
                                per_award, {id(node): values for node, values in ranks}, bound,
                                stages)
            # The caller verifies the code object before running it (compiler.verified).
            entry.append((policy, check, generated, marshal.loads(code) if code else None))
        return entry
    except Exception:  # corrupt in any way: rebuilt by the caller
        return None
