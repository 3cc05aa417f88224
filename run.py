"""Composition root: `python run.py` starts the daemon; `python run.py ARGS` is `aggregator ARGS`."""

import sys

from aggregator.cli.main import main  # the light entry point: parser workers re-import this file

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["run"]))
