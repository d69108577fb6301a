"""The policy store: load a directory, swap the result in atomically, and keep watching it.

Requests read :attr:`PolicyStore.current` once and keep that :class:`Snapshot`
for the whole call, so a reload never changes the set under a call in flight.
Loading (parse, check, compile) runs on the store's own thread, never on a
request's. A directory that no longer loads is refused: its diagnostics are
logged and kept in :attr:`PolicyStore.status` (ListPolicies shows them), and the
last good set keeps serving.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from dsl.errors import Diagnostic, PolicyError
from service.convert import Converter
from service.wire import DecisionEncoder

log = structlog.get_logger("loyalty.store")

#: Loads a policy directory into a policy set; ``dsl.load_directory`` unless a test says otherwise.
Loader = Callable[[Path], Any]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One loaded policy set and what the service derives from it, as one immutable value."""

    policy_set: Any
    converter: Converter
    #: Writes the set's decisions as response bytes (its template cache is this set's).
    encoder: DecisionEncoder
    revision: str
    loaded_at: datetime


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """How loading went: the serving set's load time and the outcome of the last attempt."""

    loaded_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_attempt_failed: bool = False
    last_error: str = ""
    diagnostics: tuple[Diagnostic, ...] = ()
    reloads_succeeded: int = 0
    reloads_failed: int = 0


@dataclass
class _Listeners:
    swapped: list[Callable[[Snapshot], None]] = field(default_factory=list)
    attempted: list[Callable[[bool, StoreStatus], None]] = field(default_factory=list)


def _default_loader(path: Path) -> Any:
    import dsl

    return dsl.load_directory(path)


