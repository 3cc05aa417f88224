"""What the ``aggregator db`` commands need: upgrading a database's schema and copying a whole
store between databases (SQLite to PostgreSQL, or any other pair).

Owns: the SQL of an upgrade (migrating the database at a URL, without opening a store) and of a
copy — which tables in which order, rows in batches with their ids kept, emptying a target, moving
id sequences and the revision counter past the copied rows, and the row counts that prove nothing
was lost; each converts SQLAlchemy's errors to ``StoreError`` (engine.py). Does not own: choosing
the databases, migrating them before a copy (both are opened as ``SQLStore`` first, so their
schemas match), showing progress (a callback) or what is printed (cli/db.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Table, delete, func, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from ..config.settings import StorageSettings
from . import schema
from .engine import Queries, converted, make_engine, redact
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
    sources,
    entries,
    entry_bands,
    tombstones,
    fetch_log,
    drops,
    detail_retries,
)
_SERIAL = (entries, fetch_log)  # tables whose integer id a sequence hands out on PostgreSQL

Progress = Callable[[str, int, int], None]  # table, rows copied so far, rows in all


def upgrade(url: str, now: datetime, limits: StorageSettings | None = None) -> tuple[int, int]:
    """Apply pending migrations at ``url``; return (version before, version after)."""
    try:
        engine = make_engine(url, limits)
        try:
            before = schema.LATEST - schema.pending(engine)
            after = schema.migrate(engine, now)
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        raise converted(exc, f"cannot upgrade the store at {redact(url)}") from exc
    return before, after


class AdminQueries(Queries):
    def table_counts(self) -> dict[str, tuple[int, int]]:
        """Per table: (rows, highest id or 0) — equal on both sides after a faithful copy."""
        found: dict[str, tuple[int, int]] = {}
        with self.connect() as conn:
            for table in TABLES:
                top = func.max(table.c.id) if table in _SERIAL else func.count() * 0
                query = select(func.count(), func.coalesce(top, 0)).select_from(table)
                row = conn.execute(query).one()
                found[table.name] = (int(row[0]), int(row[1]))
        return found

    def clear_tables(self) -> None:
        """Delete every row of the store's tables (children first)."""
        with self.begin() as conn:
            for table in reversed(TABLES):
                conn.execute(delete(table))

    def copy_into(self, target: Queries, progress: Progress, batch: int = 1000) -> None:
        """Copy every row of every table into ``target``, ids included, in one target
        transaction."""
        totals = {name: rows for name, (rows, _) in self.table_counts().items()}
        with self.connect() as src, target.begin() as dst:
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
        dst.execute(
            update(counters).where(counters.c.name == "revision").values(value=top_revision)
        )
