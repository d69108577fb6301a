"""``loyalty serve`` with :class:`stand_in.StandInPolicySet` around every policy set it loads
(``python -m stand_in_serve ARGS``, with this directory on the path; ``--workers`` too, since
the workers are forked after the patch). In-process tests patch with
:func:`build_with_periods` themselves."""

from __future__ import annotations

import sys
from typing import Any

from stand_in import StandInPolicySet

import service.store
from service.snapshot import Snapshot, build_snapshot


def build_with_periods(policy_set: Any, loaded_at: Any) -> Snapshot:
    """:func:`service.snapshot.build_snapshot`, its policy set wrapped in the stand-in."""
    snapshot = build_snapshot(policy_set, loaded_at)
    return Snapshot(StandInPolicySet(snapshot.policy_set), snapshot.converter,  # type: ignore[arg-type]
                    snapshot.encoder, snapshot.revision, snapshot.loaded_at)


if __name__ == "__main__":
    from service.cli import main

    service.store.build_snapshot = build_with_periods  # type: ignore[assignment]
    sys.exit(main(["serve", *sys.argv[1:]]))
