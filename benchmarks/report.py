"""Regenerate docs/performance.md's figures, tables and plots from a benchmark run's JSON.

``python -m benchmarks.report [benchmarks/results/full.json] [--only BLOCK,...]``

The input is the JSON that pytest-benchmark writes (``--benchmark-json``), with
the run's gates, memory, service and profile results under its ``"loyalty"``
key (see ``benchmarks/conftest.py``). The plots go to ``docs/img/`` (PNG,
matplotlib's Agg backend). In ``docs/performance.md`` only the blocks between
``<!-- generated: NAME -->`` and ``<!-- end: NAME -->`` are replaced, so the
prose around them is kept; a missing file is written from the template below.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = ROOT / "benchmarks" / "results" / "full.json"
DOC = ROOT / "docs" / "performance.md"
IMG = ROOT / "docs" / "img"


# -- reading a run ----------------------------------------------------------------------------


class Run:
    """One benchmark run: pytest-benchmark's entries plus the ``loyalty`` section."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.loyalty: dict[str, Any] = raw.get("loyalty", {})
        self.figures: dict[str, Any] = self.loyalty.get("figures", {})
        self.benchmarks = {b["name"]: b for b in raw.get("benchmarks", [])}

    def bench(self, name: str) -> dict[str, Any] | None:
        return self.benchmarks.get(name)

    def per_eval_us(self, name: str, stat: str = "min") -> float | None:
        """A benchmark's time per evaluation (one round evaluates ``extra_info.evaluations``)."""
        b = self.bench(name)
        if b is None:
            return None
        n = b.get("extra_info", {}).get("evaluations") or 1
        return b["stats"][stat] / n * 1e6

    def group(self, group: str) -> list[dict[str, Any]]:
        return [b for b in self.raw.get("benchmarks", []) if b.get("group") == group]

    def gate(self, name: str) -> dict[str, Any] | None:
        for g in self.loyalty.get("gates", []):
            if g["name"] == name:
                return g
        return None


# -- formatting ------------------------------------------------------------------------------


def num(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, thousands separated; ``-`` when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:,.{decimals}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# -- sections --------------------------------------------------------------------------------


def best_cold_1000(run: Run) -> dict[str, Any] | None:
    """The fastest cold load of the 1,000-policy set in the run (the same set is loaded cold
    by the prepare test and by the scaling sweep); noise only ever adds time."""
    loads = [run.figures.get("prepare_1000_cold"),
             run.figures.get("prepare_scaling", {}).get("1000")]
    loads = [x for x in loads if x]
    if not loads:
        return None
    best = dict(min(loads, key=lambda x: x["load_s"]))
    best["cold_loads"] = len(loads)
    best["all_load_s"] = [x["load_s"] for x in loads]
    best.setdefault("target_s", 2.0)
    best.setdefault("target_peak_rss_mib", 100.0)
    return best


def section_method(run: Run) -> str:
    lo = run.loyalty
    mi = run.raw.get("machine_info", {})
    ci = run.raw.get("commit_info", {})
    mode = lo.get("mode", "?")
    before, after = lo.get("load_before", [0, 0, 0]), lo.get("load_after", [0, 0, 0])
    cpus = lo.get("cpus") or 1
    loaded = max(before[0], after[0]) > 0.5 * cpus
    rows = [
        ["Run", f"{mode} mode, {num(lo.get('seconds', 0) / 60, 2)} minutes, finished "
                f"{run.raw.get('datetime', '?')[:16].replace('T', ' ')} UTC"],
        ["Commit", f"`{ci.get('id', '?')[:12]}`" + (" (with uncommitted changes)"
                                                    if ci.get("dirty") else "")],
        ["Machine", f"{lo.get('processor') or mi.get('cpu', {}).get('brand_raw', '?')}, "
                    f"{cpus} CPUs ({lo.get('machine', '?')}), {lo.get('platform', '?')}"],
        ["Python", f"{lo.get('implementation', 'CPython')} {lo.get('python', '?')}"],
        ["Load average", f"{num(before[0], 2)} before, {num(after[0], 2)} after"
                         + (" — **the machine was shared and busy during this run**"
                            if loaded else "")],
    ]
    data = run.figures.get("data", {})
    if data:
        rows.append(["Data set", (
            f"{data['pairs']:,} flight events of {data['customers']:,} customers; tiers "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(data["tiers"].items()))
            + "; cabins " + ", ".join(f"{k} {v:,}" for k, v in sorted(data["cabins"].items()))
            + f"; {data['partner']:,} partner flights; {data['distance_missing']:,} without a "
              f"distance (airport lookup); {data['before_2026']:,} before the policy's "
              f"effective date; {data['leap_day_joiners']:,} events of 29 February joiners")])
    return table(["", ""], rows)


