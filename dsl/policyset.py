"""A policy set: every policy of a directory, compiled, indexed, and evaluated as one.

This is the embedding API ("prepare once, evaluate many"). Loading runs the
whole pipeline for every file -- parse, check, generate, compile -- and collects
every diagnostic before refusing anything. Evaluation looks up the policies
that apply to the event's kind and date in a precomputed index, so policies
for other kinds or other dates cost nothing.

(About 860 lines, one job: a directory's files to one evaluable set. Its length is the three
evaluate bodies -- UTC, a programme zone, counters -- kept as near-copies on purpose because
each is a hot path with its own lookup key, and the per-file cache and shared-definition
library that loading needs; splitting them would put one pipeline in two rooms.)
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import re
import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta, tzinfo
from decimal import Decimal, getcontext, setcontext
from functools import cached_property
from pathlib import Path
from typing import Any

from dsl import artifacts
from dsl.analysis.bounds import AwardBound, award_bounds
from dsl.analysis.checker import CheckResult, check_policy
from dsl.analysis.shared import Library
from dsl.backend.codegen import Generated, generate
from dsl.backend.compiler import CompiledModule, UnsafeCode, compile_module
from dsl.backend.interpreter import Interpreter, interpret
from dsl.backend.runner import COMPILED, INTERPRETED, Runner, evaluation_error
from dsl.decision import Decision, Reason
from dsl.errors import Diagnostic, EvaluationError, PolicyError, Span, sort_diagnostics
from dsl.front import nodes as n
from dsl.front.parser import parse, parse_file
from dsl.input.request import MappingDecoder
from dsl.library.runtime import EvaluationContext, finish, thread_context
from dsl.periods import Window, histories, local_midnight, window
from dsl.programme import digest_names, read_sources
from dsl.schema.schema import Schema
from dsl.schema.timezones import zone as zone_of

#: The most policies one set may hold.
MAX_POLICIES = 20000
#: Above this many (segment, policy) entries the date index falls back to filtering.
_INDEX_BUDGET = 2_000_000


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """What a client may know about a loaded policy (``ListPolicies`` returns these)."""

    name: str
    version: int
    effective_from: date | None
    effective_until: date | None
    kinds: tuple[str, ...]
    digest: str
    file: str
    description: str
    rules: tuple[str, ...]


@dataclass
class CompiledPolicy:
    """One policy through the whole pipeline: AST, check result, Python source and functions."""

    info: PolicyInfo
    ast: n.Policy
    check: CheckResult
    generated: Generated
    module: CompiledModule
    interpreted: Callable[..., None]
    schema: Schema

    @property
    def name(self) -> str:
        return self.info.name

    def source(self, variant: str = "evaluate") -> str:
        """The generated Python module of ``variant`` (``evaluate`` or ``explain``), as compiled."""
        if variant == "evaluate":
            return self.generated.source
        return generate(self.ast, self.check, self.schema, "explain").source

    @cached_property
    def award_bounds(self) -> list[AwardBound]:
        """The most one event can be awarded by this policy, per currency (see dsl.analysis.bounds)."""
        return award_bounds(self.schema, self.ast, self.check)

    @cached_property
    def counters(self) -> tuple[tuple[str, str, n.Period], ...]:
        """(name, kind, period) of every counter the policy declares."""
        return tuple((c.name, c.kind, c.period) for c in self.ast.counters)

    def applies_on(self, day: date) -> bool:
        lo, hi = self.info.effective_from, self.info.effective_until
        return (lo is None or lo <= day) and (hi is None or day <= hi)


@dataclass
class _KindIndex:
    bounds: list[date]
    segments: list[tuple[CompiledPolicy, ...]]
    fallback: tuple[CompiledPolicy, ...] = ()
    #: What an event's segment is found by: its UTC ``date`` against ``bounds`` (a UTC
    #: programme), or its ``time`` against the instant each bound starts in the programme's
    #: zone (so no event is converted to a local date on the hot path).
    key: str = "date"
    keys: list[Any] = field(default_factory=list)
    #: Whether a policy of this kind declares counters (its evaluation reads windows).
    counters: bool = False
    #: Per segment, its policies and ``finish`` as one call (:func:`_fused`): what a compiled
    #: evaluation without explain, ``only`` or windows runs. Empty with the fallback filter.
    fused: list[Callable[[dict[str, Any], dict[str, Any]], Decision]] = field(default_factory=list)

    def lookup(self, day: date) -> Sequence[CompiledPolicy]:
        if self.segments:
            return self.segments[bisect_right(self.bounds, day)]
        return [p for p in self.fallback if p.applies_on(day)]


@dataclass
class PolicySet:
    """Compiled policies indexed by event kind and effective date, with their revision."""

    schema: Schema
    compiled: list[CompiledPolicy]
    revision: str
    warnings: list[Diagnostic] = field(default_factory=list)
    _index: dict[str, _KindIndex] = field(default_factory=dict, repr=False)
    _caps: tuple[tuple[str, Any], ...] = ()
    _tier_rank: dict[str, int] = field(default_factory=dict, repr=False)
    #: The programme's zone, or None for UTC (the event's own UTC date picks the policies).
    _zone: tzinfo | None = field(default=None, repr=False)
    #: Whether evaluation takes the path that reads windows (a policy declares counters).
    _periods: bool = field(default=False, repr=False)
    #: The event kinds whose policies have a rule that declares a ``says`` text (see
    #: :attr:`text_kinds`).
    _text_kinds: frozenset[str] = field(default=frozenset(), repr=False)

    def __post_init__(self) -> None:
        by_kind: dict[str, list[CompiledPolicy]] = {}
        for p in self.compiled:
            for kind in p.info.kinds:
                by_kind.setdefault(kind, []).append(p)
        self._index = {kind: _build_index(ps) for kind, ps in by_kind.items()}
        zone = zone_of(self.schema.timezone)
        for index in self._index.values():
            if self.schema.timezone == "UTC":
                index.key, index.keys = "date", index.bounds
            else:
                index.key, index.keys = "time", [local_midnight(d, zone) for d in index.bounds]
            index.counters = any(p.counters for seg in index.segments for p in seg) or \
                any(p.counters for p in index.fallback)
        self._caps = tuple((c.name, c.cap_per_event) for c in self.schema.currencies.values()
                           if c.cap_per_event is not None)
        self._tier_rank = {t: i for i, t in enumerate(self.schema.tiers)}
        for index in self._index.values():
            if not index.counters:
                index.fused = [_fused(seg, self.revision, self._tier_rank, self._caps)
                               for seg in index.segments]
        self._zone = zone_of(self.schema.timezone) if self.schema.timezone != "UTC" else None
        self._periods = any(p.counters for p in self.compiled)
        self._text_kinds = frozenset(kind for p in self.compiled if any(r.texts for r in p.ast.rules)
                                     for kind in p.info.kinds)
        # Chosen once, here, so that a set without counters in UTC pays nothing per call.
        if self._periods:
            self.evaluate = self._evaluate_periods  # type: ignore[method-assign]
        elif self._zone is not None:
            self.evaluate = self._evaluate_zoned  # type: ignore[method-assign]

    @property
    def reads_state(self) -> bool:
        """Whether a policy declares counters, so that evaluating reads stored windows
        (:meth:`windows`, ``evaluate(..., state=)``); a set without reads nothing."""
        return self._periods

    @property
    def has_texts(self) -> bool:
        """Whether a rule declares a customer-facing ``says`` text. Texts are filled in only by
        an evaluation with ``explain``; the service explains an applied event (for the texts
        its lots keep) only when its kind has some (:attr:`text_kinds`), so a set without
        texts pays nothing."""
        return bool(self._text_kinds)

    @property
    def text_kinds(self) -> frozenset[str]:
        """The event kinds one of whose policies has a rule with a ``says`` text."""
        return self._text_kinds

    @property
    def zone(self) -> tzinfo:
        """The programme's time zone (``[programme] timezone``; UTC by default)."""
        return self._zone or zone_of("UTC")

    def local_date(self, event: dict[str, Any]) -> date:
        """The event's date in the programme's zone: what ``effective`` dates compare with."""
        if self._zone is None:
            return event["date"]  # type: ignore[no-any-return]
        return event["time"].astimezone(self._zone).date()  # type: ignore[no-any-return]

    def windows(self, customer: dict[str, Any], event: dict[str, Any]) -> list[Window]:
        """Every window the policies that apply to a prepared event read (its kind, on its
        local date): deduplicated, in policy order then counter order. The service sums these
        in its transaction and passes them to :meth:`evaluate` as ``state``."""
        del customer  # the windows depend on the event alone
        zone = self.zone
        out: dict[Window, None] = {}
        for p in self.applicable(event):
            for name, _, period in p.counters:
                out[window(name, period, event["time"], zone)] = None
        return list(out)

    @property
    def decoder(self) -> MappingDecoder:
        """Reads requests in the proto3 JSON mapping (what grpcurl sends) into prepared input:
        ``customer, event = policy_set.decoder.request(json.loads(body))``."""
        decoder = self.__dict__.get("_decoder")
        if decoder is None:
            decoder = self.__dict__["_decoder"] = MappingDecoder(self.schema)
        return decoder

    @property
    def policies(self) -> list[PolicyInfo]:
        """Every loaded policy, in evaluation order."""
        return [p.info for p in self.compiled]

    def policy(self, name: str) -> CompiledPolicy:
        """The compiled policy called ``name`` (KeyError if there is none)."""
        for p in self.compiled:
            if p.name == name:
                return p
        raise KeyError(name)

    def applicable(self, event: dict[str, Any]) -> Sequence[CompiledPolicy]:
        """The policies that apply to a prepared event: its kind, on its date."""
        index = self._index.get(event["kind"])
        if index is None:
            return ()
        return index.lookup(self.local_date(event))

    def evaluate(self, customer: dict[str, Any], event: dict[str, Any], explain: bool = False,
                 only: Iterable[str] | None = None, *, runner: Runner = COMPILED,
                 state: Mapping[Window, int | Decimal] | None = None) -> Decision:
        """Evaluate every applicable policy and combine them into one decision.

        ``customer`` and ``event`` are prepared dicts (see :attr:`decoder`).
        With ``explain`` the decision carries its reasons. ``only`` limits the
        evaluation to the named policies. ``runner`` says how each policy runs
        (:mod:`dsl.backend.runner`: the compiled code, or the reference interpreter);
        the selection and the combination around it are the same for both. ``state`` is the
        stored sum of each window :meth:`windows` names (None: every window reads 0, a pure
        quote). Raises :class:`~dsl.errors.EvaluationError` when a policy fails at run time.
        """
        saved = getcontext()
        if type(saved) is not EvaluationContext:
            # Inline rather than through in_evaluation_context: this is the hot path of
            # every caller whose thread is not in the context (see use_evaluation_context).
            setcontext(thread_context())
            try:
                return self.evaluate(customer, event, explain, only, runner=runner)
            finally:
                setcontext(saved)
        # From here on, the selection and the combination both runners share, in this body
        # rather than a helper and with index.lookup inlined for the usual table: on a thread
        # already in the context (the service's) sharing them costs no call but the runner's.
        index = self._index.get(event["kind"])
        if index is None:
            return Decision(self.revision, {}, [], None, [], [], [], None)
        fused = index.fused
        if fused and not explain and only is None and runner is COMPILED:  # the hot path
            return fused[bisect_right(index.bounds, event["date"])](customer, event)
        d = Decision(self.revision, {}, [], None, [], [], [], None)
        segments = index.segments
        policies = (segments[bisect_right(index.bounds, event["date"])] if segments
                    else index.lookup(event["date"]))
        if only is not None:
            wanted = set(only)
            policies = [p for p in policies if p.name in wanted]
        if not explain:
            runner.run(policies, customer, event, d, None)
            return finish(d, self._tier_rank, self._caps, None)
        reasons: list[Reason] = []
        runner.run(policies, customer, event, d, reasons)
        d.reasons = reasons
        return finish(d, self._tier_rank, self._caps, reasons)

    def _evaluate_zoned(self, customer: dict[str, Any], event: dict[str, Any],
                        explain: bool = False, only: Iterable[str] | None = None, *,
                        runner: Runner = COMPILED,
                        state: Mapping[Window, int | Decimal] | None = None) -> Decision:
        """:meth:`evaluate` for a programme in another zone than UTC and without counters: the
        same steps, the policies found by the event's instant against the local midnights of
        the effective dates (a copy rather than a branch, so that UTC sets pay nothing)."""
        saved = getcontext()
        if type(saved) is not EvaluationContext:
            setcontext(thread_context())
            try:
                return self._evaluate_zoned(customer, event, explain, only, runner=runner)
            finally:
                setcontext(saved)
        index = self._index.get(event["kind"])
        if index is None:
            return Decision(self.revision, {}, [], None, [], [], [], None)
        fused = index.fused
        if fused and not explain and only is None and runner is COMPILED:  # the hot path
            return fused[bisect_right(index.keys, event["time"])](customer, event)
        d = Decision(self.revision, {}, [], None, [], [], [], None)
        segments = index.segments
        policies = (segments[bisect_right(index.keys, event["time"])] if segments
                    else index.lookup(self.local_date(event)))
        if only is not None:
            wanted = set(only)
            policies = [p for p in policies if p.name in wanted]
        if not explain:
            runner.run(policies, customer, event, d, None)
            return finish(d, self._tier_rank, self._caps, None)
        reasons: list[Reason] = []
        runner.run(policies, customer, event, d, reasons)
        d.reasons = reasons
        return finish(d, self._tier_rank, self._caps, reasons)

    def _evaluate_periods(self, customer: dict[str, Any], event: dict[str, Any],
                          explain: bool = False, only: Iterable[str] | None = None, *,
                          runner: Runner = COMPILED,
                          state: Mapping[Window, int | Decimal] | None = None) -> Decision:
        """:meth:`evaluate` for a set with counters: the same selection, and each policy of a
        kind with counters reads its windows from ``state``."""
        saved = getcontext()
        if type(saved) is not EvaluationContext:
            setcontext(thread_context())
            try:
                return self._evaluate_periods(customer, event, explain, only, runner=runner,
                                              state=state)
            finally:
                setcontext(saved)
        index = self._index.get(event["kind"])
        if index is None:
            return Decision(self.revision, {}, [], None, [], [], [], None)
        fused = index.fused  # empty for a kind with counters
        if fused and not explain and only is None and runner is COMPILED:  # the hot path
            return fused[bisect_right(index.keys, event[index.key])](customer, event)
        d = Decision(self.revision, {}, [], None, [], [], [], None)
        segments = index.segments
        policies = (segments[bisect_right(index.keys, event[index.key])] if segments
                    else index.lookup(self.local_date(event)))
        if only is not None:
            wanted = set(only)
            policies = [p for p in policies if p.name in wanted]
        if not index.counters and not explain:  # the hot path's own steps
            runner.run(policies, customer, event, d, None)
            return finish(d, self._tier_rank, self._caps, None)
        reasons: list[Reason] | None = [] if explain else None
        if not index.counters:
            runner.run(policies, customer, event, d, reasons)
        else:
            zone, at = self.zone, event["time"]
            try:
                stories = [histories(p.counters, at, zone, state) if p.counters else None
                           for p in policies]
            except (TypeError, ValueError) as exc:
                raise EvaluationError("", "", 0, f"bad state: {exc}") from None
            runner.run_with_history(policies, customer, event, d, reasons, stories)
        d.reasons = reasons
        return finish(d, self._tier_rank, self._caps, reasons)

    def evaluate_interpreted(self, customer: dict[str, Any], event: dict[str, Any],
                             explain: bool = False, only: Iterable[str] | None = None) -> Decision:
        """:meth:`evaluate` by the reference interpreter (the specification)."""
        return self.evaluate(customer, event, explain, only, runner=INTERPRETED)


