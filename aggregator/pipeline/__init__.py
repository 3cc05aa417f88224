"""Processing: the update pipeline that orders the stages (``update.py``) and the pure decisions
it takes (``decide.py``: new, changed, re-keyed, duplicate, the source's next state), the worker
processes that run its CPU-heavy pure stages (``workers.py``), entry identity (``keys.py``,
``canonical.py``, ``fingerprint.py``) and duplicates (``dedupe.py``), categories
(``categorize.py``), retried details (``details.py``) and when to fetch next (``timing.py``)."""
