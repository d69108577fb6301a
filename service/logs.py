"""Structured logging with structlog: JSON lines in production, a readable console on a terminal.

Every RPC writes one canonical line (method, status, latency, customer id,
revision); with the decision log switched on, every decision writes a line with
its effects. No line carries personal data beyond the caller's ids.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

import structlog

#: Log formats ``--log-format`` accepts; ``auto`` is console on a terminal and JSON otherwise.
FORMATS = ("auto", "json", "console")


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog (and route stdlib logging, as from grpc, through the same output)."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        exc = [structlog.processors.dict_tracebacks]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
        exc = []
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _add_pid,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *exc,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))


def _add_pid(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    # With --workers N several processes share one stream: say which one wrote the line.
    event["pid"] = os.getpid()
    return event