def _fused(policies: Sequence[CompiledPolicy], revision: str, tier_rank: dict[str, int],
           caps: tuple[tuple[str, Any], ...]) -> Callable[[dict[str, Any], dict[str, Any]], Decision]:
    """One segment's policies run by their compiled ``evaluate`` and finished, as one
    call: what ``runner.run`` and ``finish`` do for a compiled evaluation without explain,
    ``only`` or windows, without the runner's dispatch (the hot path of every caller).

    The decision names every policy before the first runs; the runner names each as it
    starts it, which differs only for a decision a failing policy throws away.
    """
    names = [p.info.name for p in policies]
    if not policies:
        def nothing(customer: dict[str, Any], event: dict[str, Any]) -> Decision:
            return Decision(revision, {}, [], None, [], [], [], None)

        return nothing
    if len(policies) == 1:  # the usual segment: no loop
        (policy,) = policies
        run_one = policy.module.evaluate
        name = names[0]

        def one(customer: dict[str, Any], event: dict[str, Any]) -> Decision:
            d = Decision(revision, {}, [], None, [], [name], [], None)
            try:
                run_one(customer, event, d)
            except Exception as exc:
                raise evaluation_error(policy, exc) from None
            return finish(d, tier_rank, caps, None)

        return one
    steps = tuple((p, p.module.evaluate) for p in policies)

    def many(customer: dict[str, Any], event: dict[str, Any]) -> Decision:
        d = Decision(revision, {}, [], None, [], names.copy(), [], None)
        p = None
        try:
            for p, run in steps:  # noqa: B007 - p names the policy that failed
                run(customer, event, d)
        except Exception as exc:
            raise evaluation_error(p, exc) from None
        return finish(d, tier_rank, caps, None)

    return many


