"""Retention: removing old entries and leaving a tombstone for each, so they are never stored again.

Owns: choosing the entries beyond the ``[retention]`` limits (per source, by age), deleting them
with their band keys, keeping a removed primary's copies one cluster, and, on PostgreSQL, letting
one process prune at a time. Does not own the limits (config) or when to prune (the scheduler's
retention job, ``aggregator db prune``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import Connection

from .changes import next_revision, touch_sources
from .engine import Queries, chunks, insert_ignoring_conflicts
from .records import PruneResult
from .schema import entries, entry_bands, tombstones

_PRUNE_LOCK = 7_306_112_003  # pg_try_advisory_xact_lock key: "retention"


class RetentionQueries(Queries):
    def prune(
        self, now: datetime, max_per_source: int | None, max_age: float | None
    ) -> PruneResult:
        """Delete entries beyond the newest ``max_per_source`` of each source and entries whose
        sort time is older than ``max_age`` seconds, leaving a tombstone for each so the pipeline
        never stores them again. ``None`` turns a limit off. One short transaction per source; on
        PostgreSQL one process prunes at a time (the others return ``skipped``)."""
        if not max_per_source and max_age is None:
            return PruneResult(0, 0)
        if self.dialect != "postgresql":
            return self._prune(now, max_per_source, max_age)
        with self.connect() as lock:
            got = lock.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _PRUNE_LOCK})
            held = bool(got.scalar_one())
            lock.commit()
            if not held:
                return PruneResult(0, 0, skipped=True)
            try:
                return self._prune(now, max_per_source, max_age)
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PRUNE_LOCK})
                lock.commit()

    def _prune(
        self, now: datetime, max_per_source: int | None, max_age: float | None
    ) -> PruneResult:
        cutoff = now - timedelta(seconds=max_age) if max_age is not None else None
        with self.connect() as conn:
            source_ids = [r[0] for r in conn.execute(select(entries.c.source_id).distinct())]
        removed = touched = 0
        for sid in source_ids:
            with self.begin() as conn:
                victims = _victims(conn, sid, max_per_source, cutoff)
                if victims:
                    self._bury(conn, sid, victims, now)
            removed += len(victims)
            touched += bool(victims)
        return PruneResult(removed, touched)

    def _bury(
        self, conn: Connection, source_id: str, victims: dict[int, str], now: datetime
    ) -> None:
        """Delete entries and leave their tombstones. The copies of a removed primary stay one
        cluster: the oldest surviving copy becomes its primary, the others point at it."""
        revision = next_revision(conn, self.dialect)
        ids = list(victims)
        unmerged: set[str] = set()
        for chunk in chunks(ids, 500):
            found = select(entries.c.source_id).where(entries.c.duplicate_of.in_(chunk)).distinct()
            unmerged.update(r[0] for r in conn.execute(found))
        # Source rows first, in id order, as apply() does: row locks are always taken in one order.
        touch_sources(conn, sorted(unmerged | {source_id}), now, {source_id: -len(ids)})
        for chunk in chunks(ids, 500):
            graves = [{"source_id": source_id, "key": victims[i], "removed_at": now} for i in chunk]
            conn.execute(insert_ignoring_conflicts(self.dialect, tombstones), graves)
            self._promote_copies(conn, chunk, set(ids), revision)
            conn.execute(delete(entry_bands).where(entry_bands.c.entry_id.in_(chunk)))
            conn.execute(delete(entries).where(entries.c.id.in_(chunk)))

    def _promote_copies(
        self, conn: Connection, primaries: list[int], removed: set[int], revision: int
    ) -> None:
        copies = conn.execute(
            select(entries.c.id, entries.c.duplicate_of)
            .where(entries.c.duplicate_of.in_(primaries))
            .order_by(entries.c.id)
        ).all()
        heirs: dict[int, int] = {}
        for copy_id, primary in copies:
            if copy_id in removed:
                continue
            heir = heirs.setdefault(primary, copy_id)
            values: dict[str, Any] = {"revision": revision}
            if heir == copy_id:
                values.update(duplicate_of=None, merge_reason=None)
            else:
                values.update(duplicate_of=heir)
            conn.execute(update(entries).where(entries.c.id == copy_id).values(**values))


def _victims(
    conn: Connection, source_id: str, max_per_source: int | None, cutoff: datetime | None
) -> dict[int, str]:
    """The entries of one source that retention removes: entry id -> key."""
    mine = select(entries.c.id, entries.c.key).where(entries.c.source_id == source_id)
    found: dict[int, str] = {}
    if max_per_source:
        newest_first = mine.order_by(entries.c.sort_at.desc(), entries.c.id.desc())
        found.update((r.id, r.key) for r in conn.execute(newest_first.offset(max_per_source)))
    if cutoff is not None:
        found.update((r.id, r.key) for r in conn.execute(mine.where(entries.c.sort_at < cutoff)))
    return found
