"""The command line: the light entry point (``main.py``), argument parsing (``parser.py``), the
one-shot commands (``commands.py``), publishing commands (``publishing.py``) and ``aggregator db``
(``db.py``)."""
