"""Airport coordinates and great-circle distances, from the ``airportsdata`` data set."""

from __future__ import annotations

import math
from functools import cache, lru_cache

#: Mean Earth radius in statute miles (IUGG mean radius, 6371.0088 km).
EARTH_RADIUS_MILES = 3958.7613


@cache
def _airports() -> dict[str, tuple[float, float]]:
    import airportsdata

    data = airportsdata.load("IATA")
    return {code: (float(a["lat"]), float(a["lon"])) for code, a in data.items() if code}


def is_airport(code: str) -> bool:
    """Whether ``code`` is a known three-letter IATA airport code (upper case)."""
    return code in _airports()


def airport_codes() -> frozenset[str]:
    """Every known IATA airport code."""
    return frozenset(_airports())


class UnknownAirport(ValueError):
    """Raised for a code that is not a known IATA airport."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f'unknown airport code "{code}"')


@lru_cache(maxsize=65536)
def great_circle_miles(origin: str, destination: str) -> int:
    """Great-circle distance in whole statute miles (nearest mile) between two airports.

    Uses the haversine formula on the mean Earth radius. Raises
    :class:`UnknownAirport` for a code the data set does not know.
    """
    table = _airports()
    try:
        lat1, lon1 = table[origin]
    except KeyError:
        raise UnknownAirport(origin) from None
    try:
        lat2, lon2 = table[destination]
    except KeyError:
        raise UnknownAirport(destination) from None
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    miles = 2 * EARTH_RADIUS_MILES * math.asin(min(1.0, math.sqrt(h)))
    return int(miles + 0.5)
