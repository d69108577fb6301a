"""A real server on 127.0.0.1 (port 0) over a real store, as the RPC tests of this folder talk to
it: the server, its stub and its store started together and stopped together; the bundled
programme copied with its miles declared otherwise; and the pieces of a failed call's status.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import grpc
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from service import logs
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from service.server import create_server
from service.state import StateStore, open_store
from service.store import PolicyStore
from tests.service.conftest import POLICIES


def stamp(text: str) -> timestamp_pb2.Timestamp:
    """The protobuf timestamp of an RFC 3339 text such as ``2026-03-01T09:30:00Z``."""
    out = timestamp_pb2.Timestamp()
    out.FromJsonString(text)
    return out


@dataclass
class LiveServer:
    """A server on 127.0.0.1 over a store: the stub that talks to it, the store, its URL and
    the channel.

    Test files subclass it to add the calls they make; :meth:`started` builds the subclass.
    """

    stub: pb_grpc.LoyaltyRulesStub
    state: StateStore
    url: str
    channel: grpc.Channel | None = None

    @classmethod
    @contextmanager
    def started(cls, url: str, policies: Path | PolicyStore = POLICIES) -> Iterator[Self]:
        """Serve ``policies`` (a directory, loaded here, or a loaded store) over a store opened
        at ``url``, logs kept off the output; stopped, and the store closed, on the way out."""
        logs.configure("info", "json", stream=io.StringIO())
        if not isinstance(policies, PolicyStore):
            policies = PolicyStore(policies)
            assert policies.load()
        state = open_store(url)
        server, port = create_server(store=policies, state=state)
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            yield cls(pb_grpc.LoyaltyRulesStub(channel), state, url, channel)
        finally:
            channel.close()
            server.stop(0).wait(5)
            state.close()


def programme(tmp_path: Path, **miles: str | int) -> Path:
    """A copy of the bundled policies in ``tmp_path``/policies whose miles also declare
    ``miles`` (``validity="never"`` is written ``validity = "never"``, ``redeem_step=150`` as
    ``redeem_step = 150``)."""
    copy = tmp_path / "policies"
    shutil.copytree(POLICIES, copy)
    schema = copy / "schema.toml"
    text = schema.read_text(encoding="utf-8")
    old = "miles = { decimals = 0, cap_per_event = 100000 }"
    assert old in text
    declared = "".join(f', {key} = "{value}"' if isinstance(value, str) else f", {key} = {value}"
                       for key, value in miles.items())
    schema.write_text(text.replace(old, old.removesuffix(" }") + declared + " }"), encoding="utf-8")
    return copy


def status_of(error: grpc.RpcError) -> tuple[grpc.StatusCode, str, list[tuple[str, str]], dict[str, str]]:
    """The code, the message, the BadRequest violations and the ErrorInfo metadata of a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    violations: list[tuple[str, str]] = []
    info: dict[str, str] = {}
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [(v.field, v.description) for v in bad.field_violations]
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            error_info = error_details_pb2.ErrorInfo()
            detail.Unpack(error_info)
            info = dict(error_info.metadata)
    return error.code(), error.details(), violations, info  # type: ignore[attr-defined]
