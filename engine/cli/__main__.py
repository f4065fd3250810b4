"""``python -m engine.cli``: the same as the ``sla-engine`` script."""

import sys

from engine.cli import main

sys.exit(main())