def section_evaluate(run: Run) -> str:
    plain = run.per_eval_us("test_plain")
    base = run.per_eval_us("test_handwritten")
    rows = []
    names = [
        ("test_plain", "Plain Python, request mapping in, plain dict out (the headline baseline)"),
        ("test_handwritten", "Hand-written Python, prepared input in, `Decision` out"),
        ("test_mapping_path", "Mapping path: decode the request mapping, `PolicySet.evaluate`"),
        ("test_compiled", "Compiled policy, `PolicySet.evaluate` (prepared input)"),
        ("test_compiled_among_1000_not_applying", "Compiled, with 1,000 non-applying policies loaded"),
        ("test_compiled_explain", "Compiled, explain mode (`explain=True`)"),
        ("test_interpreter", "Reference interpreter"),
        ("test_bundled_policies_mixed_events", "All bundled policies, mixed event kinds"),
    ]

    def ratio(value: float, baseline: float | None, name: str) -> str:
        if not baseline or name == "test_bundled_policies_mixed_events":
            return "-"
        return f"{num(value / baseline, 3)}x"

    for name, label in names:
        best, median = run.per_eval_us(name), run.per_eval_us(name, "median")
        if best is None:
            continue
        b = run.bench(name) or {}
        rows.append([label, num(best), num(median), ratio(best, plain, name),
                     ratio(best, base, name), f"{b.get('extra_info', {}).get('evaluations', 0):,}",
                     str(b.get("stats", {}).get("rounds", "-"))])
    return table(["Evaluation", "µs each (best round)", "µs each (median round)", "vs plain",
                  "vs hand-written", "pairs per round", "rounds"], rows)


def section_gates(run: Run) -> str:
    rows = []
    labels: dict[str, str] = {
        "mapping_path_vs_plain": "mapping path time (cold caches) / plain baseline time",
        "compiled_vs_plain": "regression guard, not like for like: compiled time (prepared input) / "
                             "plain baseline time (which parses)",
        "compiled_vs_handwritten_dict": "compiled time / dict-in, dict-out hand-written time",
        "mapping_path_vs_handwritten_dict": "API body decoded and evaluated (cold caches) / "
                                            "dict-in, dict-out hand-written time",
        "columnar_replay_vs_polars_job": "replay CPU time (columnar backend) / hand-written "
                                         "Polars job's",
        "compiled_vs_handwritten": "compiled time / hand-written time",
        "interpreter_vs_compiled": "interpreter time / compiled time",
        "1000_not_applying_vs_alone": "time with 1,000 non-applying policies / alone",
        "unary_service_vs_trivial": "unary throughput / trivial servicer's",
        "batch_1000_vs_trivial": "`EvaluateBatch` (1,000 items) throughput / trivial servicer's",
        "batch_1000_vs_handwritten": "`EvaluateBatch` (1,000 airline items) throughput / the "
                                     "hand-written gRPC servicer's",
    }
    for g in run.loyalty.get("gates", []):
        op = "≤" if g["at_most"] else "≥"
        check = g.get("check_label", "median of rounds")
        rows.append([f"`{g['name']}`", labels.get(g["name"], ""), num(g["ratio"]),
                     f"{num(g.get('median_ratio'))} ({check})", f"{op} {g['limit']:g}",
                     "**PASS**" if g["passed"] else "**FAIL**"])
    explain = run.figures.get("explain_vs_compiled")
    if explain:
        rows.append(["(not gated) `explain_vs_compiled`", "explain-mode time / compiled time",
                     num(explain["ratio"]), num(explain.get("median_ratio")), "-", "reported"])
    return table(["Gate", "Ratio of", "Ratio (gated)", "Check", "Limit", "Result"], rows)


def section_gate_details(run: Run) -> str:
    rows = []
    for g in run.loyalty.get("gates", []):
        d = g.get("detail", {})
        if "baseline" in d:
            b, c = d["baseline"], d["candidate"]
            rows.append([f"`{g['name']}`", f"{b} {num(d.get(b + '_us'))} µs, "
                         f"{c} {num(d.get(c + '_us'))} µs",
                         f"{d['repeats']} x {d['pairs']:,} pairs in chunks of {d['chunk']}, "
                         f"{d['clock']} time"])
        elif "real_per_s" in d:
            q = d.get("quartiles", [None, None])
            rows.append([f"`{g['name']}`", f"real {num(d['real_per_s'])}/s, trivial "
                         f"{num(d['trivial_per_s'])}/s (medians; inverse ratio of server CPU per "
                         f"call {num(d['cpu_ratio'])})",
                         f"{d['rounds']} pairs of adjacent rounds, median of their ratios "
                         f"(quartiles {num(q[0])} to {num(q[1])})"])
    return table(["Gate", "Measured", "How"], rows)


