"""Shedding idle connections before new ones are refused, and a connection limit per client host.

gRPC core caps the connections a server holds (``grpc.max_allowed_incoming_connections``) by
refusing new ones, whatever the old ones do: 20,000 idle connections from one host that had
sent the HTTP/2 preface filled the cap of 10,000 and every new client failed until the
300 s idle timeout (issue 17). Core has no per-peer limit and no way to prefer an idle
connection to a new one, and Python never sees a connection, only calls. So this module
looks from outside: :class:`ConnectionShedder` is one thread that, once a second, counts the
process's open descriptors and, only when they pass the per-peer limit, reads which sockets
are connections to the serving port (``/proc/self/fd`` and ``/proc/net/tcp*``), and shuts
down (``shutdown(2)``, on a duplicate of the descriptor, checked to be the same socket)
connections that carry no call and have had none for ``idle_grace_s``:

- every such connection of a client host beyond ``max_per_peer`` connections;
- when the process holds more than ``high_water`` of ``max_connections``, the oldest such
  connections until it holds ``low_water``, so a new client finds room.

gRPC core then sees the socket end and closes the connection as if the client had gone. A
connection with a call in flight, or one younger than ``idle_grace_s`` (a new client about to
call), is never shed. Linux only (``/proc``); elsewhere the thread does nothing.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

log = structlog.get_logger("loyalty.connections")

#: Descriptors handled between two hand-overs of the GIL to request threads.
_YIELD_EVERY = 256
#: Peers whose last call is remembered before the oldest are forgotten, and for how long a
#: peer is remembered then (longer than any idle grace).
_MAX_REMEMBERED = 20_000
_REMEMBER_S = 60.0
#: TCP state ESTABLISHED in /proc/net/tcp.
_ESTABLISHED = "01"


@dataclass(frozen=True, slots=True)
class ShedPolicy:
    """When idle connections are shed (see the module docstring)."""

    #: Connections one client host may hold; idle ones beyond it are shed. None: no limit.
    max_per_peer: int | None = 1_000
    #: Shares of ``max_connections`` above which idle connections are shed, and down to which.
    high_water: float = 0.8
    low_water: float = 0.5
    #: A connection must have carried no call for this long (and be this old) to be shed.
    idle_grace_s: float = 2.0
    #: Seconds between two looks.
    interval_s: float = 1.0


class PeerActivity:
    """Calls in flight and the last call's end, per peer (``ipv4:ADDR:PORT``, one per connection)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._prune_at = _MAX_REMEMBERED

    def begin(self, peer: str) -> None:
        """A call from ``peer`` starts."""
        with self._lock:
            self._in_flight[peer] = self._in_flight.get(peer, 0) + 1

    def end(self, peer: str) -> None:
        """A call from ``peer`` ended."""
        now = time.monotonic()
        with self._lock:
            left = self._in_flight.get(peer, 1) - 1
            if left > 0:
                self._in_flight[peer] = left
            else:
                self._in_flight.pop(peer, None)
            self._last[peer] = now
            if len(self._last) > self._prune_at:  # every connection is a peer: forget old ones
                self._last = {p: t for p, t in self._last.items() if now - t < _REMEMBER_S}
                self._prune_at = max(_MAX_REMEMBERED, 2 * len(self._last))  # amortised

    def busy(self, since: float) -> set[str]:
        """Peers with a call in flight or one that ended after ``since`` (monotonic); forgets
        peers idle longer than that."""
        with self._lock:
            self._last = {p: t for p, t in self._last.items() if t >= since}
            return set(self._in_flight) | set(self._last)


def _hex_address(text: str) -> str:
    """``0100007F:1F90`` (or its IPv6 form) from /proc/net/tcp as a gRPC peer string."""
    address, port = text.split(":")
    raw = bytes.fromhex(address)
    if len(raw) == 4:
        return f"ipv4:{socket.inet_ntop(socket.AF_INET, raw[::-1])}:{int(port, 16)}"
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    ip = socket.inet_ntop(socket.AF_INET6, words)
    if ip.startswith("::ffff:") and "." in ip:  # an IPv4 client on a dual-stack socket
        return f"ipv4:{ip[7:]}:{int(port, 16)}"
    return f"ipv6:[{ip}]:{int(port, 16)}"


