"""The command line's entry point (``aggregator`` and ``python run.py``), kept free of imports.

Parser worker processes are started with ``spawn``, which imports the parent's main module again
in each worker; with the command line's modules behind this function a worker loads only what
parsing needs (about 20 MB instead of 70 MB).
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from .parser import main as run

    return run(argv)
