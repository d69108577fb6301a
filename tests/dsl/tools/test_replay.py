"""``loyalty replay``: the real command, in a subprocess, over histories generated for the run.

One generated airline history is written as JSON-lines, CSV and Parquet; the bundled
policies are replayed against a copy with a changed airline policy. The three forms must
give the same figures, the same as ``loyalty diff --cases`` over the same requests, on one
process, on a local pool, and on a Dask cluster of local processes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from benchmarks.history import airline_requests_stream, changed_policies, without_counters, write_history

ROOT = Path(__file__).resolve().parents[3]
POLICIES = ROOT / "policies"
EVENTS = 3_000


def loyalty(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "service", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=280)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The changed policies and one history in the three forms."""
    root = tmp_path_factory.mktemp("replay")
    requests = next(airline_requests_stream(EVENTS))
    out = {"new": changed_policies(root / "new")}
    for form in ("jsonl", "csv", "parquet"):
        out[form] = write_history(root / f"history.{form}", [requests])
    return out


def figures(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON report without what names the file (paths, positions of examples)."""
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    del report["history"]
    del report["engine"]  # which backend replayed which rows: the figures are the same
    for example in report["examples"]:
        del example["where"]
    return report


@pytest.fixture(scope="module")
def reference(history: dict[str, Path]) -> dict[str, Any]:
    return figures(loyalty("replay", str(POLICIES), str(history["new"]), str(history["jsonl"]),
                           "--format", "json", "--jobs", "1"))


def test_report_has_customers_and_their_spread(reference: dict[str, Any]) -> None:
    """The report counts events and distinct customers, and spreads miles over customers."""
    assert reference["events"] == EVENTS and reference["bad_rows"] == 0
    assert 0 < reference["customers_changed"] < reference["events_changed"] < EVENTS
    miles = reference["currencies"]["miles"]
    assert miles["delta"] == miles["after"] - miles["before"] != 0
    assert miles["customers_gaining"] > 0 and miles["customers_losing"] > 0
    p = miles["percentiles"]
    assert p["p0"] <= p["p25"] <= p["p50"] <= p["p75"] <= p["p100"]
    assert p["p0"] == miles["losers"][0]["delta"] < 0 < miles["gainers"][0]["delta"] == p["p100"]
    qualified = reference["rules"]["earn_miles_by_distance.first_class_platinum"]["after"]
    assert reference["tiers"] == [{"before": None, "after": "PLATINUM", "events": qualified}]
    assert {t["benefit"] for t in reference["benefit_transitions"]} == {"priority-rebooking"}
    assert sum(int(m["miles"]["after"]) for m in reference["months"].values()) == miles["after"]


def test_agrees_with_diff_cases(history: dict[str, Path], reference: dict[str, Any]) -> None:
    """Over the same requests, replay's event figures are loyalty diff --cases' figures."""
    diff = loyalty("diff", str(POLICIES), str(history["new"]), "--cases", str(history["jsonl"]),
                   "--format", "json")
    assert diff.returncode == 1, diff.stderr
    decisions = json.loads(diff.stdout)["decisions"]
    assert decisions["cases"] == reference["events"]
    assert decisions["changed"] == reference["events_changed"]
    assert {c: (v["before"], v["after"]) for c, v in decisions["awards"].items()} == {
        c: (v["before"], v["after"]) for c, v in reference["currencies"].items()}
    assert decisions["rules"] == reference["rules"]
    assert decisions["benefits"] == reference["benefits"]


@pytest.mark.parametrize("form", ["csv", "parquet"])
def test_every_form_gives_the_same_figures(history: dict[str, Path], reference: dict[str, Any],
                                           form: str) -> None:
    """CSV and Parquet with columns named by request path give JSON-lines' figures exactly."""
    result = loyalty("replay", str(POLICIES), str(history["new"]), str(history[form]),
                     "--format", "json", "--jobs", "1")
    assert figures(result) == reference


def test_local_pool_gives_the_same_figures(history: dict[str, Path], reference: dict[str, Any]) -> None:
    """Small chunks on two worker processes merge to the one-process figures."""
    result = loyalty("replay", str(POLICIES), str(history["new"]), str(history["parquet"]),
                     "--format", "json", "--jobs", "2", "--chunk-rows", "250")
    assert figures(result) == reference


@pytest.mark.slow
def test_dask_cluster_gives_the_same_figures(history: dict[str, Path], reference: dict[str, Any]) -> None:
    """On a Dask LocalCluster (two worker processes on 127.0.0.1) the figures are the same."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        result = loyalty("replay", str(POLICIES), str(history["new"]), str(history["parquet"]),
                         "--format", "json", "--chunk-rows", "500", "--dask", cluster.scheduler_address)
    assert figures(result) == reference


@pytest.mark.slow
def test_dask_local_cluster_of_its_own(history: dict[str, Path], reference: dict[str, Any]) -> None:
    """--dask local starts (and stops) a cluster of --jobs local processes itself."""
    result = loyalty("replay", str(POLICIES), str(history["new"]), str(history["csv"]),
                     "--format", "json", "--chunk-rows", "700", "--dask", "local", "--jobs", "2")
    assert figures(result) == reference


def test_progress_bar_on_a_terminal_only(history: dict[str, Path]) -> None:
    """With stderr on a terminal a progress bar is drawn there; the report stays on stdout."""
    import fcntl
    import pty
    import struct
    import termios

    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-m", "service", "replay", str(POLICIES),
                           str(history["new"]), str(history["parquet"]), "--jobs", "1",
                           "--chunk-rows", "500"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=secondary) as process:
        os.close(secondary)
        out, _ = process.communicate(timeout=120)
    drawn = b""
    while True:
        try:
            piece = os.read(main, 65536)
        except OSError:  # the terminal's other end is closed
            break
        if not piece:
            break
        drawn += piece
    os.close(main)
    assert process.returncode == 1
    assert b"replaying: 100%" in drawn and b"3.00k/3.00k" in drawn  # rows, scaled
    assert out.decode().splitlines()[1].startswith(f"history {history['parquet']}: {EVENTS} events")


class _Resources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.svgs = 0
        self.links: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.svgs += tag == "svg"
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]


def test_html_report_is_one_file_with_its_plots(history: dict[str, Path], tmp_path: Path) -> None:
    """--html writes one file: a delta histogram, totals by month and rule changes as inline
    SVG, and nothing fetched from elsewhere."""
    page = tmp_path / "report.html"
    result = loyalty("replay", str(POLICIES), str(history["new"]), str(history["csv"]),
                     "--html", str(page), "--jobs", "1")
    assert result.returncode == 1, result.stderr
    parser = _Resources()
    text = page.read_text(encoding="utf-8")
    parser.feed(text)
    assert parser.svgs == 3
    for caption in ("Per-customer change in miles", "miles awarded by month", "Rule hit changes"):
        assert f"<figcaption>{caption}</figcaption>" in text
    assert not [link for link in parser.links if not link.startswith("#")], parser.links
    assert "script" not in parser.tags and "link" not in parser.tags
    # The only URLs are XML namespace names (xmlns="http://www.w3.org/2000/svg"), never fetched.
    namespaces = sorted(re.findall(r'[\w:]+="https?://', text))
    assert namespaces == ['xmlns:xlink="http://'] * 3 + ['xmlns="http://'] * 3


def test_text_report(history: dict[str, Path]) -> None:
    """The text report names customers, deltas, transitions and rules."""
    result = loyalty("replay", str(POLICIES), str(history["new"]), str(history["jsonl"]), "--jobs", "1")
    assert result.returncode == 1 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[1].startswith(f"history {history['jsonl']}: {EVENTS} events in ")
    assert lines[2].startswith("decisions changed: ") and lines[2].endswith(" customers")
    assert any(line.startswith("  top gainers: C") for line in lines)
    assert "tiers (events moved):" in lines and "  priority-rebooking gained: " in "\n".join(lines)


GOOD = {"customer": {"id": "c1", "memberSince": "2012-02-29", "tier": "GOLD"},
        "event": {"id": "e1", "time": "2026-03-01T09:30:00Z",
                  "flight": {"origin": "JFK", "destination": "LHR", "fare": "420.00"}}}


def test_bad_rows_are_named_by_line_and_field(history: dict[str, Path], tmp_path: Path) -> None:
    """Rows that are not requests are listed by line and field; the rest is still reported."""
    bad_fare = json.loads(json.dumps(GOOD))
    bad_fare["event"]["flight"]["fare"] = "cheap"
    file = tmp_path / "h.jsonl"
    file.write_text("\n".join([json.dumps(GOOD), "{not json", json.dumps(bad_fare), "",
                               json.dumps({**GOOD, "extra": 1}), json.dumps(GOOD)]) + "\n")
    result = loyalty("replay", str(POLICIES), str(history["new"]), str(file), "--jobs", "1",
                     "--format", "json")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{file}:2: line: not valid JSON: Expecting property name enclosed in double quotes (column 2)",
        f"{file}:3: event.flight.fare: \"cheap\" is not a decimal number (write ASCII digits "
        "with an optional minus sign and point, such as \"12.50\")",
        f"{file}:5: extra: unknown key (a request is an EvaluateRequest body: \"customer\", "
        "\"event\", \"explain\", \"onlyPolicies\", and an optional \"name\")",
        f"loyalty replay: 3 rows of {file} are not valid requests; the report leaves them out",
    ]
    assert json.loads(result.stdout)["events"] == 2


def test_bad_csv_cells_are_named_by_line_and_column(history: dict[str, Path], tmp_path: Path) -> None:
    """A CSV cell the field cannot take is named by its line and request path."""
    file = tmp_path / "h.csv"
    file.write_text("customer.id,customer.memberSince,event.id,event.time,event.flight.origin,"
                    "event.flight.destination,event.flight.fare,event.flight.partner\n"
                    "c1,2012-02-29,e1,2026-03-01T09:30:00Z,JFK,LHR,420.00,true\n"
                    "c1,2012-02-29,e2,2026-03-01T09:30:00Z,JFK,LHR,420.00,yes\n")
    result = loyalty("replay", str(POLICIES), str(history["new"]), str(file), "--jobs", "1")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        f"{file}:line 3: event.flight.partner: must be true or false, not text")


def test_columns_that_are_not_request_paths(history: dict[str, Path], tmp_path: Path) -> None:
    """A columnar history whose columns are not request paths is refused before any work."""
    file = tmp_path / "h.csv"
    file.write_text("id,customer.id,customer.tier.name\nx,c1,GOLD\n")
    result = loyalty("replay", str(POLICIES), str(history["new"]), str(file))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"loyalty replay: {file}: column 'id': a column is a request path starting with "
        "customer. or event. (for example customer.id, event.flight.origin)",
        f"{file}: no event columns (event.id, event.time, event.flight.origin, ...)",
    ]


@pytest.mark.slow
def test_memory_stays_bounded_on_a_big_history(history: dict[str, Path], tmp_path: Path) -> None:
    """A Parquet history of 240,000 events replays on two workers in at most 300 MB per process."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    base = pq.read_table(history["parquet"])
    big = tmp_path / "big.parquet"
    with pq.ParquetWriter(big, base.schema) as writer:
        for copy in range(80):  # new customers and events in every copy
            table = base
            for column in ("customer.id", "event.id"):
                ids = pc.binary_join_element_wise(table[column], pa.scalar(f"-{copy}"), "")
                table = table.set_column(table.schema.get_field_index(column), column, ids)
            writer.write_table(table)
    probe = ("import resource, subprocess, sys; "
             "r = subprocess.run(sys.argv[1:], capture_output=True); "
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    old = without_counters(Path(shutil.copytree(POLICIES, tmp_path / "old")))
    new = without_counters(Path(shutil.copytree(history["new"], tmp_path / "new")))
    result = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, "-m", "service", "replay", str(old),
         str(new), str(big), "--jobs", "2", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=290, cwd=ROOT)
    status, peak_kb = map(int, result.stdout.split())
    assert status == 1, result.stderr
    assert peak_kb < 300 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"


def test_spilled_customers_give_the_same_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-customer sums written to disk (and partitions split again when too big) give
    exactly the percentiles, counts and top gainers and losers of sums kept in memory."""
    from decimal import Decimal

    from dsl.tools import replay, replay_figures

    def chunk(n: int) -> replay.Replay:
        part = replay.Replay(currencies=("miles", "points"), events=100, changed=100,
                             totals_before={"miles": 1}, totals_after={"miles": 2 + n})
        for i in range(100):  # customers recur across chunks; ints and Decimals, both signs
            cid = f"c{(n * 37 + i * 11) % 900}"
            part.customers[cid] = [1, (n * i) % 41 - 20, Decimal(f"{(n + i) % 7 - 3}.50")]
        return part

    kept = replay.Replay()
    for n in range(60):
        kept.merge(chunk(n))
    monkeypatch.setattr(replay_figures, "SPILL_AT", 50)
    monkeypatch.setattr(replay_figures, "PARTITIONS", 4)
    monkeypatch.setattr(replay_figures, "PARTITION_BYTES", 2_000)  # forces a second split
    spilled = replay.Replay()
    for n in range(60):
        spilled.merge(chunk(n))
    assert spilled._spill is not None and len(spilled.customers) < 50
    assert spilled.to_dict() == kept.to_dict()
    assert spilled.customers_changed == kept.customers_changed == 900
    assert spilled.deltas("points") == kept.deltas("points")
    assert spilled.to_dict() == kept.to_dict()  # a second reading of the spill agrees


def _tree_pss_kb(pid: int) -> int:
    """Proportional set size of a process and all its descendants (shared pages split)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


#: Events of the many-customers history: every event its own customer, nearly all changed.
MANY = 1_000_000


@pytest.mark.slow
def test_memory_stays_bounded_with_a_million_customers(history: dict[str, Path], tmp_path: Path) -> None:
    """A Parquet history of a million events from a million customers, nearly every one
    affected, replays on two workers in under 400 MB for the whole process tree (300 MB on the
    row path alone; the columnar engine's Polars frames take about 330 MB at this size)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    new = tmp_path / "new"
    changed_policies(new)
    without_counters(new)
    old = without_counters(Path(shutil.copytree(POLICIES, tmp_path / "old")))
    policy = new / "airline" / "earn_miles.policy"
    text = policy.read_text(encoding="utf-8")
    assert "rule flown_miles:\n    award base miles\n" in text
    policy.write_text(text.replace("rule flown_miles:\n    award base miles\n",
                                   "rule flown_miles:\n    award 110% of base miles\n"), encoding="utf-8")
    base = pq.read_table(history["parquet"])
    big = tmp_path / "many.parquet"
    with pq.ParquetWriter(big, base.schema) as writer:
        copy = 0
        while copy * base.num_rows < MANY:
            table = base
            ids = pc.binary_join_element_wise(table["event.id"], pa.scalar(f"-{copy}"), "")
            for column in ("customer.id", "event.id"):
                table = table.set_column(table.schema.get_field_index(column), column, ids)
            writer.write_table(table)
            copy += 1
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "report.json"
    with out.open("w") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", "replay", str(old), str(new), str(big),
             "--jobs", "2", "--format", "json", "--no-progress"],
            stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        peak_kb, deadline = 0, time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            peak_kb = max(peak_kb, _tree_pss_kb(proc.pid))
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        status = proc.wait()
    assert status == 1, proc.stderr.read() if proc.stderr else ""
    report = json.loads(out.read_text())
    assert report["events"] == copy * base.num_rows
    assert report["customers_changed"] > 0.9 * report["events"]
    print(f"peak PSS of the process tree {peak_kb / 1024:.0f} MB")
    assert peak_kb < 400 * 1024, f"peak PSS of the process tree {peak_kb / 1024:.0f} MB"


def _purchase(n: int) -> dict[str, Any]:
    """A purchase with 0 to 2 items, from customers with and without an extension field."""
    customer: dict[str, Any] = {"id": f"r{n % 7}", "memberSince": f"{2010 + n % 15}-03-01",
                                "tier": ["GOLD", "MVP", None][n % 3]}
    if n % 2:
        customer["attributes"] = {"home_store": {"stringValue": f"S{n % 3}"}}
    items = [{"sku": f"k{n}-{i}", "category": ["fresh", "tobacco", "garden"][(n + i) % 3],
              "amount": f"{5 + (n * 7 + i) % 40}.50", "quantity": str(1 + i)} for i in range(n % 3)]
    purchase: dict[str, Any] = {"amount": f"{20 + n % 90}.00", "channel": ["store", "app"][n % 2]}
    if items:
        purchase["items"] = items
    return {"customer": {k: v for k, v in customer.items() if v is not None},
            "event": {"id": f"p{n}", "time": f"2026-0{1 + n % 9}-1{n % 10}T12:00:00Z",
                      "purchase": purchase}}


def test_mixed_kinds_and_numbered_items_agree(history: dict[str, Path], tmp_path: Path) -> None:
    """Flights and purchases in one file, items as numbered columns, an extension field:
    the three forms give the same figures."""
    requests = next(airline_requests_stream(200)) + [_purchase(n) for n in range(200)]
    requests = [requests[i] for i in range(0, 400, 2)] + [requests[i] for i in range(1, 400, 2)]
    reports = []
    for form in ("jsonl", "csv", "parquet"):
        file = write_history(tmp_path / f"mixed.{form}", [requests])
        result = loyalty("replay", str(POLICIES), str(history["new"]), str(file), "--format", "json",
                         "--jobs", "1")
        reports.append(figures(result))
    assert reports[0] == reports[1] == reports[2]
    assert reports[0]["events"] == 400 and reports[0]["bad_rows"] == 0
    assert set(reports[0]["currencies"]) == {"miles", "points"}


@pytest.mark.parametrize(("name", "content", "message"), [
    ("h.parquet", "not parquet", "{file}: not a Parquet file: "),
    ("h.txt", "", "{file}: cannot tell the history's form from its name (one of .csv, .json, "
                  ".jsonl, .ndjson, .parquet, .pq); give --input-format jsonl, csv or parquet"),
    ("missing.jsonl", None, "{file}: no such file"),
], ids=["not-parquet", "unknown-suffix", "missing"])
def test_unreadable_histories(history: dict[str, Path], tmp_path: Path, name: str,
                              content: str | None, message: str) -> None:
    """A history that cannot be read is one line on stderr and exit 2, never a traceback."""
    file = tmp_path / name
    if content is not None:
        file.write_text(content)
    result = loyalty("replay", str(POLICIES), str(history["new"]), str(file))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("loyalty replay: " + message.format(file=file))
    assert len(result.stderr.splitlines()) == 1


def test_nested_parquet_columns(history: dict[str, Path], tmp_path: Path) -> None:
    """Parquet struct and list columns (a ``customer`` struct, ``event.purchase`` with a list
    of items) read as the same requests as their JSON-lines."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    requests = [_purchase(n) for n in range(60)]
    rows = [{"customer": r["customer"], "event.id": r["event"]["id"], "event.time": r["event"]["time"],
             "event.purchase": r["event"]["purchase"]} for r in requests]
    nested = tmp_path / "nested.parquet"
    pq.write_table(pa.Table.from_pylist(rows), nested)
    flat = write_history(tmp_path / "nested.jsonl", [requests])
    reports = [json.loads(loyalty("replay", str(POLICIES), str(history["new"]), str(file),
                                  "--format", "json", "--jobs", "1").stdout)
               for file in (nested, flat)]
    for report in reports:
        del report["history"]
    assert reports[0] == reports[1]
    assert reports[0]["events"] == 60 and reports[0]["bad_rows"] == 0
    assert reports[0]["currencies"]["points"]["before"] > 0


# -- rows bounded while reading (issue 17, item 7) -------------------------------------------------


def _peak_kib(*args: str) -> tuple[int, str, int]:
    """``loyalty ARGS`` in a child process: its exit status, stderr and peak RSS (KiB)."""
    probe = ("import resource, subprocess, sys; "
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "sys.stderr.write(r.stderr); "
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "service", *args],
                          capture_output=True, text=True, env=env, timeout=280, cwd=ROOT)
    status, peak = map(int, done.stdout.split())
    return status, done.stderr, peak


