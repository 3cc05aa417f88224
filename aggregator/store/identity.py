"""The SQL behind entry identity across sources: duplicate candidates, band keys, re-keyed ids,
dropped entries and the look-ups of ``aggregator explain``.

A mixin of ``SQLStore`` (it uses its ``engine``); the decisions themselves are pipeline/'s (dedupe,
decide, categorize), this module only finds and writes rows.

One primary per story across processes: ``SQLStore.apply`` looks up the candidates of new
entries and inserts them in one transaction, after ``lock_stories`` has taken a lock on every key
by which a candidate can be found (content hash, canonical URL, band keys). Two workers storing
copies of one story share at least one such key, so the second waits for the first to commit and
then finds its entry. On PostgreSQL these are transaction-scoped advisory locks, taken in sorted
order (no deadlocks); on SQLite the transaction's first write already holds the one write lock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, text
from sqlalchemy.engine import Connection

from ..models import Drop, Entry, Identity
from .engine import Queries
from .records import Wanted
from .schema import drops, entries, entry_bands, fingerprint_of

CANDIDATE_LIMIT = 200  # stored entries compared per new entry, newest first


_COLUMNS = (
    entries.c.id,
    entries.c.source_id,
    entries.c.canonical_url,
    entries.c.content_hash,
    entries.c.fingerprint,
    entries.c.body_fingerprint,
    entries.c.text_length,
    entries.c.duplicate_of,
    entries.c.key,
)
# Built once (bound parameters, expanding lists): building the statements per source cost as much
# as running them. A NULL URL matches nothing.
_BY_HASH_OR_URL = select(*_COLUMNS).where(
    entries.c.source_id != bindparam("exclude"),
    or_(
        entries.c.content_hash.in_(bindparam("hashes", expanding=True)),
        entries.c.canonical_url.in_(bindparam("urls", expanding=True)),
    ),
)
_banded = (
    select(
        entry_bands.c.band_key,
        entry_bands.c.entry_id,
        func.row_number()
        .over(partition_by=entry_bands.c.band_key, order_by=entry_bands.c.entry_id.desc())
        .label("rank"),
    )
    .join(entries, entries.c.id == entry_bands.c.entry_id)
    .where(
        entry_bands.c.band_key.in_(bindparam("bands", expanding=True)),
        entries.c.source_id != bindparam("exclude"),
    )
    .subquery()
)
# Each band key's newest CANDIDATE_LIMIT entries: enough, because an entry among the newest
# CANDIDATE_LIMIT of all an item's matches is among the newest of each band it matched by.
_BY_BAND = (
    select(_banded.c.band_key, *_COLUMNS)
    .join(entries, entries.c.id == _banded.c.entry_id)
    .where(_banded.c.rank <= CANDIDATE_LIMIT)
)
_CHUNK = 500  # values per IN list (SQLite allows 32,766 parameters; PostgreSQL 65,535)

# Story locks (PostgreSQL). Every transaction storing new entries holds _STORY_LOCK (bigint key
# space): shared, plus one exclusive lock per story key in the two-int key space (class
# _STORY_CLASS, 32-bit hash of the key; a collision only makes two unrelated writes wait); or,
# beyond MAX_STORY_LOCKS keys (a first fetch of a long feed), _STORY_LOCK exclusive alone, which
# stands for every key. The lock table is shared by all sessions and sized by
# max_locks_per_transaction x max_connections (6,400 by default): a 50-entry fetch has about
# 1,150 keys, so big ones take the one coarse lock instead.
_STORY_LOCK = 7_306_112_004
_STORY_CLASS = 7306
MAX_STORY_LOCKS = 256
_LOCK_ONE = text("SELECT pg_advisory_xact_lock(:key)")
_LOCK_SHARED = text("SELECT pg_advisory_xact_lock_shared(:key)")
# unnest yields the array in order, so the keys are locked in the sorted order they are given.
_LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(:cls, k)) FROM unnest(CAST(:keys AS integer[])) AS k"
)


class IdentityQueries(Queries):
    def duplicate_candidates_many(
        self, exclude_source: str, wanted: Wanted
    ) -> list[list[Identity]]:
        """For each of several new entries of one source (canonical URL, content hash, band keys
        each): the entries of other sources that could be the same story, sharing its canonical
        URL, its content hash or a near-duplicate band key; the newest ``CANDIDATE_LIMIT``, newest
        first. A few queries in all, not a few per entry. (Read outside any write: for dry runs;
        ``apply`` with a ``merge`` looks up and inserts in one transaction.)"""
        with self.connect() as conn:
            return read_candidates(conn, exclude_source, wanted)

    def lock_stories(self, conn: Connection, new: Sequence[Entry]) -> None:
        """Hold, until ``conn``'s transaction ends, the story locks of ``new``'s entries (see the
        module docstring); nothing on SQLite, whose writers are serialized anyway."""
        if self.dialect != "postgresql" or not new:
            return
        keys = sorted({_lock_key(k) for e in new for k in _story_keys(e)})
        if len(keys) > MAX_STORY_LOCKS:
            conn.execute(_LOCK_ONE, {"key": _STORY_LOCK})
            return
        conn.execute(_LOCK_SHARED, {"key": _STORY_LOCK})
        conn.execute(_LOCK_KEYS, {"cls": _STORY_CLASS, "keys": keys})

    def source_identities(self, source_id: str, limit: int = 5000) -> list[Identity]:
        """The source's stored entries as keys, canonical URLs, content hashes and fingerprints
        (for spotting a publisher that changed its id scheme), newest first."""
        query = (
            select(
                entries.c.id,
                entries.c.key,
                entries.c.canonical_url,
                entries.c.content_hash,
                entries.c.fingerprint,
                entries.c.body_fingerprint,
            )
            .where(entries.c.source_id == source_id)
            .order_by(entries.c.id.desc())
            .limit(limit)
        )
        with self.connect() as conn:
            return [
                Identity(
                    source_id,
                    r.key,
                    r.canonical_url,
                    r.content_hash,
                    fingerprint_of(r.fingerprint, r.body_fingerprint),
                    entry_id=r.id,
                )
                for r in conn.execute(query)
            ]

    def find_entries(self, ref: str, limit: int = 20) -> list[int]:
        """Ids of stored entries that ``ref`` names: an id, a key, a link or a canonical URL."""
        conds = [entries.c.key == ref, entries.c.link == ref, entries.c.canonical_url == ref]
        if ref.isdigit():
            conds.append(entries.c.id == int(ref))
        query = select(entries.c.id).where(or_(*conds)).order_by(entries.c.id).limit(limit)
        with self.connect() as conn:
            return [int(r[0]) for r in conn.execute(query)]

    def find_drops(self, ref: str, limit: int = 20) -> list[Drop]:
        query = (
            select(drops)
            .where(or_(drops.c.key == ref, drops.c.link == ref, drops.c.title == ref))
            .limit(limit)
        )
        with self.connect() as conn:
            return [Drop(**dict(r)) for r in conn.execute(query).mappings()]

    def duplicates_of(self, entry_id: int) -> list[int]:
        query = (
            select(entries.c.id).where(entries.c.duplicate_of == entry_id).order_by(entries.c.id)
        )
        with self.connect() as conn:
            return [int(r[0]) for r in conn.execute(query)]

    def _write_bands(self, conn: Connection, entry_id: int, band_keys: Sequence[int]) -> None:
        conn.execute(delete(entry_bands).where(entry_bands.c.entry_id == entry_id))
        if band_keys:
            conn.execute(
                entry_bands.insert(), [{"entry_id": entry_id, "band_key": k} for k in band_keys]
            )

    def _record_drops(self, conn: Connection, dropped: Sequence[Drop], now: datetime) -> None:
        for d in dropped:
            conn.execute(
                delete(drops).where(drops.c.source_id == d.source_id, drops.c.key == d.key)
            )
            conn.execute(
                drops.insert().values(
                    source_id=d.source_id,
                    key=d.key,
                    title=d.title,
                    link=d.link,
                    reason=d.reason,
                    at=d.at or now,
                )
            )


def read_candidates(conn: Connection, exclude_source: str, wanted: Wanted) -> list[list[Identity]]:
    """``duplicate_candidates_many`` on a given connection (inside the caller's transaction)."""
    hashes = list({h for _, h, _ in wanted})
    urls = list({u for u, _, _ in wanted if u})
    bands = list({k for _, _, keys in wanted for k in keys})
    rows: dict[int, Identity] = {}
    by_hash: dict[str, set[int]] = {}
    by_url: dict[str, set[int]] = {}
    by_band: dict[int, set[int]] = {}
    for i in range(0, max(len(hashes), len(urls)), _CHUNK):
        params = {
            "exclude": exclude_source,
            "hashes": hashes[i : i + _CHUNK],
            "urls": urls[i : i + _CHUNK],
        }
        for r in conn.execute(_BY_HASH_OR_URL, params):
            rows[r[0]] = _candidate(r)
            by_hash.setdefault(r.content_hash, set()).add(r[0])
            if r.canonical_url:
                by_url.setdefault(r.canonical_url, set()).add(r[0])
    for i in range(0, len(bands), _CHUNK):
        band_params: dict[str, Any] = {"exclude": exclude_source, "bands": bands[i : i + _CHUNK]}
        for band in conn.execute(_BY_BAND, band_params):
            rows[band[1]] = _candidate(band[1:])
            by_band.setdefault(band[0], set()).add(band[1])
    out = []
    for url, content_hash, keys in wanted:
        # exact matches always (a story's copies must meet however crowded its bands are), then
        # the newest band matches up to CANDIDATE_LIMIT in all
        exact = set(by_hash.get(content_hash, ())) | (by_url.get(url, set()) if url else set())
        banded: set[int] = set()
        for k in keys:
            banded |= by_band.get(k, set())
        room = max(0, CANDIDATE_LIMIT - len(exact))
        chosen = sorted(exact, reverse=True) + sorted(banded - exact, reverse=True)[:room]
        out.append([rows[i] for i in chosen])
    return out


def _candidate(r: Sequence[Any]) -> Identity:
    """A candidate from a row of ``_COLUMNS`` (the two fingerprint columns made one)."""
    entry_id, source_id, url, content_hash, lede, body, weight, duplicate_of, key = r
    return Identity(
        source_id,
        key,
        url,
        content_hash,
        fingerprint_of(lede, body),
        weight,
        entry_id=entry_id,
        duplicate_of=duplicate_of,
    )


def _story_keys(e: Entry) -> list[str]:
    """Every key by which ``_candidates`` can find ``e`` or find another entry for it."""
    keys = [f"h:{e.content_hash}", *(f"b:{k}" for k in e.band_keys)]
    return [f"u:{e.canonical_url}", *keys] if e.canonical_url else keys


def _lock_key(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big", signed=True)


def identity_columns(e: Entry) -> dict[str, Any]:
    return {
        "text_length": e.text_length,
        "explanation": json.dumps(list(e.explanation), ensure_ascii=False),
    }
