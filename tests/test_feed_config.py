"""[[feeds]] in the config: parsed into FeedSettings, mistakes reported by feed id and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.cli import parser as cli
from aggregator.config import loading as config
from aggregator.errors import ConfigError

from .conftest import REPO
from .feedworld import SOURCES


def problems(extra: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.parse(SOURCES + extra)
    return info.value.problems


def test_a_feed_definition_is_parsed() -> None:
    """Every key of a [[feeds]] table, category paths in either spelling."""
    settings = config.parse(
        SOURCES
        + """
[[feeds]]
id = "digest"
title = "Digest"
description = "The week"
sources = ["hn"]
categories = ["Tech / Python", ["科技", "博客"]]
query = "python"
exclude_sources = ["ruan"]
exclude_categories = "Tech / News"
exclude_query = "sponsored"
limit = 10
formats = ["atom", "json"]
merge_duplicates = false
"""
    )
    feed = settings.feeds[0]
    assert feed.categories == (("Tech", "Python"), ("科技", "博客"))
    assert feed.exclude_categories == (("Tech", "News"),)
    assert (feed.limit, feed.formats, feed.merge_duplicates) == (10, ("atom", "json"), False)


def test_unknown_sources_name_the_feed_and_the_field() -> None:
    """A feed naming a source that is not configured is a config error saying which and where."""
    found = problems('[[feeds]]\nid = "x"\nsources = ["hn", "nope"]\nexclude_sources = ["gone"]\n')
    assert found == [
        "feeds[0] (id=x).sources: unknown source 'nope'",
        "feeds[0] (id=x).exclude_sources: unknown source 'gone'",
    ]


def test_reserved_duplicate_and_malformed_feeds_are_errors() -> None:
    """Built-in names, repeated ids, bad ids, unknown formats and keys, limits over max_limit."""
    assert problems('[[feeds]]\nid = "all"\n') == [
        "feeds[0] (id=all).id: 'all' is a built-in feed name; pick another id"
    ]
    assert problems('[[feeds]]\nid = "a"\n[[feeds]]\nid = "a"\n') == [
        "feeds[1] (id=a).id: duplicate feed id 'a'"
    ]
    assert problems('[[feeds]]\nid = "a.b"\n')[0].startswith(
        "feeds[0] (id=a.b).id: String should match"
    )
    assert problems('[[feeds]]\nid = "a"\nformats = ["xml"]\n')[0].startswith(
        "feeds[0] (id=a).formats.0:"
    )
    assert problems('[[feeds]]\nid = "a"\nformats = []\n') == [
        "feeds[0] (id=a).formats: a feed needs at least one format"
    ]
    assert problems('[[feeds]]\nid = "a"\ncolour = "red"\n') == [
        "feeds[0] (id=a).colour: unknown key"
    ]
    assert problems('[[feeds]]\nid = "a"\nlimit = 21\n') == [
        "feeds[0] (id=a).limit: more than publish.max_limit (20)"
    ]


def test_check_reports_feed_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`aggregator check` exits 2 and prints the feed problem on its own line."""
    cfg = tmp_path / "agg.toml"
    cfg.write_text(SOURCES + '[[feeds]]\nid = "x"\nsources = ["nope"]\n', encoding="utf-8")
    assert cli.main(["--config", str(cfg), "check"]) == 2
    assert "feeds[0] (id=x).sources: unknown source 'nope'" in capsys.readouterr().err


def test_the_default_config_example_feed_is_valid() -> None:
    """The commented [[feeds]] example of the default config validates once uncommented."""
    text = (REPO / "config" / "aggregator.toml").read_text(encoding="utf-8")
    start = text.index("# [[feeds]]")
    block = []
    for line in text[start:].splitlines():
        if not line.startswith("# "):
            break
        block.append(line.removeprefix("# "))
    settings = config.parse(text + "\n" + "\n".join(block) + "\n")
    assert settings.feeds and settings.feeds[0].id == "tech-digest"
