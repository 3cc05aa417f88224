"""What the published feeds say about entries beyond their text: ids that survive a base URL
change, one title per source everywhere, where merged entries came from, and category feeds that
hold every story filed under them (by path, by rule, through any copy)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import feedparser
from lxml import etree

from aggregator.config import loading as config
from aggregator.http.routes import display_names
from aggregator.models import FetchOutcome, FetchStatus
from aggregator.publish.opml import export_opml

from .feedworld import BASE, SOURCES, World, entry, make_world

ATOM = "{http://www.w3.org/2005/Atom}"
RULES = """
[[categorize.rules]]
field = "title"
keywords = ["GPT"]
add = ["AI", "科技 / 中文"]

[[feeds]]
id = "ai"
categories = ["AI"]

[[feeds]]
id = "mixed"
categories = ["AI", "Tech / Python"]
"""


def _ids(world: World, path: str) -> list[str]:
    parsed = feedparser.parse(world.client().get(path).content)
    return [e.id for e in parsed.entries] + [parsed.feed.get("id", "")]


def test_ids_survive_a_base_url_change_and_are_recorded_per_store(tmp_path: Path) -> None:
    """The tag: authority is the base URL's host at the first rendering, kept after base_url
    changes (reload or restart); another store records its own."""
    world = make_world(tmp_path)
    world.add("hn", 2)
    before = {p: _ids(world, p) for p in ("/feeds/all.atom", "/feeds/source/hn.rss")}
    assert before["/feeds/all.atom"][0].startswith("tag:feeds.example.org,2026:entry/hn/")
    moved = config.parse(
        SOURCES.replace("https://feeds.example.org", "https://proxy.example.net/agg")
    )
    world.feeds.update(moved)
    for path, ids in before.items():
        assert _ids(world, path) == ids
    json_items = world.client().get("/feeds/all.json").json()
    assert json_items["feed_url"].startswith("https://proxy.example.net/agg/")
    assert [i["id"] for i in json_items["items"]] == before["/feeds/all.atom"][:-1]
    other = make_world(tmp_path / "other")
    other.feeds.update(moved)
    other.add("hn", 1)
    assert _ids(other, "/feeds/all.atom")[0].startswith("tag:proxy.example.net,2026:entry/hn/")


def test_a_source_has_one_title_everywhere(tmp_path: Path) -> None:
    """Configured title, else the feed's own title, else the id: in its feed, the merged feeds'
    attribution, the status page and OPML."""
    untitled = SOURCES.replace('title = "Python blog"\n', "")
    world = make_world(tmp_path, sources=untitled)
    world.add("py", 1)
    client = world.client()
    assert feedparser.parse(client.get("/feeds/source/py.atom").content).feed.title == "py"
    state = world.store.get_state("py")
    assert state is not None
    outcome = FetchOutcome("py", FetchStatus.OK)
    world.store.apply(replace(state, title="Planet Python"), [], [], outcome, world.clock.now())
    world.add("py", 1)
    for fmt in ("atom", "rss"):
        assert (
            feedparser.parse(client.get(f"/feeds/source/py.{fmt}").content).feed.title
            == "Planet Python"
        )
    assert client.get("/feeds/source/py.json").json()["title"] == "Planet Python"
    assert feedparser.parse(client.get("/feeds/source/hn.atom").content).feed.title == "Hacker News"
    merged = client.get("/feeds/all.json").json()["items"]
    assert {i["_aggregator"]["source"]["title"] for i in merged} == {"Planet Python"}
    assert display_names(world.sources, world.store.get_state)["py"] == "Planet Python"
    opml = export_opml(world.settings, world.sources, world.store.list_states())
    assert b'text="Planet Python"' in opml


def test_merged_feeds_name_each_entrys_source(tmp_path: Path) -> None:
    """all and category feeds carry Atom <source>, RSS <source url>, JSON _aggregator; a
    source's own feed does not."""
    world = make_world(tmp_path)
    world.add("hn", 1)
    world.add("ruan", 1)
    client = world.client()
    atom = etree.fromstring(client.get("/feeds/all.atom").content)
    sources = [e.find(ATOM + "source") for e in atom.iter(ATOM + "entry")]
    assert [s.findtext(ATOM + "title") for s in sources] == ["阮一峰的网络日志", "Hacker News"]
    assert sources[1].findtext(ATOM + "id") == "tag:feeds.example.org,2026:feed/source/hn"
    assert {l.get("href") for l in sources[1].iter(ATOM + "link")} == {
        BASE + "/feeds/source/hn.atom"
    }
    assert sources[1].findtext(ATOM + "updated")
    rss = etree.fromstring(client.get("/feeds/category/Tech.rss").content)
    assert [(s.get("url"), s.text) for s in rss.iter("source")] == [
        (BASE + "/feeds/source/hn.rss", "Hacker News")
    ]
    item = client.get("/feeds/all.json").json()["items"][1]
    assert item["_aggregator"]["source"]["feed_url"] == BASE + "/feeds/source/hn.json"
    assert b"<source" not in client.get("/feeds/source/hn.atom").content


def test_a_story_is_in_the_category_feed_of_every_copy(tmp_path: Path) -> None:
    """A story first stored under Tech/News is in 科技's feed too when a copy is filed there."""
    world = make_world(tmp_path)
    [first] = world.add("hn", 1, title="Same story")
    stored = world.store.list_entries(world.feeds.all().selection)
    world.clock.advance(60)
    copy = entry(
        "ruan",
        "copy",
        world.clock.now(),
        ("科技", "博客"),
        title="Same story",
        duplicate_of=stored[0].id,
    )
    world.apply("ruan", [copy])
    client = world.client()
    for path in (
        "/feeds/category/%E7%A7%91%E6%8A%80.json",
        "/feeds/category/Tech.json",
        "/feeds/all.json",
    ):
        assert [i["title"] for i in client.get(path).json()["items"]] == ["Same story"], path
    assert first.key == "k1"


def test_rule_categories_are_category_feeds_and_operator_feed_categories(tmp_path: Path) -> None:
    """A category a rule adds has /feeds/category/<name>.* and fills operator feeds; a rule's
    `科技 / 中文` is the path 科技/中文."""
    world = make_world(tmp_path, RULES)
    world.add("hn", 1, title="GPT news", categories=("AI", "科技/中文"))
    world.add("py", 1, title="Python news")
    world.add("ruan", 1, title="Other")
    client = world.client()
    paths = [s.path for s in world.feeds.every()]
    assert (
        "/feeds/category/AI" in paths
        and "/feeds/category/%E7%A7%91%E6%8A%80/%E4%B8%AD%E6%96%87" in paths
    )
    for path, titles in {
        "/feeds/category/AI.json": ["GPT news"],
        "/feeds/category/%E7%A7%91%E6%8A%80/%E4%B8%AD%E6%96%87.json": ["GPT news"],
        "/feeds/category/%E7%A7%91%E6%8A%80.json": ["Other", "GPT news"],
        "/feeds/ai.json": ["GPT news"],
        "/feeds/mixed.json": ["Python news", "GPT news"],
    }.items():
        reply = client.get(path)
        assert reply.status_code == 200, path
        assert [i["title"] for i in reply.json()["items"]] == titles, path
    assert client.get("/feeds/category/AIR.json").status_code == 404
    atom = feedparser.parse(client.get("/feeds/category/AI.atom").content)
    assert atom.feed.title == "Test aggregator: AI"
    assert (
        json.loads(client.get("/feeds/category/AI.json").content)["title"] == "Test aggregator: AI"
    )
