"""IANA time zones: which names exist, and the zone of a name.

``zoneinfo`` reads the zone data from the operating system or, where it has none (slim
container images), from the ``tzdata`` package, a runtime dependency. A name is checked
against :func:`time_zones` before ``zoneinfo`` sees it, on every path: the input decoders
(a ``timezone`` field), the checker (a literal zone name) and :func:`dsl.library.runtime.local`.
"""

from __future__ import annotations

import zoneinfo
from functools import cache
from importlib import resources


@cache
def time_zones() -> frozenset[str]:
    """Every IANA time zone name, exactly as spelt (``Europe/London``, not ``europe/london``):
    the tzdata package's list, so the same names on every host. ``zoneinfo.available_timezones``
    would add whatever the host's zone directory holds, such as ``localtime`` (the host's own
    zone: a request must not depend on where it is served)."""
    names = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    return frozenset(names) - {"Factory"}  # not a zone: it says "local time zone must be set"


def is_time_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone name."""
    return name in time_zones()


@cache
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone of a name :func:`is_time_zone` accepts (a ``KeyError`` for any other)."""
    if name not in time_zones():
        raise KeyError(name)
    return zoneinfo.ZoneInfo(name)