def _build_index(policies: list[CompiledPolicy]) -> _KindIndex:
    points: set[date] = set()
    for p in policies:
        if p.info.effective_from is not None:
            points.add(p.info.effective_from)
        if p.info.effective_until is not None and p.info.effective_until < date.max:
            points.add(p.info.effective_until + timedelta(days=1))
    bounds = sorted(points)
    if (len(bounds) + 1) * len(policies) > _INDEX_BUDGET:
        # Worst case (many overlapping windows): filter per call instead of a huge table.
        active_total = 0
        segments: list[tuple[CompiledPolicy, ...]] = []
        starts = [date.min, *bounds]
        for start in starts:
            seg = tuple(p for p in policies if p.applies_on(start))
            active_total += len(seg)
            if active_total > _INDEX_BUDGET:
                return _KindIndex([], [], tuple(policies))
            segments.append(seg)
        return _KindIndex(bounds, segments)
    starts = [date.min, *bounds]
    return _KindIndex(bounds, [tuple(p for p in policies if p.applies_on(s)) for s in starts])


# -- loading ---------------------------------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def compile_policy(policy: n.Policy, schema: Schema, check: CheckResult,
                   generated: Generated | None = None, code: Any = None) -> CompiledPolicy:
    """Generate, verify and compile one checked policy (``generated`` and ``code``: its evaluate
    module and code object from the disk cache; the code is verified like freshly compiled code)."""
    if generated is None:
        generated = generate(policy, check, schema, "evaluate")

    def explain_source() -> tuple[str, dict[int, int]]:
        g = generate(policy, check, schema, "explain")
        return g.source, g.line_map

    module = compile_module(generated.source, f"<policy {policy.name}>", generated.line_map,
                            explain_source, code)
    info = PolicyInfo(
        name=policy.name, version=policy.version, effective_from=policy.effective_from,
        effective_until=policy.effective_until, kinds=tuple(policy.kinds),
        digest=_digest(policy.source + "".join(sorted({i.source for i in policy.imported.values()}))),
        file=policy.file, description=policy.description,
        rules=tuple(r.name for r in policy.rules),
    )
    interp = interpret(Interpreter(policy, schema, check.rounding, check.ranked))
    return CompiledPolicy(info, policy, check, generated, module, interp, schema)


