"""The SQL store: SQLite (WAL) by default, PostgreSQL when configured; all SQL lives in store/.

Owns: the source rows (schedule, validators, health), entries, tombstones and the fetch log, and
claiming due sources with a lease so several workers never fetch one source at once, and
retention (pruning old entries behind tombstones). Does not own: deciding what is new, when to
fetch next, or how to render (callers pass those decisions in).

Several processes may share one PostgreSQL database: claims use ``FOR UPDATE SKIP LOCKED`` and a
lease, and each claim adds one to the source's fencing number, so a write from a worker whose
claim is no longer the latest is rejected (``lease_lost``); new entries' duplicates are decided in
their inserting transaction under story locks (identity.py), so concurrent workers make one
primary per story; syncing the configured sources is serialized with an advisory lock and marks a
source due only when its configuration changed; and every entry write bumps its source's entry
summary under that source row's lock, so caches in other processes notice it (``last_change``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, RowMapping, make_url
from sqlalchemy.exc import SQLAlchemyError

from ..config.settings import StorageSettings
from ..errors import StoreError
from ..models import Drop, Enclosure, Entry, FetchOutcome, Selection, Source, SourceState
from .details import DetailQueries
from .identity import IdentityQueries, Merge, identity_columns, read_candidates
from .nearest import NearestQueries
from .schema import (
    counters,
    entries,
    entry_bands,
    fetch_log,
    fingerprint_columns,
    fingerprint_of,
    migrate,
    revision_seq,
    sources,
    store_facts,
    tombstones,
)

SEP = "\x1f"
_SYNC_LOCK = 7_306_112_002  # pg_advisory_xact_lock key: "sync sources"
_PRUNE_LOCK = 7_306_112_003  # pg_try_advisory_xact_lock key: "retention"

log = logging.getLogger("aggregator.store")
_TOKEN = select(counters.c.value).where(counters.c.name == "revision")


class ChangeStamp(NamedTuple):
    """What a cache of a selection compares: equal stamps mean the selected entries are unchanged.

    Read from the per-source entry summaries of the sources a selection can draw from:
    ``changed_at`` (the newest change, for Last-Modified) alone misses writes from other processes
    whose clocks, or whose moment of committing, lag behind; ``total`` is the entry count and
    ``revisions`` the sum of the sources' entry versions, which every insert, update, merge or
    delete bumps."""

    changed_at: datetime | None
    total: int
    revisions: int


@dataclass(frozen=True)
class PruneResult:
    removed: int  # entries deleted (each left a tombstone)
    sources: int  # sources that lost at least one entry
    skipped: bool = False  # another process was pruning the same database; nothing done


def category_key(path: Sequence[str]) -> str:
    return "".join(p + SEP for p in path)


def make_engine(url: str, limits: StorageSettings | None = None) -> Engine:
    """An engine for ``url`` whose waits are bounded by ``limits`` (the [storage] timeouts).

    PostgreSQL: psycopg's ``connect_timeout`` (whole seconds, at least 2), the server's
    ``statement_timeout`` set for every session, TCP keepalives and ``tcp_user_timeout`` (a
    connection into a dead network fails instead of waiting for ever), a bounded wait for a pooled
    connection, and a ping before a pooled connection is reused, so the daemon reconnects by
    itself after an outage. Settings given in the URL's query win over these."""
    limits = limits or StorageSettings(url=url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, limits)
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, pool_pre_ping=True, pool_timeout=limits.pool_timeout,
                         connect_args=_pg_connect_args(make_url(url).query, limits))


def _pg_connect_args(query: Mapping[str, Any], limits: StorageSettings) -> dict[str, Any]:
    waits: dict[str, Any] = {
        "connect_timeout": max(1, math.ceil(limits.connect_timeout)),
        "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
        "tcp_user_timeout": int((limits.connect_timeout + limits.statement_timeout + 30) * 1000),
    }
    found = {k: v for k, v in waits.items() if k not in query}
    given = query.get("options", "")  # after ours: a -c in the URL wins
    ours = f"-c statement_timeout={round(limits.statement_timeout * 1000)}"
    found["options"] = f"{ours} {given if isinstance(given, str) else ' '.join(given)}".strip()
    return found


