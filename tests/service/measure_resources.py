"""Memory of ``loyalty serve`` across reloads of distinct policy versions, for docs/performance.md.

    python -m tests.service.measure_resources [--reloads 1000] [--rules 500]

Starts a real server (127.0.0.1, port 0, ``--no-watch``) on the bundled policies plus one
mid-size flight policy of ``--rules`` rules, then ``--reloads`` times: writes a new version of
that policy (a different cap, so a different text and revision), sends SIGHUP and waits until
ListPolicies shows the new revision. It prints VmRSS of that process, then of a fresh process
that loaded only the last version (after the same warm-up calls). Every wait is bounded.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import tempfile
import time
from pathlib import Path

from benchmarks.data import rules_policy
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from tests.service.conftest import POLICIES, ServerProcess, request, start_server
from tests.service.test_process import list_policies, wait_for

#: Where the mid-size policy lives in the served directory.
MID_SIZE = Path("mid") / "many_rules.policy"


def mid_size_policy(version: int, rules: int = 250) -> str:
    """Version ``version`` of a flight policy of ``rules`` rules (250: about 14 KB of text);
    versions differ only in their cap, as a routine edit of one constant would."""
    text = rules_policy(rules)
    return text.replace("cap miles at 25000", f"cap miles at {25000 + version}")


def policy_dir(target: Path, rules: int, version: int = 0) -> Path:
    """The bundled policies (without their tests) plus version ``version`` of the mid-size one."""
    shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("*.test.toml"))
    (target / MID_SIZE).parent.mkdir()
    (target / MID_SIZE).write_text(mid_size_policy(version, rules))
    return target


def rss_mib(pid: int) -> float:
    """The resident set of process ``pid`` in MiB (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def warm_up(server: ServerProcess, calls: int = 20) -> None:
    """The same few calls on every server measured, so their RSS differs only by the reloads."""
    with server.channel() as channel:
        stub = pb_grpc.LoyaltyRulesStub(channel)
        for _ in range(calls):
            stub.Evaluate(request(), timeout=5)
    list_policies(server)


def reload_versions(server: ServerProcess, directory: Path, versions: range, rules: int,
                    timeout: float = 30.0) -> None:
    """For each version: write it, SIGHUP, and wait (at most ``timeout`` s) until it serves."""
    for version in versions:
        before = list_policies(server).revision
        (directory / MID_SIZE).write_text(mid_size_policy(version, rules))
        server.signal(signal.SIGHUP)
        wait_for(lambda b=before: list_policies(server).revision != b,  # type: ignore[misc]
                 timeout=timeout, what=f"version {version} to serve")


def measure(root: Path, reloads: int, rules: int) -> dict[str, float]:
    """RSS (MiB) of a server at start, after ``reloads`` distinct versions, and of a fresh
    server on the last version; plus the seconds the reloads took."""
    directory = policy_dir(root / "policies", rules)
    server = start_server("--no-watch", policies=directory)
    try:
        warm_up(server)
        start = rss_mib(server.proc.pid)
        began = time.monotonic()
        reload_versions(server, directory, range(1, reloads + 1), rules)
        seconds = time.monotonic() - began
        warm_up(server)
        after = rss_mib(server.proc.pid)
    finally:
        server.stop()
    fresh_server = start_server("--no-watch", policies=directory)
    try:
        warm_up(fresh_server)
        fresh = rss_mib(fresh_server.proc.pid)
    finally:
        fresh_server.stop()
    return {"start": start, "after": after, "fresh": fresh, "seconds": seconds}


def main() -> None:
    """Print the figures for docs/performance.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reloads", type=int, default=1000)
    parser.add_argument("--rules", type=int, default=500)
    args = parser.parse_args()
    print(f"policy text: {len(mid_size_policy(1, args.rules))} bytes ({args.rules} rules)")
    with tempfile.TemporaryDirectory() as tmp:
        figures = measure(Path(tmp), args.reloads, args.rules)
    print(f"RSS at start {figures['start']:.1f} MiB; after {args.reloads} reloads "
          f"{figures['after']:.1f} MiB ({figures['seconds']:.0f} s); fresh process on the last "
          f"version {figures['fresh']:.1f} MiB; ratio {figures['after'] / figures['fresh']:.2f}")


if __name__ == "__main__":
    main()
