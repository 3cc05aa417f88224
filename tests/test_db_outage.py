"""A database that goes away or hangs: cached feeds keep being served, nothing blocks the event
loop, readiness says so, errors log a line each, and everything comes back by itself.

PostgreSQL is reached through a TCP proxy on loopback (tests/dbproxy.py) that the tests cut (the
server refuses) or hang (connections accepted, never answered). The daemon's web side runs in a
real uvicorn server on its own thread, so a blocked event loop shows as a client timeout here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from aggregator.clock import FakeClock
from aggregator.config import loading as config
from aggregator.errors import StoreError, StoreUnavailable
from aggregator.fetch import Fetcher
from aggregator.http.app import create_app
from aggregator.http.routes import WebContext, routes
from aggregator.models import FetchStatus, Selection
from aggregator.pipeline.update import Pipeline
from aggregator.publish.feeds import FeedService
from aggregator.runtime.daemon import server_config
from aggregator.runtime.scheduler import Dispatcher
from aggregator.store import Store, open_store
from aggregator.store.guard import StoreGuard

from .dbproxy import DbProxy
from .feedworld import SOURCES, entry
from .harness import ATOM
from .origin import Origin, Reply
from .pg import pg_schema
from .test_serving import _Quiet

TIMEOUTS = """
[storage]
connect_timeout = "1s"
statement_timeout = "0.5s"
pool_timeout = "1s"
request_timeout = "0.5s"
"""
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Site:
    """A feed service over a store behind the proxy, served by uvicorn on its own thread."""

    proxy: DbProxy
    direct: Store  # the same database, not through the proxy (for the test's own writes)
    store: Store
    feeds: FeedService
    clock: FakeClock
    http: httpx.Client
    counter: int = 0

    def add(self, source_id: str) -> None:
        self.counter += 1
        self.clock.advance(60)
        sources = {s.id: s for s in self.feeds.settings.source_records()}
        made = [entry(source_id, f"k{self.counter}", self.clock.now(), sources[source_id].category)]
        state = self.direct.get_state(source_id)
        assert state is not None
        from aggregator.models import FetchOutcome

        self.direct.apply(
            state, made, [], FetchOutcome(source_id, FetchStatus.OK, added=1), self.clock.now()
        )

    def get(self, path: str, **headers: str) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        reply = self.http.get(path, headers=headers)
        return reply, time.monotonic() - started


@contextlib.contextmanager
def serve(feeds: FeedService) -> Iterator[str]:
    """The app, as the daemon serves it, on a thread of its own; its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(feeds)
    app.router.routes.extend(
        routes(
            WebContext(
                store=feeds.store,
                feeds=feeds,
                clock=feeds.clock,
                settings=lambda: feeds.settings,
                sources=feeds.sources,
            )
        )
    )
    server = _Quiet(server_config(app, feeds.settings.server))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def site() -> Iterator[Site]:
    with pg_schema() as url:
        proxy = DbProxy().start()
        settings = config.parse(SOURCES + TIMEOUTS)
        clock = FakeClock(T0)
        direct = open_store(url, clock.now(), settings.storage)
        direct.sync_sources(settings.source_records(), clock.now())
        store = open_store(proxy.url(url), clock.now(), settings.storage)
        sources = {s.id: s for s in settings.source_records()}
        feeds = FeedService(settings, store, lambda: sources, clock)  # asks the store every time
        try:
            with serve(feeds) as base, httpx.Client(base_url=base, timeout=5) as http:
                site = Site(proxy, direct, store, feeds, clock, http)
                site.add("hn")
                site.add("py")
                yield site
        finally:
            proxy.stop()
            store.close()
            direct.close()