def _sqlite_engine(url: str, limits: StorageSettings) -> Engine:
    """SQLite in WAL mode; ``statement_timeout`` bounds the wait for another connection's lock
    (the busy timeout), ``pool_timeout`` the wait for a pooled connection."""
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    busy = limits.statement_timeout or 30.0
    engine = create_engine(url, pool_timeout=limits.pool_timeout,
                           connect_args={"check_same_thread": False, "timeout": busy})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={round(busy * 1000)}")
        cur.close()

    return engine


class SQLStore(IdentityQueries, DetailQueries, NearestQueries):
    """One store over one database; safe to share within a process."""

    def __init__(self, url: str, now: datetime, limits: StorageSettings | None = None) -> None:
        self.url = url
        try:
            self.engine = make_engine(url, limits)
            self.version = migrate(self.engine, now)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the store at {_redact(url)}: {exc}") from None
        self.dialect = self.engine.dialect.name
        # Writes of a fetch rejected because the source was claimed again since its claim (the
        # worker's lease expired and another took over): for the lease_lost metric.
        self.leases_lost = 0
        # Sources claimed while another owner's lease on them had expired: for the
        # lease-takeovers metric.
        self.lease_takeovers = 0
        self._counting = threading.Lock()
        self._authority: str | None = None  # tag_authority, once read (it never changes)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    # --- sources ------------------------------------------------------------------------------

    def sync_sources(self, configured: Sequence[Source], now: datetime) -> None:
        """Make the source rows match the config: add new ones (due now), update changed ones,
        disable removed ones (their entries stay).

        A source whose configured fields changed since the last sync (its stored digest differs)
        is due now, once: every process of a deployment syncs the same edit on its reload, and
        only the first finds something changed (the rows are read and written under one lock on
        PostgreSQL; the due time is set by a conditional UPDATE). A source moved to another
        category takes its stored entries along (``_refile``)."""
        wanted = {s.id: s for s in configured}
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":  # processes starting together sync one at a time
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SYNC_LOCK})
            rows = {r.id: r for r in conn.execute(select(sources)).mappings()}
            for sid, src in wanted.items():
                row = rows.get(sid)
                if row is None:
                    insert = _insert_ignoring_conflicts(self.dialect, sources)  # raced by a peer
                    conn.execute(insert.values(**_new_source_row(src, now)))
                else:
                    self._sync_one(conn, row, src, now)
            gone = [sid for sid, row in rows.items() if sid not in wanted and row["enabled"]]
            if gone:
                conn.execute(update(sources).where(sources.c.id.in_(gone)).values(enabled=False))

    def _sync_one(self, conn: Connection, row: RowMapping, src: Source, now: datetime) -> None:
        digest = _config_digest(src)
        edited = and_(sources.c.config_digest.is_not(None), sources.c.config_digest != digest)
        values = _changed_source(row, src, now)
        values.update(
            config_digest=digest,
            category_path=_json_path(src.category),
            next_fetch_at=case((edited, now), else_=values.get("next_fetch_at", sources.c.next_fetch_at)),
        )
        conn.execute(update(sources).where(sources.c.id == src.id).values(**values))
        was = row["category_path"]
        if was is not None and was != _json_path(src.category):  # NULL: synced before migration 5
            self._refile(conn, src.id, tuple(json.loads(was)), src.category, now)

    def _refile(
        self, conn: Connection, source_id: str, old: Sequence[str], new: Sequence[str], now: datetime
    ) -> None:
        """Move the source's entries filed under its old category to its new one (an entry's
        category path is its source's: categorize.py), bumping revisions for the feed caches."""
        revision = self._next_revision(conn)
        moved = conn.execute(
            update(entries)
            .where(entries.c.source_id == source_id, entries.c.category_key == category_key(old))
            .values(category_path=_json_path(new), category_key=category_key(new), revision=revision)
        ).rowcount
        if moved:
            _touch_sources(conn, [source_id], now, {})
            log.info("source=%s event=refiled entries=%d", source_id, moved)

    def claim_due(self, now: datetime, limit: int, owner: str, lease: float) -> list[SourceState]:
        """Lease up to ``limit`` due sources to ``owner``; each due source goes to one claimer."""
        due = and_(
            sources.c.enabled.is_(True),
            sources.c.gone.is_(False),
            sources.c.next_fetch_at <= now,
            or_(sources.c.lease_until.is_(None), sources.c.lease_until < now),
        )
        query = (
            select(sources.c.id, sources.c.lease_owner)
            .where(due).order_by(sources.c.next_fetch_at).limit(limit)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self.engine.begin() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql("SELECT 1")  # the UPDATE below takes the write lock
            held = dict(conn.execute(query).all())  # id -> the owner of an expired lease, or None
            ids = list(held)
            if not ids:
                return []
            until = now + timedelta(seconds=lease)
            conn.execute(
                update(sources)
                .where(sources.c.id.in_(ids), due)
                .values(lease_owner=owner, lease_until=until, lease_token=sources.c.lease_token + 1)
            )
            rows = conn.execute(
                select(sources).where(sources.c.id.in_(ids), sources.c.lease_owner == owner)
            ).mappings()
            claimed = [_state(r) for r in rows]
        taken = [c.source_id for c in claimed if held[c.source_id] not in (None, owner)]
        if taken:
            with self._counting:
                self.lease_takeovers += len(taken)
            log.info("event=lease_takeover owner=%s sources=%s", owner, ",".join(taken))
        return claimed

    def oldest_due(self, now: datetime) -> datetime | None:
        """The earliest ``next_fetch_at`` of the enabled sources due at ``now`` (leased ones
        included), or None when none is due: how far the dispatchers are behind."""
        query = select(func.min(sources.c.next_fetch_at)).where(
            sources.c.enabled.is_(True), sources.c.gone.is_(False), sources.c.next_fetch_at <= now
        )
        with self.engine.connect() as conn:
            found: datetime | None = conn.execute(query).scalar_one()
        return found

    def release(self, source_id: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(sources)
                .where(sources.c.id == source_id, sources.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def release_all(self, owner: str) -> None:
        """Give back every lease ``owner`` holds (on a clean shutdown)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(sources)
                .where(sources.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def release_orphaned(self, gone: Callable[[str], bool]) -> int:
        """Give back the leases of processes that no longer exist (a starting daemon calls this,
        so the sources a crashed process held are fetched at once, not after their lease); how
        many. On SQLite one daemon owns every lease (the store is embedded in it), so all are
        released; on PostgreSQL, those of the owners ``gone`` says are gone (it only judges
        this host's processes)."""
        held = sources.c.lease_owner.is_not(None)
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                owners = [r[0] for r in conn.execute(select(sources.c.lease_owner).where(held).distinct())]
                held = sources.c.lease_owner.in_([o for o in owners if gone(o)])
            query = update(sources).where(held).values(lease_owner=None, lease_until=None)
            released = int(conn.execute(query).rowcount)
        if released:
            log.info("event=leases_released sources=%d reason=owner_gone", released)
        return released

    def get_state(self, source_id: str) -> SourceState | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(sources).where(sources.c.id == source_id)).mappings().first()
        return _state(row) if row else None

    def list_states(self, include_disabled: bool = False) -> list[SourceState]:
        query = select(sources).order_by(sources.c.id)
        if not include_disabled:
            query = query.where(sources.c.enabled.is_(True))
        with self.engine.connect() as conn:
            return [_state(r) for r in conn.execute(query).mappings()]

    def reset_source(self, source_id: str, now: datetime) -> None:
        """Clear errors and the gone flag, and make the source due now."""
        with self.engine.begin() as conn:
            conn.execute(
                update(sources)
                .where(sources.c.id == source_id)
                .values(consecutive_failures=0, gone=False, last_error=None, next_fetch_at=now)
            )

    def fetch_now(self, source_id: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(sources).where(sources.c.id == source_id).values(next_fetch_at=now))

    # --- entries ------------------------------------------------------------------------------

    def known(self, source_id: str, keys: Iterable[str]) -> dict[str, tuple[int, str, str | None]]:
        """Existing entries of a source by key: key -> (entry id, content hash, canonical URL)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, tuple[int, str, str | None]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted, 500):
                rows = conn.execute(
                    select(
                        entries.c.key, entries.c.id, entries.c.content_hash, entries.c.canonical_url
                    ).where(entries.c.source_id == source_id, entries.c.key.in_(chunk))
                )
                found.update({r.key: (r.id, r.content_hash, r.canonical_url) for r in rows})
        return found

    def tombstoned(self, source_id: str, keys: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(keys))
        dead: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted, 500):
                rows = conn.execute(
                    select(tombstones.c.key).where(
                        tombstones.c.source_id == source_id, tombstones.c.key.in_(chunk)
                    )
                )
                dead.update(r.key for r in rows)
        return dead

    def apply(
        self,
        state: SourceState,
        new: Sequence[Entry],
        changed: Sequence[Entry],
        outcome: FetchOutcome,
        now: datetime,
        owner: str | None = None,
        dropped: Sequence[Drop] = (),
        merge: Merge | None = None,
    ) -> list[int]:
        """Write one fetch's results in one transaction: the source's new state (lease released),
        new entries (with their band keys), changed entries, dropped entries and a fetch-log line.
        Returns the new entries' ids.

        With a ``merge``, the new entries' duplicates among other sources' entries are decided in
        the same transaction, under the story locks of the new entries (``lock_stories``): it is
        called with the new entries not stored yet and a candidate look-up on this transaction,
        and what it returns is inserted. Workers storing one story at once so make one primary.

        Fenced by the claim: nothing is written when the source was claimed again since
        ``state`` was read under its claim (``state.lease_token``; ours expired and was taken over,
        and the taker writes its own fetch, even if it has finished meanwhile), nor, with an
        ``owner``, while another worker holds the source's lease. Such a write is logged as
        ``lease_lost`` and counted in ``leases_lost``."""
        with self.engine.begin() as conn:
            if merge is not None:  # before any row lock, so waiting here holds none
                self.lock_stories(conn, new)
            if not self._write_state(conn, state, owner):
                self._lost(state, owner)
                return []
            revision = self._next_revision(conn) if new or changed else 0
            present = self._present_keys(conn, state.source_id, [e.key for e in new])
            fresh: Sequence[Entry] = [e for e in new if e.key not in present]
            if merge is not None and fresh:
                fresh = merge(fresh, lambda exclude, wanted: read_candidates(conn, exclude, wanted))
            ids = self._insert_entries(conn, fresh, now, revision)
            if ids or changed:
                newest = max((e.changed_at or now) for e in (*new, *changed))
                _touch_sources(conn, [state.source_id], newest, {state.source_id: len(ids)})
            for e in changed:
                conn.execute(
                    update(entries)
                    .where(entries.c.source_id == e.source_id, entries.c.key == e.key)
                    .values(**_entry_update_row(e, now), revision=revision)
                )
                if e.id is not None:
                    self._write_bands(conn, e.id, e.band_keys)
            self._record_drops(conn, dropped, now)
            conn.execute(fetch_log.insert().values(**_log_row(outcome, now)))
        return ids

    def apply_quiet(
        self, results: Sequence[tuple[SourceState, FetchOutcome]], now: datetime,
        owner: str | None = None,
    ) -> None:
        """``apply`` for several fetches that stored no entries (not modified, unchanged, failed)
        in one transaction: each source's new state and fetch-log line, with the same lease rule.
        A round of 304s commits once instead of once per source."""
        if not results:
            return
        with self.engine.begin() as conn:
            logged = []
            for state, outcome in results:
                if self._write_state(conn, state, owner):
                    logged.append(_log_row(outcome, now))
                else:
                    self._lost(state, owner)
            if logged:
                conn.execute(fetch_log.insert(), logged)

    def _write_state(self, conn: Connection, state: SourceState, owner: str | None) -> bool:
        """Store the source's new state unless the source was claimed since ``state`` was read
        (its fencing number moved on) or another owner holds its lease; the UPDATE comes first so
        it takes the row lock (PostgreSQL) or the write lock (SQLite) at once."""
        query = update(sources).where(sources.c.id == state.source_id)
        if state.lease_token is not None:
            query = query.where(sources.c.lease_token == state.lease_token)
        if owner is not None:
            query = query.where(or_(sources.c.lease_owner.is_(None), sources.c.lease_owner == owner))
        return conn.execute(query.values(**_state_row(state))).rowcount > 0

    def _lost(self, state: SourceState, owner: str | None) -> None:
        with self._counting:
            self.leases_lost += 1
        log.warning("source=%s event=lease_lost owner=%s token=%s results=dropped",
                    state.source_id, owner, state.lease_token)

    def _present_keys(self, conn: Connection, source_id: str, keys: list[str]) -> set[str]:
        present: set[str] = set()
        for chunk in _chunks(keys, 500):
            rows = conn.execute(
                select(entries.c.key).where(entries.c.source_id == source_id, entries.c.key.in_(chunk))
            )
            present.update(r.key for r in rows)
        return present

    def _next_revision(self, conn: Connection) -> int:
        """A store-wide number that grows with every write transaction touching entries."""
        if self.dialect == "postgresql":
            return int(conn.execute(select(revision_seq.next_value())).scalar_one())
        bump = counters.c.value + 1
        conn.execute(update(counters).where(counters.c.name == "revision").values(value=bump))
        value = conn.execute(select(counters.c.value).where(counters.c.name == "revision"))
        return int(value.scalar_one())

    def _insert_entries(
        self, conn: Connection, new: Sequence[Entry], now: datetime, revision: int
    ) -> list[int]:
        """Insert entries and their band keys with one batched statement each (INSERT ...
        RETURNING in the rows' order); their ids, in order."""
        if not new:
            return []
        rows = [{**_entry_row(e, now), "revision": revision, "arrival": revision} for e in new]
        query = entries.insert().returning(entries.c.id, sort_by_parameter_order=True)
        ids = [int(r[0]) for r in conn.execute(query, rows)]
        for chunk in _chunks(ids, 500):  # a reused SQLite rowid must not inherit old band keys
            conn.execute(delete(entry_bands).where(entry_bands.c.entry_id.in_(chunk)))
        bands = [{"entry_id": i, "band_key": k} for i, e in zip(ids, new) for k in e.band_keys]
        if bands:
            conn.execute(entry_bands.insert(), bands)
        return ids

    def list_entries(self, sel: Selection) -> list[Entry]:
        """The selected entries after ``sel.before``: newest ``sort_at`` first, or with
        ``by_arrival`` the latest write first and one write's entries in id (document) order."""
        query = select(entries).where(*_filters(sel), *_after(sel))
        if sel.by_arrival:
            query = query.order_by(entries.c.arrival.desc(), entries.c.id.asc())
        else:
            query = query.order_by(entries.c.sort_at.desc(), entries.c.id.desc())
        query = query.limit(sel.limit)
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(query).mappings()]

    def change_token(self) -> int | None:
        """A cheap number that moves with every committed write to entries, store-wide (the
        SQLite revision counter, bumped in the writing transaction); None on PostgreSQL, whose
        sequence moves before its transaction commits (callers then use ``last_change``)."""
        if self.dialect == "postgresql":
            return None
        with self.engine.connect() as conn:
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
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return ChangeStamp(None, 0, 0)
        changed = row[0]
        if isinstance(changed, str):  # SQLite aggregates bypass the column type
            changed = datetime.fromisoformat(changed)
        if changed is not None and changed.tzinfo is None:
            changed = changed.replace(tzinfo=UTC)
        return ChangeStamp(changed, int(row[1]), int(row[2]))

    def tag_authority(self, proposed: str) -> str:
        """The host name in the tag: URIs of every id this store publishes ("" for urn:uuid ids):
        recorded the first time it is asked for (``proposed``, from the base URL then) and the
        same ever after, in every process, whatever the base URL becomes."""
        if self._authority is not None:
            return self._authority
        name = store_facts.c.name == "tag_authority"
        with self.engine.begin() as conn:
            found = conn.execute(select(store_facts.c.value).where(name)).scalar()
            if found is None:
                insert = _insert_ignoring_conflicts(self.dialect, store_facts)
                conn.execute(insert.values(name="tag_authority", value=proposed))
                found = conn.execute(select(store_facts.c.value).where(name)).scalar_one()
        self._authority = str(found)
        return self._authority

    def get_entry(self, entry_id: int) -> Entry | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(entries).where(entries.c.id == entry_id)).mappings().first()
        return _entry(row) if row else None

    def entry_counts(self) -> dict[str, int]:
        query = select(entries.c.source_id, func.count()).group_by(entries.c.source_id)
        with self.engine.connect() as conn:
            return {r[0]: int(r[1]) for r in conn.execute(query)}

    # --- retention ----------------------------------------------------------------------------

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
        with self.engine.connect() as lock:
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

    def _prune(self, now: datetime, max_per_source: int | None, max_age: float | None) -> PruneResult:
        cutoff = now - timedelta(seconds=max_age) if max_age is not None else None
        with self.engine.connect() as conn:
            source_ids = [r[0] for r in conn.execute(select(entries.c.source_id).distinct())]
        removed = touched = 0
        for sid in source_ids:
            with self.engine.begin() as conn:
                victims = _victims(conn, sid, max_per_source, cutoff)
                if victims:
                    self._bury(conn, sid, victims, now)
            removed += len(victims)
            touched += bool(victims)
        return PruneResult(removed, touched)

    def _bury(self, conn: Connection, source_id: str, victims: dict[int, str], now: datetime) -> None:
        """Delete entries and leave their tombstones. The copies of a removed primary stay one
        cluster: the oldest surviving copy becomes its primary, the others point at it."""
        revision = self._next_revision(conn)
        ids = list(victims)
        unmerged: set[str] = set()
        for chunk in _chunks(ids, 500):
            found = select(entries.c.source_id).where(entries.c.duplicate_of.in_(chunk)).distinct()
            unmerged.update(r[0] for r in conn.execute(found))
        # Source rows first, in id order, as apply() does: row locks are always taken in one order.
        _touch_sources(conn, sorted(unmerged | {source_id}), now, {source_id: -len(ids)})
        for chunk in _chunks(ids, 500):
            graves = [{"source_id": source_id, "key": victims[i], "removed_at": now} for i in chunk]
            conn.execute(_insert_ignoring_conflicts(self.dialect, tombstones), graves)
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

    def fetch_history(self, source_id: str, limit: int = 20) -> list[dict[str, Any]]:
        query = (
            select(fetch_log)
            .where(fetch_log.c.source_id == source_id)
            .order_by(fetch_log.c.at.desc(), fetch_log.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]


def _touch_sources(
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


def _after(sel: Selection) -> list[Any]:
    """The condition of entries past the cursor in the selection's order. The arrival order is
    descending in one column and ascending in the other, so no row comparison states it; its
    ``arrival <= a`` term bounds the index scan."""
    if sel.before is None:
        return []
    if not sel.by_arrival:
        return [tuple_(entries.c.sort_at, entries.c.id) < tuple_(*sel.before)]
    arrival, entry_id = sel.before
    return [
        entries.c.arrival <= arrival,
        or_(entries.c.arrival < arrival, entries.c.id > entry_id),
    ]


def _filters(sel: Selection) -> list[Any]:
    where: list[Any] = []
    if sel.source_ids is not None:
        where.append(entries.c.source_id.in_(sel.source_ids))
    if sel.exclude_source_ids:
        where.append(entries.c.source_id.not_in(sel.exclude_source_ids))
    paths = [p for p in (sel.category_prefix, *sel.category_prefixes) if p]
    if paths:
        where.append(_filed_under(paths, sel.merge_duplicates, sel.also_sources))
    if sel.merge_duplicates:
        where.append(entries.c.duplicate_of.is_(None))
    if sel.query:
        like = f"%{sel.query}%"
        where.append(or_(entries.c.title.ilike(like), entries.c.content.ilike(like)))
    return where


def category_tag(path: Sequence[str]) -> str:
    """How a category path is spelled as one category name: its parts joined with ``/``."""
    return "/".join(path)


def _filed_under(paths: Sequence[Sequence[str]], merged: bool, also: Sequence[str] = ()) -> Any:
    """Entries filed under any of ``paths``: by their category path (a prefix of it), by a
    category name (a rule's ``AI``, or ``a/b`` and below) or by coming from one of the ``also``
    sources (filed there by their ``also_in``). Merged: the story (the entry that stands for its
    copies) is in when any of its copies is filed there."""

    def matches(table: Any) -> Any:
        tests = [table.c.source_id.in_(also)] if also else []
        for path in paths:
            key = category_key(path)
            tag = json.dumps(category_tag(path), ensure_ascii=False)  # as stored: '"AI"'
            tests += [
                func.substr(table.c.category_key, 1, len(key)) == key,
                table.c.categories.contains(tag, autoescape=True),
                table.c.categories.contains(tag[:-1] + '/', autoescape=True),
            ]
        return or_(*tests)

    if not merged:
        return matches(entries)
    copy = entries.alias("copy")
    stories = select(func.coalesce(copy.c.duplicate_of, copy.c.id)).where(matches(copy))
    return entries.c.id.in_(stories)


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


def _insert_ignoring_conflicts(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        return pg_insert(table).on_conflict_do_nothing()
    return sqlite_insert(table).on_conflict_do_nothing()


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _config_digest(src: Source) -> str:
    """A digest of everything the operator configures about a source."""
    fields = {
        "url": src.url, "kind": src.kind, "title": src.title, "interval": src.interval,
        "category": list(src.category), "site_name": src.site_name, "options": dict(src.options),
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def _json_path(path: Sequence[str]) -> str:
    return json.dumps(list(path), ensure_ascii=False)


def _new_source_row(src: Source, now: datetime) -> dict[str, Any]:
    return {
        "config_digest": _config_digest(src),
        "category_path": _json_path(src.category),
        "id": src.id,
        "kind": src.kind,
        "configured_url": src.url,
        "url": src.url,
        "title": src.title,
        "enabled": True,
        "gone": False,
        "next_fetch_at": now,
        "consecutive_failures": 0,
        "redirect_streak": 0,
        "fetch_count": 0,
        "not_modified_count": 0,
    }


def _changed_source(row: RowMapping, src: Source, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {"kind": src.kind, "enabled": True}
    if src.title:
        values["title"] = src.title
    if row["configured_url"] != src.url:
        # The operator pointed the source somewhere else: start over there, now.
        values.update(
            configured_url=src.url, url=src.url, etag=None, last_modified=None, body_hash=None,
            next_fetch_at=now, gone=False, consecutive_failures=0, redirect_target=None,
            redirect_streak=0,
        )
    elif not row["enabled"]:
        values["next_fetch_at"] = now
    return values


def _state(r: RowMapping) -> SourceState:
    return SourceState(
        source_id=r["id"],
        url=r["url"],
        configured_url=r["configured_url"],
        title=r["title"],
        site_link=r["site_link"],
        etag=r["etag"],
        last_modified=r["last_modified"],
        body_hash=r["body_hash"],
        next_fetch_at=r["next_fetch_at"],
        last_fetch_at=r["last_fetch_at"],
        last_success_at=r["last_success_at"],
        last_status=r["last_status"],
        last_error=r["last_error"],
        consecutive_failures=r["consecutive_failures"] or 0,
        redirect_target=r["redirect_target"],
        redirect_streak=r["redirect_streak"] or 0,
        enabled=bool(r["enabled"]) and not bool(r["gone"]),
        fetch_count=r["fetch_count"] or 0,
        not_modified_count=r["not_modified_count"] or 0,
        details_missing=r["details_missing"] or 0,
        detail_error=r["detail_error"],
        detail_retry_at=r["detail_retry_at"],
        lease_token=r["lease_token"],
    )


def _state_row(s: SourceState) -> dict[str, Any]:
    return {
        "url": s.url,
        "title": s.title,
        "site_link": s.site_link,
        "etag": s.etag,
        "last_modified": s.last_modified,
        "body_hash": s.body_hash,
        "next_fetch_at": s.next_fetch_at,
        "last_fetch_at": s.last_fetch_at,
        "last_success_at": s.last_success_at,
        "last_status": s.last_status,
        "last_error": s.last_error,
        "consecutive_failures": s.consecutive_failures,
        "redirect_target": s.redirect_target,
        "redirect_streak": s.redirect_streak,
        "gone": s.last_status == "gone",
        "fetch_count": s.fetch_count,
        "not_modified_count": s.not_modified_count,
        "details_missing": s.details_missing,
        "detail_error": s.detail_error,
        "detail_retry_at": s.detail_retry_at,
        "lease_owner": None,
        "lease_until": None,
    }


def _entry_row(e: Entry, now: datetime) -> dict[str, Any]:
    row = _entry_update_row(e, now)
    first_seen = e.first_seen or now
    published = e.published
    row.update(
        source_id=e.source_id,
        key=e.key,
        first_seen=first_seen,
        changed_at=e.changed_at or first_seen,
        sort_at=min(published, first_seen) if published else first_seen,
        duplicate_of=e.duplicate_of,
        merge_reason=e.merge_reason,
    )
    return row


def _entry_update_row(e: Entry, now: datetime) -> dict[str, Any]:
    return {
        "title": e.title,
        "link": e.link,
        "content": e.content,
        "summary": e.summary,
        "author": e.author,
        "published": e.published,
        "updated": e.updated,
        "categories": json.dumps(list(e.categories), ensure_ascii=False),
        "category_path": json.dumps(list(e.category_path), ensure_ascii=False),
        "category_key": category_key(e.category_path),
        "enclosures": json.dumps(
            [{"url": x.url, "type": x.type, "length": x.length} for x in e.enclosures]
        ),
        "image": e.image,
        "content_hash": e.content_hash,
        "canonical_url": e.canonical_url,
        **fingerprint_columns(e.fingerprint),
        "changed_at": e.changed_at or now,
        **identity_columns(e),
    }


def _entry(r: RowMapping) -> Entry:
    return Entry(
        id=r["id"],
        source_id=r["source_id"],
        key=r["key"],
        title=r["title"],
        link=r["link"],
        content=r["content"],
        summary=r["summary"],
        author=r["author"],
        published=r["published"],
        updated=r["updated"],
        categories=tuple(json.loads(r["categories"] or "[]")),
        category_path=tuple(json.loads(r["category_path"] or "[]")),
        enclosures=tuple(Enclosure(**x) for x in json.loads(r["enclosures"] or "[]")),
        image=r["image"],
        content_hash=r["content_hash"],
        canonical_url=r["canonical_url"],
        fingerprint=fingerprint_of(r["fingerprint"], r["body_fingerprint"]),
        first_seen=r["first_seen"],
        changed_at=r["changed_at"],
        duplicate_of=r["duplicate_of"],
        merge_reason=r["merge_reason"],
        sort_at=r["sort_at"],
        arrival=r["arrival"],
        text_length=r["text_length"] or 0,
        explanation=tuple(json.loads(r["explanation"] or "[]")),
    )


def _log_row(o: FetchOutcome, now: datetime) -> dict[str, Any]:
    return {
        "source_id": o.source_id,
        "at": now,
        "status": o.status.value,
        "error": o.error,
        "added": o.added,
        "updated": o.updated,
        "bytes": o.bytes,
        "elapsed": o.elapsed,
    }
