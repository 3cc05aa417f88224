"""aggregator: collect many sources, clean them, and republish them as feeds."""

__version__ = "0.1.0"