def wait_until(predicate: object, timeout: float = 5.0) -> float:
    """Seconds until ``predicate()`` is true (fails after ``timeout``)."""
    started = time.monotonic()
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.mark.parametrize("outage", ["cut", "hang"])
def test_cached_feeds_are_served_through_an_outage_and_refresh_after(
    site: Site, outage: str
) -> None:
    """While the database refuses or hangs, rendered feeds are served with their ETag (and 304),
    others answer a quick 503 with Retry-After; afterwards feeds refresh by themselves."""
    before, _ = site.get("/feeds/all.json")
    atom, _ = site.get("/feeds/source/hn.atom")
    assert before.status_code == atom.status_code == 200
    getattr(site.proxy, outage)()

    for _ in range(3):
        again, took = site.get("/feeds/all.json")
        assert again.status_code == 200 and took < 1.5
        assert again.headers["etag"] == before.headers["etag"] and again.content == before.content
    same, _ = site.get("/feeds/source/hn.atom", **{"If-None-Match": atom.headers["etag"]})
    assert same.status_code == 304
    missing, took = site.get("/feeds/source/py.json")
    assert missing.status_code == 503 and took < 1.5
    assert int(missing.headers["retry-after"]) >= 1
    assert len(missing.text.splitlines()) <= 3

    site.proxy.restore()
    site.add("hn")
    wait_until(lambda: site.get("/feeds/all.json")[0].headers["etag"] != before.headers["etag"])
    assert site.get("/feeds/source/py.json")[0].status_code == 200


def test_a_hung_database_blocks_neither_healthz_nor_readyz(site: Site) -> None:
    """With the database hung, /healthz answers at once and /readyz says 503 within its timeout;
    once it answers again /readyz is 200 again."""
    assert site.get("/readyz")[0].status_code == 200
    site.proxy.hang()
    for _ in range(3):
        health, took = site.get("/healthz")
        assert health.status_code == 200 and took < 0.3
        ready, took = site.get("/readyz")
        assert ready.status_code == 503 and "store=down" in ready.text and took < 1.0
    site.proxy.restore()
    wait_until(lambda: site.get("/readyz")[0].status_code == 200)


def test_readyz_is_503_at_once_when_the_database_refuses(site: Site) -> None:
    """A database that refuses connections makes /readyz 503 quickly; /healthz stays 200."""
    site.proxy.cut()
    ready, took = site.get("/readyz")
    assert ready.status_code == 503 and took < 1.0
    assert site.get("/healthz")[0].status_code == 200


@pytest.mark.parametrize("outage", ["cut", "hang"])
def test_status_pages_answer_503_during_an_outage(site: Site, outage: str) -> None:
    """The status pages read the store off the event loop: during an outage they are a quick
    503 with Retry-After (and /healthz still answers), afterwards 200 again."""
    assert site.get("/")[0].status_code == site.get("/sources/hn")[0].status_code == 200
    getattr(site.proxy, outage)()
    for path in ("/", "/sources/hn", "/", "/opml"):
        page, took = site.get(path)
        assert page.status_code == 503 and "retry-after" in page.headers and took < 1.0, path
        assert site.get("/healthz")[1] < 0.3
    site.proxy.restore()
    wait_until(lambda: site.get("/")[0].status_code == 200)


