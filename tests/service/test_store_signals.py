"""``PolicyStore.request_reload`` is safe in a signal handler that interrupts another one.

A Python signal handler runs on the main thread between two bytecodes, even inside another
handler. The SIGHUP handler calls ``request_reload``; it once set a ``threading.Event``, whose
``set`` holds a lock while it notifies, so a second SIGHUP arriving at that moment blocked the
main thread on that lock for ever, and the reload thread with it: the process kept answering
calls, but loaded nothing again, and SIGTERM no longer stopped it (py-spy of a worker after a
storm of 10 SIGHUPs under load: ``on_hup -> request_reload -> Event.set -> Condition.__enter__``
inside ``on_hup -> request_reload -> Event.set -> Condition.notify``).

The test plays the second signal deterministically: a trace function calls ``request_reload``
again at every line executed inside the first call (where a handler could run), in a child
process, so that a deadlock fails the test by its timeout instead of hanging the suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.service.conftest import ROOT

CHILD = textwrap.dedent('''
    import sys
    import threading

    from service.store import PolicyStore

    store = PolicyStore("/nonexistent", loader=lambda _path: None)
    busy = False
    nested = 0

    def interrupt(frame, event, _arg):
        # At each line run inside request_reload, what a second SIGHUP's handler would do.
        global busy, nested
        if event == "line" and not busy:
            busy = True
            nested += 1
            store.request_reload()
            busy = False
        return interrupt

    sys.settrace(lambda frame, event, arg: interrupt)
    threading.settrace(lambda frame, event, arg: interrupt)
    store.request_reload()
    sys.settrace(None)
    woken = threading.Event()
    threading.Thread(target=lambda: (store._trigger.wait(), woken.set()), daemon=True).start()
    print(nested, woken.wait(5))
''')


def test_a_reload_request_interrupted_by_another_never_blocks():
    """``request_reload`` called again at every line of a running ``request_reload`` (as nested
    SIGHUP handlers do) returns, and leaves the reload thread's wake-up pending."""
    result = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True,
                            timeout=30, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    nested, woken = result.stdout.split()
    assert int(nested) >= 1, "no line of request_reload ran: the test interrupted nothing"
    assert woken == "True"
