"""RSSHub-compatible query parameters, RE2 patterns and RFC 5005 pagination over HTTP."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from aggregator.errors import QueryError
from aggregator.models import Entry, Selection
from aggregator.publish.pages import collect
from aggregator.publish.query import (
    FeedQuery,
    decode_cursor,
    encode_cursor,
    parse_query,
    position,
)

from .feedworld import BASE, World, entry, make_world

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = make_world(tmp_path)
    w.add("hn", 1, title="Rust 1.80 released", author="Alice", categories=("programming",))
    w.add("hn", 1, title="Show HN: a tiny database", summary="<b>Built</b> in Rust &amp; C")
    w.add("py", 1, title="Python 3.13", author="Bob", categories=("release",))
    w.add("ruan", 1, title="科技爱好者周刊", author="阮一峰")
    w.add("hn", 1, title="Ask HN: sponsored posts?", author="carol")
    return w


def titles(world: World, url: str) -> list[str]:
    reply = world.client().get(url)
    assert reply.status_code == 200, reply.text
    return [item["title"] for item in reply.json()["items"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("filter=Rust", ["Show HN: a tiny database", "Rust 1.80 released"]),  # title or description
        ("filter_title=Rust", ["Rust 1.80 released"]),
        ("filter_description=Built%20in", ["Show HN: a tiny database"]),
        ("filter_author=^(Alice|Bob)$", ["Python 3.13", "Rust 1.80 released"]),
        ("filter_category=release", ["Python 3.13"]),
        ("filter_category=%E7%A7%91%E6%8A%80", ["科技爱好者周刊"]),  # a category path part
        (
            "filter_category=^Tech/News$",
            ["Ask HN: sponsored posts?", "Show HN: a tiny database", "Rust 1.80 released"],
        ),  # the joined path
        ("filterout=HN", ["科技爱好者周刊", "Python 3.13", "Rust 1.80 released"]),
        (
            "filterout_author=carol|Alice",
            ["科技爱好者周刊", "Python 3.13", "Show HN: a tiny database"],
        ),
        (
            "filter=hn&filter_case_sensitive=false&filterout_title=sponsored",
            ["Show HN: a tiny database"],
        ),
        ("filter=rust", []),  # case sensitive by default
        ("filter_title=HN&filter_author=carol", ["Ask HN: sponsored posts?"]),  # every keep holds
        ("limit=2", ["Ask HN: sponsored posts?", "科技爱好者周刊"]),
    ],
)
def test_filter_parameters_select_like_rsshub(
    world: World, query: str, expected: list[str]
) -> None:
    """filter / filterout and their field variants, case sensitivity and limit."""
    assert titles(world, f"/feeds/all.json?{query}") == expected


def test_filter_time_keeps_recent_entries(world: World) -> None:
    """filter_time=N keeps entries published in the last N seconds of the clock."""
    world.clock.advance(90)  # the newest entry is now 90 s old, the others 150 s and more
    assert titles(world, "/feeds/all.json?filter_time=100") == ["Ask HN: sponsored posts?"]
    assert len(titles(world, "/feeds/all.json?filter_time=100000")) == 5
    world.clock.advance(3600)
    assert titles(world, "/feeds/all.json?filter_time=100") == []  # the view moves with time


def test_sorted_false_keeps_the_stores_order(world: World) -> None:
    """Pages are sorted by publication date by default; sorted=false keeps the store's order."""
    world.add("py", 1, title="Future-dated", published=world.clock.now().replace(year=2027))
    world.add("py", 1, title="Arrived last")
    # The store places an entry at its publication time, or when it was first seen if that is
    # earlier: the future-dated entry sits where it arrived, before "Arrived last".
    assert titles(world, "/feeds/source/py.json?sorted=false") == [
        "Arrived last",
        "Future-dated",
        "Python 3.13",
    ]
    assert titles(world, "/feeds/source/py.json") == ["Future-dated", "Arrived last", "Python 3.13"]