def test_a_json_line_past_the_bound_is_refused_unread(history: dict[str, Path], tmp_path: Path) -> None:
    """A 24 MB JSON line (past MAX_LINE_BYTES, 16 MiB) is named by its line and refused while it
    is read, before any parsing; the other lines replay; memory grows by less than the line."""
    from dsl.tools.history import MAX_LINE_BYTES

    huge = {**GOOD, "name": "x" * (24 * 1024 * 1024)}
    file = tmp_path / "h.jsonl"
    with file.open("w") as f:
        f.write(json.dumps(GOOD) + "\n" + json.dumps(huge) + "\n" + json.dumps(GOOD) + "\n")
    size = len(json.dumps(huge)) + 1
    small = tmp_path / "small.jsonl"
    small.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")
    args = ("replay", str(POLICIES), str(history["new"]), "--jobs", "1", "--format", "json")
    _, _, baseline = _peak_kib(*args[:3], str(small), *args[3:])
    status, stderr, peak = _peak_kib(*args[:3], str(file), *args[3:])
    assert status == 2
    assert stderr.splitlines() == [
        f"{file}:2: line: {size:,} bytes, longer than a request may be ({MAX_LINE_BYTES:,} bytes); "
        "not read",
        f"loyalty replay: 1 row of {file} are not valid requests; the report leaves them out",
    ]
    assert (peak - baseline) * 1024 < size, f"grew {(peak - baseline) / 1024:.0f} MB"


