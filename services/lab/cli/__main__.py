"""``python -m services.lab.cli``: the same as ``sdlab``."""

import sys

from services.lab.cli.entry import main

sys.exit(main())
