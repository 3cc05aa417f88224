"""RSSHub's output parameters on feed URLs: format, brief, opencc, mode=fulltext,
image_hotlink_template; unsupported RSSHub parameters are a 400, other unknown ones ignored."""

from __future__ import annotations

from pathlib import Path

import feedparser
import pytest

from aggregator.publish.variants import fill

from .feedworld import World, make_world

PLAIN = {"Accept-Encoding": "identity"}
IMG = '<p>看图 <img src="https://img.example.net:8443/p/a.png?x=1&amp;y=2" srcset="https://img.example.net/p/a@2x.png 2x"></p>'


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = make_world(tmp_path)
    w.add("hn", 2)
    return w


def test_format_overrides_the_paths_extension(world: World) -> None:
    """/feeds/all.atom?format=json is the JSON Feed, with its Content-Type and the .json bytes."""
    client = world.client()
    reply = client.get("/feeds/all.atom?format=json", headers=PLAIN)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/feed+json; charset=utf-8"
    assert reply.json()["version"].startswith("https://jsonfeed.org/version/1")
    assert reply.content == client.get("/feeds/all.json", headers=PLAIN).content
    rss = client.get("/feeds/source/hn.json?format=RSS", headers=PLAIN)
    assert rss.headers["content-type"].startswith("application/rss+xml")
    assert feedparser.parse(rss.content).version == "rss20"


def test_a_format_we_do_not_write_is_400(world: World) -> None:
    """format=ums (an RSSHub format we do not write) is a 400 that names the parameter."""
    reply = world.client().get("/feeds/all.rss?format=ums")
    assert reply.status_code == 400
    assert "format" in reply.text and "ums" in reply.text


def test_brief_is_plain_text_of_at_most_n_characters(world: World) -> None:
    """brief=N: the summary is the plain text, cut to N characters; the content is dropped."""
    long = "<p>" + "word " * 100 + "</p>"
    world.add("py", 1, summary=None, content=long, title="Long one")
    doc = world.client().get("/feeds/source/py.json?brief=100").json()
    item = doc["items"][0]
    assert len(item["summary"]) <= 100 and item["summary"].startswith("word word")
    assert item["summary"].endswith("…")
    assert "<p>" not in item["content_html"]
    rss = feedparser.parse(world.client().get("/feeds/source/py.rss?brief=120").content)
    assert "content" not in rss.entries[0]
    assert len(rss.entries[0].summary) <= 120


def test_brief_below_100_or_not_a_number_is_400(world: World) -> None:
    """RSSHub requires brief >= 100; smaller or non-numeric values are a 400 naming brief."""
    for value in ("99", "abc", "0"):
        reply = world.client().get(f"/feeds/all.rss?brief={value}")
        assert reply.status_code == 400 and "brief" in reply.text, value


def test_opencc_converts_titles_summaries_and_content(world: World) -> None:
    """opencc=s2t turns Simplified titles, summaries and content Traditional; t2s goes back;
    a link with Han characters inside a tag is left as it was."""
    world.add(
        "ruan",
        1,
        title="简体中文标题：发展软件",
        summary="这是简体摘要",
        content='<p>汉字内容 <a href="https://example.com/汉字">链接</a></p>',
    )
    client = world.client()
    item = client.get("/feeds/source/ruan.json?opencc=s2t").json()["items"][0]
    assert item["title"] == "簡體中文標題：發展軟件"
    assert item["summary"] == "這是簡體摘要"
    assert "漢字內容" in item["content_html"] and "鏈接" in item["content_html"]
    assert (
        'href="https://example.com/%E6%B1%89%E5%AD%97"' in item["content_html"]
        or "example.com/汉字" in item["content_html"]
    )
    back = client.get("/feeds/source/ruan.atom?opencc=t2s").content.decode()
    assert "简体中文标题" in back
    assert client.get("/feeds/all.rss?opencc=xx").status_code == 400


def test_opencc_converts_the_feed_title(world: World) -> None:
    """The feed's own title is converted too (阮一峰的网络日志 → 阮一峯的網絡日誌)."""
    world.add("ruan", 1)
    doc = world.client().get("/feeds/source/ruan.json?opencc=s2t").json()
    assert doc["title"] == "阮一峯的網絡日誌"