class PolicyStore:
    """Holds the serving policy set for one directory and reloads it on change or on request."""

    def __init__(
        self,
        directory: Path | str,
        *,
        loader: Loader | None = None,
        debounce_ms: int = 200,
    ) -> None:
        self.directory = Path(directory)
        self._loader = loader or _default_loader
        self._debounce_ms = debounce_ms
        self._current: Snapshot | None = None
        self._status = StoreStatus()
        self._listeners = _Listeners()
        self._load_lock = threading.Lock()
        self._trigger = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watching = threading.Event()

    # -- reading ---------------------------------------------------------------------------

    @property
    def current(self) -> Snapshot | None:
        """The serving snapshot, or None before the first successful load."""
        return self._current

    @property
    def status(self) -> StoreStatus:
        """The outcome of the last load attempt and the counters since start."""
        return self._status

    def on_swap(self, listener: Callable[[Snapshot], None]) -> None:
        """Call ``listener(snapshot)`` after every swap (and now, if a set is already serving)."""
        self._listeners.swapped.append(listener)
        if self._current is not None:
            listener(self._current)

    def on_attempt(self, listener: Callable[[bool, StoreStatus], None]) -> None:
        """Call ``listener(ok, status)`` after every load attempt."""
        self._listeners.attempted.append(listener)

    # -- loading ------------------------------------------------------------------------------

    def load(self) -> bool:
        """Load the directory now; swap it in if it is good. Returns whether it was good."""
        with self._load_lock:  # one load at a time; requests never take this lock
            started = time.perf_counter()
            now = datetime.now(UTC)
            try:
                policy_set = self._loader(self.source_directory())
                revision = str(policy_set.revision)
                current = self._current
                if current is not None and current.revision == revision:
                    snapshot = current
                else:
                    converter = Converter(policy_set.schema)
                    snapshot = Snapshot(policy_set, converter, DecisionEncoder(), revision, now)
            except Exception as exc:  # a refused change must never stop the service
                self._refuse(exc, now)
                return False
            changed = snapshot is not self._current
            self._current = snapshot  # the swap: one reference assignment
            self._status = replace(
                self._status,
                loaded_at=snapshot.loaded_at,
                last_attempt_at=now,
                last_attempt_failed=False,
                last_error="",
                diagnostics=(),
                reloads_succeeded=self._status.reloads_succeeded + 1,
            )
            log.info(
                "policies loaded" if changed else "policies unchanged",
                directory=str(self.directory),
                revision=revision,
                policies=len(getattr(policy_set, "policies", ())),
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
        if changed:
            for listener in self._listeners.swapped:
                listener(snapshot)
        for attempted in self._listeners.attempted:
            attempted(True, self._status)
        return True

    def _refuse(self, exc: Exception, now: datetime) -> None:
        diagnostics: tuple[Diagnostic, ...] = ()
        if isinstance(exc, PolicyError):
            diagnostics = tuple(exc.diagnostics)
            message = str(exc)
            log.error(
                "policies refused",
                directory=str(self.directory),
                error=message,
                diagnostics=[d.to_dict() for d in diagnostics],
                serving=self._current.revision if self._current else None,
            )
        elif isinstance(exc, (OSError, ValueError)):  # unreadable directory, bad schema.toml
            message = f"{type(exc).__name__}: {exc}"
            log.error("policies refused", directory=str(self.directory), error=message,
                      serving=self._current.revision if self._current else None)
        else:
            message = f"{type(exc).__name__}: {exc}"
            log.exception("policies refused: loader failed", directory=str(self.directory),
                          serving=self._current.revision if self._current else None)
        self._status = replace(
            self._status,
            last_attempt_at=now,
            last_attempt_failed=True,
            last_error=message,
            diagnostics=diagnostics,
            reloads_failed=self._status.reloads_failed + 1,
        )
        for attempted in self._listeners.attempted:
            attempted(False, self._status)

    def source_directory(self) -> Path:
        """The directory to load: ``DIR/..data`` for a Kubernetes ConfigMap volume, else ``DIR``.

        A ConfigMap volume holds each version in a hidden timestamped folder, with
        ``..data`` pointing at the current one and the visible files linking through
        it; loading ``..data`` reads each policy once, and the file watcher still
        watches ``DIR``, where kubelet swaps ``..data`` atomically on an update.
        """
        data = self.directory / "..data"
        return data if data.is_dir() else self.directory

    # -- watching -----------------------------------------------------------------------------

    def request_reload(self) -> None:
        """Ask the reload thread to load the directory again (SIGHUP calls this). Never blocks."""
        self._trigger.set()

    def start(self, *, watch: bool = True, ready_timeout: float = 5.0) -> None:
        """Start the reload thread and, if ``watch``, the file watcher.

        Returns once the watcher is watching (or ``ready_timeout`` passed), so a
        change made after this returns is never missed: start before the first
        :meth:`load`.
        """
        reloader = threading.Thread(target=self._reload_loop, name="policy-reload", daemon=True)
        reloader.start()
        self._threads.append(reloader)
        if watch:
            watcher = threading.Thread(target=self._watch_loop, name="policy-watch", daemon=True)
            watcher.start()
            self._threads.append(watcher)
            if not self._watching.wait(ready_timeout):
                log.warning("policy watcher not ready yet", directory=str(self.directory))

    def stop(self) -> None:
        """Stop watching and reloading."""
        self._stop.set()
        self._trigger.set()
        for t in self._threads:
            t.join(timeout=2)
        self._threads.clear()

    def _reload_loop(self) -> None:
        while not self._stop.is_set():
            self._trigger.wait()
            if self._stop.is_set():
                return
            self._trigger.clear()
            self.load()

    def _watch_loop(self) -> None:
        import watchfiles

        while not self._stop.is_set():
            if not self.directory.exists():
                self._stop.wait(1.0)
                continue
            try:
                for changes in watchfiles.watch(
                    self.directory,
                    stop_event=self._stop,
                    debounce=self._debounce_ms,
                    step=50,
                    rust_timeout=200,
                    yield_on_timeout=True,  # an empty set now and then: the watcher is live
                    force_polling=_force_polling(),
                ):
                    self._watching.set()
                    if changes:
                        log.info("policy directory changed", changes=len(changes))
                        self._trigger.set()
            except Exception:  # the directory vanished or the watcher died: retry shortly
                log.warning("policy watcher restarting", directory=str(self.directory), exc_info=True)
                self._stop.wait(1.0)


def _force_polling() -> bool | None:
    value = os.environ.get("LOYALTY_WATCH_POLLING", "").strip().lower()
    if value in ("1", "true", "yes"):
        return True
    return None
