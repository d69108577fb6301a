"""Memory handed back after a reload: a full collection, then glibc's malloc_trim where there is one."""

from __future__ import annotations

import gc
import weakref

from service import memory


class _Cycle:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_release_memory_frees_what_only_the_collector_can():
    """Objects held only by their own cycles (a replaced policy set) are gone after the call."""
    gc.disable()
    try:
        garbage = _Cycle()
        alive = weakref.ref(garbage)
        del garbage
        assert alive() is not None
        seconds = memory.release_memory()
        assert alive() is None
        assert seconds >= 0
    finally:
        gc.enable()


def test_release_memory_trims_the_heap_when_glibc_is_there(monkeypatch):
    """malloc_trim(0) is called once per release when the C library has it, and skipped when not."""
    calls: list[int] = []
    monkeypatch.setattr(memory, "_MALLOC_TRIM", lambda pad: calls.append(pad) or 1)
    memory.release_memory()
    assert calls == [0]
    monkeypatch.setattr(memory, "_MALLOC_TRIM", None)
    memory.release_memory()
    assert calls == [0]
