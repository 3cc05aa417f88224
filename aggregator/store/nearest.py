"""The SQL behind ``aggregator explain``'s nearest candidates and the recomputation of stored
fingerprints when their meaning changes (a mixin of ``SQLStore``, like identity.py).

Owns reading an entry's band keys and rewriting every entry's fingerprint (both columns), weight and band keys
from its stored title and content; the decisions are dedupe/fingerprint.py's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection

from .engine import Queries
from .schema import entries, entry_bands, fingerprint_columns

log = logging.getLogger("aggregator.store")
Signature = Callable[[str | None, str | None], tuple[int | None, tuple[int, ...], int]]
_BATCH = 500


class NearestQueries(Queries):
    def entry_band_keys(self, entry_id: int) -> tuple[int, ...]:
        """The stored near-duplicate index keys of one entry."""
        query = select(entry_bands.c.band_key).where(entry_bands.c.entry_id == entry_id)
        with self.connect() as conn:
            return tuple(int(r[0]) for r in conn.execute(query))

    def recompute_fingerprints(self, signature: Signature) -> int:
        """Rewrite every entry's fingerprint, text_length and band keys with ``signature(title,
        content or summary)`` (fingerprint.stored_signature); returns how many entries. One
        transaction per batch of entries."""
        done, last = 0, 0
        while True:
            with self.begin() as conn:
                batch = _batch_after(conn, last)
                for entry_id, title, body in batch:
                    _rewrite(conn, entry_id, signature(title, body))
            if not batch:
                return done
            done += len(batch)
            last = batch[-1][0]


def recompute_in(conn: Connection, signature: Signature) -> int:
    """``recompute_fingerprints`` inside one transaction (a schema migration's), logging progress
    every 10,000 entries; returns how many entries."""
    total = conn.execute(select(func.count()).select_from(entries)).scalar_one()
    done, last = 0, 0
    while batch := _batch_after(conn, last):
        for entry_id, title, body in batch:
            _rewrite(conn, entry_id, signature(title, body))
        done += len(batch)
        last = batch[-1][0]
        if done % 10_000 < _BATCH or done == total:
            log.info("event=recompute_fingerprints done=%d of=%d", done, total)
    return done


def _batch_after(conn: Connection, last: int) -> list[tuple[int, str | None, str | None]]:
    query = (
        select(entries.c.id, entries.c.title, entries.c.content, entries.c.summary)
        .where(entries.c.id > last)
        .order_by(entries.c.id)
        .limit(_BATCH)
    )
    return [(int(r.id), r.title, r.content or r.summary) for r in conn.execute(query)]


def _rewrite(conn: Connection, entry_id: int, sig: tuple[int | None, tuple[int, ...], int]) -> None:
    fingerprint, keys, weight = sig
    conn.execute(
        update(entries)
        .where(entries.c.id == entry_id)
        .values(**fingerprint_columns(fingerprint), text_length=weight)
    )
    conn.execute(delete(entry_bands).where(entry_bands.c.entry_id == entry_id))
    if keys:
        conn.execute(entry_bands.insert(), [{"entry_id": entry_id, "band_key": k} for k in keys])
