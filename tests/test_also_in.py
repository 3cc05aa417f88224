"""A source filed under several categories (``also_in``): its entries are in each one's feed."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import loading as config
from aggregator.errors import ConfigError

from .feedworld import SOURCES, World, make_world

EXTRA = """
[[sources]]
id = "multi"
url = "https://multi.example.com/feed"
title = "Multi"
category = "Tech / News"
also_in = ["科技 / 数码", "World"]

[[feeds]]
id = "world-only"
categories = ["World"]

[[feeds]]
id = "no-world"
exclude_categories = ["World"]
"""


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = make_world(tmp_path, sources=SOURCES + EXTRA)
    w.add("multi", 1, title="From multi")
    w.add("ruan", 1, title="From ruan")
    w.add("py", 1, title="From py")
    return w


def titles(world: World, path: str) -> list[str]:
    reply = world.client().get(path)
    assert reply.status_code == 200, reply.text
    return [item["title"] for item in reply.json()["items"]]


def test_entries_are_in_each_category_feed_of_their_source(world: World) -> None:
    """The category path and every also_in path (and the paths above them) list the entries."""
    assert titles(world, "/feeds/category/Tech/News.json") == ["From multi"]
    assert titles(world, "/feeds/category/World.json") == ["From multi"]
    assert titles(world, "/feeds/category/科技/数码.json") == ["From multi"]
    assert titles(world, "/feeds/category/科技.json") == ["From ruan", "From multi"]


def test_also_in_paths_are_published_categories(world: World) -> None:
    """The catalog lists the also_in paths as category feeds (the index, a static build)."""
    paths = world.feeds.catalog.category_paths()
    assert ("World",) in paths and ("科技", "数码") in paths


def test_an_operator_feed_of_a_category_takes_also_in_sources(world: World) -> None:
    """[[feeds]] categories = ["World"] shows the source filed there by also_in."""
    assert titles(world, "/feeds/world-only.json") == ["From multi"]


def test_an_operator_feed_excluding_a_category_drops_also_in_sources(world: World) -> None:
    """[[feeds]] exclude_categories = ["World"] drops the source filed there by also_in too."""
    shown = titles(world, "/feeds/no-world.json")
    assert "From multi" not in shown and {"From ruan", "From py"} <= set(shown)


def test_also_in_must_be_category_paths() -> None:
    """also_in = 5 is a config error naming the field, not a traceback."""
    with pytest.raises(ConfigError, match="also_in"):
        config.parse(SOURCES + '[[sources]]\nid = "x"\nurl = "https://x.example/f"\nalso_in = 5\n')
