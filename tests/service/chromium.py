"""Headless Chromium for the tests that look at a page as a browser lays it out and draws it.

Chromium is Debian's ``chromium`` (``./dev.sh tools``); without it a test that asks for it skips,
unless LOYALTY_REQUIRE_TOOLS=1 (.ci/run), where it fails.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.service.conftest import required_tool


def chromium() -> str:
    """The Chromium executable on the PATH; the test skips (or fails, when tools are required)
    without one."""
    return required_tool(shutil.which("chromium") or shutil.which("chromium-browser"),
                         "chromium not found: ./dev.sh tools installs Debian's")


def headless(*args: str, profile: Path, window: tuple[int, int]) -> subprocess.CompletedProcess[bytes]:
    """Chromium headless, offline, with a fresh profile and a ``window`` of (width, height) pixels."""
    width, height = window
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}", *args],
        capture_output=True, timeout=120, check=False)


def screenshot(page: Path, *, profile: Path, window: tuple[int, int]) -> Any:
    """``page`` drawn by headless Chromium in a ``window`` of (width, height) pixels: the PIL image
    of the whole window, its PNG kept next to the page (``page`` with the suffix .png) to look at."""
    from PIL import Image

    shot = page.with_suffix(".png")
    result = headless(f"--screenshot={shot}", page.as_uri(), profile=profile, window=window)
    assert shot.exists(), result.stderr.decode()[-2000:]
    image = Image.open(shot)
    assert image.size == window
    return image