def section_prepare(run: Run) -> str:
    rows = []
    for name, label in [("test_parse", "parse (Lark, AST)"), ("test_check", "check"),
                        ("test_generate", "generate Python (fast variant; explain: on first use)"),
                        ("test_compile", "verify, `compile()`, `exec`"),
                        ("test_load_source", "whole pipeline, `dsl.load_source`")]:
        b = run.bench(name)
        if b:
            rows.append([label, num(b["stats"]["min"] * 1e3), num(b["stats"]["median"] * 1e3)])
    out = ["One policy (the airline policy):", "",
           table(["Stage", "ms (best)", "ms (median)"], rows), ""]
    cold = best_cold_1000(run)
    warm = run.bench("test_load_directory_1000")
    reload = run.bench("test_reload_unchanged_1000")
    if cold:
        ok_t = cold["load_s"] < cold["target_s"]
        ok_m = cold["peak_rss_mib"] < cold["target_peak_rss_mib"]
        out += ["A generated set of 1,000 policies (a third airline-like with a table and a best-of "
                f"group, the rest for other event kinds; {cold['rules']:,} rules in all):", "",
                table(["", "Measured", "Target", ""], [
                    ["Cold load (fresh process), `dsl.load_directory`, best of "
                     f"{cold['cold_loads']} cold loads in the run (all: "
                     f"{', '.join(num(x) for x in cold['all_load_s'])} s)",
                     f"{num(cold['load_s'])} s", "< 2 s", "met" if ok_t else "**not met**"],
                    ["Warm load (in the benchmark process, best round)",
                     f"{num(warm['stats']['min'])} s" if warm else "-", "", ""],
                    ["Reload of the same unchanged files (compiled-file cache)",
                     f"{num(reload['stats']['min'])} s" if reload else "-", "", ""],
                    ["Peak resident size of that process", f"{num(cold['peak_rss_mib'])} MiB",
                     "< 100 MB", "met" if ok_m else "**not met**"],
                    ["Resident size after `import dsl` (every process pays it)",
                     f"{num(cold['rss_after_import_mib'])} MiB", "", ""],
                ]), ""]
    split = run.figures.get("prepare_stage_split")
    if split:
        total = sum(v for k, v in split.items() if k.endswith("_ms_per_policy"))
        out += [f"Where a set's preparation time goes (first {split['policies']:,} policies of "
                "the set, each stage timed over all of them):", "",
                table(["Stage", "ms per policy", "share"], [
                    [k.removesuffix("_ms_per_policy"), num(v), f"{v / total:.0%}"]
                    for k, v in split.items() if k.endswith("_ms_per_policy")]), ""]
    return "\n".join(out).rstrip()


def section_scaling(run: Run) -> str:
    out = []
    rules = sorted(run.group("scaling: rules in one policy"),
                   key=lambda b: b["extra_info"].get("rules", 0))
    if rules:
        prep = run.figures.get("rules_prepare_s", {})
        out += ["![Evaluation time against rules in one policy](img/scaling_rules.png)", "",
                table(["Rules", "µs per evaluation (best)", "µs (median)", "prepare (s)"], [
                    [f"{b['extra_info']['rules']:,}",
                     num(b["stats"]["min"] / b["extra_info"]["evaluations"] * 1e6),
                     num(b["stats"]["median"] / b["extra_info"]["evaluations"] * 1e6),
                     num(prep.get(str(b["extra_info"]["rules"])))] for b in rules]), ""]
    loaded = sorted(run.group("scaling: policies loaded"),
                    key=lambda b: b["extra_info"].get("policies", 0))
    if loaded:
        out += ["![Evaluation time against policies loaded](img/scaling_policies.png)", "",
                table(["Policies loaded (1 applies)", "µs per evaluation (best)", "µs (median)"], [
                    [f"{b['extra_info']['policies']:,}",
                     num(b["stats"]["min"] / b["extra_info"]["evaluations"] * 1e6),
                     num(b["stats"]["median"] / b["extra_info"]["evaluations"] * 1e6)]
                    for b in loaded]), ""]
    prep = run.figures.get("prepare_scaling", {})
    if prep:
        out += ["![Preparation time and memory against set size](img/prepare_scaling.png)", "",
                table(["Policies", "Rules", "Cold load (s)", "ms per policy",
                       "Peak resident (MiB)", "Resident after load minus after import (MiB)"], [
                    [f"{int(k):,}", f"{v['rules']:,}", num(v["load_s"]),
                     num(v["load_s"] / int(k) * 1e3), num(v["peak_rss_mib"]),
                     num(v["rss_after_load_mib"] - v["rss_after_import_mib"])]
                    for k, v in sorted(prep.items(), key=lambda kv: int(kv[0]))]), ""]
    return "\n".join(out).rstrip()


