"""Whether storms of SIGHUPs ever leave a worker that no longer reloads, for docs/reliability.md.

    python -m tests.faults.measure_sighup_storm [--storms 40]

Starts ``loyalty serve --workers 2`` on 127.0.0.1 on a copy of the bundled policies, runs the
suite's steady load (3 callers), and sends storms of 10 SIGHUPs at once to the supervisor; after
each storm, every worker's ``reloads_succeeded`` (ListPolicies on fresh connections) must grow
within 8 s. Stops at the first storm after which a worker did not reload, and prints
``py-spy dump`` of each worker when py-spy is installed. Every load is bounded.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.faults.load import Load
from tests.faults.test_faults_under_load import worker_states
from tests.service.conftest import start_server
from tests.service.test_store_faults import copy_policies


def main() -> None:
    """Print one line per storm, and the stuck workers' stacks if one gets stuck."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storms", type=int, default=40)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sighup-storm-"))
    server = start_server("--workers", "2", policies=copy_policies(root / "policies"))
    try:
        with Load(server.target, max_seconds=args.storms * 10.0, max_calls=10**7) as load:
            for storm in range(1, args.storms + 1):
                before = {i: s.status.reloads_succeeded for i, s in worker_states(server).items()}
                for _ in range(10):
                    server.signal(signal.SIGHUP)
                deadline, now = time.monotonic() + 8, before
                while time.monotonic() < deadline:
                    now = {i: s.status.reloads_succeeded for i, s in worker_states(server).items()}
                    if len(now) == 2 and all(now[i] > before.get(i, 0) for i in now):
                        break
                    time.sleep(0.1)
                else:
                    print(f"storm {storm}: a worker did not reload: {before} -> {now}", flush=True)
                    for instance in now:
                        spy = shutil.which("py-spy")
                        if spy:
                            pid = instance.rsplit("/", 1)[1]
                            print(subprocess.run([spy, "dump", "--pid", pid], capture_output=True,
                                                 text=True).stdout, flush=True)
                    break
                print(f"storm {storm}: both workers reloaded", flush=True)
        print(f"load: {load.ok} calls, {len(load.failures)} failed")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
