"""The memory fixture: a database with many sources and a million entries, written in bulk
through the store's own table definitions and row builders (the daemon then opens it as usual).

This bypasses the pipeline on purpose: it is a fixture for measuring the daemon's memory, not a
measurement of ingest speed.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.models import Entry
from aggregator.store import entries as store_entries
from aggregator.store import open_store
from aggregator.store.schema import entries, sources

from . import feedgen


def build(db: Path, urls: list[str], total_entries: int, seed: int, due: int) -> float:
    """Create ``db`` with one source per URL and ``total_entries`` entries spread over them;
    ``due`` sources are due now, the rest in a day. Returns the seconds it took."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    store = open_store(f"sqlite:///{db}", now)
    from aggregator.models import Source

    store.sync_sources(
        [
            Source(
                id=f"s{i:05d}",
                url=u,
                kind="feed",
                title=None,
                interval=86400.0,
                category=("Bench", f"c{i % 20}"),
                site_name=None,
                options={},
            )
            for i, u in enumerate(urls)
        ],
        now,
    )
    engine = store.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(sources.update().values(next_fetch_at=now + timedelta(days=1)))
        ids = [f"s{i:05d}" for i in range(due)]
        if ids:
            conn.execute(sources.update().where(sources.c.id.in_(ids)).values(next_fetch_at=now))
    rng = random.Random(seed)
    bodies = [
        feedgen.entry_html(rng, i % 3 == 0, rng.randint(500, 3000), "http://x.test")
        for i in range(500)
    ]
    per_source = max(1, total_entries // len(urls))
    batch: list[dict[str, object]] = []
    written = 0
    for n in range(total_entries):
        sid = f"s{(n // per_source) % len(urls):05d}"
        when = now - timedelta(minutes=n % 100_000)
        e = Entry(
            source_id=sid,
            key=f"http://x.test/{sid}/{n}",
            title=f"Entry {n}",
            link=f"http://x.test/{sid}/{n}",
            content=bodies[n % len(bodies)],
            summary=None,
            author=None,
            published=when,
            updated=when,
            category_path=("Bench", f"c{n % 20}"),
            content_hash=f"{n:064x}",
            canonical_url=f"http://x.test/{sid}/{n}",
            fingerprint=rng.getrandbits(63),
            first_seen=when,
            changed_at=when,
        )
        batch.append(store_entries._entry_row(e, now))  # the store's own row builder
        if len(batch) >= 20_000:
            written += _flush(engine, batch)
    written += _flush(engine, batch)
    store.close()
    return time.perf_counter() - started


def _flush(engine: object, batch: list[dict[str, object]]) -> int:
    if not batch:
        return 0
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(entries.insert(), batch)
    n = len(batch)
    batch.clear()
    return n
