"""The locks: a fresh clone installs today what it installs next month, and the image runs the
versions CI tested."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s\\]+)", re.M)


def pins(name: str) -> dict[str, str]:
    """Package -> version of one lock file (names normalised as pip does)."""
    text = (ROOT / "requirements" / name).read_text(encoding="utf-8")
    return {re.sub(r"[-_.]+", "-", p.split("[")[0]).lower(): v for p, v in PIN.findall(text)}


def test_every_pin_carries_hashes():
    """pip --require-hashes refuses a lock with an unhashed line: each pin is followed by one."""
    for name in ("dev.lock", "runtime.lock"):
        text = (ROOT / "requirements" / name).read_text(encoding="utf-8")
        blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
        unhashed = [b.split()[0] for b in blocks if "==" in b and "--hash=sha256:" not in b]
        assert not unhashed, f"{name}: {unhashed}"


def test_the_image_runs_the_versions_ci_tested():
    """Every package of the runtime lock is pinned to the same version in the dev lock."""
    dev, runtime = pins("dev.lock"), pins("runtime.lock")
    assert runtime, "the runtime lock pins nothing"
    assert {p: (v, dev.get(p)) for p, v in runtime.items() if dev.get(p) != v} == {}


def test_every_declared_dependency_is_locked():
    """pyproject.toml's dependencies (and the dev extra's) all appear in the locks."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    def names(reqs: list[str]) -> set[str]:
        return {re.sub(r"[-_.]+", "-", re.split(r"[<>=!\[; ]", r, maxsplit=1)[0]).lower() for r in reqs}
    assert names(project["dependencies"]) <= set(pins("runtime.lock"))
    assert names(project["optional-dependencies"]["dev"]) - {"loyalty-rules"} <= set(pins("dev.lock"))


def test_the_image_installs_from_the_runtime_lock():
    """The Dockerfile installs the runtime lock with hashes and the project without fetching."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install --require-hashes --no-deps -r requirements/runtime.lock" in text
    assert "pip install --no-deps --no-build-isolation ." in text
    assert not re.search(r"pip install (?!--)", text), "an unpinned pip install in the Dockerfile"
