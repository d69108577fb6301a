"""``loyalty usage``: which rules never fire, which fire on nearly every event, which are shadowed.

It reads the service's Prometheus metrics (``loyalty serve --metrics-port N``): the per-rule
hit counters ``loyalty_rule_hits_total{policy,rule}`` and the per-policy counters
``loyalty_policy_applied_total{policy}`` (how many events each policy applied to: the events
of its kinds within its effective window). One scrape covers the time since the service
started; two (``--since`` an earlier scrape saved to a file) cover the period between them.

Rules are judged against the events their own policy applied to:

- **never fired**: 0 hits while the policy applied at least once;
- **fired on nearly every event**: hits >= ``--always`` percent of the policy's events
  (a rule with no condition is expected there, and is marked so);
- **shadowed in practice** (with ``--policies DIR``, which gives the groups): a group member
  that never fired while the group applied another member. For ``takes first``, when an
  earlier member fired on every event the policy applied to, the member was never even
  reached; otherwise the metrics cannot tell "qualified but lost" from "never qualified".
- policies that never applied are listed once, not rule by rule.

Exit status 0 with a report, 2 when the metrics cannot be read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsl.front import nodes as n

from ._load import load

RULE_HITS = "loyalty_rule_hits"
POLICY_APPLIED = "loyalty_policy_applied"
#: The longest metrics text read, so that a wrong URL cannot fill memory.
MAX_METRICS_BYTES = 64 * 1024 * 1024
#: The most samples of the two counters read from one scrape (a series has two, ``_total``
#: and ``_created``; one series a rule and one a policy): far beyond any programme. The
#: parser holds about 1 KB a sample, so this bounds its memory to about 100 MB where a
#: scrape of a million series took 1 GiB; counted before parsing.
MAX_SAMPLES = 100_000
#: The largest count read: a 64-bit counter's (a larger one is not a count of events).
MAX_COUNT = 2.0**64


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``usage`` verb."""
    p = subparsers.add_parser(
        "usage", help="review rule usage from the service's metrics (rules to kill)",
        description="Read the per-rule hit counts from a running service's /metrics (or a saved "
                    "scrape) and list rules that never fired, rules that fired on nearly every "
                    "event their policy applied to, and rules shadowed in practice.")
    p.add_argument("--metrics", required=True, metavar="URL_OR_FILE",
                   help="the service's metrics: http://HOST:PORT/metrics, or a file holding a scrape")
    p.add_argument("--since", metavar="URL_OR_FILE",
                   help="an earlier scrape (a file saved with --save, or curl): the period is "
                        "from it to --metrics; without it, since the service started")
    p.add_argument("--save", metavar="FILE", help="also write the --metrics scrape to FILE "
                   "(the start of a later period)")
    p.add_argument("--policies", metavar="DIR",
                   help="the policy directory the service serves: adds groups (shadowed rules) "
                        "and which rules have no condition")
    p.add_argument("--always", type=float, default=95.0, metavar="PERCENT",
                   help="list rules that fired on at least this share of their policy's events "
                        "(default 95)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(run=run)


# -- reading -----------------------------------------------------------------------------------


@dataclass
class Scrape:
    """The counters ``loyalty usage`` reads from one scrape."""

    rules: dict[tuple[str, str], float] = field(default_factory=dict)
    policies: dict[str, float] = field(default_factory=dict)


class MetricsError(Exception):
    """The metrics could not be read or hold none of the service's counters."""


def read_text(source: str) -> str:
    """The exposition text at a URL (http/https) or in a file."""
    if source.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(source, timeout=10) as reply:
                data: bytes = reply.read(MAX_METRICS_BYTES + 1)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise MetricsError(f"cannot read {source}: {getattr(exc, 'reason', exc)}") from None
    else:
        try:
            with open(source, "rb") as f:
                data = f.read(MAX_METRICS_BYTES + 1)
        except OSError as exc:
            raise MetricsError(f"cannot read {source}: {exc.strerror or exc}") from None
    if len(data) > MAX_METRICS_BYTES:
        raise MetricsError(f"{source}: more than {MAX_METRICS_BYTES // (1024 * 1024)} MiB of metrics")
    return data.decode("utf-8", errors="replace")


def parse_scrape(text: str, source: str) -> Scrape:
    """The rule and policy counters of a Prometheus text exposition."""
    # Imported here, not at the top: `loyalty` imports every verb's module at start, and
    # prometheus_client picks its multiprocess mode (--workers N) when first imported, so
    # importing it before `serve` sets PROMETHEUS_MULTIPROC_DIR would lose the workers' metrics.
    from prometheus_client.parser import text_fd_to_metric_families

    scrape = Scrape()
    try:
        for family in text_fd_to_metric_families(_our_lines(text, source)):
            if family.name not in (RULE_HITS, POLICY_APPLIED):
                continue
            for s in family.samples:
                if not s.name.endswith("_total"):
                    continue  # _created timestamps
                if not (math.isfinite(s.value) and 0 <= s.value < MAX_COUNT):
                    raise MetricsError(
                        f"{source}: {s.name}{{{_labels(s.labels)}}} is {s.value}, not a count of "
                        "events: is the scrape damaged?")
                if family.name == RULE_HITS:
                    scrape.rules[(printable(s.labels["policy"]), printable(s.labels["rule"]))] = s.value
                else:
                    scrape.policies[printable(s.labels["policy"])] = s.value
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise MetricsError(f"{source} is not Prometheus text exposition "
                           f"({printable(str(exc))[:200]})") from None
    if not scrape.rules and not scrape.policies:
        raise MetricsError(f"{source} has no {RULE_HITS} or {POLICY_APPLIED} counters: is it a "
                           "loyalty service's /metrics (loyalty serve --metrics-port N)?")
    return scrape


def printable(label: str) -> str:
    """A label without control or formatting characters (an ESC sequence would drive the
    reader's terminal; a bidirectional override would hide what it says)."""
    return "".join(ch for ch in label if ch.isprintable())


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{printable(k)}="{printable(v)[:80]}"' for k, v in sorted(labels.items()))


def _our_lines(text: str, source: str) -> Iterator[str]:
    """The lines of ``text`` about the two counters, after checking there are at most
    MAX_SAMPLES samples of them.

    The parser holds every sample of a family before it yields the family, so they are
    counted here first, a line at a time and keeping none, and only these lines reach it:
    a scrape of other metrics costs nothing, and one of too many samples is refused
    before anything is parsed.
    """
    samples = 0
    for line in _lines(text):
        if line.lstrip().startswith((RULE_HITS, POLICY_APPLIED)):
            samples += 1
            if samples > MAX_SAMPLES:
                raise MetricsError(f"{source}: more than {MAX_SAMPLES:,} samples of {RULE_HITS} "
                                   f"and {POLICY_APPLIED}: not one service's rules")
    for line in _lines(text):
        bare = line.lstrip()
        if bare.startswith("#"):
            parts = bare.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE") and parts[2].startswith(
                    (RULE_HITS, POLICY_APPLIED)):
                yield line
        elif bare.startswith((RULE_HITS, POLICY_APPLIED)):
            yield line


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text``, each with its newline, one at a time (no list, no copy)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def period(end: Scrape, start: Scrape | None) -> tuple[Scrape, list[str]]:
    """The counts between two scrapes (and notes); a counter that went down means a restart."""
    if start is None:
        return end, []
    notes: list[str] = []
    if any(v < start.rules.get(k, 0) for k, v in end.rules.items()) or any(
            v < start.policies.get(k, 0) for k, v in end.policies.items()):
        notes.append("a counter went down between the scrapes (the service restarted): "
                     "counting from the restart, as if there were no --since")
        return end, notes
    return Scrape({k: v - start.rules.get(k, 0) for k, v in end.rules.items()},
                  {k: v - start.policies.get(k, 0) for k, v in end.policies.items()}), notes


