"""``sorted=false`` pages by arrival on both backends: the latest fetch first, one fetch's entries
in the source's document order, and next links that visit every entry once in that order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from aggregator.clock import FakeClock
from aggregator.config import loading as config
from aggregator.models import Selection
from aggregator.publish.feeds import FeedService
from aggregator.publish.query import decode_cursor, encode_cursor
from aggregator.store import open_store
from aggregator.store.engine import make_engine
from aggregator.store.schema import LATEST, MIGRATIONS, migrate

from .feedworld import BASE, SOURCES, World, entry
from .pg import pg_schema

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'agg.db'}"
    else:
        with pg_schema() as url:
            yield url


@pytest.fixture
def world(store_url: str) -> Iterator[World]:
    settings = config.parse(SOURCES)
    clock = FakeClock(T0)
    store = open_store(store_url, clock.now())
    store.sync_sources(settings.source_records(), clock.now())
    sources = {s.id: s for s in settings.source_records()}
    yield World(
        settings, store, clock, FeedService(settings, store, lambda: sources, clock), sources
    )
    store.close()


def fetch(world: World, source_id: str, dated: list[tuple[str, int]]) -> None:
    """One fetch a minute after the last, its items in document order, each published in a year."""
    world.clock.advance(60)
    now = world.clock.now()
    world.apply(
        source_id,
        [
            entry(source_id, title, now, published=datetime(year, 6, 1, tzinfo=UTC), title=title)
            for title, year in dated
        ],
    )


def walk(world: World, path: str) -> list[str]:
    """Follow JSON Feed ``next_url`` from ``path`` to the last page; the titles seen, in order."""
    client, seen, pages = world.client(), [], 0
    while path:
        reply = client.get(path)
        assert reply.status_code == 200, reply.text
        doc = reply.json()
        seen += [item["title"] for item in doc["items"]]
        path = (doc.get("next_url") or "").removeprefix(BASE)
        pages += 1
        assert pages < 20, "the next links loop"
    return seen


@pytest.fixture
def arrived(world: World) -> list[str]:
    """Three fetches whose arrival order differs from date order; the arrival order."""
    fetch(world, "py", [("A 2024", 2024), ("B 2020", 2020)])
    fetch(world, "py", [("C 2019", 2019), ("D 2025", 2025), ("E 2018", 2018)])
    fetch(world, "py", [("F 2021", 2021)])
    return ["F 2021", "C 2019", "D 2025", "E 2018", "A 2024", "B 2020"]


def test_unsorted_pages_follow_arrival_across_next_links(world: World, arrived: list[str]) -> None:
    """limit=2 with sorted=false: three pages, every entry once, latest fetch first and each
    fetch in the source's order, whatever the publication dates."""
    assert walk(world, "/feeds/source/py.json?sorted=false&limit=2") == arrived
    assert walk(world, "/feeds/all.json?sorted=false&limit=2") == arrived


def test_sorted_pages_still_follow_publication_dates(world: World, arrived: list[str]) -> None:
    """The default order pages by date, newest first, each entry once."""
    by_date = sorted(arrived, key=lambda t: t.split()[1], reverse=True)
    assert walk(world, "/feeds/source/py.json?limit=2") == by_date


def test_filtered_unsorted_pages_follow_arrival(world: World, arrived: list[str]) -> None:
    """A filter (tested in Python, read in batches) keeps arrival order across pages."""
    wanted = [t for t in arrived if t[0] in "FDEB"]
    assert walk(world, "/feeds/source/py.json?sorted=false&limit=1&filterout_title=^[AC]") == wanted


def test_a_date_cursor_is_refused_for_arrival_order(world: World, arrived: list[str]) -> None:
    """A next link of one order does not page the other: a 400 that says why."""
    doc = world.client().get("/feeds/source/py.json?limit=2").json()
    token = doc["next_url"].split("before=")[1]
    reply = world.client().get(f"/feeds/source/py.json?limit=2&sorted=false&before={token}")
    assert reply.status_code == 400 and "before" in reply.text


def test_an_upgraded_store_orders_old_entries_by_first_seen_then_id(store_url: str) -> None:
    """A store from before the arrival column: old entries arrive by first-seen time (one fetch's
    by id, the order they were stored), and a new fetch arrives after all of them."""
    engine = make_engine(store_url)
    with engine.begin() as conn:
        for step in MIGRATIONS[:9]:
            step(conn)
        conn.execute(text("DROP INDEX ix_entries_arrival"))
        conn.execute(text("ALTER TABLE entries DROP COLUMN arrival"))
        conn.execute(
            text("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
        )
        for version in range(1, 10):
            conn.execute(
                text(f"INSERT INTO schema_version VALUES ({version}, '2026-01-01 00:00:00')")
            )
        conn.execute(
            text(
                "INSERT INTO sources (id, kind, configured_url, url, enabled, gone, consecutive_failures,"
                " redirect_streak, fetch_count, not_modified_count) VALUES ('py', 'feed', 'u', 'u', true,"
                " false, 0, 0, 0, 0)"
            )
        )
        for title, seen, year in (("old 1", 1, 2025), ("old 2", 1, 2019), ("later", 2, 2018)):
            when = f"2026-01-0{seen} 00:00:00"
            conn.execute(
                text(
                    "INSERT INTO entries (source_id, key, title, categories, category_path, category_key,"
                    " enclosures, content_hash, published, first_seen, changed_at, sort_at) VALUES"
                    " ('py', :t, :t, '[]', '[]', '', '[]', 'h', :p, :s, :s, :p)"
                ),
                {"t": title, "p": f"{year}-06-01 00:00:00", "s": when},
            )
    assert migrate(engine, T0) == LATEST
    engine.dispose()
    settings = config.parse(SOURCES)
    clock = FakeClock(T0)
    store = open_store(store_url, clock.now())
    try:
        store.sync_sources(settings.source_records(), clock.now())
        sources = {s.id: s for s in settings.source_records()}
        world = World(
            settings, store, clock, FeedService(settings, store, lambda: sources, clock), sources
        )
        fetch(world, "py", [("new", 2017)])
        assert walk(world, "/feeds/source/py.json?sorted=false&limit=2") == [
            "new",
            "later",
            "old 1",
            "old 2",
        ]
    finally:
        store.close()


def test_arrival_survives_an_update_of_the_entry(world: World, arrived: list[str]) -> None:
    """An entry that changes later keeps its place in arrival order (it did not arrive again)."""
    [old] = [e for e in world.store.list_entries(Selection(limit=100)) if e.title == "B 2020"]
    world.clock.advance(60)
    world.apply(
        "py",
        [],
        [
            replace(
                old,
                content="<p>edited</p>",
                content_hash="edited",
                first_seen=None,
                changed_at=world.clock.now(),
            )
        ],
    )
    assert walk(world, "/feeds/source/py.json?sorted=false&limit=2") == arrived


def test_arrival_cursors_round_trip_and_differ_from_date_cursors() -> None:
    """An arrival cursor decodes to (arrival, id), a date cursor to (datetime, id)."""
    assert decode_cursor(encode_cursor(17, 42)) == (17, 42)
    assert decode_cursor(encode_cursor(-3, 5)) == (-3, 5)  # a backfilled arrival
    assert decode_cursor(encode_cursor(T0, 42)) == (T0, 42)
