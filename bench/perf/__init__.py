"""Performance benchmark parts used by ``bench/run.py``: feed generation, origins, measurements."""