def section_service(run: Run) -> str:
    f = run.figures
    out = []
    u = f.get("service_unary")
    if u:
        out += [f"Unary `Evaluate`, closed loop, {u['concurrency']} calls in flight, "
                f"{u['calls_per_round']:,} calls per round:", "",
                table(["Servicer", "calls/s (best round)", "calls/s (median)",
                       "server CPU per call (µs)"], [
                    [arm, num(u[arm]["best_per_s"]), num(u[arm]["median_per_s"]),
                     num(u[arm]["cpu_us_per_item"])] for arm in ("real", "trivial")]),
                "", f"Real / trivial: {num(u.get('ratio_paired_median'))} (median of adjacent "
                f"pairs, gated), {num(u['ratio_best'])} (best rounds), {num(u['ratio_median'])} "
                f"(medians), {num(u['ratio_cpu'])} (inverse ratio of server CPU per call).", ""]
    b = f.get("service_batch")
    if b:
        rows = []
        for size, v in sorted(b.items(), key=lambda kv: int(kv[0])):
            rows.append([f"{int(size):,}", num(v["real"]["best_per_s"]),
                         num(v["trivial"]["best_per_s"]), num(v["ratio_best"]),
                         num(v["real"]["cpu_us_per_item"]), num(v["trivial"]["cpu_us_per_item"])])
        out += ["![Evaluations per second against batch size](img/batch_throughput.png)", "",
                "`EvaluateBatch` (2 calls in flight; evaluations per second, best of 2 rounds):", "",
                table(["Items per call", "real /s", "trivial /s", "real / trivial",
                       "server CPU per item, real (µs)", "trivial (µs)"], rows), ""]
    s = f.get("service_stream")
    if s:
        out += [f"`EvaluateStream` (one stream, {s['messages_per_round']:,} messages): real "
                f"{num(s['real']['best_per_s'])} messages/s, trivial "
                f"{num(s['trivial']['best_per_s'])}/s (ratio {num(s['ratio_best'])}).", ""]
    lat = f.get("service_latency")
    if lat:
        rows = []
        for rate, arms in sorted(lat.items(), key=lambda kv: int(kv[0])):
            for arm in ("real", "trivial"):
                a = arms[arm]
                rows.append([f"{int(rate):,}", arm, num(a["achieved_per_s"]), num(a["p50_ms"]),
                             num(a["p90_ms"]), num(a["p99_ms"]), num(a["max_ms"]),
                             str(a["errors"])])
        out += ["![Latency against offered load](img/latency.png)", "",
                "Latency at fixed offered loads (open loop: calls leave on schedule whatever "
                "the server does, and latency counts from the schedule):", "",
                table(["Offered /s", "Servicer", "achieved /s", "p50 ms", "p90 ms", "p99 ms",
                       "max ms", "errors"], rows), ""]
    return "\n".join(out).rstrip()


def section_memory(run: Run) -> str:
    m = run.figures.get("service_memory")
    if not m:
        return "_Not measured in this run._"
    soak = m["soak"]
    rows = [
        ["Bundled policies, after start", num(m["bundled"]["rss"]),
         num(m["bundled"]["startup_s"])],
        ["1,000 policies, after start", num(m["policies_1000"]["rss"]),
         num(m["policies_1000"]["startup_s"])],
    ]
    return "\n".join([
        table(["`loyalty serve` with", "Resident (MiB)", "Start-up (s)"], rows), "",
        "![Resident size under sustained load](img/soak_rss.png)", "",
        f"Sustained load on the bundled policies for {num(soak['seconds'])} s "
        f"({soak['calls']:,} calls, {soak['evaluations']:,} evaluations, unary and 1,000-item "
        f"batches alternating): resident size {num(soak['rss_start_mib'])} MiB at the start, "
        f"{num(soak['rss_end_mib'])} MiB at the end, {num(soak['rss_max_mib'])} MiB at most; "
        f"growth over the second half {num(soak['growth_mib_per_min_second_half'], 2)} MiB per "
        "minute.",
    ])


def section_profile(run: Run) -> str:
    p = run.figures.get("service_profile")
    if not p:
        return "_Not measured in this run._"
    server_cpu = run.figures.get("service_unary", {}).get("real", {}).get("cpu_us_per_item")
    chain = p.get("handler_chain_real_us")
    rest_servicer = (p["servicer_evaluate_total_us"] - p["convert_input_us"] - p["evaluate_us"]
                     - p["build_response_us"])
    steps: list[tuple[str, float | None]] = [
        ("parse the request bytes (upb)", p["parse_request_us"]),
        ("convert the messages to prepared input", p["convert_input_us"]),
        ("evaluate the policy set (compiled)", p["evaluate_us"]),
        ("build the response message", p["build_response_us"]),
        ("rest of the servicer method (snapshot, checks, binding the log context)", rest_servicer),
        ("serialise the response (upb)", p["serialise_response_us"]),
    ]
    if chain is not None:
        interceptor = (chain - p["parse_request_us"] - p["servicer_evaluate_total_us"]
                       - p["serialise_response_us"])
        steps.append(("interceptor (context, log line, RPC metrics) and per-rule decision metrics",
                      interceptor))
    total = server_cpu or chain or sum(v or 0 for _, v in steps)
    rows = [[label, num(v), f"{v / total:.0%}" if v is not None else "-"] for label, v in steps]
    if chain is not None:
        rows.append(["**everything in Python, in-process (real servicer)**", f"**{num(chain)}**",
                     f"{chain / total:.0%}"])
        rows.append(["the same with the trivial servicer", num(p["handler_chain_trivial_us"]),
                     f"{p['handler_chain_trivial_us'] / total:.0%}"])
    cold = p.get("handler_chain_real_cold_us")
    if cold is not None:  # served calls find the CPU caches cold: this is closer to their cost
        rows.append(["everything in Python, real servicer, CPU caches evicted before each call",
                     num(cold), f"{cold / total:.0%}"])
        rows.append(["the same with the trivial servicer, caches evicted",
                     num(p["handler_chain_trivial_cold_us"]),
                     f"{p['handler_chain_trivial_cold_us'] / total:.0%}"])
    if server_cpu and chain is not None:
        python = cold if cold is not None else chain
        rows.append(["the rest: gRPC's machinery (sockets, HTTP/2, completion queue, thread "
                     "hand-offs)" + (" beside the cold-cache Python figure" if cold else ""),
                     num(server_cpu - python), f"{(server_cpu - python) / total:.0%}"])
        rows.append(["**server CPU per unary call**, measured over the wire above",
                     f"**{num(server_cpu)}**", "100%"])
    return "\n".join([
        table(["Per unary call (real servicer)", "µs", "share"], rows), "",
        f"Stages timed in-process in the thread's CPU time, best of 3 passes over "
        f"{p['calls']:,} requests; \"everything in Python\" runs each request through the "
        "service's interceptor and servicer as gRPC would, with the log line written to "
        "`/dev/null`. The servicer's `Evaluate` method, profiled with cProfile (CPU time):", "",
        "```", p["cprofile"].strip(), "```",
    ])


