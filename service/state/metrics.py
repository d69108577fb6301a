"""The state store's Prometheus metrics, registered once in the default registry.

``loyalty_state_seconds`` times every store operation by backend; ``loyalty_state_conflicts``
counts what exactly-once costs: retries returned from the store (``replayed``), the same id
with another body (``already_applied``), transactions run again after a lost race (``retry``),
and the failures the service turns into statuses (``StateUnavailable``, ``StateWriteFailed``).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from service.metrics import LATENCY_BUCKETS

SECONDS = Histogram(
    "loyalty_state_seconds",
    "State store latency by backend and operation; _count is the number of operations.",
    ["backend", "operation"],
    buckets=LATENCY_BUCKETS,
)
CONFLICTS = Counter(
    "loyalty_state_conflicts",
    "Exactly-once conflicts and retries by backend and kind.",
    ["backend", "kind"],
)
