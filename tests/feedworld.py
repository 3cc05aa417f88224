"""A small published world for feed tests: a config, a real SQLite store, entries put in through
``store.apply`` (as the pipeline does), a FeedService and the Starlette app over them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from aggregator.clock import FakeClock
from aggregator.config import loading as config
from aggregator.http.app import create_app
from aggregator.models import Entry, FetchOutcome, FetchStatus, Source
from aggregator.publish.feeds import FeedService
from aggregator.store import Store, open_store

BASE = "https://feeds.example.org"

SOURCES = """
[server]
base_url = "https://feeds.example.org"

[publish]
title = "Test aggregator"
default_limit = 5
max_limit = 20

[[sources]]
id = "hn"
url = "https://news.example.com/rss"
title = "Hacker News"
category = "Tech / News"
interval = "10m"

[[sources]]
id = "py"
url = "https://blog.example.com/python.atom"
title = "Python blog"
category = "Tech / Python"
interval = "6h"

[[sources]]
id = "ruan"
url = "https://www.ruanyifeng.com/blog/atom.xml"
title = "阮一峰的网络日志"
category = "科技 / 博客"
interval = "2h"
"""


@dataclass
class World:
    settings: config.Settings
    store: Store
    clock: FakeClock
    feeds: FeedService
    sources: dict[str, Source] = field(default_factory=dict)
    counter: int = 0

    def client(self) -> TestClient:
        return TestClient(create_app(self.feeds))

    def add(self, source_id: str, count: int = 1, **fields: Any) -> list[Entry]:
        """Store ``count`` new entries of a source, one minute apart, newest last."""
        made = []
        for _ in range(count):
            self.counter += 1
            self.clock.advance(60)
            made.append(
                entry(
                    source_id,
                    f"k{self.counter}",
                    self.clock.now(),
                    self.sources[source_id].category,
                    **fields,
                )
            )
        self.apply(source_id, made)
        return made

    def apply(self, source_id: str, new: list[Entry], changed: list[Entry] | None = None) -> None:
        state = self.store.get_state(source_id)
        assert state is not None
        outcome = FetchOutcome(
            source_id, FetchStatus.OK, added=len(new), updated=len(changed or [])
        )
        self.store.apply(state, new, changed or [], outcome, self.clock.now())


def entry(
    source_id: str, key: str, when: datetime, path: tuple[str, ...] = (), **fields: Any
) -> Entry:
    values: dict[str, Any] = {
        "source_id": source_id,
        "key": key,
        "title": f"Title {key}",
        "link": f"https://example.com/{source_id}/{key}",
        "content": f"<p>Content of {key}</p>",
        "summary": f"Summary of {key}",
        "author": "Ann Author",
        "published": when,
        "updated": None,
        "categories": ("general",),
        "category_path": path,
        "content_hash": f"hash-{key}",
        "first_seen": when,
    }
    values.update(fields)
    return Entry(**values)


def make_world(
    tmp_path: Path, extra: str = "", clock: FakeClock | None = None, sources: str = SOURCES
) -> World:
    settings = config.parse(sources + extra)
    clock = clock or FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    store = open_store(f"sqlite:///{tmp_path / 'agg.db'}", clock.now())
    store.sync_sources(settings.source_records(), clock.now())
    sources = {s.id: s for s in settings.source_records()}
    feeds = FeedService(settings, store, lambda: sources, clock)
    return World(settings, store, clock, feeds, sources)
