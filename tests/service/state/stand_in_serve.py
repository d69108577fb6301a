"""``loyalty serve`` with :class:`stand_in.StandInPolicySet` around every policy set it loads
(``python -m stand_in_serve ARGS``, with this directory on the path; ``--workers`` too, since
the workers are forked after the patch)."""

from __future__ import annotations

import sys
from typing import Any

from stand_in import StandInPolicySet

import service.store
from service.cli import main

_build = service.store.build_snapshot


def _build_with_periods(policy_set: Any, loaded_at: Any) -> Any:
    snapshot = _build(policy_set, loaded_at)
    return type(snapshot)(StandInPolicySet(snapshot.policy_set), snapshot.converter, snapshot.encoder,
                          snapshot.revision, snapshot.loaded_at)


service.store.build_snapshot = _build_with_periods

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
