"""A pipeline harness for tests: real Pipeline, Fetcher, Dispatcher and SQLite store, fake clock."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aggregator.clock import FakeClock
from aggregator.config import loading as config
from aggregator.config.settings import Settings
from aggregator.fetch import Fetcher
from aggregator.models import FetchStatus, Selection
from aggregator.pipeline.update import Pipeline
from aggregator.runtime.scheduler import Dispatcher
from aggregator.store import Store, open_store


def atom_feed(count: int = 20) -> bytes:
    """A small Atom feed of ``count`` entries, written here (a plain clone has no ../shared)."""
    entries = "".join(
        f"<entry><id>tag:example.com,2024:commit/{i}</id>"
        f'<link rel="alternate" type="text/html" href="https://example.com/commit/{i}"/>'
        f"<title>Commit number {i}</title><updated>2024-03-{1 + i % 28:02}T05:30:27Z</updated>"
        f"<author><name>dev{i % 3}</name></author>"
        f'<content type="html">&lt;p&gt;Change {i}: what it does and why.&lt;/p&gt;</content></entry>'
        for i in range(count)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<id>tag:example.com,2024:commits</id><title>Recent commits</title>"
        '<link rel="alternate" type="text/html" href="https://example.com/commits"/>'
        f"<updated>2024-03-12T05:30:27Z</updated>{entries}</feed>"
    ).encode()


ATOM = atom_feed()
HOUR = 3600.0


def make_settings(
    tmp: Path, sources: list[tuple[str, ...]], extra: str = "", tail: str = ""
) -> Settings:
    lines = [
        "[storage]",
        f'url = "sqlite:///{tmp / "agg.db"}"',
        "[fetch]",
        "allow_private_networks = true",
        "per_host_delay = 0",
        "max_retries = 1",
        "permanent_redirect_after = 2",
        "[schedule]",
        "jitter = 0",
        'interval = "30m"',
        'min_interval = "1m"',
        'backoff_base = "1m"',
        'max_backoff = "24h"',
        extra,
    ]
    for sid, url, *category in sources:
        lines += ["[[sources]]", f'id = "{sid}"', f'url = "{url}"']
        lines += [f'category = "{category[0]}"'] if category else []
    return config.parse("\n".join(lines) + "\n" + tail)


class Harness:
    def __init__(self, settings: Settings, clock: FakeClock, fetcher: Fetcher) -> None:
        self.settings = settings
        self.clock = clock
        self.store: Store = open_store(settings.storage.url, clock.now())
        self.store.sync_sources(settings.source_records(), clock.now())
        self.pipeline = Pipeline(
            settings, self.store, fetcher.fetch, clock, random.Random(1), processes=1
        )
        by_id = {s.id: s for s in settings.source_records()}
        self.dispatcher = Dispatcher(self.store, self.pipeline, lambda: by_id, clock, "t", 100, 600)

    async def tick(self) -> list[FetchStatus]:
        return [o.status for o in await self.dispatcher.tick()]

    def state(self, sid: str):  # type: ignore[no-untyped-def]
        state = self.store.get_state(sid)
        assert state is not None
        return state

    def entries(self, sid: str) -> int:
        return len(
            self.store.list_entries(
                Selection(source_ids=(sid,), merge_duplicates=False, limit=1000)
            )
        )


@pytest.fixture
async def harness_factory(tmp_path: Path, clock: FakeClock) -> AsyncIterator:  # type: ignore[type-arg]
    fetchers: list[Fetcher] = []

    async def make(sources: list[tuple[str, ...]], extra: str = "", tail: str = "") -> Harness:
        settings = make_settings(tmp_path, sources, extra, tail)
        fetcher = Fetcher(settings.fetch, clock, rng=random.Random(2))
        fetchers.append(fetcher)
        return Harness(settings, clock, fetcher)

    yield make
    for f in fetchers:
        await f.aclose()
