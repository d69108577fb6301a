"""A raw HTTP/2 client for the wire tests: one request with exactly the headers and body given.

A gRPC channel always sends ``content-type: application/grpc`` and well-formed frames; what a
server does with anything else (another content-type, a message cut short) needs the
HTTP/2 layer itself, here the ``h2`` package over a plain socket to 127.0.0.1.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events


@dataclass
class RawResponse:
    """What came back on the stream: headers, trailers, body bytes, and how it ended."""

    headers: dict[str, str] = field(default_factory=dict)
    trailers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""
    #: The HTTP/2 error code of a RST_STREAM or GOAWAY that ended the stream, if one did.
    reset: int | None = None

    @property
    def grpc_status(self) -> int | None:
        """``grpc-status`` from the trailers (or from headers, for a trailers-only response)."""
        value = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return int(value) if value is not None else None

    @property
    def grpc_message(self) -> str:
        """``grpc-message``, as sent (percent-encoded)."""
        return self.trailers.get("grpc-message", self.headers.get("grpc-message", ""))


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: not compressed, 4-byte big-endian length, the bytes."""
    return b"\0" + struct.pack(">I", len(message)) + message


def post(port: int, path: str, body: bytes, *, content_type: str | None = "application/grpc",
         timeout: float = 10.0) -> RawResponse:
    """POST ``body`` to ``path`` on 127.0.0.1:``port`` with gRPC's other headers and the given
    ``content-type`` (None: no content-type header); read until the stream ends (at most
    ``timeout`` seconds)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    response = RawResponse()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        conn.initiate_connection()
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path),
                   (":authority", f"127.0.0.1:{port}"), ("te", "trailers")]
        if content_type is not None:
            headers.append(("content-type", content_type))
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, headers)
        conn.send_data(stream, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        deadline = time.monotonic() + timeout
        ended = False
        while not ended and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    response.headers.update(event.headers)  # type: ignore[arg-type]
                elif isinstance(event, h2.events.TrailersReceived):
                    response.trailers.update(event.headers)  # type: ignore[arg-type]
                elif isinstance(event, h2.events.DataReceived):
                    response.data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.StreamReset | h2.events.ConnectionTerminated):
                    response.reset = int(event.error_code or 0)
                    ended = True
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            sock.sendall(conn.data_to_send())
        if not ended:
            raise AssertionError(f"the stream did not end within {timeout} s: {response}")
    return response


def ping_until_goaway(port: int, pings: int, timeout: float = 10.0) -> tuple[int, bytes] | None:
    """Send ``pings`` HTTP/2 PINGs on a connection that carries no call, then read: the GOAWAY's
    error code and debug data if the server ended the connection, None if it kept it open
    until ``timeout`` seconds passed or the reads ran dry."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        for i in range(pings):
            conn.ping(i.to_bytes(8, "big"))
            sock.sendall(conn.data_to_send())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                return None
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ConnectionTerminated):
                    return int(event.error_code or 0), bytes(event.additional_data or b"")
            # Nothing is sent back (no SETTINGS or PING acks): the server closes the socket
            # right after its GOAWAY, and bytes arriving at a closed socket make its kernel
            # reset the connection, which can discard the GOAWAY before it is read (seen in
            # CI as a BrokenPipeError on the ack).
    return None
