"""Values rendered the way policy test files write them (decimals quoted, dates bare), so
an expected-against-actual line can be pasted back into the file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from dsl.decision import Decision, format_duration


def show_value(value: Any) -> str:
    """A value as a test file would write it: decimals and durations quoted, dates bare."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return f'"{value}"'
    if isinstance(value, timedelta):
        return f'"{format_duration(value)}"'
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        return show_text(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {show_value(v)}" for k, v in sorted(value.items())) + " }"
    return str(value)


def show_awards(awards: Mapping[str, int | Decimal]) -> str:
    """Awards as a test file writes them, ``{ miles = 1250 }``; ``{}`` for none."""
    return show_value(dict(awards))


def show_benefits(benefits: Sequence[tuple[str, Mapping[str, Any] | None]]) -> str:
    """Benefit names, sorted, each with its parameters when they are compared."""
    parts = []
    for name, params in sorted(benefits, key=lambda b: b[0]):
        if params is None:
            parts.append(show_text(name))
        else:
            parts.append(f"{{ name = {show_text(name)}, with = {show_value(dict(params))} }}")
    return "[" + ", ".join(parts) + "]"


def show_decision(decision: Decision) -> str:
    """A decision's awards, for a case that expected an error and got a decision."""
    return f"awards {show_awards(decision.awards)}"


def show_text(text: str) -> str:
    """A text as a TOML basic string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
