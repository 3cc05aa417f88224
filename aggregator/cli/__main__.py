"""``python -m aggregator.cli ARGS`` is ``aggregator ARGS``."""

import sys

from .main import main

sys.exit(main())
