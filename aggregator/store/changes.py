"""Change stamps for the feed caches: how a process learns that entries changed, whoever wrote them.

Owns: the store-wide revision number every entry write takes (``next_revision``), each source's
entry summary (version, count, newest change) that every write bumps under the source row's lock
(``touch_sources``), and the two reads caches compare: ``change_token`` (SQLite, one row) and
``last_change`` (a stamp from the summaries). Does not own the writes themselves (entries.py,
sources.py, retention.py call these in their transactions) or what a cache does with a stamp
(publish/feeds.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.engine import Connection

from ..models import Selection
from .engine import Queries
from .records import ChangeStamp
from .schema import counters, revision_seq, sources

_TOKEN = select(counters.c.value).where(counters.c.name == "revision")


class ChangeQueries(Queries):
    def change_token(self) -> int | None:
        """A cheap number that moves with every committed write to entries, store-wide (the
        SQLite revision counter, bumped in the writing transaction); None on PostgreSQL, whose
        sequence moves before its transaction commits (callers then use ``last_change``)."""
        if self.dialect == "postgresql":
            return None
        with self.connect() as conn:
            return int(conn.execute(_TOKEN).scalar_one())

    def last_change(self, sel: Selection) -> ChangeStamp:
        """A stamp of the selected entries for caches, from the per-source summaries of the
        sources the selection can draw from (all of them unless it names sources): the newest
        change, the entry count and the sum of the sources' entry versions. Each write bumps its
        source's version under that row's lock, so the stamp moves on every insert, update,
        merge or delete, whichever process made it and however late it committed. Reading a few
        source rows instead of aggregating over every entry keeps it cheap at millions of
        entries; a category or query selection may re-render for a change outside it."""
        query = select(
            func.max(sources.c.entries_changed_at),
            func.coalesce(func.sum(sources.c.entries_count), 0),
            func.coalesce(func.sum(sources.c.entries_version), 0),
        )
        if sel.source_ids is not None:
            query = query.where(sources.c.id.in_(sel.source_ids))
        if sel.exclude_source_ids:
            query = query.where(sources.c.id.not_in(sel.exclude_source_ids))
        with self.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return ChangeStamp(None, 0, 0)
        changed = row[0]
        if isinstance(changed, str):  # SQLite aggregates bypass the column type
            changed = datetime.fromisoformat(changed)
        if changed is not None and changed.tzinfo is None:
            changed = changed.replace(tzinfo=UTC)
        return ChangeStamp(changed, int(row[1]), int(row[2]))


def next_revision(conn: Connection, dialect: str) -> int:
    """A store-wide number that grows with every write transaction touching entries."""
    if dialect == "postgresql":
        return int(conn.execute(select(revision_seq.next_value())).scalar_one())
    bump = counters.c.value + 1
    conn.execute(update(counters).where(counters.c.name == "revision").values(value=bump))
    value = conn.execute(select(counters.c.value).where(counters.c.name == "revision"))
    return int(value.scalar_one())


def touch_sources(
    conn: Connection, source_ids: Sequence[str], now: datetime, added: dict[str, int]
) -> None:
    """Bump the entry summaries of sources whose entries this transaction changed; ``now`` is
    the newest change written (the summary keeps the later of it and what it had)."""
    newest = case((sources.c.entries_changed_at > now, sources.c.entries_changed_at), else_=now)
    for sid in source_ids:
        conn.execute(
            update(sources)
            .where(sources.c.id == sid)
            .values(
                entries_version=sources.c.entries_version + 1,
                entries_count=sources.c.entries_count + added.get(sid, 0),
                entries_changed_at=newest,
            )
        )