#: Where the issues' target differs from the CI gate's limit (the gate keeps a margin under a
#: measured value that sits near or below the target; the tests' docstrings say why).
ISSUE_TARGETS = {"interpreter_vs_compiled": 20.0, "unary_service_vs_trivial": 0.80,
                 "mapping_path_vs_plain": 6.0, "compiled_vs_plain": 2.5,
                 "batch_1000_vs_trivial": 0.6, "compiled_vs_handwritten_dict": 2.0,
                 "mapping_path_vs_handwritten_dict": 4.0, "columnar_replay_vs_polars_job": 2.0,
                 "batch_1000_vs_handwritten": 0.8}

#: Issue 8 ("Speed"): its four figures, each a gate of the run.
SPEED_TARGETS = [
    ("mapping_path_vs_plain", "In-process, request mapping in, decision out: mapping path / plain "
                              "baseline (time)"),
    ("compiled_vs_plain", "Regression guard, not like for like: compiled (prepared input) / "
                          "plain baseline (parses its input) (time)"),
    ("batch_1000_vs_trivial", "`EvaluateBatch`, 1,000 items per call: real / trivial servicer "
                              "(evaluations per second)"),
    ("unary_service_vs_trivial", "Unary `Evaluate`: real / trivial servicer (calls per second)"),
]


def section_speed(run: Run) -> str:
    """Issue 8's four targets: target, measured, met, and the CI gate beside them."""
    rows = []
    for name, label in SPEED_TARGETS:
        g = run.gate(name)
        target = ISSUE_TARGETS[name]
        if g is None:
            rows.append([label, f"{'≤' if name.endswith('_vs_plain') else '≥'} {target:g}",
                         "not measured", "-", "-"])
            continue
        op = "≤" if g["at_most"] else "≥"
        met = g["ratio"] <= target if g["at_most"] else g["ratio"] >= target
        measured = f"{num(g['ratio'])}"
        d = g.get("detail", {})
        if "baseline" in d:
            b, c = d["baseline"], d["candidate"]
            measured += f" ({num(d.get(c + '_us'))} µs against {num(d.get(b + '_us'))} µs)"
        elif name == "batch_1000_vs_trivial":
            measured += (f" ({num(d.get('real_per_s'))} evaluations/s against "
                         f"{num(d.get('trivial_per_s'))}/s, medians)")
        elif "real_per_s" in d:
            measured += (f" ({num(d.get('real_per_s'))} calls/s against "
                         f"{num(d.get('trivial_per_s'))}/s, medians)")
        rows.append([label, f"{op} {target:g}", measured, "met" if met else "**not met**",
                     f"{op} {g['limit']:g}: {'passed' if g['passed'] else '**failed**'}"])
    lo = run.loyalty
    when = run.raw.get("datetime", "?")[:16].replace("T", " ")
    command = "./dev.sh bench --quick" if lo.get("mode") == "quick" else "./dev.sh bench --full"
    return "\n".join([
        f"From a {lo.get('mode', '?')} run (`{command}`), finished {when} UTC, load average "
        f"{num(lo.get('load_before', [0])[0], 2)} before and "
        f"{num(lo.get('load_after', [0])[0], 2)} after:", "",
        table(["Target (issue 8)", "Target", "Measured", "Met?", "CI gate"], rows),
    ])


