"""The SQL behind entry identity across sources: duplicate candidates, band keys, re-keyed ids,
dropped entries and the look-ups of ``aggregator explain``.

A mixin of ``SQLStore`` (it uses its ``engine``); the decisions themselves are dedupe.py's and
categorize.py's, this module only finds and writes rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, or_, select
from sqlalchemy.engine import Connection, Engine

from ..models import Drop, DuplicateCandidate, Entry
from .schema import drops, entries, entry_bands

CANDIDATE_LIMIT = 200  # stored entries compared per new entry, newest first


# Built once (bound parameters; a NULL URL or no band keys match nothing): building the statement
# per new entry cost as much as running it.
_CANDIDATES = (
    select(
        entries.c.id, entries.c.source_id, entries.c.canonical_url, entries.c.content_hash,
        entries.c.fingerprint, entries.c.text_length, entries.c.duplicate_of,
    )
    .where(
        entries.c.source_id != bindparam("exclude"),
        or_(
            entries.c.content_hash == bindparam("hash"),
            entries.c.canonical_url == bindparam("url"),
            entries.c.id.in_(
                select(entry_bands.c.entry_id).where(
                    entry_bands.c.band_key.in_(bindparam("bands", expanding=True))
                )
            ),
        ),
    )
    .order_by(entries.c.id.desc())
    .limit(CANDIDATE_LIMIT)
)


class IdentityQueries:
    engine: Engine
    dialect: str

    def duplicate_candidates(
        self,
        exclude_source: str,
        canonical_url: str | None,
        content_hash: str,
        band_keys: Sequence[int],
    ) -> list[DuplicateCandidate]:
        """Entries of other sources that could be the same story: the same canonical URL, the
        same content hash, or a shared near-duplicate band key."""
        params = {"exclude": exclude_source, "hash": content_hash, "url": canonical_url,
                  "bands": list(band_keys)}
        with self.engine.connect() as conn:
            return [DuplicateCandidate(*row) for row in conn.execute(_CANDIDATES, params)]

    def source_identities(self, source_id: str, limit: int = 5000) -> list[Entry]:
        """The source's stored entries as keys, canonical URLs and content hashes (for spotting a
        publisher that changed its id scheme), newest first."""
        query = (
            select(entries.c.id, entries.c.key, entries.c.canonical_url, entries.c.content_hash)
            .where(entries.c.source_id == source_id)
            .order_by(entries.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                Entry(source_id=source_id, key=r.key, title="", link=None, content=None,
                      summary=None, author=None, published=None, updated=None,
                      content_hash=r.content_hash, canonical_url=r.canonical_url, id=r.id)
                for r in conn.execute(query)
            ]

    def find_entries(self, ref: str, limit: int = 20) -> list[int]:
        """Ids of stored entries that ``ref`` names: an id, a key, a link or a canonical URL."""
        conds = [entries.c.key == ref, entries.c.link == ref, entries.c.canonical_url == ref]
        if ref.isdigit():
            conds.append(entries.c.id == int(ref))
        query = select(entries.c.id).where(or_(*conds)).order_by(entries.c.id).limit(limit)
        with self.engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(query)]

    def find_drops(self, ref: str, limit: int = 20) -> list[Drop]:
        query = (
            select(drops)
            .where(or_(drops.c.key == ref, drops.c.link == ref, drops.c.title == ref))
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [Drop(**dict(r)) for r in conn.execute(query).mappings()]

    def duplicates_of(self, entry_id: int) -> list[int]:
        query = select(entries.c.id).where(entries.c.duplicate_of == entry_id).order_by(entries.c.id)
        with self.engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(query)]

    def _write_bands(self, conn: Connection, entry_id: int, band_keys: Sequence[int]) -> None:
        conn.execute(delete(entry_bands).where(entry_bands.c.entry_id == entry_id))
        if band_keys:
            conn.execute(
                entry_bands.insert(), [{"entry_id": entry_id, "band_key": k} for k in band_keys]
            )

    def _record_drops(self, conn: Connection, dropped: Sequence[Drop], now: datetime) -> None:
        for d in dropped:
            conn.execute(delete(drops).where(drops.c.source_id == d.source_id, drops.c.key == d.key))
            conn.execute(
                drops.insert().values(
                    source_id=d.source_id, key=d.key, title=d.title, link=d.link,
                    reason=d.reason, at=d.at or now,
                )
            )


def identity_columns(e: Entry) -> dict[str, Any]:
    return {"text_length": e.text_length, "explanation": json.dumps(list(e.explanation), ensure_ascii=False)}
