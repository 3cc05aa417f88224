"""Scale-out guarantees decided in the database, on SQLite and on PostgreSQL: one primary per
story whichever workers store it at once, leases of dead processes given back at start, and a
reload that every worker applies marking a changed source due once."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from aggregator.clock import FakeClock
from aggregator.config import loading as config
from aggregator.fetch import Fetcher
from aggregator.models import Entry, FetchOutcome, FetchStatus, Selection, Source
from aggregator.pipeline.update import Pipeline
from aggregator.runtime import owners
from aggregator.runtime.reload import Reloader
from aggregator.store import SQLStore
from aggregator.store.schema import sources

from .conftest import CORPUS
from .origin import Origin, Reply, Request
from .pg import pg_schema
from .test_e2e import FEEDS, Daemon, free_port

WORKERS = 4
WORDS = [
    f"{a}{b}"
    for a in ("lo", "ra", "ki", "mu", "te", "sa", "no", "vi")
    for b in ("ban", "dor", "fel", "gim", "hup", "jex", "kol", "mir")
]


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
        link = (
            f"http://news.example/story/{i}" if i % 2 == 0 else f"http://site{worker}.example/{i}"
        )
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
        "[storage]",
        f'url = "{url}"',
        "[fetch]",
        "allow_private_networks = true",
        "per_host_delay = 0",
        "max_retries = 0",
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
    threads = [
        threading.Thread(target=worker, args=(settings, clock, w, start)) for w in range(WORKERS)
    ]
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


# --- leases of processes that are gone ----------------------------------------------------------


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_owner_id_names_host_pid_and_start_time_and_tells_gone_processes() -> None:
    """This process's owner id is host:pid:start time and is not gone; the same pid with another
    start time (a pid reused after a crash) and a pid that exited are gone; another host's
    owners are never judged."""
    me = owners.owner_id()
    host, pid, started = me.split(":")
    assert host == socket.gethostname() and int(pid) == os.getpid() and started.isdigit()
    assert not owners.is_gone(me)
    assert owners.is_gone(f"{host}:{pid}:{int(started) + 1}")
    assert owners.is_gone(f"{host}:{dead_pid()}:1")
    assert owners.is_gone(f"{host}:{dead_pid()}")  # an owner id from before start times
    assert not owners.is_gone(f"elsewhere.example:{dead_pid()}:1")
    assert not owners.is_gone("a test owner")


def test_a_starting_daemon_releases_the_leases_of_gone_processes(
    db_url: str, clock: FakeClock
) -> None:
    """On PostgreSQL a starting daemon gives back only the leases of its host's processes that
    are gone; on SQLite, where one daemon owns every lease, all of them. Released sources are
    claimed at once instead of after the lease."""
    store = SQLStore(db_url, clock.now())
    host = socket.gethostname()
    holders = {
        "crashed": f"{host}:{dead_pid()}:1",
        "reused": f"{host}:{os.getpid()}:1",
        "alive": owners.owner_id(),
        "remote": f"elsewhere.example:{dead_pid()}:1",
    }
    store.sync_sources(
        [Source(id=sid, url=f"http://origin.test/{sid}") for sid in holders], clock.now()
    )
    with store.engine.begin() as conn:  # each source leased to its holder for ten minutes
        for sid, owner in holders.items():
            conn.execute(
                update(sources)
                .where(sources.c.id == sid)
                .values(lease_owner=owner, lease_until=clock.now() + timedelta(minutes=10))
            )
    released = store.release_orphaned(owners.is_gone)
    again = {s.source_id for s in store.claim_due(clock.now(), 10, "next", 600)}
    store.close()
    expected = set(holders) if db_url.startswith("sqlite") else {"crashed", "reused"}
    assert again == expected and released == len(expected)


@pytest.mark.slow
def test_after_a_kill_9_the_restarted_daemon_fetches_the_held_sources_at_once(
    tmp_path: Path, origin: Origin
) -> None:
    """A daemon killed with SIGKILL while it fetches (holding the lease, 10 minutes by default)
    is restarted on the same SQLite store: the source is fetched again as soon as the new daemon
    runs (the wait allows for a loaded machine; the lease would hold it for ten minutes)."""
    release = threading.Event()
    body = (CORPUS / FEEDS["atom"][0]).read_bytes()

    def first_hangs(request: Request) -> Reply:
        if len(origin.hits("/held")) == 1:
            release.wait(30)  # the first fetch never finishes while its daemon lives
        return Reply(body, content_type="application/atom+xml")

    port = free_port()
    cfg = tmp_path / "aggregator.toml"
    cfg.write_text(
        "\n".join(
            [
                "[server]",
                'host = "127.0.0.1"',
                f"port = {port}",
                "[storage]",
                f'url = "sqlite:///{tmp_path / "agg.db"}"',
                "[fetch]",
                "allow_private_networks = true",
                "per_host_delay = 0",
                "max_retries = 0",
                'timeout = "60s"',
                "[schedule]",
                'dispatch_every = "0.2s"',
                "[[sources]]",
                'id = "held"',
                f'url = "{origin.route("/held", first_hangs)}"',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    first = Daemon(cfg, port)
    try:
        first.wait_for(lambda: origin.hits("/held"))
    finally:
        first.proc.kill()
        first.proc.wait(10)
        release.set()
    second = Daemon(cfg, port)
    try:
        second.wait_for(lambda: second.get("/feeds/all.json").json()["items"], timeout=60)
        assert len(origin.hits("/held")) == 2
    finally:
        assert second.stop() == 0


# --- reload across processes ----------------------------------------------------------------------


def write_config(path: Path, url: str, interval: str, category: str) -> None:
    path.write_text(
        "\n".join(
            [
                "[storage]",
                f'url = "{url}"',
                "[[sources]]",
                'id = "a"',
                'url = "http://origin.test/a"',
                f'interval = "{interval}"',
                f'category = "{category}"',
                "[[sources]]",
                'id = "b"',
                'url = "http://origin.test/b"',
                f'category = "{category}"',
            ]
        )
        + "\n",
        encoding="utf-8",
    )


def fetch_stored(store: SQLStore, clock: FakeClock, entries: Sequence[Entry] = ()) -> set[str]:
    """Claim what is due now and store a fetch of each (next fetch in an hour); the claimed ids."""
    claimed = store.claim_due(clock.now(), 10, "worker", 600)
    for state in claimed:
        mine = [e for e in entries if e.source_id == state.source_id]
        done = replace(
            state, last_fetch_at=clock.now(), next_fetch_at=clock.now() + timedelta(hours=1)
        )
        store.apply(
            done,
            mine,
            [],
            FetchOutcome(state.source_id, FetchStatus.OK, added=len(mine)),
            clock.now(),
            "worker",
        )
    return {s.source_id for s in claimed}


def test_a_source_edited_live_is_marked_due_once_across_processes(
    db_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    """Two processes reload the same edit of one source: the first marks it due and a worker
    fetches it; the second's reload of the same edit does not make it due again, and the
    source left alone is not due either."""
    path = tmp_path / "agg.toml"
    write_config(path, db_url, "1h", "News")
    running = config.load(path)
    stores = [SQLStore(db_url, clock.now()) for _ in range(2)]
    stores[0].sync_sources(running.source_records(), clock.now())
    assert fetch_stored(stores[0], clock) == {"a", "b"}
    reloaders = [Reloader(path, running, s, clock) for s in stores]
    clock.advance(60)
    write_config(path, db_url, "2h", "News")
    assert reloaders[0].reload("test")
    assert fetch_stored(stores[0], clock) == {"a"}
    assert reloaders[1].reload("test")
    assert fetch_stored(stores[1], clock) == set()
    [s.close() for s in stores]


def test_the_first_sync_after_the_upgrade_marks_nothing_due(db_url: str, clock: FakeClock) -> None:
    """Rows synced before the configured-source digest existed get it on the next sync without
    becoming due: an upgrade does not refetch every source at once."""
    store = SQLStore(db_url, clock.now())
    configured = [Source(id="a", url="http://origin.test/a", category=("News",))]
    store.sync_sources(configured, clock.now())
    assert fetch_stored(store, clock) == {"a"}
    with store.engine.begin() as conn:
        conn.execute(update(sources).values(config_digest=None, category_path=None))
    store.sync_sources(configured, clock.now())
    assert fetch_stored(store, clock) == set()
    store.sync_sources([replace(configured[0], interval=60.0)], clock.now())
    assert fetch_stored(store, clock) == {"a"}
    store.close()


def test_a_category_change_refiles_the_sources_stored_entries(
    db_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    """When a reload moves a source to another category, its stored entries move with it: the
    new category's feed has them, the old one's has none, and another source's stay put."""
    path = tmp_path / "agg.toml"
    write_config(path, db_url, "1h", "News / Old")
    running = config.load(path)
    store = SQLStore(db_url, clock.now())
    store.sync_sources(running.source_records(), clock.now())
    stored = [
        Entry(
            source_id=sid,
            key=f"{sid}{i}",
            title=f"{sid} {i}",
            link=None,
            content="c",
            summary=None,
            author=None,
            published=clock.now(),
            updated=None,
            category_path=("News", "Old"),
            content_hash=f"{sid}{i}",
        )
        for sid in ("a", "b")
        for i in range(3)
    ]
    fetch_stored(store, clock, stored)
    before = store.last_change(Selection(category_prefix=("News", "New")))
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[lines.index('category = "News / Old"')] = 'category = "News / New"'  # source a's
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert Reloader(path, running, store, clock).reload("test")

    def titles(*category: str) -> list[str]:
        sel = Selection(category_prefix=category, limit=100)
        return sorted(e.title for e in store.list_entries(sel))

    assert titles("News", "New") == ["a 0", "a 1", "a 2"]
    assert titles("News", "Old") == ["b 0", "b 1", "b 2"]
    assert store.last_change(Selection(category_prefix=("News", "New"))) != before
    store.close()