def section_mapping_stages(run: Run) -> str:
    """Where the in-process mapping path's time goes (``python -m benchmarks.stages --mapping``)."""
    st = run.figures.get("mapping_stages")
    if not st:
        return "_No mapping-path stage figures in this run._"
    us = st["us_per_item"]
    whole = us["mapping_path"]
    steps = [
        ("decode: the generated mapping decoder (`policy_set.decoder.request`)", us["decode"]),
        ("evaluate: create the empty `Decision`", us["new_decision"]),
        ("evaluate: the compiled rules (they append fired rules, benefits, tags to the "
         "`Decision`)", us["rules"]),
        ("evaluate: `finish` the `Decision` (caps, zero awards, benefits, tags)", us["finish"]),
        ("evaluate: dispatch (index lookup, loop, error guard)", us["dispatch"]),
    ]

    def cell(v: float) -> str:  # a difference of two timings can come out below zero
        return num(v) if v >= 0.05 else "~0 (within noise)"

    rows = [[label, cell(v), f"{max(v, 0) / whole:.0%}"] for label, v in steps]
    parts = sum(max(v, 0) for _, v in steps)
    reference = us["flatten"] + us["prepare_customer"] + us["prepare_event"]
    rows += [
        ["sum of the stages, each timed alone", num(parts), f"{parts / whole:.0%}"],
        ["the rest: what the stages miss when timed alone on warm inputs (fresh dicts, "
         "cache misses, garbage collection) and noise", cell(whole - parts),
         f"{max(whole - parts, 0) / whole:.0%}"],
        ["**the whole path, `decode_request` + `PolicySet.evaluate`**", f"**{num(whole)}**",
         "100%"],
        ["of which decode (`decode_request`, timed alone)", num(us["decode"]),
         f"{us['decode'] / whole:.0%}"],
        ["of which evaluate (`PolicySet.evaluate`, timed alone)", num(us["evaluate"]),
         f"{us['evaluate'] / whole:.0%}"],
        ["the plain baseline, for comparison", num(us["plain"]), f"{us['plain'] / whole:.0%}"],
        ["not on the path: `Decision.to_dict()`", num(us["to_dict"]),
         f"{us['to_dict'] / whole:.0%}"],
        ["not on the path: the flat reference (rename, then the tests' reference `prepare_customer` and "
         "`prepare_event`)", num(reference), f"{reference / whole:.0%}"],
    ]
    return "\n".join([
        f"In-process, on {st['items']:,} of the benchmark's request mappings, each stage timed "
        f"on slices of {st.get('slice', st['items']):,} in turn (per slice, the minimum thread "
        f"CPU time over {st['rounds']} rounds; `python -m benchmarks.stages --mapping`):", "",
        table(["Stage", "µs per item", "share of the path"], rows), "",
        "The whole path profiled with cProfile (CPU time; the profiler's own cost inflates "
        "the many small calls):", "", "```", st["cprofile"].strip(), "```",
    ])


def section_targets(run: Run) -> str:
    """Every target the issues set, with this run's figure and whether it is met."""
    rows = []
    for g in run.loyalty.get("gates", []):
        op = "≤" if g["at_most"] else "≥"
        target = ISSUE_TARGETS.get(g["name"], g["limit"])
        met = g["ratio"] <= target if g["at_most"] else g["ratio"] >= target
        limit = f"{op} {target:g}"
        if target != g["limit"]:
            limit += f" (CI gate {op} {g['limit']:g}: {'passed' if g['passed'] else 'failed'})"
        rows.append([f"gate `{g['name']}`", limit, num(g["ratio"]),
                     "met" if met else "**not met**"])
    cold = best_cold_1000(run)
    if cold:
        rows.append(["prepare 1,000 policies (cold, one process; best of the run's cold loads)",
                     "< 2 s",
                     f"{num(cold['load_s'])} s", "met" if cold["load_s"] < 2 else "**not met**"])
        rows.append(["resident size after preparing 1,000 policies", "< 100 MB",
                     f"{num(cold['peak_rss_mib'] * 1.048576)} MB",
                     "met" if cold["peak_rss_mib"] * 1.048576 < 100 else "**not met**"])
    batch = run.figures.get("service_batch", {}).get("1000")
    if batch:
        rate = batch["real"]["best_per_s"]
        rows.append(["`EvaluateBatch`, 1,000 items, one server process", "≥ 100,000 evaluations/s",
                     f"{num(rate)}/s", "met" if rate >= 100_000 else "**not met**"])
    lat = run.figures.get("service_latency", {}).get("1000", {}).get("real")
    if lat:
        rows.append(["unary latency at 1,000 calls/s offered", "reported",
                     f"p50 {num(lat['p50_ms'])} ms, p99 {num(lat['p99_ms'])} ms", "-"])
    stream = run.figures.get("service_stream")
    if stream:
        rows.append(["`EvaluateStream`", "reported",
                     f"{num(stream['real']['best_per_s'])} evaluations/s", "-"])
    explain = run.figures.get("explain_vs_compiled")
    if explain:
        rows.append(["explain mode's cost", "reported", f"{num(explain['ratio'])}x the fast path",
                     "-"])
    return table(["Target", "Limit", "Measured", ""], rows)


