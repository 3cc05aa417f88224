"""Scale-out guarantees decided in the database, on SQLite and on PostgreSQL: one primary per
story whichever workers store it at once, leases of dead processes given back at start, and a
reload that every worker applies marking a changed source due once."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from email.utils import format_datetime
from pathlib import Path

import pytest

from aggregator import config
from aggregator.clock import FakeClock
from aggregator.fetch import Fetcher
from aggregator.models import Selection
from aggregator.pipeline import Pipeline
from aggregator.store import SQLStore

from .origin import Origin, Reply
from .pg import pg_schema

WORKERS = 4
WORDS = [f"{a}{b}" for a in ("lo", "ra", "ki", "mu", "te", "sa", "no", "vi") for b in ("ban", "dor", "fel", "gim", "hup", "jex", "kol", "mir")]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'scale.db'}"
    else:
        with pg_schema() as url:
            yield url


def story_text(i: int) -> str:
    """About 400 characters of text no other story shares."""
    rng = random.Random(i)
    return " ".join(rng.choice(WORDS) for _ in range(70))


def feed(worker: int, clock: FakeClock, stories: int) -> str:
    """The same stories in every worker's source: even ones under one link everywhere (the same
    canonical URL), odd ones under a link of the worker's own site (the same content)."""
    items = []
    for i in range(stories):
        link = f"http://news.example/story/{i}" if i % 2 == 0 else f"http://site{worker}.example/{i}"
        items.append(
            f"<item><guid>{link}</guid><title>Story {i}</title><link>{link}</link>"
            f"<description>{story_text(i)}</description>"
            f"<pubDate>{format_datetime(clock.now(), usegmt=True)}</pubDate></item>"
        )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"<link>http://example.com/</link><description>d</description>{''.join(items)}</channel></rss>"
    )


def settings_for(url: str, origin: Origin, clock: FakeClock, stories: int) -> config.Settings:
    lines = [
        "[storage]", f'url = "{url}"',
        "[fetch]", "allow_private_networks = true", "per_host_delay = 0", "max_retries = 0",
    ]
    for w in range(WORKERS):
        link = origin.route(f"/w{w}", Reply(feed(w, clock, stories)))
        lines += ["[[sources]]", f'id = "s{w}"', f'url = "{link}"']
    return config.parse("\n".join(lines) + "\n")


def worker(settings: config.Settings, clock: FakeClock, w: int, start: threading.Barrier) -> None:
    """One worker process's part: its own store handle and pipeline, claiming and storing its
    source at the same moment as the others."""
    store = SQLStore(settings.storage.url, clock.now())
    source = next(s for s in settings.source_records() if s.id == f"s{w}")

    async def run() -> None:
        async with Fetcher(settings.fetch, clock) as fetcher:
            pipeline = Pipeline(settings, store, fetcher.fetch, clock, owner=f"w{w}", processes=1)
            [state] = [s for s in store.list_states() if s.source_id == source.id]
            start.wait()
            await pipeline.run_batch([(source, state)])
            pipeline.close()

    try:
        asyncio.run(run())
    finally:
        store.close()


@pytest.mark.parametrize("stories", [3, 24])  # 3: a lock per story key; 24: one lock for all
def test_workers_storing_the_same_stories_at_once_make_one_primary_each(
    db_url: str, origin: Origin, clock: FakeClock, stories: int
) -> None:
    """Several workers, each with its own store handle, storing sources that carry the same
    stories at the same moment end with exactly one primary per story, every other copy merged."""
    settings = settings_for(db_url, origin, clock, stories)
    store = SQLStore(db_url, clock.now())
    store.sync_sources(settings.source_records(), clock.now())
    start = threading.Barrier(WORKERS)
    threads = [threading.Thread(target=worker, args=(settings, clock, w, start)) for w in range(WORKERS)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    stored = store.list_entries(Selection(merge_duplicates=False, limit=10_000))
    store.close()
    assert len(stored) == WORKERS * stories
    primaries: dict[str, int] = {}
    for e in stored:
        if e.duplicate_of is None:
            primaries[e.title] = primaries.get(e.title, 0) + 1
    assert primaries == {f"Story {i}": 1 for i in range(stories)}