#: Estimated bytes a checked and compiled policy keeps alive per byte of its source text (AST,
#: check result, generated source, code objects, interpreter closures). Measured: a 28.6 KB
#: policy of 500 rules grew RSS by about 2.0 MB per version held, so 72 bytes per byte.
COMPILED_BYTES_PER_SOURCE_BYTE = 72
#: Estimated compiled bytes the file cache may hold for files the latest set does not use
#: (older versions, kept so that a rollback or a ``loyalty diff`` against them is quick).
#: About 58 KB of policy text: a few versions of a mid-size policy, so that RSS after any
#: number of reloads stays within 1.2 times a fresh load (docs/performance.md). The latest
#: set's own files are kept whatever their size, since the set holds them anyway.
CACHE_BUDGET_BYTES = 4 * 1024 * 1024

_Key = tuple[str, str, str]


class _FileCache:
    """Checked and compiled policies of files already seen, keyed by schema, name and text.

    Reloading a directory where one file changed recompiles that file only: every file of
    the latest set built is kept (:meth:`keep_only`). Beyond those, the most recently used
    files are kept while their estimated compiled size stays within ``budget_bytes``, so
    memory is bounded by size across any number of reloads of distinct versions, not by a
    count of entries that may each be megabytes.
    """

    def __init__(self, budget_bytes: int = CACHE_BUDGET_BYTES) -> None:
        self.entries: OrderedDict[_Key, tuple[_FileResult, int]] = OrderedDict()
        self.budget_bytes = budget_bytes
        #: The files of the latest set built: never evicted until another set is built.
        self.latest: frozenset[_Key] = frozenset()
        #: Estimated bytes of the entries outside :attr:`latest`.
        self.spare_bytes = 0
        self.lock = threading.Lock()

    def get(self, key: _Key) -> _FileResult | None:
        with self.lock:
            hit = self.entries.get(key)
            if hit is None:
                return None
            self.entries.move_to_end(key)
            return hit[0]

    def put(self, key: _Key, value: _FileResult, text_bytes: int) -> None:
        with self.lock:
            size = text_bytes * COMPILED_BYTES_PER_SOURCE_BYTE
            old = self.entries.pop(key, None)
            if old is not None and key not in self.latest:
                self.spare_bytes -= old[1]
            self.entries[key] = (value, size)
            if key not in self.latest:
                self.spare_bytes += size
            self._evict()

    def keep_only(self, keys: Iterable[_Key]) -> None:
        """``keys`` are the files of the set just built: kept whatever their size, while the
        files of the set before now count against the budget like any older version."""
        with self.lock:
            self.latest = frozenset(keys)
            self.spare_bytes = sum(size for key, (_, size) in self.entries.items()
                                   if key not in self.latest)
            self._evict()

    def _evict(self) -> None:
        # Least recently used first; the latest set's files are skipped, not evicted.
        if self.spare_bytes <= self.budget_bytes:
            return
        for key in list(self.entries):
            if self.spare_bytes <= self.budget_bytes:
                break
            if key in self.latest:
                continue
            self.spare_bytes -= self.entries.pop(key)[1]

    def clear(self) -> None:
        """Forget every file (tests measure memory from a clean start)."""
        with self.lock:
            self.entries.clear()
            self.latest = frozenset()
            self.spare_bytes = 0


