"""``python -m local.sandbox --port 8080``: see local.sandbox.cli."""

import sys

from local.sandbox.cli import main

sys.exit(main())
