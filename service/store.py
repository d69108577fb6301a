"""The policy store: load a directory, validate it, swap the result in atomically, and keep
watching it.

Requests read :attr:`PolicyStore.current` once and keep that :class:`Snapshot`
for the whole call, so a reload never changes the set under a call in flight.
Loading (parse, check, compile) runs on the store's own thread, never on a
request's. A directory that no longer loads is refused: its diagnostics are
logged and kept in :attr:`PolicyStore.status` (ListPolicies shows them), and the
last good set keeps serving. So is a directory that is missing, unreadable,
without policies (unless ``allow_empty``) or without the ``schema.toml`` the
serving set was loaded with: faults, not changes (:class:`DirectoryRefused`).

The file watcher (watchfiles) follows inodes; beside it a check of the path's
identity (:func:`path_identity`, every :data:`IDENTITY_INTERVAL_S`) reloads and
restarts the watcher when the path names another directory: a deleted and
restored one, a swapped symlink, a Kubernetes ``..data`` swap.

What a loaded set is served with (its converter and encoder) is built by
:func:`service.snapshot.build_snapshot`; the memory an old set leaves behind is handed back
by :func:`service.memory.release_memory`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import structlog

from dsl.errors import Diagnostic, PolicyError
from dsl.policyset import PolicySet, load_directory
from service.memory import release_memory
from service.snapshot import Snapshot, build_snapshot

__all__ = ["DirectoryRefused", "Loader", "PolicyStore", "Snapshot", "StoreStatus", "path_identity"]

log = structlog.get_logger("loyalty.store")

#: Seconds between two looks at what the directory path points to (see :func:`path_identity`).
IDENTITY_INTERVAL_S = 0.5

#: The memory a replaced set leaves (see :func:`service.memory.release_memory`: a full
#: collection, which holds the interpreter lock for tens of milliseconds) is released once no
#: swap has come for this many seconds: a storm of reloads shares one release at its end...
RELEASE_QUIET_S = 1.0
#: ... or at the latest this many seconds after the first swap it waits for, in a storm that
#: does not end (the old sets' code waits that long for the collector at most).
RELEASE_MAX_DELAY_S = 10.0

#: Loads a policy directory into a policy set; ``dsl.load_directory`` unless a test says otherwise.
Loader = Callable[[Path], PolicySet]


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


class DirectoryRefused(Exception):
    """A load found the directory in a state that must not replace the serving set: missing,
    unreadable, without policies, or without the ``schema.toml`` the serving set was loaded with."""


def path_identity(path: Path | str) -> tuple[object, ...] | None:
    """What ``path`` is right now: the real path, device and inode of the directory it names,
    and the device and inode of every symbolic link met on the way; None when no directory is
    there.

    Two equal identities name the same directory reached the same way. A deleted and
    restored directory has a new inode; ``ln -sfn v2 tmp && mv -T tmp cur`` gives ``cur`` a new
    link inode and a new real path; a Kubernetes ``..data`` swap does both for ``..data``.
    """
    absolute = Path(os.path.abspath(path))
    links: list[tuple[str, int, int]] = []
    prefix = Path(absolute.anchor)
    try:
        for part in absolute.parts[1:]:
            prefix = prefix / part
            st = os.lstat(prefix)
            if stat.S_ISLNK(st.st_mode):
                links.append((str(prefix), st.st_dev, st.st_ino))
        real = os.path.realpath(absolute)
        st = os.stat(real)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return None
    return (real, st.st_dev, st.st_ino, tuple(links))


def _survey(directory: Path) -> bool:
    """Refuse a directory that is missing, not a directory, or not wholly readable; returns
    whether it holds a ``schema.toml``.

    The loader alone would read a missing directory as an empty one, and a folder it
    cannot list as one without policies: either would replace the serving set silently.
    """
    if not directory.exists():
        raise DirectoryRefused(f"{directory}: no such directory (deleted, moved or not mounted)")
    if not directory.is_dir():
        raise DirectoryRefused(f"{directory}: is not a directory")

    def unreadable(error: OSError) -> None:
        raise DirectoryRefused(f"{directory}: cannot be read: {error}")

    for _root, dirs, _files in os.walk(directory, onerror=unreadable):
        # Hidden folders hold no policies (the loader skips them too), and a ConfigMap's
        # timestamped copies are hidden.
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    schema = directory / "schema.toml"
    if schema.exists() and not os.access(schema, os.R_OK):
        raise DirectoryRefused(f"{schema}: cannot be read (permission denied)")
    return schema.is_file()


class _Trigger:
    """A wake-up for the reload thread that a signal handler may set: ``set`` takes no lock.

    A Python signal handler runs on the main thread between two bytecodes, even inside another
    handler. ``threading.Event.set`` holds a lock while it notifies: a second SIGHUP arriving
    then blocked the main thread on that lock for ever, and the reload thread with it (it waits
    on the same lock), so nothing was reloaded again and SIGTERM no longer stopped the process
    (seen under a storm of SIGHUPs; tests/faults/test_signal_flood.py). ``queue.SimpleQueue.put``
    is reentrant by design (its C implementation takes no lock a handler could be holding), so
    it may be called from a handler that interrupted another ``put``.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[None] = queue.SimpleQueue()

    def set(self) -> None:
        """Ask for one more wake-up; never blocks."""
        self._requests.put(None)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until at least one wake-up was asked for since the last :meth:`clear` (True),
        or ``timeout`` seconds passed (False)."""
        try:
            request = self._requests.get(timeout=timeout)
        except queue.Empty:
            return False
        self._requests.put(request)  # keep it pending until clear()
        return True

    def clear(self) -> None:
        """Forget the wake-ups asked for so far (several become one load)."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._requests.get_nowait()


