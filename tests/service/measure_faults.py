"""How long ``loyalty serve`` takes to notice policy-directory faults, for docs/reliability.md.

    python -m tests.service.measure_faults [--runs 5]

Starts one real server per case on 127.0.0.1 (port 0) and times, over ``--runs`` tries each:
a top-level symlink swap (``ln -sfn`` + ``mv -T``) until the new revision serves, a Kubernetes
``..data`` swap likewise, ``rm -rf`` of the directory until the refusal shows in ListPolicies,
and a restore (renamed into place) until it serves again. Every wait is bounded (30 s).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.service.conftest import start_server
from tests.service.test_process import _configmap_version, list_policies, wait_for
from tests.service.test_store_faults import copy_policies, edit


def _timed(action: Callable[[], None], done: Callable[[], bool]) -> float:
    started = time.monotonic()
    action()
    wait_for(done, timeout=30, what="the change to be served")
    return time.monotonic() - started


def symlink_swaps(root: Path, runs: int) -> list[float]:
    """Seconds from ``mv -T`` of a new link over ``cur`` to its revision serving."""
    for i in range(runs + 1):
        edit(copy_policies(root / f"v{i}"), f"v{i}")
    (root / "cur").symlink_to("v0")
    server = start_server(policies=root / "cur")
    out = []
    try:
        for i in range(1, runs + 1):
            before = list_policies(server).revision
            subprocess.run(["ln", "-sfn", f"v{i}", "cur.next"], cwd=root, check=True)
            out.append(_timed(lambda: subprocess.run(["mv", "-T", "cur.next", "cur"], cwd=root, check=True),
                              lambda b=before: list_policies(server).revision != b))  # type: ignore[misc]
    finally:
        server.stop()
    return out


def configmap_swaps(root: Path, runs: int) -> list[float]:
    """Seconds from kubelet's ``..data`` rename to the new revision serving."""
    text = (Path(__file__).parents[2] / "policies" / "airline" / "earn_miles.policy").read_text()
    _configmap_version(root, "2026_01_01_00_00_00.0", text)
    server = start_server(policies=root)
    out = []
    try:
        for i in range(1, runs + 1):
            before = list_policies(server).revision
            out.append(_timed(lambda i=i: _configmap_version(root, f"2026_01_02_00_00_00.{i}",  # type: ignore[misc]
                                                            text + f"\n# {i}\n"),
                              lambda b=before: list_policies(server).revision != b))  # type: ignore[misc]
    finally:
        server.stop()
    return out


def delete_and_restore(root: Path, runs: int) -> tuple[list[float], list[float]]:
    """Seconds from ``rm -rf`` to the refusal showing, and from a restore to it serving."""
    served = copy_policies(root / "policies")
    server = start_server(policies=served)
    refused, restored = [], []
    try:
        for i in range(runs):
            before = list_policies(server)
            failed_before = before.status.reloads_failed
            refused.append(_timed(lambda: shutil.rmtree(served),
                                  lambda f=failed_before: list_policies(server).status.reloads_failed > f))  # type: ignore[misc]
            staged = copy_policies(root / f"restore{i}")
            edit(staged, f"restore {i}")
            restored.append(_timed(lambda s=staged: s.rename(served),  # type: ignore[misc]
                                   lambda b=before.revision: list_policies(server).revision != b))  # type: ignore[misc]
    finally:
        server.stop()
    return refused, restored


def _summary(name: str, seconds: list[float]) -> str:
    return (f"{name}: median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s "
            f"over {len(seconds)} runs")


def main() -> None:
    """Run every case and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for sub in ("link", "configmap", "delete"):
            (root / sub).mkdir()
        print(_summary("symlink swap -> new revision serving", symlink_swaps(root / "link", runs)))
        print(_summary("..data swap -> new revision serving", configmap_swaps(root / "configmap", runs)))
        refused, restored = delete_and_restore(root / "delete", runs)
        print(_summary("rm -rf -> refusal in ListPolicies", refused))
        print(_summary("restore (rename into place) -> serving, no signal", restored))


if __name__ == "__main__":
    main()
