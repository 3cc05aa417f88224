"""OPML: the sources list over HTTP and from the CLI; importing an OPML file into the config."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from lxml import etree

from aggregator.cli import parser as cli
from aggregator.config import loading as config
from aggregator.errors import AggregatorError
from aggregator.publish.opml import (
    OpmlFeed,
    Skipped,
    add_to_config,
    derive_id,
    export_opml,
    read_opml,
)

from .conftest import REPO
from .feedworld import BASE, SOURCES, make_world

QUTOUTIAO = """
[[sources]]
id = "qtt"
kind = "qutoutiao"
cid = 1
"""

SUBSCRIPTIONS = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>my reader</title></head>
  <body>
    <outline text="Tech">
      <outline text="Lobsters" title="Lobsters" type="rss" xmlUrl="https://lobste.rs/rss" htmlUrl="https://lobste.rs/"/>
      <outline text="Hacker News again" type="rss" xmlUrl="HTTPS://News.Example.com/rss/"/>
      <outline text="Lobsters" type="rss" xmlUrl="https://lobste.rs/t/python.rss"/>
    </outline>
    <outline text="少数派" type="rss" xmlUrl="https://sspai.com/feed" category="/科技/数码"/>
    <outline text="Bad" type="rss" xmlUrl="feed://example.org/x"/>
    <outline text="Ours" type="rss" xmlUrl="https://feeds.example.org/feeds/all.atom"/>
  </body>
</opml>
""".encode()


def test_get_opml_lists_every_source_nested_by_category(tmp_path: Path) -> None:
    """/opml is OPML 2.0 with one outline per source inside folders for its category path."""
    world = make_world(tmp_path, QUTOUTIAO)
    reply = world.client().get("/opml", headers={"Accept-Encoding": "identity"})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/x-opml; charset=utf-8"
    root = etree.fromstring(reply.content)
    assert root.tag == "opml" and root.get("version") == "2.0"
    feeds = {o.get("title"): o for o in root.iter("outline") if o.get("xmlUrl")}
    assert set(feeds) == {"Hacker News", "Python blog", "阮一峰的网络日志", "趣头条"}
    hn = feeds["Hacker News"]
    assert hn.get("xmlUrl") == "https://news.example.com/rss" and hn.get("category") == "/Tech/News"
    assert [p.get("text") for p in hn.iterancestors("outline")] == ["News", "Tech"]
    # Qutoutiao is no feed: readers get our republished feed of it.
    assert feeds["趣头条"].get("xmlUrl") == f"{BASE}/feeds/source/qtt.atom"
    again = world.client().get(
        "/opml", headers={"If-None-Match": reply.headers["etag"], "Accept-Encoding": "identity"}
    )
    assert again.status_code == 304


