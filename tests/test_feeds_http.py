"""Feeds over HTTP: URLs, content types, gzip, validators, 304s, caching, single flight, 404s."""

from __future__ import annotations

import asyncio
import gzip
import re
from email.utils import format_datetime
from pathlib import Path

import feedparser
import pytest

from aggregator.publish.catalog import FeedSpec

from .feedworld import BASE, World, make_world

OPERATOR = """
[[feeds]]
id = "tech"
title = "Tech digest"
description = "Technology, without the noise"
categories = ["Tech"]
exclude_query = "sponsored"
limit = 3
formats = ["atom", "rss"]

[[feeds]]
id = "picked"
sources = ["hn", "ruan"]
exclude_sources = ["ruan"]
query = "rust"
"""
TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
PLAIN = {"Accept-Encoding": "identity"}


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = make_world(tmp_path, OPERATOR)
    w.add("hn", 4)
    w.add("py", 2)
    w.add("ruan", 2)
    return w


def urls(world: World) -> list[str]:
    """The path of every published document: every feed in every one of its formats."""
    return [spec.path + "." + fmt for spec in world.feeds.every() for fmt in spec.formats]


def test_every_feed_has_its_content_type_with_charset(world: World) -> None:
    """rss, atom and json documents carry their media type with charset=utf-8."""
    client = world.client()
    for path in urls(world):
        reply = client.get(path, headers=PLAIN)
        assert reply.status_code == 200, path
        assert reply.headers["content-type"] == TYPES[path.rsplit(".", 1)[1]]


def test_url_space_serves_builtin_and_operator_feeds(world: World) -> None:
    """all, source, category (UTF-8 path) and operator feeds resolve to the documents they name."""
    client = world.client()
    cases = {
        "/feeds/all.json": 5,  # default_limit
        "/feeds/source/py.json": 2,
        "/feeds/category/%E7%A7%91%E6%8A%80/%E5%8D%9A%E5%AE%A2.json": 2,
        "/feeds/category/Tech.json": 5,
    }
    for path, count in cases.items():
        doc = client.get(path).json()
        assert len(doc["items"]) == count, path
        assert doc["feed_url"] == BASE + path
    parsed = feedparser.parse(client.get("/feeds/tech.atom").content)
    assert parsed.feed.title == "Tech digest"
    assert len(parsed.entries) == 3  # the feed's own limit


def test_operator_feed_selection_rules(world: World) -> None:
    """Operator feeds: categories, exclusions by text and source, the SQL text query."""
    world.add("hn", 1, title="Sponsored: buy this")
    world.add("py", 1, title="Rust for Pythonistas")
    world.add("hn", 1, title="Rust 2.0 released")
    world.add("ruan", 1, title="Rust 中文")
    tech = feedparser.parse(world.client().get("/feeds/tech.rss").content)
    assert [e.title for e in tech.entries] == [
        "Rust 2.0 released",
        "Rust for Pythonistas",
        "Title k6",
    ]
    picked = world.client().get("/feeds/picked.json").json()
    assert [i["title"] for i in picked["items"]] == ["Rust 2.0 released"]


def test_formats_an_operator_feed_does_not_offer_are_404(world: World) -> None:
    """A format left out of a feed's formats is not served."""
    reply = world.client().get("/feeds/tech.json")
    assert reply.status_code == 404
    assert "atom, rss" in reply.text


NOT_FEEDS = [
    "/feeds/source/nope.rss",
    "/feeds/category/Nope.rss",
    "/feeds/nope.atom",
    "/feeds/source.rss",
    "/feeds/category.rss",
    "/feeds/all.xml",
    "/feeds/all",
    "/feeds/",
    "/feeds/source/hn/extra.rss",
    "/feeds/source/..%2F..%2Fetc%2Fpasswd.rss",
    "/feeds/category/..%2F..%2F..%2Fetc%2Fpasswd.rss",
    "/feeds/%2e%2e/%2e%2e/etc/passwd.rss",
    "/feeds/..%2f..%2fconfig%2faggregator.toml",
    "/feeds/source/%2e%2e.rss",
    "/feeds/category/%00.rss",
]


