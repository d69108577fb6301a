"""Request bounds the servicer checks before decoding: cheap refusals for requests whose
decoding or whose answer would cost far more than any valid request.

- :func:`refuse_oversized_attribute_maps`: an ``attributes`` map with more entries than any
  schema could declare is refused by its size alone. 500,000 undeclared keys (9 MB) once cost
  6.8 s of CPU and 210 MB of RSS in the decoder, which collected a violation (with a "did you
  mean") for every key before refusing (issue 17); its size is read in constant time.
- :func:`check_explain_batch`: a batch with ``explain`` carries every decision's reasons, and
  10,000 explained items made a reply larger than the largest message the server may send
  (after 1.1 s of work). Such a batch is refused before any item is evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from service.errors import InvalidArgument, Violation

#: Entries one ``attributes`` map may hold. A schema declares a few dozen extension fields per
#: message; beyond this bound the map is refused without reading its keys.
MAX_ATTRIBUTE_ENTRIES = 1_000
#: Bytes of reply an explained batch item is allowed for: the explain bound is the largest
#: reply (``--max-message-bytes``) divided by this. 2,000 explained items of the bundled
#: policies fit a 4 MiB reply and 10,000 did not fit 16 MiB: about 1.6-2 KB each.
EXPLAIN_BYTES_PER_ITEM = 2048
#: The explain bound at the default 16 MiB reply.
MAX_EXPLAIN_BATCH = 16 * 1024 * 1024 // EXPLAIN_BYTES_PER_ITEM


def explain_batch_limit(max_reply_bytes: int) -> int:
    """Items an EvaluateBatch with ``explain`` may hold when a reply may take ``max_reply_bytes``."""
    return max(1, max_reply_bytes // EXPLAIN_BYTES_PER_ITEM)


def refuse_oversized_attribute_maps(customer: Any, event: Any) -> None:
    """Refuse (INVALID_ARGUMENT) a request whose customer, lifetime, event or purchase item
    ``attributes`` map holds more than :data:`MAX_ATTRIBUTE_ENTRIES` entries, before the
    decoder reads a key. A size check only: what the entries hold is the decoder's to judge."""
    maps = [("customer.attributes", customer.attributes),
            ("customer.lifetime.attributes", customer.lifetime.attributes),
            ("event.attributes", event.attributes)]
    items = event.purchase.items
    for i, item in enumerate(items):
        if len(item.attributes) > MAX_ATTRIBUTE_ENTRIES:
            maps.append((f"event.purchase.items[{i}].attributes", item.attributes))
            break
    for path, entries in maps:
        count = len(entries)
        if count > MAX_ATTRIBUTE_ENTRIES:
            raise InvalidArgument([Violation(
                path, f"holds {count:,} entries; an attributes map holds at most "
                      f"{MAX_ATTRIBUTE_ENTRIES:,} (the schema's extension fields)")])


T = TypeVar("T")


def attribute_maps_bounded(check: Callable[..., T]) -> Callable[..., T]:
    """``check(customer, event, ...)`` (a decoder's checking path) behind
    :func:`refuse_oversized_attribute_maps`: the fast path gives up on an undeclared key at
    once, and the checking path would then read every key."""
    def checked(customer: Any, event: Any, *args: Any) -> T:
        refuse_oversized_attribute_maps(customer, event)
        return check(customer, event, *args)

    return checked


def check_explain_batch(count: int, explain: bool, limit: int = MAX_EXPLAIN_BATCH) -> None:
    """Refuse (INVALID_ARGUMENT) an explained batch of more than ``limit`` items, naming both."""
    if explain and count > limit:
        raise InvalidArgument([Violation(
            "explain", f"a batch with explain holds at most {limit:,} items, not {count:,} "
                       "(every item's reasons travel in one reply); split the batch, or leave "
                       "explain off")])


def check_reply_size(reply: bytes, count: int, explain: bool, max_reply_bytes: int) -> bytes:
    """``reply`` when it fits ``max_reply_bytes``; otherwise INVALID_ARGUMENT saying so, rather
    than gRPC's own "Sent message larger than max" after the work. Only an explained batch of
    unusually long reasons gets here: :func:`check_explain_batch` refuses the rest up front."""
    if len(reply) <= max_reply_bytes:
        return reply
    what = "explain" if explain else "items"
    raise InvalidArgument([Violation(
        what, f"the reply for {count:,} items would take {len(reply):,} bytes, over the largest "
              f"reply ({max_reply_bytes:,} bytes, --max-message-bytes); split the batch"
              + (", or leave explain off" if explain else ""))])