def test_an_outage_logs_a_line_per_error_never_a_flood(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """50 requests during an outage log a handful of one-line db_error records and at most one
    traceback, not a traceback per request."""
    for path in ("/feeds/all.json", "/feeds/all.rss"):
        assert site.get(path)[0].status_code == 200
    site.proxy.cut()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        for i in range(50):
            path = ("/feeds/all.json", "/feeds/source/py.json", "/feeds/all.rss", "/readyz")[i % 4]
            assert site.get(path)[0].status_code in (200, 503)
    ours = [
        r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    ]  # the client's
    text_lines = sum(len(logging.Formatter().format(r).splitlines()) for r in ours)
    assert len([r for r in ours if r.exc_info]) <= 1
    assert len(ours) <= 10, [r.getMessage() for r in ours]
    assert text_lines <= 150
    assert any("event=db_error" in r.getMessage() for r in ours)


async def test_a_traceback_is_logged_once_per_error_per_five_minutes(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """Each failed store call logs one db_error line; the traceback of an error comes with the
    first one and again only five minutes later."""
    guard = StoreGuard(site.store.ping, 0.5, site.clock)
    site.proxy.cut()
    for _ in range(2):
        for _ in range(3):
            with pytest.raises(StoreUnavailable):
                await guard.wait("test", asyncio.to_thread(site.store.list_entries, Selection()))
        site.clock.advance(301)
    errors = [r for r in caplog.records if "event=db_error" in r.getMessage()]
    assert len(errors) == 6 and all(len(r.getMessage().splitlines()) == 1 for r in errors)
    assert [bool(r.exc_info) for r in errors] == [True, False, False, True, False, False]
    assert len([r for r in caplog.records if "event=db_down" in r.getMessage()]) == 1


def test_postgresql_sessions_carry_the_statement_timeout_and_pool_wait(site: Site) -> None:
    """[storage] statement_timeout reaches the server; a longer statement is cancelled by it."""
    with site.store.engine.connect() as conn:  # type: ignore[attr-defined]
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "500ms"
        with pytest.raises(Exception, match="statement timeout"):
            conn.execute(text("SELECT pg_sleep(2)"))
    assert site.store.engine.pool.timeout() == 1.0  # type: ignore[attr-defined]


def test_connecting_to_a_hung_postgresql_gives_up(site: Site) -> None:
    """Opening a store on a server that accepts and never answers fails after connect_timeout
    (psycopg waits at least 2 s), instead of hanging."""
    site.proxy.hang()
    started = time.monotonic()
    with pytest.raises(StoreError):
        open_store(
            site.proxy.url("postgresql://postgres@127.0.0.1:5432/test"),
            T0,
            site.feeds.settings.storage,
        )
    assert time.monotonic() - started < 4


def test_sqlite_waits_for_a_lock_no_longer_than_the_statement_timeout(tmp_path: Path) -> None:
    """On SQLite, statement_timeout bounds the wait for another process's write lock."""
    settings = config.parse(SOURCES + TIMEOUTS)
    url = f"sqlite:///{tmp_path / 'agg.db'}"
    store = open_store(url, T0, settings.storage)
    store.sync_sources(settings.source_records(), T0)
    other = sqlite3.connect(tmp_path / "agg.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock
    started = time.monotonic()
    with pytest.raises(Exception, match="locked"):
        store.fetch_now("hn", T0)
    assert time.monotonic() - started < 3
    other.execute("ROLLBACK")
    store.fetch_now("hn", T0)
    store.close()


async def test_a_dispatcher_tick_survives_an_outage_and_the_next_one_works(
    origin: Origin, caplog: pytest.LogCaptureFixture
) -> None:
    """A tick during a hang or a cut returns within the timeout with one log line (the event loop
    keeps running); the tick after the database is back fetches the due source."""
    origin.route("/feed", Reply(ATOM))
    extra = f'[[sources]]\nid = "one"\nurl = "{origin.url("/feed")}"\n'
    settings = config.parse(TIMEOUTS + "[fetch]\nallow_private_networks = true\n" + extra)
    clock = FakeClock(T0)
    with pg_schema() as url:
        proxy = DbProxy().start()
        store = open_store(proxy.url(url), clock.now(), settings.storage)
        store.sync_sources(settings.source_records(), clock.now())
        by_id = {s.id: s for s in settings.source_records()}
        try:
            async with Fetcher(settings.fetch, clock) as fetcher:
                pipeline = Pipeline(
                    settings, store, fetcher.fetch, clock, random.Random(1), processes=1
                )
                dispatcher = Dispatcher(
                    store,
                    pipeline,
                    lambda: by_id,
                    clock,
                    "t",
                    10,
                    600,
                    timeout=settings.storage.request_timeout,
                )
                for outage in (proxy.cut, proxy.hang):  # the hung claim lands after restore()
                    outage()
                    caplog.clear()
                    stop = asyncio.Event()
                    lag = asyncio.create_task(_worst_lag(stop))
                    started = time.monotonic()
                    assert await dispatcher.tick() == []
                    assert time.monotonic() - started < 2.0
                    stop.set()
                    assert await lag < 0.3
                    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
                    proxy.restore()
                outcomes = []
                for _ in range(20):  # the claim the hang held up lands, and a tick takes it
                    outcomes = await dispatcher.tick()
                    if outcomes:
                        break
                    await asyncio.sleep(0.1)
                assert [o.status for o in outcomes] == [FetchStatus.OK]
        finally:
            proxy.stop()
            store.close()


async def _worst_lag(stop: asyncio.Event) -> float:
    """The longest the event loop was late to wake a 20 ms sleep, until ``stop``."""
    worst = 0.0
    while not stop.is_set():
        started = time.monotonic()
        await asyncio.sleep(0.02)
        worst = max(worst, time.monotonic() - started - 0.02)
    return worst
