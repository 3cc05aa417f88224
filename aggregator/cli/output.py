"""What every command prints with: the consoles, ``--json`` output, tables and times.

Owns: output fitted to a terminal's width, and full width (nothing cut or wrapped) when it goes to
a pipe or a file; JSON on standard output; the tables of fetch outcomes, of sources (the status
page's columns) and of a dry run's entries. Does not own: what goes in a row (``http/report.py``
words a source; the command modules build the other rows).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from ..http.report import COLUMNS, SourceRow
from ..models import FetchOutcome, FetchStatus

PLAIN_WIDTH = 4096  # "full width" for output that is not a terminal: nothing is cut


def _console(stderr: bool = False) -> Console:
    """A console fitted to the terminal; full width, no wrapping, when writing to a pipe or a
    file (unless $COLUMNS says otherwise)."""
    stream = sys.stderr if stderr else sys.stdout
    plain = not stream.isatty() and not os.environ.get("COLUMNS")
    return Console(stderr=stderr, width=PLAIN_WIDTH if plain else None, soft_wrap=plain)


# Used as ``output.console`` (looked up when printing), so a test can put a console of its own here.
console = _console()
err_console = _console(stderr=True)


def print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def fmt_time(value: datetime | None) -> str:
    """A time to the minute, as the dry-run table shows it; ``-`` for none."""
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def fitted_table(names: Sequence[str], widths: Sequence[int]) -> Table:
    """A borderless table of one-line rows: each column as wide as given, longer cells cut with
    an ellipsis."""
    table = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False)
    for name, width in zip(names, widths):
        table.add_column(name, no_wrap=True, overflow="ellipsis", width=width)
    return table


def outcome_table(outcomes: Sequence[FetchOutcome]) -> Table:
    """One row per fetch; the ``undated`` column (items whose date did not parse) only when some
    fetch had such items."""
    undated = any(o.undated for o in outcomes)
    names = (
        "source",
        "outcome",
        "new",
        "updated",
        *(("undated",) if undated else ()),
        "bytes",
        "seconds",
        "error",
    )
    table = Table(*names)
    for o in sorted(outcomes, key=lambda o: o.source_id):
        style = "red" if o.status in (FetchStatus.ERROR, FetchStatus.GONE) else None
        table.add_row(
            o.source_id,
            o.status.value,
            str(o.added),
            str(o.updated),
            *((str(o.undated),) if undated else ()),
            str(o.bytes),
            f"{o.elapsed:.2f}",
            o.error or "",
            style=style,
        )
    return table


def sources_table(rows: Sequence[SourceRow], now: datetime, width: int = 80) -> Table:
    """The status page's columns, one line per source, fitted to ``width`` terminal columns: the
    short columns keep their width (ids longer than 16 are cut) and the long ones (url, last
    error) share what is left, cut with an ellipsis."""
    cells = [row.cells(now) for row in rows]
    natural = [max([len(name)] + [len(c[i]) for c in cells]) for i, name in enumerate(COLUMNS)]
    elastic = [i for i, name in enumerate(COLUMNS) if name in ("url", "last error")]
    widths = {
        i: min(w, 16) if COLUMNS[i] == "id" else w
        for i, w in enumerate(natural)
        if i not in elastic
    }
    left = max(2 * 8, width - sum(widths.values()) - (len(COLUMNS) - 1))
    url, error = elastic
    widths[url] = max(8, min(natural[url], max(left * 2 // 5, left - natural[error])))
    widths[error] = max(8, min(natural[error], left - widths[url]))
    table = fitted_table(COLUMNS, [widths[i] for i in range(len(COLUMNS))])
    for row, text in zip(rows, cells):
        table.add_row(*text, style="red" if row.failing else None)
    return table


DRY_COLUMNS = ("", "title", "published", "categories", "link", "key")


def dry_run_table(rows: Sequence[tuple[str, ...]], width: int) -> Table:
    """A dry run's entries (``DRY_COLUMNS``), one line each, fitted to ``width``: the title gets
    the most room; key, categories and link are cut with an ellipsis."""
    names = DRY_COLUMNS
    natural = [max([cell_len(n)] + [cell_len(r[i]) for r in rows]) for i, n in enumerate(names)]
    left = max(40, width - natural[0] - natural[2] - (len(names) - 1))
    shares = {1: 0.45, 3: 0.15, 4: 0.25, 5: 0.15}
    widths = {0: natural[0], 2: natural[2]}
    widths |= {i: max(6, min(natural[i], int(left * share))) for i, share in shares.items()}
    table = fitted_table(names, [widths[i] for i in range(len(names))])
    for row in rows:
        table.add_row(*row)
    return table