def test_unknown_feeds_and_paths_outside_the_feed_space_are_404(world: World) -> None:
    """Unknown feeds, sources, categories, formats and traversal attempts get a short 404."""
    client = world.client()
    for path in NOT_FEEDS:
        reply = client.get(path)
        assert reply.status_code == 404, path
        assert reply.headers["content-type"] == "text/plain; charset=utf-8"
        assert reply.text.startswith("404 Not Found"), path
        assert len(reply.text) < 400 and "root:" not in reply.text and "[server]" not in reply.text


def test_gzip_for_readers_that_accept_it(world: World) -> None:
    """gzip when accepted, with its own strong ETag; identity otherwise; both the same document."""
    client = world.client()
    packed = client.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip"})
    plain = client.get("/feeds/all.atom", headers=PLAIN)
    refused = client.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip;q=0, br"})
    assert packed.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers and "content-encoding" not in refused.headers
    assert packed.content == plain.content  # the client decompressed it
    assert packed.headers["etag"] != plain.headers["etag"]
    for reply in (packed, plain):
        assert re.fullmatch(r'"[0-9a-f]{32}"', reply.headers["etag"])  # strong: no W/
        assert reply.headers["vary"] == "Accept-Encoding"


def test_etag_is_over_the_content_not_the_build(world: World, tmp_path: Path) -> None:
    """A fresh service (empty cache, later clock) renders the same bytes with the same ETag."""
    first = world.client().get("/feeds/all.rss", headers=PLAIN)
    world.clock.advance(3600)
    again = make_world(tmp_path)  # same database, new service, nothing cached
    again.clock.set(world.clock.now())
    second = again.client().get("/feeds/all.rss", headers=PLAIN)
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]


def test_last_modified_is_the_newest_change(world: World) -> None:
    """Last-Modified is the newest change among the feed's entries."""
    newest = world.add("py", 1)[0]
    reply = world.client().get("/feeds/source/py.rss")
    assert reply.headers["last-modified"] == format_datetime(newest.first_seen, usegmt=True)  # type: ignore[arg-type]
    other = world.client().get("/feeds/source/hn.rss")
    assert other.headers["last-modified"] != reply.headers["last-modified"]


def test_conditional_requests_get_304(world: World) -> None:
    """If-None-Match and If-Modified-Since answer 304 while nothing changed, 200 after."""
    client = world.client()
    first = client.get("/feeds/all.atom", headers=PLAIN)
    tag, date = first.headers["etag"], first.headers["last-modified"]
    for headers in (
        {"If-None-Match": tag},
        {"If-Modified-Since": date},
        {"If-None-Match": f'"other", {tag}'},
        {"If-None-Match": "*"},
    ):
        reply = client.get("/feeds/all.atom", headers={**PLAIN, **headers})
        assert reply.status_code == 304, headers
        assert reply.content == b"" and reply.headers["etag"] == tag
    stale = client.get(
        "/feeds/all.atom", headers={**PLAIN, "If-None-Match": '"other"', "If-Modified-Since": date}
    )
    assert stale.status_code == 200  # If-None-Match wins over If-Modified-Since
    world.add("hn", 1)
    assert client.get("/feeds/all.atom", headers={**PLAIN, "If-None-Match": tag}).status_code == 200
    assert (
        client.get("/feeds/all.atom", headers={**PLAIN, "If-Modified-Since": date}).status_code
        == 200
    )


def test_a_subscribed_reader_gets_304s_until_something_changes(world: World) -> None:
    """Every published feed answers 304 to a reader's validators until one of its sources changes."""
    client = world.client()
    held = {}
    for path in urls(world):
        reply = client.get(path)
        held[path] = (reply.headers["etag"], reply.headers.get("last-modified"))  # none if empty
    for _ in range(2):
        world.clock.advance(600)
        for path, (tag, date) in held.items():
            for headers in ({"If-None-Match": tag}, {"If-Modified-Since": date or ""}):
                if any(headers.values()):
                    assert client.get(path, headers=headers).status_code == 304, (path, headers)
    world.add("py", 1)
    changed = {
        p
        for p, (tag, _) in held.items()
        if client.get(p, headers={"If-None-Match": tag}).status_code == 200
    }
    assert changed == {
        p
        for p in held
        if p.startswith(
            (
                "/feeds/all.",
                "/feeds/source/py.",
                "/feeds/category/Tech.",
                "/feeds/category/Tech/Python.",
                "/feeds/tech.",
            )
        )
    }