def test_a_parquet_row_with_a_list_past_the_bound_is_refused_from_arrow(
        history: dict[str, Path], tmp_path: Path) -> None:
    """A Parquet row whose items list has 400,000 elements (past 10,000) is refused from its
    Arrow list lengths, naming the row and the bound, before it becomes Python values; the
    other rows replay; memory grows by far less than converting the row would take."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    requests = [_purchase(n) for n in range(1, 6)]
    requests[2]["event"]["purchase"]["items"] = [
        {"sku": f"k{i}", "category": "fresh", "amount": "5.50", "quantity": "1"} for i in range(400_000)]
    rows = [{"customer": r["customer"], "event.id": r["event"]["id"], "event.time": r["event"]["time"],
             "event.purchase": r["event"]["purchase"]} for r in requests]
    file = tmp_path / "long.parquet"
    pq.write_table(pa.Table.from_pylist(rows), file)
    small = tmp_path / "small.parquet"
    pq.write_table(pa.Table.from_pylist(rows[:2]), small)
    del rows, requests
    args = ("replay", str(POLICIES), str(history["new"]), "--jobs", "1", "--format", "json")
    _, _, baseline = _peak_kib(*args[:3], str(small), *args[3:])
    status, stderr, peak = _peak_kib(*args[:3], str(file), *args[3:])
    assert status == 2
    assert stderr.splitlines() == [
        f"{file}:row 3: event.purchase.items: 400,000 items, more than an input list may hold "
        "(10,000); the row was not read",
        f"loyalty replay: 1 row of {file} are not valid requests; the report leaves them out",
    ]
    # Arrow holds the decoded row group (about 60 MB); converting the row to Python values
    # as well took 280 MB (measured before the bound).
    assert peak - baseline < 120 * 1024, f"grew {(peak - baseline) / 1024:.0f} MB"