def test_mode_fulltext_publishes_the_content_in_place_of_the_summary(world: World) -> None:
    """mode=fulltext: RSS description is the full content where there is one; an entry with only
    a summary keeps it; other modes are a 400."""
    world.add("py", 1, title="Has both", summary="Teaser", content="<p>The whole article</p>")
    world.add("py", 1, title="Summary only", summary="Only a teaser", content=None)
    client = world.client()
    plain = {
        e.title: e for e in feedparser.parse(client.get("/feeds/source/py.rss").content).entries
    }
    assert plain["Has both"].summary == "Teaser"
    full = {
        e.title: e
        for e in feedparser.parse(client.get("/feeds/source/py.rss?mode=fulltext").content).entries
    }
    assert "The whole article" in full["Has both"].summary
    assert full["Summary only"].summary == "Only a teaser"
    assert client.get("/feeds/all.rss?mode=other").status_code == 400


def test_image_hotlink_template_rewrites_image_sources(world: World) -> None:
    """Each <img src> becomes the template filled from its URL; srcset is dropped."""
    world.add("py", 1, title="Pictured", content=IMG)
    template = "https://proxy.example/${host}${pathname}?u=${href_ue}"
    item = (
        world.client()
        .get("/feeds/source/py.json", params={"image_hotlink_template": template})
        .json()["items"][0]
    )
    html = item["content_html"]
    assert (
        'src="https://proxy.example/img.example.net:8443/p/a.png?u=https%3A%2F%2Fimg.example.net'
        in html
    )
    assert "srcset" not in html
    assert "y%3D2" in html  # &amp; in the stored attribute was read as &


def test_hotlink_placeholders_follow_the_url_object() -> None:
    """${protocol}, ${hostname}, ${port}, ${search}, ${hash}, ${origin} as JavaScript's URL names
    them."""
    url = "https://a.example:81/p/q.jpg?s=1#h"
    assert (
        fill("${protocol}|${hostname}|${port}|${search}|${hash}|${origin}", url)
        == "https:|a.example|81|?s=1|#h|https://a.example:81"
    )


def test_a_bad_hotlink_template_is_400(world: World) -> None:
    """An unknown placeholder, or a template that makes no http(s) URL, is a 400."""
    client = world.client()
    for template in ("https://p.example/${nope}", "javascript:${href}", "${pathname}"):
        reply = client.get("/feeds/all.rss", params={"image_hotlink_template": template})
        assert reply.status_code == 400 and "image_hotlink_template" in reply.text, template


def test_unsupported_rsshub_parameters_are_400_others_ignored(world: World) -> None:
    """scihub, tgiv, multimedia_hotlink_template, wrap_multimedia_in_iframe: 400 naming them; a
    cache-buster is ignored (same bytes as the plain feed)."""
    client = world.client()
    for name in ("scihub", "tgiv", "multimedia_hotlink_template", "wrap_multimedia_in_iframe"):
        reply = client.get(f"/feeds/all.rss?{name}=1")
        assert reply.status_code == 400 and name in reply.text, name
    busted = client.get("/feeds/all.rss?_=1700000000&nocache=3", headers=PLAIN)
    assert busted.status_code == 200
    assert busted.content == client.get("/feeds/all.rss", headers=PLAIN).content


def test_each_variant_is_cached_and_etagged(world: World) -> None:
    """A variant renders once, answers 304 to its ETag, and differs from the plain feed's tag;
    the self link keeps the output parameters."""
    world.add("ruan", 1, title="简体")
    client = world.client()
    first = client.get("/feeds/all.json?opencc=s2t&brief=100", headers=PLAIN)
    renders = world.feeds.renders
    again = client.get("/feeds/all.json?brief=100&opencc=s2t", headers=PLAIN)
    assert world.feeds.renders == renders  # same canonical query: served from the cache
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["etag"] != client.get("/feeds/all.json", headers=PLAIN).headers["etag"]
    cond = client.get(
        "/feeds/all.json?opencc=s2t&brief=100",
        headers={**PLAIN, "If-None-Match": first.headers["etag"]},
    )
    assert cond.status_code == 304
    assert "brief=100" in first.json()["feed_url"] and "opencc=s2t" in first.json()["feed_url"]


def test_format_an_operator_feed_does_not_offer_is_404(tmp_path: Path) -> None:
    """format=json on an operator feed served only as Atom and RSS: 404, as /feeds/ID.json is."""
    world = make_world(
        tmp_path, '[[feeds]]\nid = "tech"\ncategories = ["Tech"]\nformats = ["atom", "rss"]\n'
    )
    world.add("hn", 1)
    client = world.client()
    assert client.get("/feeds/tech.atom?format=rss").status_code == 200
    reply = client.get("/feeds/tech.atom?format=json")
    assert reply.status_code == 404 and "json" in reply.text
