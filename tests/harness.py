"""A pipeline harness for tests: real Pipeline, Fetcher, Dispatcher and SQLite store, fake clock."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aggregator import config
from aggregator.clock import FakeClock
from aggregator.config import Settings
from aggregator.fetch import Fetcher
from aggregator.models import FetchStatus, Selection
from aggregator.pipeline import Pipeline
from aggregator.scheduler import Dispatcher
from aggregator.store import Store, open_store

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

ATOM = (CORPUS / "miniflux+v2/small_atom.xml").read_bytes()
HOUR = 3600.0


def make_settings(tmp: Path, sources: list[tuple[str, ...]], extra: str = "", tail: str = "") -> Settings:
    lines = [
        "[storage]", f'url = "sqlite:///{tmp / "agg.db"}"',
        "[fetch]", "allow_private_networks = true", "per_host_delay = 0", "max_retries = 1",
        "permanent_redirect_after = 2",
        "[schedule]", "jitter = 0", 'interval = "30m"', 'min_interval = "1m"', 'backoff_base = "1m"',
        'max_backoff = "24h"', extra,
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
        self.pipeline = Pipeline(settings, self.store, fetcher.fetch, clock, random.Random(1), processes=1)
        by_id = {s.id: s for s in settings.source_records()}
        self.dispatcher = Dispatcher(self.store, self.pipeline, lambda: by_id, clock, "t", 100, 600)

    async def tick(self) -> list[FetchStatus]:
        return [o.status for o in await self.dispatcher.tick()]

    def state(self, sid: str):  # type: ignore[no-untyped-def]
        state = self.store.get_state(sid)
        assert state is not None
        return state

    def entries(self, sid: str) -> int:
        return len(self.store.list_entries(Selection(source_ids=(sid,), merge_duplicates=False, limit=1000)))


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