@dataclass
class _FileResult:
    checked: list[tuple[n.Policy, CheckResult]]
    diagnostics: list[Diagnostic]
    compiled: dict[int, CompiledPolicy] = field(default_factory=dict)
    #: Generated modules and their code objects read from the disk cache (dsl.artifacts), by
    #: id of their policy: verified again before they run.
    generated: dict[int, tuple[Generated, Any]] = field(default_factory=dict)
    #: Where to write this file's disk cache entry once compiled (None: read from it, or off).
    store_as: tuple[Path, str] | None = None


_CACHE = _FileCache()


def _cache_key(file: str, text: str, schema: Schema, shared: str = "") -> _Key:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass"))
    if shared:
        digest.update(b"\0use\0" + shared.encode())
    return (schema.digest, file, digest.hexdigest())


#: A ``use`` line (it always starts a line: members do), and the block it names.
_USE_LINE = re.compile(r"^[ \t]*use\b([^\n]*)", re.MULTILINE)
_USE_FROM = re.compile(r"\bfrom[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]*(?:#.*)?$")
#: A file that may hold definitions blocks (top-level blocks start a line).
_DEFINITIONS_LINE = re.compile(r"^definitions\b", re.MULTILINE)


def _shared_digest(text: str, library: Library) -> str:
    """What a file's cached result depends on besides its text: the definitions blocks its
    ``use`` lines name, and the ones those read ("" when it has no ``use`` line). A ``use``
    line this scan cannot read (split over lines) makes it depend on every block."""
    lines = _USE_LINE.findall(text)
    if not lines:
        return ""
    modules = [m[1] for rest in lines if (m := _USE_FROM.search(rest))]
    if len(modules) != len(lines):
        return library.digest()
    return library.digest(modules)


