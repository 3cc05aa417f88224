"""Copying a whole store between databases (SQLite to PostgreSQL, or any other pair).

Owns: the SQL of a copy — which tables in which order, rows in batches with their ids kept,
emptying a target, moving id sequences and the revision counter past the copied rows, and the
row counts that prove nothing was lost. Does not own: choosing the databases, migrating them (both
are opened as ``SQLStore`` first, so their schemas match) or showing progress (a callback).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Table, delete, func, select, text, update
from sqlalchemy.engine import Connection, Engine

from .schema import (
    counters,
    detail_retries,
    drops,
    entries,
    entry_bands,
    fetch_log,
    sources,
    tombstones,
)

# Parents before children (entries reference sources).
TABLES: tuple[Table, ...] = (
    sources, entries, entry_bands, tombstones, fetch_log, drops, detail_retries,
)
_SERIAL = (entries, fetch_log)  # tables whose integer id a sequence hands out on PostgreSQL

Progress = Callable[[str, int, int], None]  # table, rows copied so far, rows in all


def counts(engine: Engine) -> dict[str, tuple[int, int]]:
    """Per table: (rows, highest id or 0) — equal on both sides after a faithful copy."""
    found: dict[str, tuple[int, int]] = {}
    with engine.connect() as conn:
        for table in TABLES:
            top = func.max(table.c.id) if table in _SERIAL else func.count() * 0
            row = conn.execute(select(func.count(), func.coalesce(top, 0)).select_from(table)).one()
            found[table.name] = (int(row[0]), int(row[1]))
    return found


def clear(engine: Engine) -> None:
    """Delete every row of the store's tables (children first)."""
    with engine.begin() as conn:
        for table in reversed(TABLES):
            conn.execute(delete(table))


def copy_all(source: Engine, target: Engine, progress: Progress, batch: int = 1000) -> None:
    """Copy every row of every table, ids included, in one target transaction."""
    totals = {name: rows for name, (rows, _) in counts(source).items()}
    with source.connect() as src, target.begin() as dst:
        for table in TABLES:
            _copy_table(src, dst, table, totals[table.name], progress, batch)
        _move_counters(dst)


def _copy_table(
    src: Connection, dst: Connection, table: Table, total: int, progress: Progress, batch: int
) -> None:
    order = [c for c in table.primary_key.columns]
    result = src.execution_options(stream_results=True, yield_per=batch).execute(
        select(table).order_by(*order)
    )
    done = 0
    progress(table.name, 0, total)
    for chunk in result.mappings().partitions(batch):
        dst.execute(table.insert(), [dict(row) for row in chunk])
        done += len(chunk)
        progress(table.name, done, total)


def _move_counters(dst: Connection) -> None:
    """New ids and revisions on the target continue after the copied ones."""
    top_revision = dst.execute(select(func.coalesce(func.max(entries.c.revision), 0))).scalar_one()
    if dst.dialect.name == "postgresql":
        for table in _SERIAL:
            dst.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"
                    f" COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
                )
            )
        dst.execute(text("SELECT setval('entry_revision_seq', :v + 1, false)"), {"v": top_revision})
    else:
        dst.execute(update(counters).where(counters.c.name == "revision").values(value=top_revision))
