"""A stand-in for the language's periods and limits, honouring the contract the service codes
against (``PolicySet.windows``, ``evaluate(..., state=)``, ``Decision.counted``), until the
language half lands.

:class:`StandInPolicySet` wraps a real policy set and adds two rules an analyst would write:
- "a bonus of 100 points at most once a day" (counter ``daily_bonus``, one entry per bonus,
  the UTC day of the event);
- "5% cashback on up to 1500.00 of purchases each calendar quarter" (counter
  ``quarter_spend``; a purchase that crosses the cap earns 5% on the part below it).

``python -m stand_in_serve`` (:mod:`stand_in_serve`) serves the bundled policies through it.
``LOYALTY_TEST_DECIDE_DELAY_S`` makes every stateful evaluation sleep that long: inside an
Apply that is inside the store's transaction (the fault tests kill a worker there), and with
``LOYALTY_TEST_DECIDE_PID_FILE`` it first appends its process id to that file.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from dsl.decision import Decision

CAP = Decimal("1500.00")
RATE = Decimal("0.05")


@dataclass(frozen=True, slots=True)
class Window:
    """The language's window: the entries of ``counter`` in ``[start, end)``."""

    counter: str
    start: dt.datetime | None
    end: dt.datetime


@dataclass(slots=True)
class CountedDecision(Decision):
    """A decision that says what it adds to each counter."""

    counted: dict[str, Any] = field(default_factory=dict)


def _quarter(at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    first = (at.month - 1) // 3 * 3 + 1
    start = dt.datetime(at.year, first, 1, tzinfo=dt.UTC)
    end = dt.datetime(at.year + (first == 10), 1 if first == 10 else first + 3, 1, tzinfo=dt.UTC)
    return start, end


class StandInPolicySet:
    """A real policy set plus the two period rules above."""

    #: It reads the two windows below, whether or not the inner set reads any.
    reads_state = True

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def windows(self, customer: dict[str, Any], event: dict[str, Any]) -> list[Window]:
        """The UTC day of the event, and its calendar quarter for purchases."""
        at = event["time"]
        day = dt.datetime(at.year, at.month, at.day, tzinfo=dt.UTC)
        out = [Window("daily_bonus", day, day + dt.timedelta(days=1))]
        if event.get("kind") == "purchase":
            out.append(Window("quarter_spend", *_quarter(at)))
        return out

    def evaluate(self, customer: dict[str, Any], event: dict[str, Any], explain: bool = False,
                 only: Any = None, *, state: Any = None, **kwargs: Any) -> Decision:
        """The inner decision, plus the bonus and the cashback the state still allows."""
        inner = self._inner.evaluate(customer, event, explain, only) if explain or only \
            else self._inner.evaluate(customer, event)
        if state is None:
            return inner
        delay = float(os.environ.get("LOYALTY_TEST_DECIDE_DELAY_S") or 0)
        if delay:
            pid_file = os.environ.get("LOYALTY_TEST_DECIDE_PID_FILE")
            if pid_file:  # which worker is inside the transaction, for the kill -9 test
                with open(pid_file, "a") as out:
                    out.write(f"{os.getpid()}\n")
            time.sleep(delay)
        decision = CountedDecision(inner.revision, dict(inner.awards), inner.benefits, inner.tier,
                                   inner.tags, inner.policies, inner.fired, inner.reasons)
        windows = self.windows(customer, event)
        if state[windows[0]] < 1:
            decision.awards["bonus"] = 100
            decision.counted["daily_bonus"] = 1
        if len(windows) > 1:
            room = max(CAP - Decimal(state[windows[1]]), Decimal(0))
            qualifying = min(Decimal(event["amount"]), room)
            if qualifying:
                decision.awards["cashback"] = (qualifying * RATE).quantize(Decimal("0.01"), ROUND_DOWN)
                decision.counted["quarter_spend"] = qualifying
        return decision