class _EitherEvent:
    """Set when either event is: what watchfiles polls to know when to stop one watch."""

    def __init__(self, first: threading.Event, second: threading.Event) -> None:
        self._first, self._second = first, second

    def is_set(self) -> bool:
        return self._first.is_set() or self._second.is_set()


def _default_loader(path: Path) -> PolicySet:
    return load_directory(path)


class PolicyStore:
    """Holds the serving policy set for one directory and reloads it on change or on request."""

    def __init__(
        self,
        directory: Path | str,
        *,
        loader: Loader | None = None,
        debounce_ms: int = 200,
        allow_empty: bool = False,
        identity_interval_s: float = IDENTITY_INTERVAL_S,
    ) -> None:
        self.directory = Path(directory)
        #: Serve a directory without policies (``loyalty serve --allow-empty``); otherwise such
        #: a load is refused, since an emptied directory is far likelier a fault than intent.
        self.allow_empty = allow_empty
        self._loader = loader or _default_loader
        self._debounce_ms = debounce_ms
        self._identity_interval_s = identity_interval_s
        #: Whether the serving set was loaded with a ``schema.toml``: one that vanishes later is
        #: refused, since the standard schema alone would refuse the callers' extension fields.
        self._had_schema = False
        #: Set when the directory path points somewhere new: the file watcher starts over.
        self._rearm = threading.Event()
        self._current: Snapshot | None = None
        self._status = StoreStatus()
        self._listeners = _Listeners()
        self._load_lock = threading.Lock()
        self._trigger = _Trigger()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watching = threading.Event()
        #: The first swap since memory was last released and the latest swap (``time.monotonic()``;
        #: None when no swap awaits a release).
        self._unreleased_since: float | None = None
        self._swapped_at = 0.0

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
            cpu_started = time.thread_time()
            now = datetime.now(UTC)
            try:
                source = self.source_directory()
                has_schema = _survey(source)
                self._check_schema(source, has_schema)
                policy_set = self._loader(source)
                if not policy_set.policies and not self.allow_empty:
                    raise DirectoryRefused(
                        f"{source}: holds no policies; an empty set is served only with --allow-empty"
                        + (" (the serving set is kept)" if self._current is not None else ""))
                # The loader reads schema.toml itself: it may have gone since the survey.
                self._check_schema(source, (source / "schema.toml").is_file())
                revision = str(policy_set.revision)
                current = self._current
                if current is not None and current.revision == revision:
                    snapshot = current
                else:
                    snapshot = build_snapshot(policy_set, now)
            except Exception as exc:  # a refused change must never stop the service
                self._refuse(exc, now)
                return False
            changed = snapshot is not self._current
            self._current = snapshot  # the swap: one reference assignment
            self._had_schema = has_schema
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
                policies=len(policy_set.policies),
                ms=round((time.perf_counter() - started) * 1000, 1),
                # This process's CPU for the load: reading back what a helper prepared (see
                # service.reloads), or the whole pipeline when it ran here.
                cpu_ms=round((time.thread_time() - cpu_started) * 1000, 1),
            )
        if changed:
            for listener in self._listeners.swapped:
                listener(snapshot)
            self._swapped_at = time.monotonic()
            if self._unreleased_since is None:
                self._unreleased_since = self._swapped_at
        for attempted in self._listeners.attempted:
            attempted(True, self._status)
        return True

    def _release_if_due(self) -> float | None:
        """Release the memory the replaced sets left when it is time (see :data:`RELEASE_QUIET_S`);
        returns the seconds until it will be, or None when no swap awaits a release."""
        since = self._unreleased_since
        if since is None:
            return None
        wait = min(self._swapped_at + RELEASE_QUIET_S, since + RELEASE_MAX_DELAY_S) - time.monotonic()
        if wait > 0:
            return wait
        self._unreleased_since = None
        log.debug("memory released", ms=round(release_memory() * 1000, 1))
        return None

    def _check_schema(self, source: Path, has_schema: bool) -> None:
        if self._had_schema and not has_schema and self._current is not None:
            raise DirectoryRefused(
                f"{source / 'schema.toml'}: is gone, and the serving set was loaded with it "
                "(restore it; to drop it on purpose, restart the server)")

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
        elif isinstance(exc, DirectoryRefused):
            message = str(exc)
            log.error("policies refused", directory=str(self.directory), error=message,
                      serving=self._current.revision if self._current else None)
        elif isinstance(exc, (OSError, ValueError)):  # unreadable file, bad schema.toml
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
        """Start the reload thread and, if ``watch``, the file watcher and the identity check.

        Returns once the watcher is watching (or ``ready_timeout`` passed), so a
        change made after this returns is never missed: start before the first
        :meth:`load`.
        """
        reloader = threading.Thread(target=self._reload_loop, name="policy-reload", daemon=True)
        reloader.start()
        self._threads.append(reloader)
        if watch:
            known = path_identity(self.source_directory())  # before the first load, as the watcher
            identity = threading.Thread(target=self._identity_loop, args=(known,),
                                        name="policy-identity", daemon=True)
            identity.start()
            self._threads.append(identity)
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
            if not self._trigger.wait(self._release_if_due()):
                continue  # the release a storm of swaps deferred is done now (or next time round)
            if self._stop.is_set():
                return
            self._trigger.clear()
            self.load()

    def _identity_loop(self, known: tuple[object, ...] | None) -> None:
        """Reload, and start the watcher over, whenever the directory path names another directory.

        The file watcher follows inodes, not paths: it never sees a symlink on the path
        swapped, and stays on a deleted directory after it is restored. A look at the
        path every :data:`IDENTITY_INTERVAL_S` catches both, whatever the watcher does.
        """
        while not self._stop.wait(self._identity_interval_s):
            try:
                now = path_identity(self.source_directory())
            except Exception:  # never let a strange path end the checks
                log.warning("policy directory identity check failed", exc_info=True)
                continue
            if now == known:
                continue
            log.info("policy directory replaced", directory=str(self.directory),
                     target=str(now[0]) if now else None)
            known = now
            self._rearm.set()
            self._trigger.set()

    def _watch_loop(self) -> None:
        import watchfiles

        stop_watch = _EitherEvent(self._stop, self._rearm)
        first = True
        while not self._stop.is_set():
            self._rearm.clear()  # before the path is resolved: a later swap ends this watch
            target = Path(os.path.realpath(self.directory))
            if not target.is_dir():
                # Nothing to watch until a directory is back. Looked for here too, not only by
                # the identity check: one restored within its interval, reusing the inode
                # number of the one deleted, has the identity the check last saw.
                self._watching.set()
                while not stop_watch.is_set() and not os.path.isdir(os.path.realpath(self.directory)):
                    self._rearm.wait(self._identity_interval_s)
                first = False
                continue
            # A watch started again may have missed changes made before it was live (a
            # restore still being copied): one load once it is live covers them.
            reload_when_live = not first
            first = False
            try:
                for changes in watchfiles.watch(
                    target,
                    stop_event=stop_watch,
                    debounce=self._debounce_ms,
                    step=50,
                    rust_timeout=200,
                    yield_on_timeout=True,  # an empty set now and then: the watcher is live
                    force_polling=_force_polling(),
                ):
                    self._watching.set()
                    if reload_when_live:
                        reload_when_live = False
                        self._trigger.set()
                    if not changes:
                        continue
                    log.info("policy directory changed", changes=len(changes))
                    self._trigger.set()
                    if (watchfiles.Change.deleted, str(target)) in changes:
                        # The watched directory itself is gone and this watch with it. A
                        # directory restored at once may even reuse the inode number, so
                        # the identity check alone could miss it.
                        break
            except Exception:  # the directory vanished or the watcher died: retry shortly
                log.warning("policy watcher restarting", directory=str(self.directory), exc_info=True)
                self._stop.wait(0.5)


def _force_polling() -> bool | None:
    value = os.environ.get("LOYALTY_WATCH_POLLING", "").strip().lower()
    if value in ("1", "true", "yes"):
        return True
    return None