# -- the review ----------------------------------------------------------------------------------


@dataclass
class RuleUse:
    policy: str
    rule: str
    hits: int
    applied: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "rule": self.rule, "hits": self.hits,
                "policy_applied": self.applied, "note": self.note}


@dataclass
class Review:
    """What the counters say about each rule over the period."""

    never_fired: list[RuleUse] = field(default_factory=list)
    always_fired: list[RuleUse] = field(default_factory=list)
    shadowed: list[RuleUse] = field(default_factory=list)
    idle_policies: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"never_fired": [r.to_dict() for r in self.never_fired],
                "always_fired": [r.to_dict() for r in self.always_fired],
                "shadowed": [r.to_dict() for r in self.shadowed],
                "idle_policies": self.idle_policies, "notes": self.notes}


def review(counts: Scrape, always: float, groups: dict[str, list[n.Group]] | None = None,
           unconditional: set[tuple[str, str]] | None = None) -> Review:
    """Sort the rules into never fired, fired on nearly every event and shadowed.

    ``groups`` (policy -> its groups) and ``unconditional`` ((policy, rule) without ``when``)
    come from the policy directory, when given.
    """
    out = Review()
    policies = sorted({p for p, _ in counts.rules} | set(counts.policies))
    out.idle_policies = [p for p in policies if counts.policies.get(p, 0) == 0]
    member_of: dict[tuple[str, str], n.Group] = {}
    for policy, gs in (groups or {}).items():
        for g in gs:
            for r in g.rules:
                member_of[(policy, r.name)] = g
    for (policy, rule), raw_hits in sorted(counts.rules.items()):
        applied = int(counts.policies.get(policy, 0))
        hits = int(raw_hits)
        if applied == 0:
            continue
        use = RuleUse(policy, rule, hits, applied)
        group = member_of.get((policy, rule))
        if hits == 0 and group is not None:
            siblings = [(r.name, int(counts.rules.get((policy, r.name), 0))) for r in group.rules]
            chosen = [(name, h) for name, h in siblings if h > 0]
            if chosen:
                earlier = [(name, h) for name, h in siblings[:[s[0] for s in siblings].index(rule)]
                           if h >= applied]
                won = ", ".join(f"{name} {h}" for name, h in chosen)
                if group.mode == "first" and earlier:
                    use.note = (f"group {group.name} (takes first): {earlier[0][0]} fired on every "
                                "event before it, so it was never reached")
                else:
                    mode = "takes first" if group.mode == "first" else f"takes best {group.currency}"
                    use.note = (f"group {group.name} ({mode}) applied {won}, never this rule: it "
                                "lost or never qualified (the metrics cannot tell which)")
                out.shadowed.append(use)
                continue
        if hits == 0:
            out.never_fired.append(use)
        elif hits * 100 >= always * applied:
            if unconditional is not None and (policy, rule) in unconditional and group is None:
                use.note = "no condition: fires on every event by design"
            out.always_fired.append(use)
    return out


