"""The source rows: syncing them with the config, claiming due ones under a lease, their state and
their fetch log.

Owns: one row per configured source (schedule, validators, health, category, lease), syncing
those rows with the config, claiming due sources with a lease so several workers never fetch one
source at once, writing a fetch's new state under that lease (``_write_state``, for entries.py's
``apply``), giving leases back, and reading a source's fetch log. Does not own: deciding when to
fetch next (the pipeline passes the new state in) or the entries (entries.py).

Several processes may share one PostgreSQL database: claims use ``FOR UPDATE SKIP LOCKED`` and a
lease, and each claim adds one to the source's fencing number, so a write from a worker whose
claim is no longer the latest is rejected (``lease_lost``); syncing the configured sources is
serialized with an advisory lock and marks a source due only when its configuration changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select, text, update
from sqlalchemy.engine import Connection, RowMapping

from ..models import FetchOutcome, Source, SourceState
from .changes import next_revision, touch_sources
from .engine import Queries, insert_ignoring_conflicts
from .records import FetchLogLine
from .schema import entries, fetch_log, sources

SEP = "\x1f"
_SYNC_LOCK = 7_306_112_002  # pg_advisory_xact_lock key: "sync sources"

log = logging.getLogger("aggregator.store")


class SourceQueries(Queries):
    # Writes of a fetch rejected because the source was claimed again since its claim (the
    # worker's lease expired and another took over): for the lease_lost metric.
    leases_lost: int
    # Sources claimed while another owner's lease on them had expired: for the lease-takeovers
    # metric.
    lease_takeovers: int
    _counting: threading.Lock

    def sync_sources(self, configured: Sequence[Source], now: datetime) -> None:
        """Make the source rows match the config: add new ones (due now), update changed ones,
        disable removed ones (their entries stay).

        A source whose configured fields changed since the last sync (its stored digest differs)
        is due now, once: every process of a deployment syncs the same edit on its reload, and
        only the first finds something changed (the rows are read and written under one lock on
        PostgreSQL; the due time is set by a conditional UPDATE). A source moved to another
        category takes its stored entries along (``_refile``)."""
        wanted = {s.id: s for s in configured}
        with self.begin() as conn:
            if self.dialect == "postgresql":  # processes starting together sync one at a time
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SYNC_LOCK})
            rows = {r.id: r for r in conn.execute(select(sources)).mappings()}
            for sid, src in wanted.items():
                row = rows.get(sid)
                if row is None:
                    insert = insert_ignoring_conflicts(self.dialect, sources)  # raced by a peer
                    conn.execute(insert.values(**_new_source_row(src, now)))
                else:
                    self._sync_one(conn, row, src, now)
            gone = [sid for sid, row in rows.items() if sid not in wanted and row["enabled"]]
            if gone:
                conn.execute(update(sources).where(sources.c.id.in_(gone)).values(enabled=False))

    def _sync_one(self, conn: Connection, row: RowMapping, src: Source, now: datetime) -> None:
        digest = config_digest(src)
        edited = and_(sources.c.config_digest.is_not(None), sources.c.config_digest != digest)
        values = _changed_source(row, src, now)
        values.update(
            config_digest=digest,
            category_path=json_path(src.category),
            next_fetch_at=case(
                (edited, now), else_=values.get("next_fetch_at", sources.c.next_fetch_at)
            ),
        )
        conn.execute(update(sources).where(sources.c.id == src.id).values(**values))
        was = row["category_path"]
        if was is not None and was != json_path(src.category):  # NULL: synced before migration 5
            self._refile(conn, src.id, tuple(json.loads(was)), src.category, now)

    def _refile(
        self,
        conn: Connection,
        source_id: str,
        old: Sequence[str],
        new: Sequence[str],
        now: datetime,
    ) -> None:
        """Move the source's entries filed under its old category to its new one (an entry's
        category path is its source's: categorize.py), bumping revisions for the feed caches."""
        revision = next_revision(conn, self.dialect)
        moved = conn.execute(
            update(entries)
            .where(entries.c.source_id == source_id, entries.c.category_key == category_key(old))
            .values(category_path=json_path(new), category_key=category_key(new), revision=revision)
        ).rowcount
        if moved:
            touch_sources(conn, [source_id], now, {})
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
            .where(due)
            .order_by(sources.c.next_fetch_at)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self.begin() as conn:
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
        with self.connect() as conn:
            found: datetime | None = conn.execute(query).scalar_one()
        return found

    def release(self, source_id: str, owner: str) -> None:
        with self.begin() as conn:
            conn.execute(
                update(sources)
                .where(sources.c.id == source_id, sources.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def release_all(self, owner: str) -> None:
        """Give back every lease ``owner`` holds (on a clean shutdown)."""
        with self.begin() as conn:
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
        with self.begin() as conn:
            if self.dialect == "postgresql":
                owners = [
                    r[0] for r in conn.execute(select(sources.c.lease_owner).where(held).distinct())
                ]
                held = sources.c.lease_owner.in_([o for o in owners if gone(o)])
            query = update(sources).where(held).values(lease_owner=None, lease_until=None)
            released = int(conn.execute(query).rowcount)
        if released:
            log.info("event=leases_released sources=%d reason=owner_gone", released)
        return released

    def get_state(self, source_id: str) -> SourceState | None:
        with self.connect() as conn:
            row = conn.execute(select(sources).where(sources.c.id == source_id)).mappings().first()
        return _state(row) if row else None

    def list_states(self, include_disabled: bool = False) -> list[SourceState]:
        query = select(sources).order_by(sources.c.id)
        if not include_disabled:
            query = query.where(sources.c.enabled.is_(True))
        with self.connect() as conn:
            return [_state(r) for r in conn.execute(query).mappings()]

    def reset_source(self, source_id: str, now: datetime) -> None:
        """Clear errors and the gone flag, and make the source due now."""
        with self.begin() as conn:
            conn.execute(
                update(sources)
                .where(sources.c.id == source_id)
                .values(consecutive_failures=0, gone=False, last_error=None, next_fetch_at=now)
            )

    def fetch_now(self, source_id: str, now: datetime) -> None:
        with self.begin() as conn:
            conn.execute(update(sources).where(sources.c.id == source_id).values(next_fetch_at=now))

    def _write_state(self, conn: Connection, state: SourceState, owner: str | None) -> bool:
        """Store the source's new state unless the source was claimed since ``state`` was read
        (its fencing number moved on) or another owner holds its lease; the UPDATE comes first so
        it takes the row lock (PostgreSQL) or the write lock (SQLite) at once."""
        query = update(sources).where(sources.c.id == state.source_id)
        if state.lease_token is not None:
            query = query.where(sources.c.lease_token == state.lease_token)
        if owner is not None:
            query = query.where(
                or_(sources.c.lease_owner.is_(None), sources.c.lease_owner == owner)
            )
        return conn.execute(query.values(**_state_row(state))).rowcount > 0

    def _lost(self, state: SourceState, owner: str | None) -> None:
        with self._counting:
            self.leases_lost += 1
        log.warning(
            "source=%s event=lease_lost owner=%s token=%s results=dropped",
            state.source_id,
            owner,
            state.lease_token,
        )

    def fetch_history(self, source_id: str, limit: int = 20) -> list[FetchLogLine]:
        """The source's latest fetch-log lines, newest first."""
        query = (
            select(fetch_log)
            .where(fetch_log.c.source_id == source_id)
            .order_by(fetch_log.c.at.desc(), fetch_log.c.id.desc())
            .limit(limit)
        )
        with self.connect() as conn:
            return [FetchLogLine(**r) for r in conn.execute(query).mappings()]


def category_key(path: Sequence[str]) -> str:
    """A category path as entries store it for filtering: each part ends with ``SEP``, so the
    key of a parent category is a prefix of its children's (``entries._filed_under``)."""
    return "".join(p + SEP for p in path)


def category_tag(path: Sequence[str]) -> str:
    """How a category path is spelled as one category name: its parts joined with ``/``."""
    return "/".join(path)


# Request headers whose values the stored digest covers: never secrets. Of every other header
# (Cookie, Authorization, a token) it covers only the name, and of basic auth the username.
_PLAIN_HEADERS = frozenset({"user-agent", "referer", "accept", "accept-language"})


def config_digest(src: Source) -> str:
    """A digest of everything the operator configures about a source (stored: a change makes the
    source due now, once across processes). Of its request options only what is never a
    secret; a source without any has the digest it had before they existed."""
    fields: dict[str, Any] = {
        "url": src.url,
        "kind": src.kind,
        "title": src.title,
        "interval": src.interval,
        "category": list(src.category),
        "site_name": src.site_name,
        "options": dict(src.options),
    }
    if src.request is not None:
        fields["request"] = {
            "headers": sorted(
                (name.lower(), value if name.lower() in _PLAIN_HEADERS else "")
                for name, value in src.request.headers
            ),
            "username": src.request.username,
            "password": src.request.password is not None,
        }
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def json_path(path: Sequence[str]) -> str:
    return json.dumps(list(path), ensure_ascii=False)


def _new_source_row(src: Source, now: datetime) -> dict[str, Any]:
    return {
        "config_digest": config_digest(src),
        "category_path": json_path(src.category),
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
            configured_url=src.url,
            url=src.url,
            etag=None,
            last_modified=None,
            body_hash=None,
            next_fetch_at=now,
            gone=False,
            consecutive_failures=0,
            redirect_target=None,
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


def log_row(o: FetchOutcome, now: datetime) -> dict[str, Any]:
    """A fetch-log line for ``o`` (``apply`` writes it in the fetch's transaction)."""
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
