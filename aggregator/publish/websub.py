"""WebSub publisher: tell the configured hub when a published feed changes.

Owns: the publish ping (``POST hub`` with ``hub.mode=publish`` and ``hub.url=<feed URL>``, one per
feed URL, sent through the fetcher, so retried like a fetch: exponential backoff with jitter on
network errors, timeouts, 5xx, 408 and 429); and deciding which
feeds changed after a dispatcher tick: the feeds that can contain a source with new or updated
entries are rendered (through the cache, so readers get them warm) and pinged when their bytes
differ from the last ping's. The feeds themselves advertise the hub (``rel="hub"`` and
``rel="self"``, written by render.py from ``FeedMeta.hub``). Does not own: rendering, which feeds
exist (catalog.py) or when ticks happen (runtime/scheduler.py).

The URLs pinged are each feed's plain URLs (every format, no query): the topics readers find in
``rel="self"`` when they subscribe.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..clock import Clock
from ..config.settings import FetchSettings
from ..fetch import Fetcher
from ..models import FetchOutcome
from .feeds import FeedService

log = logging.getLogger("aggregator.websub")

OutcomeHook = Callable[[list[FetchOutcome]], None]


@dataclass(frozen=True)
class Ping:
    topic: str
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None


class HubClient:
    """Sends publish pings to one hub through a fetcher of its own (the hub's retries and
    timeout are not the feeds', and the hub is the operator's: it may be on a private network)."""

    def __init__(
        self,
        hub: str,
        clock: Clock,
        attempts: int = 4,
        base_delay: float = 2.0,
        max_delay: float = 60.0,
        concurrency: int = 4,
        user_agent: str = "aggregator (WebSub publisher)",
        rng: random.Random | None = None,
    ) -> None:
        self.hub = hub
        settings = FetchSettings(
            user_agent=user_agent,
            timeout=15.0,
            max_retries=max(1, attempts) - 1,
            retry_base_delay=base_delay,
            retry_max_delay=max_delay,
            concurrency=concurrency,
            per_host_concurrency=concurrency,
            per_host_delay=0.0,
            allow_private_networks=True,
        )
        self.fetcher = Fetcher(settings, clock, rng=rng)

    async def aclose(self) -> None:
        await self.fetcher.aclose()

    async def publish(self, topics: Iterable[str]) -> list[Ping]:
        """Ping the hub for each topic (concurrently, a few at a time)."""
        return list(await asyncio.gather(*(self.ping(t) for t in dict.fromkeys(topics))))

    async def ping(self, topic: str) -> Ping:
        """One topic, retried while the failure may pass; the result says how it ended."""
        posted = await self.fetcher.post(self.hub, {"hub.mode": "publish", "hub.url": topic})
        ok = posted.status is not None and 200 <= posted.status < 300
        error = None if ok else (f"hub answered {posted.status}" if posted.status else posted.error)
        result = Ping(topic, ok, posted.attempts, posted.status, error)
        _log_ping(result)
        return result


def _log_ping(p: Ping) -> None:
    if p.ok:
        log.info("event=websub_ping topic=%s attempts=%d", p.topic, p.attempts)
    else:
        log.warning(
            "event=websub_ping_failed topic=%s attempts=%d error=%r", p.topic, p.attempts, p.error
        )


class WebSubPublisher:
    """After each dispatcher tick, pings the hub for the feeds whose documents changed."""

    def __init__(self, feeds: FeedService, hub: HubClient) -> None:
        self.feeds = feeds
        self.hub = hub
        self._pinged: dict[str, str] = {}  # feed id -> ETag of the document last announced
        self._tasks: set[asyncio.Task[list[Ping]]] = set()

    @classmethod
    def configured(cls, feeds: FeedService, clock: Clock) -> WebSubPublisher | None:
        """A publisher for the configured hub, or None when ``publish.hub`` is not set."""
        hub = feeds.settings.publish.hub
        if not hub:
            return None
        return cls(feeds, HubClient(hub, clock, user_agent=feeds.settings.fetch.user_agent))

    async def prime(self) -> None:
        """Remember every feed's current document, so the first tick after a start pings only
        what it changed (call before the scheduler starts; unknown feeds are pinged)."""
        for spec in self.feeds.every():
            self._pinged[spec.id] = (await self.feeds.serve(spec, spec.formats[0])).etag

    def hook(self, existing: OutcomeHook | None = None) -> OutcomeHook:
        """A Dispatcher ``on_outcomes`` callback that calls ``existing`` (say, metrics) first."""

        def both(outcomes: list[FetchOutcome]) -> None:
            if existing is not None:
                existing(outcomes)
            self.on_outcomes(outcomes)

        return both

    def on_outcomes(self, outcomes: list[FetchOutcome]) -> None:
        """The Dispatcher's ``on_outcomes`` hook: announce changes without holding up the tick."""
        if not any(o.added or o.updated for o in outcomes):
            return
        task = asyncio.get_running_loop().create_task(self.announce(outcomes))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def announce(self, outcomes: Sequence[FetchOutcome]) -> list[Ping]:
        """Ping the hub for every feed that a changed source feeds and whose bytes changed since
        the last successful announcement (a failed one is tried again after the next change)."""
        changed = {o.source_id for o in outcomes if o.added or o.updated}
        base = self.feeds.settings.server.public_base
        due: dict[str, tuple[str, list[str]]] = {}  # feed id -> (ETag, its URLs)
        for spec in self.feeds.every():
            if spec.source_ids is not None and not spec.source_ids & changed:
                continue
            etag = (await self.feeds.serve(spec, spec.formats[0])).etag
            if self._pinged.get(spec.id) != etag:
                due[spec.id] = (etag, [spec.url(base, fmt) for fmt in spec.formats])
        if not due:
            return []
        pings = await self.hub.publish(url for _, urls in due.values() for url in urls)
        failed = {p.topic for p in pings if not p.ok}
        for feed_id, (etag, urls) in due.items():
            if not failed.intersection(urls):
                self._pinged[feed_id] = etag
        return pings

    async def aclose(self) -> None:
        """Let pings in flight finish (briefly), then close the HTTP client."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)
        await self.hub.aclose()