def section_stages(run: Run) -> str:
    st = run.figures.get("batch_stages")
    if not st:
        return "_No stage figures in this run._"
    us = st["us_per_item"]
    labels = {
        "parse": "parse the request (`FromString`, before the servicer)",
        "read": "floor: read every field the converter reads, nothing else",
        "convert": "convert: read and check every field, prepared dicts",
        "handwritten": "floor: the hand-written airline function",
        "evaluate": "evaluate: `PolicySet.evaluate`",
        "encode": "encode the decision",
        "servicer": "the whole batch method",
    }
    rows = [[labels.get(name, name), num(value)] for name, value in us.items()]
    floor = us["read"] + us["handwritten"] + us["encode"]
    return "\n".join([
        f"In-process, on the benchmark's 1,000-item batches ({st['items']:,} items, minimum "
        f"thread CPU time over {st['rounds']} rounds; `python -m benchmarks.stages`):", "",
        table(["Stage", "µs per item"], rows), "",
        f"The whole method runs at {num(1e6 / us['servicer'])} items per CPU-second. The floors "
        f"add up to {num(floor)} µs per item ({num(1e6 / floor)} per CPU-second): no Python "
        "servicer that reads the request through the protobuf runtime and evaluates the "
        "airline rules can go under that, before gRPC's own cost.",
    ])


SECTIONS: dict[str, Callable[[Run], str]] = {
    "speed": section_speed,
    "mapping-stages": section_mapping_stages,
    "targets": section_targets,
    "method": section_method,
    "gates": section_gates,
    "gate-details": section_gate_details,
    "evaluate": section_evaluate,
    "prepare": section_prepare,
    "scaling": section_scaling,
    "service": section_service,
    "stages": section_stages,
    "memory": section_memory,
    "profile": section_profile,
}


# -- plots -----------------------------------------------------------------------------------


def plots(run: Run, img: Path) -> list[Path]:
    """Write every plot the run has data for; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = img / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    def per_eval(entries: list[dict[str, Any]], key: str) -> tuple[list[int], list[float], list[float]]:
        entries = sorted(entries, key=lambda b: b["extra_info"].get(key, 0))
        xs = [b["extra_info"][key] for b in entries]
        best = [b["stats"]["min"] / b["extra_info"]["evaluations"] * 1e6 for b in entries]
        med = [b["stats"]["median"] / b["extra_info"]["evaluations"] * 1e6 for b in entries]
        return xs, best, med

    rules = run.group("scaling: rules in one policy")
    if rules:
        xs, best, med = per_eval(rules, "rules")
        fig, ax = plt.subplots(figsize=(6.4, 4))
        ax.loglog(xs, best, "o-", label="best round")
        ax.loglog(xs, med, "s--", alpha=0.6, label="median round")
        ax.set_xlabel("rules in the policy")
        ax.set_ylabel("µs per evaluation")
        ax.set_title("Evaluation time against rules in one policy")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        save(fig, "scaling_rules.png")

    loaded = run.group("scaling: policies loaded")
    if loaded:
        xs, best, med = per_eval(loaded, "policies")
        fig, ax = plt.subplots(figsize=(6.4, 4))
        ax.semilogx(xs, best, "o-", label="best round")
        ax.semilogx(xs, med, "s--", alpha=0.6, label="median round")
        ax.set_ylim(0, max(med) * 1.3)
        ax.set_xlabel("policies loaded (one applies to the event)")
        ax.set_ylabel("µs per evaluation")
        ax.set_title("Evaluation time against policies loaded")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        save(fig, "scaling_policies.png")

    prep = run.figures.get("prepare_scaling", {})
    if prep:
        items = sorted(prep.items(), key=lambda kv: int(kv[0]))
        xs = [int(k) for k, _ in items]
        fig, ax = plt.subplots(figsize=(6.4, 4))
        ax.loglog(xs, [v["load_s"] for _, v in items], "o-", color="C0", label="cold load (s)")
        ax.set_xlabel("policies in the set")
        ax.set_ylabel("cold load time (s)", color="C0")
        ax2 = ax.twinx()
        ax2.semilogx(xs, [v["peak_rss_mib"] for _, v in items], "s--", color="C1",
                     label="peak resident (MiB)")
        ax2.set_ylabel("peak resident size (MiB)", color="C1")
        ax2.set_ylim(0, max(v["peak_rss_mib"] for _, v in items) * 1.15)
        ax.set_title("Preparing a policy set: time and memory")
        ax.grid(True, which="both", alpha=0.3)
        save(fig, "prepare_scaling.png")

    batch = run.figures.get("service_batch", {})
    if batch:
        items = sorted(batch.items(), key=lambda kv: int(kv[0]))
        xs = [int(k) for k, _ in items]
        fig, ax = plt.subplots(figsize=(6.4, 4))
        for arm, style in (("real", "o-"), ("trivial", "s--")):
            ax.semilogx(xs, [v[arm]["best_per_s"] for _, v in items], style,
                        label=f"{arm} servicer")
        ax.set_xlabel("items per EvaluateBatch call")
        ax.set_ylabel("evaluations per second")
        ax.set_title("Batch throughput (one server process)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        save(fig, "batch_throughput.png")

    lat = run.figures.get("service_latency", {})
    if lat:
        items = sorted(lat.items(), key=lambda kv: int(kv[0]))
        xs = [int(k) for k, _ in items]
        fig, ax = plt.subplots(figsize=(6.4, 4))
        for arm, color in (("real", "C0"), ("trivial", "C1")):
            ax.plot(xs, [v[arm]["p50_ms"] for _, v in items], "o-", color=color,
                    label=f"{arm} p50")
            ax.plot(xs, [v[arm]["p99_ms"] for _, v in items], "s--", color=color,
                    label=f"{arm} p99")
        ax.set_yscale("log")
        ax.set_xlabel("offered load (calls per second)")
        ax.set_ylabel("latency (ms)")
        ax.set_title("Unary latency at fixed offered loads")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        save(fig, "latency.png")

    mem = run.figures.get("service_memory", {})
    if mem.get("soak", {}).get("samples"):
        samples = mem["soak"]["samples"]
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        ax.plot([t for t, _ in samples], [r for _, r in samples], "-")
        ax.set_xlabel("seconds of sustained load")
        ax.set_ylabel("resident size (MiB)")
        ax.set_ylim(0, max(r for _, r in samples) * 1.2)
        ax.set_title("loyalty serve under sustained load")
        ax.grid(True, alpha=0.3)
        save(fig, "soak_rss.png")

    bars = [(label, run.per_eval_us(name)) for name, label in [
        ("test_plain", "plain"), ("test_handwritten", "hand-written"), ("test_compiled", "compiled"),
        ("test_compiled_among_1000_not_applying", "compiled,\n+1,000 idle"),
        ("test_compiled_explain", "explain"), ("test_interpreter", "interpreter")]]
    bars = [(label, v) for label, v in bars if v is not None]
    if bars:
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        ax.bar([label for label, _ in bars], [v for _, v in bars], color="C0")
        ax.set_yscale("log")
        ax.set_ylabel("µs per evaluation (best round)")
        ax.set_title("The airline policy, 10,000 realistic pairs")
        for i, (_, v) in enumerate(bars):
            ax.annotate(num(v), (i, v), ha="center", va="bottom")
        save(fig, "evaluate.png")
    return written


# -- the document -----------------------------------------------------------------------------


def fill(document: str, run: Run, only: set[str] | None = None) -> str:
    """Replace every generated block of ``document`` (or those named in ``only``) with the
    run's figures."""
    def replace(match: re.Match[str]) -> str:
        name = match[1]
        if only is not None and name not in only:
            return match[0]
        section = SECTIONS.get(name)
        body = section(run) if section else f"_Unknown generated block {name}._"
        return f"<!-- generated: {name} -->\n{body}\n<!-- end: {name} -->"

    return re.sub(r"<!-- generated: ([\w-]+) -->.*?<!-- end: \1 -->", replace, document,
                  flags=re.DOTALL)