def _share(use: RuleUse) -> str:
    return f"{use.hits:,}/{use.applied:,} ({100 * use.hits / use.applied:.1f}%)"


def render(r: Review, always: float, source: str) -> list[str]:
    """The review for people."""
    lines = [f"rule usage from {source}", *[f"note: {x}" for x in r.notes]]
    lines.append(f"never fired ({len(r.never_fired)}):")
    lines += [f"  {u.policy}.{u.rule}: 0 of {u.applied:,} events" for u in r.never_fired] or ["  none"]
    lines.append(f"fired on at least {always:g}% of their policy's events ({len(r.always_fired)}):")
    lines += [f"  {u.policy}.{u.rule}: {_share(u)}{f' ({u.note})' if u.note else ''}"
              for u in r.always_fired] or ["  none"]
    lines.append(f"shadowed in practice ({len(r.shadowed)}):")
    lines += [f"  {u.policy}.{u.rule}: 0 of {u.applied:,} events; {u.note}" for u in r.shadowed] or ["  none"]
    if r.idle_policies:
        lines.append(f"policies that applied to no event ({len(r.idle_policies)}): "
                     f"{', '.join(r.idle_policies)}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Read the scrapes, review, print; return the exit status."""
    if not 0 < args.always <= 100:
        print(f"loyalty usage: --always must be a percentage above 0 and at most 100, not {args.always:g}",
              file=sys.stderr)
        return 2
    groups: dict[str, list[n.Group]] | None = None
    unconditional: set[tuple[str, str]] | None = None
    if args.policies:
        loaded = load(Path(args.policies), "usage")
        if isinstance(loaded, int):
            return loaded
        groups = {p.name: [m for m in p.ast.members if isinstance(m, n.Group)] for p in loaded.compiled}
        unconditional = {(p.name, r.name) for p in loaded.compiled for r in p.ast.rules if r.cond is None}
    try:
        text = read_text(args.metrics)
        end = parse_scrape(text, args.metrics)
        start = parse_scrape(read_text(args.since), args.since) if args.since else None
        if args.save:
            Path(args.save).write_text(text, encoding="utf-8")
    except (MetricsError, OSError) as exc:
        print(f"loyalty usage: {exc}", file=sys.stderr)
        return 2
    counts, notes = period(end, start)
    result = review(counts, args.always, groups, unconditional)
    result.notes = notes
    source = (f"{args.since} to {args.metrics}" if args.since
              else f"{args.metrics} (since the service started)")
    if args.format == "json":
        print(json.dumps({"source": source, **result.to_dict()}, indent=2))
    else:
        print("\n".join(render(result, args.always, source)))
    return 0