def holds_definitions(text: str) -> bool:
    """Whether a file's text may hold a ``definitions`` block (a cheap scan, no parse)."""
    return _DEFINITIONS_LINE.search(text) is not None


_PARSED_DEFINITIONS: OrderedDict[tuple[str, str], list[n.Policy | n.Definitions]] = OrderedDict()
_PARSED_LOCK = threading.Lock()
_LIBRARIES: OrderedDict[tuple[str, tuple[tuple[str, int], ...]], Library] = OrderedDict()


def definitions_in(file: str, text: str) -> list[n.Policy | n.Definitions]:
    """The parsed blocks of a file holding definitions (kept: a reload reads them every time).

    Raises PolicyError when the file does not parse."""
    key = (file, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
    with _PARSED_LOCK:
        hit = _PARSED_DEFINITIONS.get(key)
    if hit is not None:
        return hit
    blocks = parse_file(text, file)
    with _PARSED_LOCK:
        _PARSED_DEFINITIONS[key] = blocks
        while len(_PARSED_DEFINITIONS) > 256:
            _PARSED_DEFINITIONS.popitem(last=False)
    return blocks


def library_of(sources: Sequence[tuple[str, str]], schema: Schema
               ) -> tuple[Library, list[Diagnostic], set[str]]:
    """The shared definitions of a set of files, their parse problems, and which files hold
    nothing but definitions."""
    blocks: list[n.Definitions] = []
    diagnostics: list[Diagnostic] = []
    only_definitions: set[str] = set()
    for file, text in sources:
        if not holds_definitions(text):
            continue
        try:
            parsed = definitions_in(file, text)
        except PolicyError as exc:
            diagnostics.extend(exc.diagnostics)
            only_definitions.add(file)  # its problems are reported once, here
            continue
        found = [b for b in parsed if isinstance(b, n.Definitions)]
        if not found:
            continue
        blocks.extend(found)
        if len(found) == len(parsed):
            only_definitions.add(file)
            continue
        lines = text.splitlines()
        for block in found:
            line = block.name_span.line
            diagnostics.append(Diagnostic(
                file, block.name_span, "mixed_definitions",
                f"definitions {block.name} share a file with policies",
                "move the definitions to a file of their own, so that every policy file "
                "of the programme can find them", "error",
                lines[line - 1] if 0 < line <= len(lines) else ""))
    # The same blocks under the same schema give the same library: kept, so a reload whose
    # definitions did not change does not check them again.
    key = (schema.digest, tuple((b.file, id(b)) for b in blocks))
    with _PARSED_LOCK:
        library = _LIBRARIES.get(key)
    if library is None or any(a is not b for a, b in zip(library.blocks.values(), blocks,
                                                          strict=False)):
        library = Library(schema, blocks)
        with _PARSED_LOCK:
            _LIBRARIES[key] = library
            while len(_LIBRARIES) > 8:
                _LIBRARIES.popitem(last=False)
    return library, diagnostics, only_definitions


def _front_end(file: str, text: str, schema: Schema, library: Library, key: _Key,
               directory: Path | None) -> _FileResult:
    """One file parsed, resolved and checked: from this process's cache, else from the disk
    cache in ``directory`` (None: off), else afresh (then stored once compiled)."""
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    shared = _shared_digest(text, library)
    disk_text = text + "\0use\0" + shared if shared else text
    disk_key = artifacts.entry_key(schema.digest, file, disk_text) if directory is not None else ""
    if directory is not None:
        entry = artifacts.load(directory, disk_key)
        if entry is not None:
            result = _FileResult([(p, c) for p, c, _, _ in entry],
                                 [d for _, c, _, _ in entry for d in c.diagnostics],
                                 generated={id(p): (g, code) for p, _, g, code in entry})
            _CACHE.put(key, result, len(text))
            return result
    try:
        policies = parse(text, file)
    except PolicyError as exc:
        return _FileResult([], list(exc.diagnostics))
    result = _FileResult([], [], store_as=(directory, disk_key) if directory is not None else None)
    for policy in policies:
        policy, problems = library.resolve(policy)
        check = check_policy(schema, policy)
        result.diagnostics.extend(problems)
        result.diagnostics.extend(check.diagnostics)
        result.checked.append((policy, check))
    if not any(d.severity == "error" for d in result.diagnostics):
        _CACHE.put(key, result, len(text))
    return result


_GC_LOCK = threading.Lock()
#: How many builds run now, and whether the collector was on when the first began.
_GC_PAUSE = {"builds": 0, "was_enabled": False}


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while sets are built, then as it was.

    A build allocates hundreds of thousands of objects that all live on (ASTs, check
    results, whether parsed or read from the disk cache) and frees almost nothing by the
    collector (about 500 objects for 1,000 policies: reference counting frees the rest).
    With the collector on, every 700 allocations start a pass, and the full passes walk an
    ever larger heap: 0.4-0.5 s of CPU of the 1.0 s it takes to prepare 1,000 policies from
    the disk cache (issue 20). Nested or concurrent builds (a reload thread) share one
    pause; the last one to finish turns the collector back on if it was on before. Other
    threads' cyclic garbage (a served call makes little) waits for the end of the build:
    under a second for 1,000 policies from the disk cache, about 3 s cold.
    """
    with _GC_LOCK:
        if _GC_PAUSE["builds"] == 0:
            _GC_PAUSE["was_enabled"] = gc.isenabled()
            gc.disable()
        _GC_PAUSE["builds"] += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_PAUSE["builds"] -= 1
            if _GC_PAUSE["builds"] == 0 and _GC_PAUSE["was_enabled"]:
                gc.enable()


def build(sources: Sequence[tuple[str, str]], schema: Schema,
          digest_names: Sequence[str] | None = None) -> PolicySet:
    """Run the pipeline over (file name, text) pairs; raise PolicyError with every diagnostic.

    ``digest_names`` are the names the revision digest uses for the files (by
    default their display names); loading a directory passes paths relative to
    it, so the revision does not depend on the current directory. A file may hold
    ``definitions`` blocks instead of policies (:mod:`dsl.analysis.shared`): the
    policies' ``use`` lines name them. The cyclic garbage collector is paused meanwhile
    (:func:`_collector_paused`).
    """
    with _collector_paused():
        return _build(sources, schema, digest_names)


def _build(sources: Sequence[tuple[str, str]], schema: Schema,
           digest_names: Sequence[str] | None) -> PolicySet:
    """:func:`build`'s body, run with the collector paused."""
    library, diagnostics, only_definitions = library_of(sources, schema)
    diagnostics.extend(library.diagnostics)
    checked: list[tuple[n.Policy, CheckResult]] = []
    results: list[_FileResult] = []
    seen: dict[str, n.Policy] = {}
    keys: list[_Key] = []
    directory = artifacts.cache_dir()  # once a build: it makes and checks the directory
    for file, text in sources:
        key = _cache_key(file, text, schema, _shared_digest(text, library))
        keys.append(key)
        if file in only_definitions:
            continue
        front = _front_end(file, text, schema, library, key, directory)
        results.append(front)
        diagnostics.extend(front.diagnostics)
        for policy, result in front.checked:
            first = seen.get(policy.name)
            if first is not None:
                span = policy.header_spans.get("name", policy.span)
                lines = text.splitlines()
                diagnostics.append(Diagnostic(
                    file, span, "duplicate_policy",
                    f"policy {policy.name} is already defined at {first.file}:"
                    f"{first.header_spans.get('name', first.span).line}",
                    "give every policy its own name", "error",
                    lines[span.line - 1] if 0 < span.line <= len(lines) else ""))
            else:
                seen[policy.name] = policy
            checked.append((policy, result))
    diagnostics.extend(_counter_conflicts(checked))
    if len(checked) > MAX_POLICIES:
        diagnostics.append(Diagnostic(sources[-1][0], Span(1, 1, 1, 2), "too_large",
                                      f"the set has {len(checked)} policies; the limit is "
                                      f"{MAX_POLICIES}", "split it into several services"))
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        raise PolicyError(diagnostics)
    for front in results:
        for policy, result in front.checked:
            if id(policy) in front.compiled:
                continue
            try:
                front.compiled[id(policy)] = compile_policy(policy, schema, result,
                                                            *front.generated.get(id(policy), ()))
            except (UnsafeCode, SyntaxError, RecursionError, MemoryError) as exc:
                # A code generator bug must not take the service down: refuse the policy instead.
                span = policy.header_spans.get("name", policy.span)
                diagnostics.append(Diagnostic(
                    policy.file, span, "internal_error",
                    f"the compiler could not compile policy {policy.name} ({type(exc).__name__}: "
                    f"{str(exc)[:200]})", "this is a bug in the loyalty compiler; please report it "
                    "with the policy file"))
    for front in results:
        if front.store_as is not None and len(front.compiled) == len(front.checked):
            artifacts.store(*front.store_as,
                            [(policy, result, front.compiled[id(policy)].generated,
                              front.compiled[id(policy)].module.code)
                             for policy, result in front.checked],
                            {id(policy): list(n.walk(policy)) for policy, _ in front.checked})
            front.store_as = None
    compiled = [front.compiled[id(policy)] for front in results for policy, _ in front.checked
                if id(policy) in front.compiled]
    if len(compiled) != len(checked):
        raise PolicyError(diagnostics)
    compiled.sort(key=lambda c: c.name)
    _CACHE.keep_only(keys)
    digest = hashlib.sha256(schema.digest.encode())
    names = list(digest_names) if digest_names is not None else []
    # Files past the named ones (a programme's definitions read for a file or a folder
    # checked on its own) go by their display names.
    names += [f for f, _ in sources[len(names):]]
    for file, text in sorted(zip(names, (t for _, t in sources), strict=True)):
        digest.update(b"\0" + file.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(text.encode("utf-8", "surrogatepass"))
    return PolicySet(schema, compiled, "r" + digest.hexdigest()[:12],
                     warnings=sort_diagnostics(d for d in diagnostics if d.severity != "error"))


def _counter_conflicts(checked: Sequence[tuple[n.Policy, CheckResult]]) -> list[Diagnostic]:
    """A counter is one set of entries per customer, whichever policy names it: every policy
    that declares it must agree on what it holds (``count`` or ``sum``)."""
    first: dict[str, tuple[n.Policy, n.Counter]] = {}
    out: list[Diagnostic] = []
    for policy, _ in checked:
        for c in policy.counters:
            seen = first.setdefault(c.name, (policy, c))
            if seen[0] is not policy and seen[1].kind != c.kind:
                lines = policy.source.splitlines()
                line = c.span.line
                out.append(Diagnostic(
                    policy.file, c.name_span, "counter_conflict",
                    f"counter {c.name} is a {c.kind} here but a {seen[1].kind} in policy "
                    f"{seen[0].name} ({seen[0].file}:{seen[1].span.line}): the policies share "
                    "its entries", f"declare it `{seen[1].kind}` in both, or rename one",
                    "error", lines[line - 1] if 0 < line <= len(lines) else ""))
    return out


def load_directory(directory: Path | str, *, schema: Schema | None = None) -> PolicySet:
    """Load, check and compile every policy below ``directory`` into one set.

    The schema is the standard one extended by ``directory/schema.toml`` unless
    given. Raises :class:`PolicyError` (every diagnostic) or ``SchemaError``.
    """
    schema = schema or Schema.for_directory(directory)
    return build(read_sources(directory), schema, digest_names=digest_names(directory))


def load_source(text: str, *, file: str = "<policy>", schema: Schema | None = None) -> PolicySet:
    """Load one policy text (which may hold several policies) into a set."""
    return build([(file, text)], schema or Schema.load())


def check_directory(directory: Path | str, *, schema: Schema | None = None) -> list[Diagnostic]:
    """Every diagnostic (errors and warnings) for a policy directory; never raises for policies."""
    try:
        policy_set = load_directory(directory, schema=schema)
    except PolicyError as exc:
        return exc.diagnostics
    return policy_set.warnings