def test_limit_is_capped_at_max_limit(world: World) -> None:
    """A limit above publish.max_limit is served as max_limit."""
    world.add("hn", 30)
    assert len(titles(world, "/feeds/all.json?limit=1000")) == world.settings.publish.max_limit


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("filter=(a", "filter"),
        ("filter_title=(a)\\1", "filter_title"),  # backreferences are not RE2
        ("filterout=(?=x)", "filterout"),  # nor lookaheads
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("filter_time=-5", "filter_time"),
        ("filter_case_sensitive=maybe", "filter_case_sensitive"),
        ("sorted=perhaps", "sorted"),
        ("before=not-a-cursor", "before"),
        ("filter=" + "a" * 2000, "filter"),
    ],
)
def test_malformed_parameters_are_400_with_a_message(world: World, query: str, named: str) -> None:
    """A bad pattern, number, flag or cursor is a 400 naming the parameter."""
    reply = world.client().get(f"/feeds/all.rss?{query}")
    assert reply.status_code == 400
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.text.startswith(f"400 Bad Request: {named}:")


def test_hostile_patterns_run_in_linear_time() -> None:
    """A pattern that backtracks exponentially in Python's re finishes at once under RE2."""
    query = parse_query([("filter_title", "^(a+)+$")], 500)
    from tests.feedworld import entry

    victim = entry("hn", "x", datetime(2026, 1, 1, tzinfo=UTC), title="a" * 50_000 + "!")
    started = time.perf_counter()
    assert not query.admits(victim, datetime(2026, 1, 2, tzinfo=UTC))
    assert time.perf_counter() - started < 1.0


def test_equal_queries_share_a_canonical_form() -> None:
    """Parameter order, unknown names and defaults do not change the canonical query."""
    a = parse_query([("filter", "x"), ("limit", "5"), ("utm_source", "y"), ("sorted", "true")], 50)
    b = parse_query([("limit", "5"), ("filter", "x")], 50)
    assert a == b and a.canonical() == b.canonical() == "limit=5&filter=x"
    assert parse_query([("filter", "a&b=c")], 50).canonical() == "filter=a%26b%3Dc"


def test_cursors_are_opaque_and_round_trip() -> None:
    """A cursor encodes (sort_at, id) as URL-safe text and decodes to the same place."""
    when = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    token = encode_cursor(when, 42)
    assert token.isascii() and "=" not in token and "2026" not in token
    assert decode_cursor(token) == (when, 42)
    with pytest.raises(QueryError):
        decode_cursor(token[:-2] + "zz")


def next_link(xml: bytes) -> str | None:
    links = etree.fromstring(xml).findall(f"{ATOM}link[@rel='next']")
    return links[0].get("href") if links else None


def walk(world: World, url: str) -> list[str]:
    """Follow rel=next from ``url`` to the last page; return the entry titles seen."""
    seen: list[str] = []
    client = world.client()
    while url:
        reply = client.get(url.removeprefix(BASE))
        assert reply.status_code == 200, reply.text
        seen += [e.title for e in feedparser.parse(reply.content).entries]
        url = next_link(reply.content) or ""
    return seen


def test_next_links_walk_the_whole_history_once(world: World) -> None:
    """Following rel=next from the first page visits every entry once, newest first (unsorted:
    latest fetch first)."""
    world.add("hn", 12)
    stored = [e.title for e in world.store.list_entries(Selection(limit=1000))]
    assert len(stored) == 17
    assert walk(world, "/feeds/all.atom") == stored  # 5 per page: four pages
    arrived = [e.title for e in world.store.list_entries(Selection(limit=1000, by_arrival=True))]
    assert sorted(arrived) == sorted(stored) and arrived != stored
    assert walk(world, "/feeds/all.atom?limit=7&sorted=false") == arrived  # by arrival


