"""What a user hits first: a port already in use, --version, a request on stdin, ./dev.sh's help."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.dsl.test_cli import CUSTOMER, EVENT
from tests.service.conftest import ROOT


def loyalty(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=False, input=stdin)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 some other program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.mark.parametrize("workers", ["1", "2"], ids=["one-process", "workers"])
def test_a_port_already_in_use_is_one_clear_line_and_a_non_zero_exit(taken_port, workers):
    """No traceback, no gRPC core log line: one line naming the address and what to do."""
    result = loyalty("serve", "--port", str(taken_port), "--workers", workers, "--log-format", "json")
    assert result.returncode == 2
    assert result.stderr == (f"loyalty serve: cannot listen on 127.0.0.1:{taken_port}: the address is "
                             "already in use (another server on this port? stop it, or pick another "
                             "--port; 0 picks a free one)\n")


def test_a_metrics_port_already_in_use_is_one_clear_line_too(taken_port):
    """The metrics port is checked with the service's, before anything loads: no traceback."""
    result = loyalty("serve", "--port", "0", "--metrics-port", str(taken_port), "--log-format", "json")
    assert result.returncode == 2
    assert result.stderr == (f"loyalty serve: cannot listen on 127.0.0.1:{taken_port}: the address is "
                             "already in use (another server on this port? stop it, or pick another "
                             "--metrics-port; 0 picks a free one)\n")


def test_version_names_the_installed_package():
    """`loyalty --version` prints the package's version and the Python it runs on."""
    result = loyalty("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("loyalty 0.") and "(Python 3." in result.stdout


def test_eval_request_dash_reads_the_request_from_stdin():
    """`loyalty eval --request -` reads an EvaluateRequest body (JSON) from stdin."""
    body = json.dumps({"customer": CUSTOMER, "event": EVENT})
    result = loyalty("eval", "--request", "-", "--format", "json", stdin=body)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["awards"] == {"miles": "8949"}
    bad = loyalty("eval", "--request", "-", stdin="{")
    assert bad.returncode == 2
    assert bad.stderr.startswith("loyalty eval: <stdin>: the request file is not valid JSON")


def test_dev_sh_help_lists_its_commands_and_no_shell_code():
    """`./dev.sh` with no arguments prints its commands, not the script's first line of code."""
    result = subprocess.run(["bash", str(ROOT / "dev.sh")], capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 0
    assert "./dev.sh test [pytest args]" in result.stdout
    assert "set -euo" not in result.stdout and "#" not in result.stdout


def test_replay_without_its_extra_says_which_extra_to_install(tmp_path):
    """The slim image has no pyarrow: `loyalty replay` says what to install, exit 2, no traceback."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('pyarrow', 'tqdm', 'matplotlib'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    result = subprocess.run([sys.executable, "-m", "service", "replay", "policies", "policies",
                             "history.csv"], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr == ("loyalty replay: needs pyarrow, tqdm, from the replay extra, which this "
                             "installation leaves out: pip install 'loyalty-rules[replay]'\n")
