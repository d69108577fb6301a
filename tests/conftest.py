"""Settings for the whole test suite."""

from __future__ import annotations

import os

# The compiled-policy disk cache (dsl.artifacts) is off unless a test turns it on: tests that
# patch a compiler stage must see that stage run, whatever an earlier run left on disk.
# Subprocesses (loyalty serve, replay) inherit the setting.
os.environ.setdefault("LOYALTY_CACHE_DIR", "off")