def connections_on(port: int, tables: Iterable[str] = ("/proc/net/tcp", "/proc/net/tcp6")) -> dict[int, str]:
    """Established TCP connections whose local port is ``port``: socket inode -> peer string."""
    found: dict[int, str] = {}
    suffix = f":{port:04X}"
    for table in tables:
        try:
            with open(table, encoding="ascii") as lines:
                next(lines, None)
                for line in lines:
                    parts = line.split()
                    if len(parts) > 9 and parts[3] == _ESTABLISHED and parts[1].endswith(suffix):
                        found[int(parts[9])] = _hex_address(parts[2])
        except OSError:
            continue
    return found


def socket_descriptors() -> dict[int, int]:
    """This process's socket descriptors: inode -> descriptor number."""
    sockets: dict[int, int] = {}
    for n, name in enumerate(os.listdir("/proc/self/fd"), 1):
        if n % _YIELD_EVERY == 0:
            time.sleep(0)  # as in ConnectionShedder.look
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            sockets[int(target[8:-1])] = int(name)
    return sockets


def shut_down(fd: int, inode: int) -> bool:
    """Shut down the socket behind ``fd`` if it still is socket ``inode`` (the descriptor may
    have been closed and its number reused since it was read); the descriptor stays open for
    its owner, gRPC core, which sees the connection end. True if it was shut down."""
    try:
        dup = os.dup(fd)
    except OSError:
        return False
    try:
        if os.fstat(dup).st_ino != inode:
            return False
        sock = socket.socket(fileno=dup)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            return False
        finally:
            sock.detach()
        return True
    finally:
        os.close(dup)


class ConnectionShedder:
    """The thread of the module docstring, for one server process serving ``port``."""

    def __init__(self, port: int, max_connections: int | None, activity: PeerActivity,
                 policy: ShedPolicy | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.port = port
        self.max_connections = max_connections
        self.activity = activity
        self.policy = policy or ShedPolicy()
        self._clock = clock
        self._first_seen: dict[int, float] = {}  # inode -> when a look first saw it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Connections shed since start.
        self.shed = 0

    def start(self) -> None:
        """Start looking (Linux only: without /proc/self/fd, nothing starts)."""
        if self._thread is None and os.path.isdir("/proc/self/fd"):
            self._thread = threading.Thread(target=self._run, name="connection-shedder", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop looking."""
        self._stop.set()

    def _threshold(self) -> int | None:
        """Open descriptors below which no look is needed."""
        levels = [self.policy.max_per_peer] if self.policy.max_per_peer is not None else []
        if self.max_connections is not None:
            levels.append(int(self.max_connections * self.policy.high_water))
        return min(levels) if levels else None

    def _run(self) -> None:
        threshold = self._threshold()
        if threshold is None:
            return
        while not self._stop.wait(self.policy.interval_s):
            try:
                if len(os.listdir("/proc/self/fd")) > threshold:
                    self.look()
            except Exception:  # a look that fails must not end the thread
                log.exception("connection look failed")

    def look(self) -> int:
        """One look: shed what the policy says; returns how many connections were shed."""
        policy = self.policy
        now = self._clock()
        began = time.perf_counter()
        connections = connections_on(self.port)
        fds = socket_descriptors()
        mine = {inode: peer for inode, peer in connections.items() if inode in fds}
        self._first_seen = {i: self._first_seen.get(i, now) for i in mine}
        busy = self.activity.busy(now - policy.idle_grace_s)
        idle = sorted((self._first_seen[i], i) for i, peer in mine.items()
                      if peer not in busy and now - self._first_seen[i] >= policy.idle_grace_s)
        victims: list[int] = []
        if policy.max_per_peer is not None:
            per_host: dict[str, int] = {}
            for peer in mine.values():
                host = peer.rpartition(":")[0]
                per_host[host] = per_host.get(host, 0) + 1
            for _seen, inode in reversed(idle):  # the newest idle ones of a host over its limit
                host = mine[inode].rpartition(":")[0]
                if per_host[host] > policy.max_per_peer:
                    per_host[host] -= 1
                    victims.append(inode)
        if self.max_connections is not None:
            held = len(mine) - len(victims)
            if held > self.max_connections * policy.high_water:
                chosen = set(victims)
                for _seen, inode in idle:  # the oldest first
                    if held <= self.max_connections * policy.low_water:
                        break
                    if inode not in chosen:
                        victims.append(inode)
                        held -= 1
        shed = 0
        for n, inode in enumerate(victims, 1):
            shed += shut_down(fds[inode], inode)
            if n % _YIELD_EVERY == 0:
                time.sleep(0)  # let request threads have the GIL: a big look takes a second
        if shed:
            self.shed += shed
            log.info("idle connections shed", shed=shed, connections=len(mine), busy=len(busy),
                     ms=round((time.perf_counter() - began) * 1000, 1))
        return shed
