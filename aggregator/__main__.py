"""``python -m aggregator ARGS`` is ``aggregator ARGS``."""

import sys

from .cli.main import main

sys.exit(main())
