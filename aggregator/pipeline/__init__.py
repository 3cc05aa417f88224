"""Processing: the update pipeline that orders the stages (``update.py``), the worker processes
that run its CPU-heavy pure stages (``workers.py``), entry identity and duplicates (``dedupe.py``),
categories (``categorize.py``), retried details (``details.py``) and when to fetch next
(``timing.py``)."""
