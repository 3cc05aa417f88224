"""`aggregator add URL`: a feed or a page's feeds, checked by fetching, written into the config
file as `import opml` writes it; pages and feeds served by a real origin on 127.0.0.1."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.cli import parser as cli
from aggregator.config import loading as config
from aggregator.runtime import reload
from aggregator.sources.discover import feed_links

from .origin import Origin, Reply

CONFIG = """# My aggregator — keep this comment
[fetch]
allow_private_networks = true  # the test origin is on 127.0.0.1
per_host_delay = 0
max_retries = 0

# the sources I read
[[sources]]
id = "hn"
url = "https://news.ycombinator.com/rss"  # Hacker News
"""
RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>{title}</title><link>https://blog.example/</link>
<description>d</description>
<item><title>One</title><link>https://blog.example/1</link><guid>1</guid></item>
<item><title>Two</title><link>https://blog.example/2</link><guid>2</guid></item>
<item><title>Three</title><link>https://blog.example/3</link><guid>3</guid></item>
</channel></rss>"""
ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Comments on the blog</title><id>urn:x</id>
<updated>2026-01-01T00:00:00Z</updated>
<entry><title>c1</title><id>urn:c1</id><updated>2026-01-01T00:00:00Z</updated></entry>
</feed>"""
JSON_FEED = json.dumps(
    {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "JSON blog",
        "items": [{"id": "1", "content_text": "x"}],
    }
)
TWO_LINKS = """<!doctype html><html><head><title>A blog</title>
<base href="/blog/">
<link rel="alternate" type="application/rss+xml" title="Posts" href="posts.xml">
<link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/2">
<link rel="alternate" type="application/json+oembed" href="/oembed?x">
<link rel="stylesheet" href="s.css">
<link rel="Alternate" type="application/atom+xml; charset=utf-8" title="Comments" href="{comments}">
</head><body><p>Hello</p></body></html>"""
NO_LINKS = "<!doctype html><html><head><title>Plain</title></head><body>Nothing here</body></html>"
HTML = "text/html; charset=utf-8"


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "agg.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    return cfg


def _add(cfg: Path, *args: str) -> int:
    return cli.main(["--config", str(cfg), "add", *args])


def _blog(origin: Origin) -> str:
    origin.route("/blog/posts.xml", Reply(RSS.format(title="The Blog")))
    origin.route("/comments.atom", Reply(ATOM, content_type="application/atom+xml"))
    page = TWO_LINKS.format(comments=origin.url("/comments.atom"))
    return origin.route("/blog/", Reply(page, content_type=HTML))


def test_feed_links_are_read_and_resolved_against_base() -> None:
    """<link rel=alternate> of RSS/Atom types, resolved against <base href>; WordPress's
    application/json API link and oEmbed are not feeds."""
    page = TWO_LINKS.format(comments="https://other.example/c.atom").encode()
    found = feed_links(page, "https://site.example/blog/index.html")
    assert [(c.url, c.title, c.kind) for c in found] == [
        ("https://site.example/blog/posts.xml", "Posts", "rss"),
        ("https://other.example/c.atom", "Comments", "atom"),
    ]


def test_several_feeds_without_a_terminal_exit_2_with_the_list(
    origin: Origin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two alternate links, no terminal, no --choose: exit 2, both listed, nothing written."""
    cfg = _config(tmp_path)
    assert _add(cfg, _blog(origin)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "1. Posts" in err and "posts.xml" in err and "2. Comments" in err and "--choose" in err
    assert cfg.read_text(encoding="utf-8") == CONFIG


def test_choose_picks_one_checks_it_and_keeps_the_file_layout(
    origin: Origin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--choose 2 adds the second feed, after fetching it (title and entry count shown); the
    file's comments stay and the new table loads."""
    cfg = _config(tmp_path)
    before = config.load(cfg)
    assert _add(cfg, _blog(origin), "--choose", "2", "--category", "Blogs / Friends") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Comments on the blog, 1 entries" in out and "added comments-on-the-blog" in out
    text = cfg.read_text(encoding="utf-8")
    assert text.startswith(CONFIG)
    after = config.load(cfg)
    added = after.source_records()[-1]
    assert (added.id, added.url, added.category) == (
        "comments-on-the-blog",
        origin.url("/comments.atom"),
        ("Blogs", "Friends"),
    )
    assert reload.diff(before, after).added == ("comments-on-the-blog",)  # what a daemon applies


def test_yes_takes_the_first(origin: Origin, tmp_path: Path) -> None:
    """--yes takes the first feed the page offers."""
    cfg = _config(tmp_path)
    assert _add(cfg, _blog(origin), "--yes", "--id", "myblog") == 0
    added = config.load(cfg).source_records()[-1]
    assert (added.id, added.url) == ("myblog", origin.url("/blog/posts.xml"))


def test_a_page_without_links_falls_back_to_well_known_paths(
    origin: Origin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No <link>, but /feed.xml answers with a feed: it is the one added (others are 404)."""
    cfg = _config(tmp_path)
    origin.route("/feed.xml", Reply(RSS.format(title="Found by path")))
    page = origin.route("/home", Reply(NO_LINKS, content_type=HTML))
    assert _add(cfg, page) == 0
    assert "Found by path, 3 entries" in " ".join(capsys.readouterr().out.split())
    assert config.load(cfg).source_records()[-1].url == origin.url("/feed.xml")
    tried = [r.path for r in origin.requests]
    assert tried[:3] == ["/home", "/feed", "/rss"] and tried.count("/feed.xml") == 1  # not again


def test_a_direct_feed_is_added_with_json_output(
    origin: Origin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JSON Feed URL is used as it is; --json prints id, url, title and entry count."""
    cfg = _config(tmp_path)
    url = origin.route("/feed.json", Reply(JSON_FEED, content_type="application/feed+json"))
    assert _add(cfg, url, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["id"] == "json-blog" and doc["entries"] == 1 and doc["url"] == url
    assert [r.path for r in origin.requests] == ["/feed.json"]  # no second fetch
    assert config.load(cfg).source_records()[-1].id == "json-blog"


def test_chinese_titles_give_an_id_from_the_host_and_are_kept(
    origin: Origin, tmp_path: Path
) -> None:
    """A GBK feed with a Chinese title: the id comes from the host, --title is written as given."""
    cfg = _config(tmp_path)
    body = RSS.format(title="阮一峰的网络日志").replace("utf-8", "gbk").encode("gbk")
    url = origin.route("/atom.xml", Reply(body))
    assert _add(cfg, url, "--title", "网络日志") == 0
    added = config.load(cfg).source_records()[-1]
    assert (added.id, added.title) == ("127-0-0-1", "网络日志")


def test_a_duplicate_is_refused_and_nothing_written(
    origin: Origin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A feed already configured (given directly, or found from a page): exit 1, file unchanged."""
    cfg = _config(tmp_path)
    url = origin.route("/feed.json", Reply(JSON_FEED, content_type="application/feed+json"))
    assert _add(cfg, url) == 0
    text = cfg.read_text(encoding="utf-8")
    capsys.readouterr()
    assert _add(cfg, url + "/") == 1
    assert "already configured (source 'json-blog')" in capsys.readouterr().err
    page = origin.route(
        "/",
        Reply(
            '<html><head><link rel="alternate" type="application/feed+json" '
            'href="/feed.json"></head></html>',
            content_type=HTML,
        ),
    )
    assert _add(cfg, page) == 1
    assert "already configured" in capsys.readouterr().err
    assert _add(cfg, "https://NEWS.ycombinator.com/rss") == 1  # no fetch: the host is not ours
    assert cfg.read_text(encoding="utf-8") == text


def test_a_taken_id_is_refused(
    origin: Origin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--id naming a configured source: exit 1, nothing written."""
    cfg = _config(tmp_path)
    url = origin.route("/feed.json", Reply(JSON_FEED, content_type="application/feed+json"))
    assert _add(cfg, url, "--id", "hn") == 1
    assert "id 'hn' is already configured" in capsys.readouterr().err
    assert cfg.read_text(encoding="utf-8") == CONFIG


def test_a_page_with_no_feed_is_one_line_and_exit_1(
    origin: Origin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An HTML page with no feed links and no well-known feed: one line, exit 1."""
    cfg = _config(tmp_path)
    page = origin.route("/plain", Reply(NO_LINKS, content_type=HTML))
    assert _add(cfg, page) == 1
    err = capsys.readouterr().err.strip()
    assert "is not a feed and no feed was found on it" in err
    assert cfg.read_text(encoding="utf-8") == CONFIG


def test_a_private_address_is_refused_without_the_setting(
    origin: Origin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fetcher's URL policy holds: 127.0.0.1 is refused when private networks are not allowed."""
    cfg = tmp_path / "agg.toml"
    cfg.write_text(
        CONFIG.replace("allow_private_networks = true", "allow_private_networks = false"),
        encoding="utf-8",
    )
    url = origin.route("/feed.json", Reply(JSON_FEED, content_type="application/feed+json"))
    assert _add(cfg, url) == 1
    assert "cannot fetch" in capsys.readouterr().err
    assert origin.requests == []


def test_on_a_terminal_the_user_is_asked(origin: Origin, tmp_path: Path) -> None:
    """Run on a pseudo-terminal: the numbered list and a prompt; answering 2 adds the second."""
    cfg = _config(tmp_path)
    page = _blog(origin)
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator.cli", "--config", str(cfg), "add", page],
        stdin=child,
        stdout=child,
        stderr=child,
        env={**os.environ, "COLUMNS": "200"},
    )
    os.close(child)
    seen = _read_until(main, b"Which one?")
    assert b"2. Comments" in seen
    os.write(main, b"2\n")
    _read_until(main, b"added")
    assert proc.wait(timeout=30) == 0
    os.close(main)
    assert config.load(cfg).source_records()[-1].url == origin.url("/comments.atom")


def _read_until(fd: int, marker: bytes, timeout: float = 30.0) -> bytes:
    seen = b""
    while marker not in seen:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"no {marker!r} in {seen!r}"
        seen += os.read(fd, 4096)
    return seen


SAVED = Path(__file__).parent / "data" / "add"


def test_a_wordpress_home_page_offers_posts_then_comments(
    origin: Origin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A saved WordPress home page: its posts and comments feeds (not the wp-json API or oEmbed
    links); --yes takes the posts feed, the first."""
    page = (SAVED / "wordpress-home.html").read_text(encoding="utf-8")
    page = page.replace("https://fieldnotes.example", origin.url("").rstrip("/"))
    origin.route("/feed/", Reply(RSS.format(title="Field Notes")))
    url = origin.route("/", Reply(page, content_type="text/html; charset=UTF-8"))
    found = feed_links(page.encode(), url)
    assert [c.title for c in found] == ["Field Notes » Feed", "Field Notes » Comments Feed"]
    cfg = _config(tmp_path)
    assert _add(cfg, url, "--yes") == 0
    added = config.load(cfg).source_records()[-1]
    assert (added.id, added.url) == ("field-notes", origin.url("/feed/"))


def test_a_chinese_gbk_page_links_its_feed_relative_to_base(
    origin: Origin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A saved GBK page (charset in a meta tag) whose one Atom link is relative to <base href>
    placed after it: the link title reads right and the feed is added."""
    raw = (SAVED / "zh-blog-gbk.html").read_bytes()
    assert [(c.title, c.url) for c in feed_links(raw, "https://zh.example/zh/index.html")] == [
        ("网络日志 Atom 订阅", "https://zh.example/blog/atom.xml")
    ]
    feed = RSS.format(title="网络日志").replace("utf-8", "gb18030").encode("gb18030")
    origin.route("/blog/atom.xml", Reply(feed))
    url = origin.route("/zh/index.html", Reply(raw, content_type="text/html"))
    cfg = _config(tmp_path)
    assert _add(cfg, url, "--category", "科技 / 博客") == 0
    assert "网络日志, 3 entries" in capsys.readouterr().out
    added = config.load(cfg).source_records()[-1]
    assert (added.url, added.category) == (origin.url("/blog/atom.xml"), ("科技", "博客"))


def test_choose_out_of_range_is_a_usage_error(
    origin: Origin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--choose 3 when the page offers two feeds: exit 2 saying the range, nothing written."""
    cfg = _config(tmp_path)
    assert _add(cfg, _blog(origin), "--choose", "3") == 2
    assert "feeds 1 to 2" in capsys.readouterr().err
    assert cfg.read_text(encoding="utf-8") == CONFIG


def test_a_page_whose_charset_is_only_in_the_http_header(origin: Origin, tmp_path: Path) -> None:
    """A GBK page without a meta charset, its encoding named only by Content-Type: link titles
    read right."""
    raw = (SAVED / "zh-blog-gbk.html").read_bytes()
    raw = raw.replace(b'<meta http-equiv="Content-Type" content="text/html; charset=gbk">', b"")
    found = feed_links(raw, "https://zh.example/zh/", "text/html; charset=GBK")
    assert [c.title for c in found] == ["网络日志 Atom 订阅"]