TEMPLATE = """\
# Performance

Figures generated by `python -m benchmarks.report` from a full benchmark run.

## Speed (issue 8)

<!-- generated: speed -->
<!-- end: speed -->

<!-- generated: targets -->
<!-- end: targets -->

<!-- generated: method -->
<!-- end: method -->

## Gates

<!-- generated: gates -->
<!-- end: gates -->

<!-- generated: gate-details -->
<!-- end: gate-details -->

## Evaluating the airline policy

<!-- generated: evaluate -->
<!-- end: evaluate -->

## Preparing policies

<!-- generated: prepare -->
<!-- end: prepare -->

## Scaling

<!-- generated: scaling -->
<!-- end: scaling -->

## The service

<!-- generated: service -->
<!-- end: service -->

## Where a batch item's time goes

<!-- generated: stages -->
<!-- end: stages -->

## Memory of the service

<!-- generated: memory -->
<!-- end: memory -->

## Where the in-process mapping path's time goes

<!-- generated: mapping-stages -->
<!-- end: mapping-stages -->

## Where a unary call's time goes

<!-- generated: profile -->
<!-- end: profile -->
"""


def main(argv: list[str] | None = None) -> int:
    """Read the run, write the plots, refresh the generated blocks of the document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", type=Path, default=DEFAULT_INPUT,
                        help=f"a run's JSON (default {DEFAULT_INPUT.relative_to(ROOT)})")
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--img", type=Path, default=IMG)
    parser.add_argument("--only", metavar="BLOCK[,BLOCK]",
                        help="refresh only these generated blocks (and no plots), e.g. "
                             "--only speed,mapping-stages for a quick run's figures")
    args = parser.parse_args(argv)
    run = Run(json.loads(args.input.read_text(encoding="utf-8")))
    only = set(args.only.split(",")) if args.only else None
    if only is not None and not only <= set(SECTIONS):
        parser.error(f"unknown blocks {sorted(only - set(SECTIONS))}; known: {sorted(SECTIONS)}")
    written = plots(run, args.img) if only is None else []
    document = args.doc.read_text(encoding="utf-8") if args.doc.exists() else TEMPLATE
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(fill(document, run, only), encoding="utf-8")
    print(f"wrote {args.doc} and {len(written)} plots in {args.img}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
