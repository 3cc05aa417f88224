"""The command line, one module per command group.

- ``main.py``: the entry point (``aggregator``, ``python run.py``), free of imports: parser
  worker processes import it again.
- ``parser.py``: the argument tree, dispatch, exit codes and error messages; it imports a group's
  module only when one of its commands runs.
- ``run.py``: ``run`` (the daemon) and ``init``.
- ``sources.py``: ``check`` (with ``--source``, a dry run), ``fetch`` and ``sources``.
- ``explain.py``: ``explain``.
- ``add.py``: ``add`` (discovery's choice and prompt).
- ``publish.py``: ``export hexo|opml``, ``import opml`` and ``build``.
- ``db.py``: ``db upgrade|copy|prune``.
- ``output.py``: consoles (full width when not a terminal), ``--json`` printing, tables, times.
- ``common.py``: reading the config a command names, writing it back atomically.
"""
