"""Processing: the update pipeline that orders the stages (``update.py``), its pure decisions
(``decide.py``: new, changed, re-keyed, duplicate, the source's next state), the worker processes
that run its CPU-heavy pure stages (``workers.py``) and retried details (``details.py``)."""