def test_cache_control_and_ttl_follow_the_fetch_interval(world: World) -> None:
    """max-age is half the shortest fetch interval of the feed's sources (1 min..1 h); RSS ttl agrees."""
    client = world.client()
    expected = {
        "/feeds/source/hn": 300,
        "/feeds/source/py": 3600,
        "/feeds/category/Tech": 300,
        "/feeds/category/%E7%A7%91%E6%8A%80": 3600,
    }
    for path, seconds in expected.items():
        reply = client.get(path + ".rss")
        assert reply.headers["cache-control"] == f"public, max-age={seconds}"
        assert feedparser.parse(reply.content).feed.ttl == str(seconds // 60)


def test_rendered_bytes_are_cached_until_the_selection_changes(world: World) -> None:
    """Repeated requests reuse the rendering; a change in the selection renders again, once."""
    client = world.client()
    client.get("/feeds/source/hn.rss")
    before = world.feeds.renders
    for _ in range(5):
        client.get("/feeds/source/hn.rss")
    assert world.feeds.renders == before
    world.add("py", 1)  # not in this feed's selection
    client.get("/feeds/source/hn.rss")
    assert world.feeds.renders == before
    world.add("hn", 1)
    client.get("/feeds/source/hn.rss")
    client.get("/feeds/source/hn.rss")
    assert world.feeds.renders == before + 1


async def test_simultaneous_requests_for_an_uncached_feed_render_it_once(world: World) -> None:
    """Twenty concurrent requests for one uncached document share one rendering."""
    spec = world.feeds.all()
    results = await asyncio.gather(*(world.feeds.serve(spec, "atom") for _ in range(20)))
    assert world.feeds.renders == 1
    assert len({r.etag for r in results}) == 1
    other: FeedSpec = world.feeds.source("hn")
    await asyncio.gather(world.feeds.serve(other, "rss"), world.feeds.serve(other, "json"))
    assert world.feeds.renders == 3  # different documents are different flights


def test_self_links_use_the_public_base_url(world: World) -> None:
    """Self and alternate links point at server.base_url, with the query the reader used."""
    doc = world.client().get("/feeds/source/hn.json?limit=2&filter=Title").json()
    assert doc["feed_url"] == f"{BASE}/feeds/source/hn.json?limit=2&filter=Title"
    atom = world.client().get("/feeds/source/hn.atom").text
    assert f'<link href="{BASE}/feeds/source/hn.atom" rel="self"' in atom
    assert f'href="{BASE}/feeds/source/hn.rss" rel="alternate" type="application/rss+xml"' in atom


def test_head_requests_answer_with_headers(world: World) -> None:
    """HEAD gets the same validators as GET."""
    client = world.client()
    get, head = (
        client.get("/feeds/all.rss", headers=PLAIN),
        client.head("/feeds/all.rss", headers=PLAIN),
    )
    assert head.status_code == 200 and head.headers["etag"] == get.headers["etag"]


def test_gzip_body_is_what_identity_would_be(world: World) -> None:
    """The cached gzip bytes decompress to the identity bytes."""
    rendered = world.feeds.render(world.feeds.all(), "json")
    assert gzip.decompress(rendered.gzip_body) == rendered.body


def test_served_documents_are_valid(world: World, tmp_path: Path) -> None:
    """Every feed as served, first and later pages, with a hub: no validator problems; Atom passes jing."""
    from .test_render import jing, problems

    settings = world.settings.model_copy(
        update={
            "publish": world.settings.publish.model_copy(update={"hub": "https://hub.example.net/"})
        }
    )
    world.feeds.update(settings)
    world.add("hn", 6, title="Rust & <Go>", author="dev@example.com (Dev)")
    client = world.client()
    paths = urls(world) + [
        "/feeds/all.atom?limit=2&filter=Rust",
        "/feeds/all.rss?limit=2&sorted=false",
    ]
    paths += [
        next_url.removeprefix(BASE)
        for next_url in (
            client.get("/feeds/all.json?limit=3").json()["next_url"].replace(".json", ".atom"),
        )
    ]
    atom_files = []
    for index, path in enumerate(paths):
        body = client.get(path).content
        fmt = path.split("?")[0].rsplit(".", 1)[1]
        assert problems(fmt, body) == [], path  # type: ignore[arg-type]
        if fmt == "atom":
            atom_files.append(tmp_path / f"doc{index}.atom")
            atom_files[-1].write_bytes(body)
    result = jing(atom_files)
    assert result.returncode == 0, result.stdout + result.stderr