def test_export_opml_command_writes_what_the_server_serves(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """`aggregator export opml` prints the same bytes as GET /opml."""
    world = make_world(tmp_path)
    served = world.client().get("/opml", headers={"Accept-Encoding": "identity"}).content
    cfg = tmp_path / "agg.toml"
    cfg.write_text(
        SOURCES + f'[storage]\nurl = "sqlite:///{tmp_path / "agg.db"}"\n', encoding="utf-8"
    )
    assert cli.main(["--config", str(cfg), "export", "opml"]) == 0
    assert capsysbinary.readouterr().out == served
    assert (
        cli.main(["--config", str(cfg), "export", "opml", "--out", str(tmp_path / "x.opml")]) == 0
    )
    assert (tmp_path / "x.opml").read_bytes() == served


def test_read_opml_takes_folders_as_categories() -> None:
    """Feed outlines at any depth; their folders, else their category attribute, as the path;
    htmlUrl as the site's URL."""
    feeds = read_opml(SUBSCRIPTIONS)
    assert feeds[0] == OpmlFeed(
        "https://lobste.rs/rss", "Lobsters", ("Tech",), "https://lobste.rs/"
    )
    assert feeds[3] == OpmlFeed("https://sspai.com/feed", "少数派", ("科技", "数码"))
    assert len(feeds) == 6


def test_read_opml_refuses_entity_declarations() -> None:
    """Entity declarations (billion laughs, external files) are refused before any expansion."""
    for declarations in (
        '<!ENTITY x SYSTEM "file:///etc/passwd">',
        '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">',
    ):
        hostile = f"""<?xml version="1.0"?>
<!DOCTYPE opml [{declarations}]>
<opml version="2.0"><body><outline text="&x;&b;" xmlUrl="https://e.org/"/></body></opml>"""
        with pytest.raises(AggregatorError, match="declares XML entities") as info:
            read_opml(hostile.encode())
        assert "root:" not in str(info.value)


def test_read_opml_refuses_what_is_not_opml() -> None:
    """A file that is not OPML is an error with a message."""
    with pytest.raises(AggregatorError, match="not an OPML file"):
        read_opml(b"<html><body/></html>")
    with pytest.raises(AggregatorError, match="not an OPML file"):
        read_opml(b"not xml at all")


def test_import_keeps_comments_and_layout_and_skips_known_urls() -> None:
    """Importing into the default config leaves every existing line as it was and appends tables."""
    original = (REPO / "config" / "aggregator.toml").read_text(encoding="utf-8")
    base = config.parse(original).server.public_base
    extra = SUBSCRIPTIONS.replace(b"https://feeds.example.org", base.encode())
    report = add_to_config(
        original, read_opml(extra) + [OpmlFeed("https://hnrss.org/frontpage/")], base
    )
    assert report.text.startswith(original.rstrip("\n"))
    assert report.added == [
        ("lobsters", "https://lobste.rs/rss"),
        ("hacker-news-again", "HTTPS://News.Example.com/rss/"),
        ("lobsters-2", "https://lobste.rs/t/python.rss"),
    ]
    assert report.skipped == [
        ("https://sspai.com/feed", "already configured"),  # the default config has it
        ("feed://example.org/x", "not an http(s) URL"),
        (f"{base}/feeds/all.atom", "one of this server's own feeds"),
        ("https://hnrss.org/frontpage/", "already configured"),
    ]
    settings = config.parse(report.text)
    lobsters = [s for s in settings.sources if s.id == "lobsters"]
    assert lobsters and lobsters[0].title == "Lobsters" and lobsters[0].category == ("Tech",)
    assert tomllib.loads(report.text)["sources"][-1]["id"] == "lobsters-2"


def test_import_twice_adds_nothing_the_second_time() -> None:
    """URLs already in the config, in any case or with a trailing slash, are skipped."""
    first = add_to_config(SOURCES, read_opml(SUBSCRIPTIONS))
    second = add_to_config(first.text, read_opml(SUBSCRIPTIONS))
    assert second.added == [] and second.text == first.text
    assert ("HTTPS://News.Example.com/rss/", "already configured") in first.skipped


def test_import_into_a_config_without_sources(tmp_path: Path) -> None:
    """A config with no [[sources]] yet gets its first ones after the existing text."""
    text = "# my config\n[server]\nport = 9000  # custom\n"
    report = add_to_config(text, [OpmlFeed("https://a.example/feed", "A feed")])
    assert report.text.startswith(text)
    assert config.parse(report.text).sources[0].id == "a-feed"


def test_derived_ids_are_valid_and_unique() -> None:
    """Ids come from ASCII of the title, else the host; repeats get a numeric suffix."""
    assert derive_id("Ars Technica — All", "https://x.org/", []) == "ars-technica-all"
    assert derive_id("Café Crème", "https://x.org/", []) == "cafe-creme"
    assert (
        derive_id("阮一峰的网络日志", "https://www.ruanyifeng.com/blog/atom.xml", [])
        == "ruanyifeng-com"
    )
    assert derive_id("HN", "https://x.org/", ["hn", "hn-2"]) == "hn-3"
    assert derive_id(None, "https://[::1/", []) == "feed"


def test_import_command_edits_the_config_file_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`aggregator import opml FILE` appends the new sources to the file and says what it did."""
    cfg = tmp_path / "agg.toml"
    original = "# keep me\n" + SOURCES
    cfg.write_text(original, encoding="utf-8")
    opml = tmp_path / "subs.opml"
    opml.write_bytes(SUBSCRIPTIONS)
    assert cli.main(["--config", str(cfg), "import", "opml", str(opml), "--dry-run"]) == 0
    assert cfg.read_text(encoding="utf-8") == original
    assert cli.main(["--config", str(cfg), "import", "opml", str(opml)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "added lobsters https://lobste.rs/rss" in out and "added 3 sources to" in out
    assert "skipped feed://example.org/x (not an http(s) URL)" in out
    text = cfg.read_text(encoding="utf-8")
    assert text.startswith(original.rstrip("\n"))
    assert [s.id for s in config.load(cfg).sources][3:] == ["lobsters", "lobsters-2", "sspai-com"]


ROUND_TRIP = """
[[sources]]
id = "samruby"
url = "https://intertwingly.net/blog/index.atom"
title = "Sam Ruby"
category = "Blogs / People"
also_in = ["Tech / Web", "科技"]
site_url = "https://intertwingly.net/blog/"
interval = "2h"

[[sources]]
id = "qtt-hot"
kind = "qutoutiao"
cid = 1
limit = 30
title = "趣头条 热点"

[[sources]]
id = "api"
kind = "json"
url = "https://api.example.org/posts"
items = "data.posts"
site_name = "Example API"
[sources.fields]
title = "headline"
link = "url"
"""


def test_export_then_import_restores_the_same_sources() -> None:
    """Export -> import into an empty config gives back the same [[sources]]: ids (no `samruby`
    -> `sam-ruby`), kinds and their options, categories, titles, intervals and htmlUrl."""
    settings = config.parse(ROUND_TRIP)
    document = export_opml(settings, {s.id: s for s in settings.source_records()})
    root = etree.fromstring(document)
    sam = next(
        o for o in root.iter("outline") if o.get("xmlUrl", "").startswith("https://intertwingly")
    )
    assert sam.get("htmlUrl") == "https://intertwingly.net/blog/"
    report = add_to_config("", read_opml(document), settings.server.public_base)
    assert report.skipped == []
    again = config.parse(report.text)
    assert sorted(again.sources, key=lambda s: s.id) == sorted(settings.sources, key=lambda s: s.id)


def test_import_keeps_every_category_and_reports_what_it_skips() -> None:
    """Several comma-separated categories: the first is the source's category path, the rest
    its ``also_in`` paths (its entries are in every one's feed); `url=`-only outlines are read;
    type="link" and URL-less outlines are listed as skipped, with why."""
    data = """<?xml version="1.0"?><opml version="2.0"><head/><body>
      <outline text="Multi" type="rss" xmlUrl="https://m.example/feed" category="/Tech/News,/科技"/>
      <outline text="Only url" type="rss" url="https://u.example/rss"/>
      <outline text="A page" type="link" url="https://p.example/"/>
      <outline text="Nothing here"/>
    </body></opml>""".encode()
    skipped: list[Skipped] = []
    feeds = read_opml(data, skipped)
    report = add_to_config("", feeds, None, skipped)
    assert report.added == [
        ("multi", "https://m.example/feed"),
        ("only-url", "https://u.example/rss"),
    ]
    assert [what for what, _ in report.skipped] == ["https://p.example/", "Nothing here"]
    assert 'type="link"' in report.skipped[0][1] and "no xmlUrl" in report.skipped[1][1]
    multi = config.parse(report.text).sources[0]
    assert multi.category == ("Tech", "News") and multi.also_in == (("科技",),)
    assert report.notes == []


def test_a_folder_outline_with_category_attributes_keeps_them_all() -> None:
    """An outline inside a folder keeps the folder as its path and each category attribute's
    path that differs as an ``also_in`` path."""
    data = """<?xml version="1.0"?><opml version="2.0"><head/><body>
      <outline text="Tech"><outline text="F" type="rss" xmlUrl="https://f.example/rss"
        category="/Tech,/News/World, /科技/数码"/></outline>
    </body></opml>""".encode()
    [feed] = read_opml(data)
    source = config.parse(add_to_config("", [feed]).text).sources[0]
    assert source.category == ("Tech",) and source.also_in == (("News", "World"), ("科技", "数码"))


def test_export_writes_every_category_in_the_category_attribute() -> None:
    """A source's also_in paths follow its category path in the comma-separated attribute."""
    settings = config.parse(ROUND_TRIP)
    root = etree.fromstring(export_opml(settings, {s.id: s for s in settings.source_records()}))
    sam = next(
        o for o in root.iter("outline") if o.get("xmlUrl", "").startswith("https://intertwingly")
    )
    assert sam.get("category") == "/Blogs/People,/Tech/Web,/科技"


def test_round_trip_adds_no_site_url_the_config_did_not_have() -> None:
    """A fetched feed names its site (exported as ``htmlUrl``); importing the export must not
    turn that into a ``site_url`` key, and a configured ``site_url`` comes back as it was even
    when the feed names another site."""
    from aggregator.models import SourceState

    settings = config.parse(
        '[[sources]]\nid = "plain"\nurl = "https://a.example.org/feed"\n\n'
        '[[sources]]\nid = "own"\nurl = "https://b.example.org/feed"\n'
        'site_url = "https://b.example.org/home/"\n'
    )
    states = [
        SourceState(
            source_id="plain", url="https://a.example.org/feed", site_link="https://a.example.org/"
        ),
        SourceState(
            source_id="own",
            url="https://b.example.org/feed",
            site_link="https://b.example.org/blog/",
        ),
    ]
    document = export_opml(settings, {s.id: s for s in settings.source_records()}, states)
    report = add_to_config("", read_opml(document), settings.server.public_base)
    again = config.parse(report.text)
    assert sorted(again.sources, key=lambda s: s.id) == sorted(settings.sources, key=lambda s: s.id)