def test_pages_stay_put_while_new_entries_arrive(world: World) -> None:
    """A cursor names a place in the history: new entries at the top do not shift later pages."""
    world.add("hn", 6)
    client = world.client()
    first = client.get("/feeds/all.atom").content
    second_url = next_link(first)
    assert second_url and "before=" in second_url
    before = client.get(second_url.removeprefix(BASE)).content
    world.add("hn", 3)
    after = client.get(second_url.removeprefix(BASE)).content
    assert [e.title for e in feedparser.parse(after).entries] == [
        e.title for e in feedparser.parse(before).entries
    ]


def test_filtered_pages_keep_the_filter_in_next_links(world: World) -> None:
    """The next link of a filtered feed carries the filter, and the walk sees only matches."""
    world.add("hn", 8, title="Rust weekly")
    seen = walk(world, "/feeds/all.atom?filter_title=Rust&limit=3")
    assert seen == ["Rust weekly"] * 8 + ["Rust 1.80 released"]
    first = world.client().get("/feeds/all.rss?filter_title=Rust&limit=3").content
    assert b"filter_title=Rust" in first and b'rel="next"' in first


def test_the_last_page_has_no_next_link(world: World) -> None:
    """A feed that fits one page, and the last page of a long one, link nowhere further."""
    assert next_link(world.client().get("/feeds/source/py.atom").content) is None
    assert next_link(world.client().get("/feeds/all.atom?limit=5").content) is None  # exactly 5


def test_a_rare_filter_reads_a_bounded_slice_and_continues_later(world: World) -> None:
    """With a scan bound, a page stops early and its cursor resumes where the reading stopped."""
    world.add("hn", 20)
    sel = Selection(limit=5)
    rows = world.store.list_entries(replace(sel, limit=1000))
    target = rows[-1].title  # the oldest entry only

    def wanted(e: Entry) -> bool:
        return e.title == target

    page = collect(world.store.list_entries, sel, 5, None, wanted, scan=10)
    assert page.entries == () and page.next_before == position(rows[9])
    found: list[str] = []
    cursor = page.next_before
    while cursor:
        page = collect(world.store.list_entries, sel, 5, cursor, wanted, scan=10)
        found += [e.title for e in page.entries]
        cursor = page.next_before
    assert found == [target]


def test_feed_query_constructed_directly_compiles_its_patterns() -> None:
    """A FeedQuery built in code filters like one parsed from a URL."""
    from tests.feedworld import entry

    query = FeedQuery(keep=(("filter_title", "^keep"),))
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert query.admits(entry("hn", "a", now, title="keep me"), now)
    assert not query.admits(entry("hn", "b", now, title="drop me"), now)


def test_sorted_false_is_arrival_order_and_source_order_within_a_fetch(world: World) -> None:
    """sorted=false: the latest fetch first, whatever the publication dates, and one fetch's
    entries in the order the source listed them."""
    old = datetime(2020, 1, 1, tzinfo=UTC)
    now = world.clock.now()
    world.apply(
        "py", [entry("py", "a", now, published=old.replace(year=2021), title="fetch 1: 2021")]
    )
    world.clock.advance(60)
    now = world.clock.now()
    world.apply(
        "py",
        [
            entry("py", "b", now, published=old.replace(year=2019), title="fetch 2, first: 2019"),
            entry("py", "c", now, published=old.replace(year=2022), title="fetch 2, second: 2022"),
        ],
    )
    assert titles(world, "/feeds/source/py.json?sorted=false") == [
        "fetch 2, first: 2019",
        "fetch 2, second: 2022",
        "fetch 1: 2021",
        "Python 3.13",
    ]
    assert titles(world, "/feeds/source/py.json") == [
        "Python 3.13",
        "fetch 2, second: 2022",
        "fetch 1: 2021",
        "fetch 2, first: 2019",
    ]


def test_filter_time_judges_undated_entries_by_first_seen(world: World) -> None:
    """filter_time keeps an undated entry first seen within the window and drops an older one."""
    world.add("py", 1, title="undated, seen early", published=None)
    world.clock.advance(3600)
    world.add("py", 1, title="undated, seen now", published=None)
    assert titles(world, "/feeds/source/py.json?filter_time=600") == ["undated, seen now"]
