"""Runners: the one interface behind which compiled and interpreted evaluation differ.

As cel-python's ``Runner`` (an interpreter and a transpiler behind one interface), a
:class:`Runner` runs the policies an evaluation selected into one decision. Everything
around that is written once, in :meth:`dsl.policyset.PolicySet.evaluate`: the
evaluation context, the index lookup by event kind and effective date, the ``only``
filter, the empty decision and ``finish`` (caps, zero awards, benefits, tier, tags).
So the two runners can differ only in how each policy runs:

- :data:`COMPILED` calls the policy's generated Python (``evaluate``, or ``explain``
  when reasons are asked for): the hot path;
- :data:`INTERPRETED` walks the policy's AST with :class:`~dsl.backend.interpreter.Interpreter`:
  the executable specification the differential tests hold the compiled runner to.

``policy_set.evaluate(customer, event, explain, only, runner=INTERPRETED)`` picks one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from dsl.backend.compiler import CompiledModule
from dsl.backend.interpreter import fault_message
from dsl.decision import Decision, Reason
from dsl.errors import EvaluationError

#: A policy's entry point: ``run(customer, event, decision, reasons)`` adds to the decision.
PolicyFunction = Callable[..., None]


class _Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def file(self) -> str: ...


class Runnable(Protocol):
    """What a runner needs of a loaded policy (:class:`dsl.policyset.CompiledPolicy` is one)."""

    @property
    def info(self) -> _Named: ...

    @property
    def module(self) -> CompiledModule: ...

    @property
    def interpreted(self) -> PolicyFunction: ...


class Runner(ABC):
    """Runs the policies one evaluation selected, in order, into its decision."""

    #: How the runner is named in tests and on the command line (``compiled``, ``interpreted``).
    name: str

    @abstractmethod
    def run(self, policies: Sequence[Runnable], customer: dict[str, Any], event: dict[str, Any],
            d: Decision, reasons: list[Reason] | None) -> None:
        """Run each of ``policies`` on the prepared ``customer`` and ``event``, adding to ``d``
        and, when ``reasons`` is a list, to it; each policy's name goes into ``d.policies``
        before it runs. A fault raises :class:`~dsl.errors.EvaluationError` naming the
        policy, its file and the policy line. Called in the evaluation context."""

    def run_with_history(self, policies: Sequence[Runnable], customer: dict[str, Any],
                         event: dict[str, Any], d: Decision, reasons: list[Reason] | None,
                         histories: Sequence[dict[str, Any] | None]) -> None:
        """:meth:`run` for a set with counters: ``histories[i]`` is the ``history`` of
        ``policies[i]`` (None for a policy without counters). A runner that does not know
        counters runs a selection without any; both built-in runners override this."""
        if any(h is not None for h in histories):
            raise NotImplementedError(f"the {self.name} runner does not run policies with counters")
        self.run(policies, customer, event, d, reasons)

    def __repr__(self) -> str:
        return f"<{self.name} runner>"


class CompiledRunner(Runner):
    """Runs each policy's generated Python: ``evaluate``, or ``explain`` with reasons."""

    name = "compiled"

    def run(self, policies: Sequence[Runnable], customer: dict[str, Any], event: dict[str, Any],
            d: Decision, reasons: list[Reason] | None) -> None:
        applied = d.policies
        p = None
        try:
            if reasons is None:
                for p in policies:
                    applied.append(p.info.name)
                    p.module.evaluate(customer, event, d)
            else:
                for p in policies:
                    applied.append(p.info.name)
                    p.module.explain(customer, event, d, reasons)
        except Exception as exc:
            raise evaluation_error(p, exc) from None

    def run_with_history(self, policies: Sequence[Runnable], customer: dict[str, Any],
                         event: dict[str, Any], d: Decision, reasons: list[Reason] | None,
                         histories: Sequence[dict[str, Any] | None]) -> None:
        applied = d.policies
        p = None
        try:
            for p, h in zip(policies, histories, strict=True):
                applied.append(p.info.name)
                if reasons is None:
                    if h is None:
                        p.module.evaluate(customer, event, d)
                    else:
                        p.module.evaluate(customer, event, d, h)
                elif h is None:
                    p.module.explain(customer, event, d, reasons)
                else:
                    p.module.explain(customer, event, d, reasons, h)
        except Exception as exc:
            raise evaluation_error(p, exc) from None


class InterpretedRunner(Runner):
    """Runs each policy by the reference interpreter (which raises its own EvaluationError)."""

    name = "interpreted"

    def run(self, policies: Sequence[Runnable], customer: dict[str, Any], event: dict[str, Any],
            d: Decision, reasons: list[Reason] | None) -> None:
        applied = d.policies
        for p in policies:
            applied.append(p.info.name)
            p.interpreted(customer, event, d, reasons)

    def run_with_history(self, policies: Sequence[Runnable], customer: dict[str, Any],
                         event: dict[str, Any], d: Decision, reasons: list[Reason] | None,
                         histories: Sequence[dict[str, Any] | None]) -> None:
        applied = d.policies
        for p, h in zip(policies, histories, strict=True):
            applied.append(p.info.name)
            p.interpreted(customer, event, d, reasons, h)


#: The generated code: what the service runs.
COMPILED = CompiledRunner()
#: The reference interpreter: the specification.
INTERPRETED = InterpretedRunner()
#: Every runner, by name.
RUNNERS: dict[str, Runner] = {r.name: r for r in (COMPILED, INTERPRETED)}


def evaluation_error(p: Runnable | None, exc: BaseException) -> EvaluationError:
    """A fault in compiled policy ``p`` as the interpreter reports it: the policy line comes
    from the generated code's line maps, read along the traceback."""
    if p is None:
        return EvaluationError("?", "?", 0, fault_message(exc))
    line = 0
    tb = exc.__traceback__
    maps = p.module.line_maps
    while tb is not None:
        line_map = maps.get(tb.tb_frame.f_code.co_filename)
        if line_map is not None:
            line = line_map.get(tb.tb_lineno, 0)
        tb = tb.tb_next
    return EvaluationError(p.info.name, p.info.file, line, fault_message(exc))
