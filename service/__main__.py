"""``python -m service`` is the ``loyalty`` command."""

import sys

from service.cli import main

sys.exit(main())
